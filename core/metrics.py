"""Counters of this process (a warm sandbox, a server); durable numbers come from the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

_counters: Counter[str] = Counter()
_gauges: dict[str, Callable[[], Any]] = {}


def incr(name: str, amount: int = 1) -> None:
    _counters[name] += amount


def register_gauge(name: str, read: Callable[[], Any]) -> None:
    """Adds a live value (such as connected Socket.IO clients) to every snapshot."""
    _gauges[name] = read


def snapshot() -> dict[str, Any]:
    return {**dict(sorted(_counters.items())), **{name: read() for name, read in sorted(_gauges.items())}}
