"""Builds the configured provider. Each SDK is imported inside its own branch so that only the chosen one loads."""

from __future__ import annotations

from collections.abc import Callable

from core.realtime.base import RealtimeProvider
from core.settings import ProviderName, Settings


def _make_memory(settings: Settings) -> RealtimeProvider:
    from core.realtime.memory import MemoryProvider

    return MemoryProvider()


def _make_ably(settings: Settings) -> RealtimeProvider:
    from core.realtime.ably import AblyProvider

    return AblyProvider.from_settings(settings)


def _make_pusher(settings: Settings) -> RealtimeProvider:
    from core.realtime.pusher import PusherProvider

    return PusherProvider.from_settings(settings)


def _make_socketio(settings: Settings) -> RealtimeProvider:
    from core.realtime.socketio import SocketIOProvider

    return SocketIOProvider.from_settings(settings)


_MAKERS: dict[ProviderName, Callable[[Settings], RealtimeProvider]] = {
    "memory": _make_memory,
    "ably": _make_ably,
    "pusher": _make_pusher,
    "socketio": _make_socketio,
}


def create_provider(settings: Settings) -> RealtimeProvider:
    return _MAKERS[settings.realtime_provider](settings)
