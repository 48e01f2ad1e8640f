"""What both stand-ins need between tests: no answer still pending and a fresh start."""

from __future__ import annotations

from typing import Protocol

from standins.in_flight import InFlight
from tests.support.loopback import LoopbackServer


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
