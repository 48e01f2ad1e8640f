"""What both fake services share: knowing when no request is being answered, and a fresh start for each test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Protocol

from tests.support.loopback import LoopbackServer


class InFlight:
    """Counts the requests being answered. A slow answer outlives the client that gave up on it; the next test
    waits for it to end rather than see it land."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def settle(self) -> None:
        await self._idle.wait()


class FakeService(Protocol):
    in_flight: InFlight
    delay_seconds: float  # how long each answer waits: a slow service

    def reset(self) -> None: ...


async def fresh_for_next_test(service: FakeService, server: LoopbackServer) -> None:
    """No answer still pending, nothing recorded, no failure set, and up again if the last test stopped it."""
    await service.in_flight.settle()
    service.reset()
    if not server.running:
        await server.start()
