"""What one process (a warm Lambda sandbox, a dev server) builds once and reuses: settings, engine, provider."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.realtime.base import RealtimeProvider
from core.realtime.factory import create_provider
from core.settings import Settings

log = logging.getLogger("hafi.runtime")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    provider: RealtimeProvider
    # Whether an action answers before it publishes (``after_answer``). Only for a process that outlives its
    # requests (the API under uvicorn, the dev server, a Socket.IO node): a serverless function is frozen once it
    # has answered, so there the publish is part of the request.
    publishes_after_answer: bool = False
    _after_answer: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def after_answer(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` beside the requests, kept until it ends; ``aclose`` waits for it. A failure is logged."""
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._after_answer.add(task)
        task.add_done_callback(self._after_answer.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            # What it was publishing stays pending under a lease that expires: the next writer or the relay sends it.
            log.exception("work after an answer failed")

    async def aclose(self) -> None:
        """Waits for the work after answers as long as a request's publishing may take (then cancels it: its
        messages stay pending for the relay), then closes the provider's client and the engine."""
        from core.outbox.publishing import longest_publishing_seconds

        await self.work_after_answers_done(longest_publishing_seconds(self.settings))
        await self.provider.aclose()
        await self.engine.dispose()

    async def work_after_answers_done(self, grace_seconds: float) -> None:
        """Waits until no work after an answer is left, including work that requests answered meanwhile start; what
        is left after ``grace_seconds`` is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._after_answer:
            _, unfinished = await asyncio.wait(set(self._after_answer), timeout=max(deadline - loop.time(), 0))
            if unfinished and loop.time() >= deadline:
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)

    def renew_after_restore(self) -> None:
        """A resumed SnapStart snapshot holds the sockets of the sandbox it was taken in: replace the engine and the
        provider client with new ones. The old engine's connections are dropped without a goodbye (close=False):
        they belong to a network connection that no longer exists."""
        self.engine.sync_engine.dispose(close=False)
        self.engine = create_engine(self.settings)
        self.provider = create_provider(self.settings)


def initializing_a_snapshot() -> bool:
    """Whether this process is a SnapStart INIT: paid once, when a version is published, and restored from its
    snapshot by every cold start, so what a first request would load on first use is better loaded there."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def renew_on_snapstart_restore(runtime: Runtime) -> None:
    """Registers ``runtime.renew_after_restore`` with Lambda's SnapStart runtime hooks, where they exist.

    ``snapshot_restore_py`` is provided by Lambda's python3.12+ runtime, not installed from PyPI; anywhere else
    (tests, dev, Vercel, a function without SnapStart) there is nothing to restore from.

    A SnapStart INIT also loads what the first request would otherwise load on first use (PyJWT)."""
    if initializing_a_snapshot():
        from core.auth import load_pyjwt  # here: the relay, which handles no token, does not load core.auth

        load_pyjwt()

    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return
    register_after_restore(runtime.renew_after_restore)


def build_runtime(
    settings: Settings, *, engine: AsyncEngine | None = None, provider: RealtimeProvider | None = None
) -> Runtime:
    """``engine``, where given, must be one ``core.db.create_engine`` made: the actions count on its connections
    being in autocommit (a single-statement action on another engine's would be rolled back unseen)."""
    return Runtime(
        settings=settings,
        engine=engine or create_engine(settings),
        provider=provider or create_provider(settings),
    )
