"""A pytest plugin: every event the backend publishes during the test run is checked against docs/asyncapi.yaml.

Each provider's ``publish`` is wrapped for the whole session, so the check sees what goes to the memory provider,
to the Ably and Pusher fakes and to Socket.IO alike. Only publishes made through the backend's own code (``core``)
are checked: tests that feed a provider hand-made events, to test the provider alone, are not the backend speaking.
A test during which the backend published an event outside the contract fails at its teardown, naming the event.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import FrameType
from typing import Any

import pytest

from core.realtime.base import RealtimeMessage, RealtimeProvider
from tests.support.event_contract import violations

checked: Counter[str] = Counter()
_violations: list[str] = []
_SHOWN = 20

Publish = Callable[[Any, Sequence[RealtimeMessage]], Awaitable[None]]


def _called_by_backend() -> bool:
    """Whether the backend's code is among the callers (a test's own provider subclass may stand between)."""
    frame: FrameType | None = sys._getframe(2)  # the caller of the wrapped publish
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("core."):
            return True
        frame = frame.f_back
    return False


def _checking(publish: Publish) -> Publish:
    @functools.wraps(publish)
    async def checked_publish(self: Any, events: Sequence[RealtimeMessage]) -> None:
        if _called_by_backend():
            for event in events:
                checked[event.name] += 1
                _violations.extend(
                    f"{event.id}: {problem}" for problem in violations(event.channel, event.name, event.data)
                )
        await publish(self, events)

    return checked_publish


def _providers(base: type[Any]) -> Iterator[type[Any]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from _providers(subclass)


def pytest_configure(config: pytest.Config) -> None:
    # Each provider module is loaded lazily by the app; load them all now so every one is checked.
    import core.realtime.ably
    import core.realtime.memory
    import core.realtime.pusher
    import core.realtime.socketio  # noqa: F401

    for provider in set(_providers(RealtimeProvider)):
        if "publish" in provider.__dict__:
            provider.publish = _checking(provider.__dict__["publish"])


@pytest.fixture(autouse=True)
def _published_events_follow_the_contract() -> Iterator[None]:
    before = len(_violations)
    yield
    if found := _violations[before:]:
        shown = found[:_SHOWN] + ([f"... and {len(found) - _SHOWN} more"] if len(found) > _SHOWN else [])
        pytest.fail("published events outside docs/asyncapi.yaml:\n" + "\n".join(shown), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if checked:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(checked.items()))
        terminalreporter.write_line(f"published events checked against docs/asyncapi.yaml: {counts}")
