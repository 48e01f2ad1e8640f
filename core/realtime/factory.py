"""Builds the configured provider. Each SDK is imported inside its own branch so that only the chosen one loads."""

from __future__ import annotations

from collections.abc import Callable

from core.realtime.base import RealtimeProvider
from core.settings import ProviderName, Settings


def _make_memory(settings: Settings) -> RealtimeProvider:
    from core.realtime.memory import MemoryProvider

    return MemoryProvider()


_MAKERS: dict[ProviderName, Callable[[Settings], RealtimeProvider]] = {
    "memory": _make_memory,
}


def create_provider(settings: Settings) -> RealtimeProvider:
    try:
        maker = _MAKERS[settings.realtime_provider]
    except KeyError:
        raise ValueError(f"REALTIME_PROVIDER={settings.realtime_provider!r} is not available") from None
    return maker(settings)
