"""Ending each socket's session at its token's ``exp``.

One timer per socket that connected with a token, kept on the event loop's own timer heap (``loop.call_at``): O(log
n) to set, O(1) to cancel, about a hundred bytes each and no task until it fires, so tens of thousands of sockets
cost nothing while they wait. A task of our own per socket would hold a coroutine frame each; a heap of our own
would duplicate the loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("hafi.socketio")

OnExpiry = Callable[[str], Awaitable[None]]


class Expiries:
    def __init__(self, on_expiry: OnExpiry) -> None:
        self._on_expiry = on_expiry
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._timers)

    def set(self, sid: str, expires_at: float) -> None:
        """Replaces the socket's timer: at ``expires_at`` (wall-clock seconds) ``on_expiry(sid)`` runs."""
        self.cancel(sid)
        loop = asyncio.get_running_loop()
        # The loop's clock is monotonic, the token's is the wall clock: convert once, now.
        self._timers[sid] = loop.call_at(loop.time() + max(0.0, expires_at - time.time()), self._fire, sid)

    def cancel(self, sid: str) -> None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, sid: str) -> None:
        self._timers.pop(sid, None)
        task = asyncio.get_running_loop().create_task(self._expire(sid))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _expire(self, sid: str) -> None:
        try:
            await self._on_expiry(sid)
        except Exception:
            log.exception("ending a socket at its token's expiry failed", extra={"sid": sid})

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
