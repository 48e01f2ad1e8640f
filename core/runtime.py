"""What one process (a warm Lambda sandbox, a dev server) builds once and reuses: settings, engine, provider."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.realtime.base import RealtimeProvider
from core.realtime.factory import create_provider
from core.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    provider: RealtimeProvider

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.engine.dispose()

    def renew_after_restore(self) -> None:
        """A resumed SnapStart snapshot holds the sockets of the sandbox it was taken in: replace the engine and the
        provider client with new ones. The old engine's connections are dropped without a goodbye (close=False):
        they belong to a network connection that no longer exists."""
        self.engine.sync_engine.dispose(close=False)
        self.engine = create_engine(self.settings)
        self.provider = create_provider(self.settings)


def renew_on_snapstart_restore(runtime: Runtime) -> None:
    """Registers ``runtime.renew_after_restore`` with Lambda's SnapStart runtime hooks, where they exist.

    ``snapshot_restore_py`` is provided by Lambda's python3.12+ runtime, not installed from PyPI; anywhere else
    (tests, dev, Vercel, a function without SnapStart) there is nothing to restore from.

    A SnapStart INIT (``AWS_LAMBDA_INITIALIZATION_TYPE``) also loads what the first request would otherwise load on
    first use (PyJWT): it is paid once, when a version is published, and restored with the snapshot."""
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        import jwt  # noqa: F401

    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return
    register_after_restore(runtime.renew_after_restore)


def build_runtime(
    settings: Settings, *, engine: AsyncEngine | None = None, provider: RealtimeProvider | None = None
) -> Runtime:
    return Runtime(
        settings=settings,
        engine=engine or create_engine(settings),
        provider=provider or create_provider(settings),
    )
