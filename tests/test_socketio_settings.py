"""The Socket.IO server's settings: the original platform's defaults, the Admin UI's refusals, the publisher's needs."""

from __future__ import annotations

import pytest
import socketio

from core.realtime.socketio import SocketIOProvider
from core.settings import Settings, SettingsError
from core.socketio_server import create_server
from tests.support.environment import make_settings
from tests.support.sockets import WAIT_SECONDS, live_node

ADMIN_UI = {"socketio_admin_ui": True, "cors_origins": ["https://gallery.example.com"]}


def test_the_server_takes_the_original_platforms_options_by_default() -> None:
    settings = Settings(app_env="test")

    server = create_server(settings)

    assert (server.eio.ping_interval, server.eio.ping_timeout) == (25, 60)
    assert server.eio.max_http_buffer_size == 64 * 1024  # smaller than the original's 1 MB: see settings.py
    assert server.eio.http_compression is True and server.eio.compression_threshold == 1024
    assert server.eio.cors_allowed_origins is None  # same origin only until CORS_ORIGINS says otherwise
    assert settings.socketio_path == "/api/socket" and settings.socketio_admin_ui is False


def test_cors_origins_are_the_servers_allowed_origins_and_the_path_is_normalised() -> None:
    settings = Settings(
        app_env="test", cors_origins="https://a.example.com, https://b.example.com", socketio_path="ws/"
    )

    assert create_server(settings).eio.cors_allowed_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.socketio_path == "/ws"


@pytest.mark.parametrize("password", ["", "   ", "admin", "Password", "changeme"])
def test_the_admin_ui_refuses_to_start_with_an_empty_or_default_password(password: str) -> None:
    # Raised inside pydantic's validation, so it surfaces as a ValidationError (a ValueError) naming the setting.
    with pytest.raises(ValueError, match="SOCKETIO_ADMIN_PASSWORD"):
        Settings(app_env="test", socketio_admin_password=password, **ADMIN_UI)


def test_the_admin_ui_needs_the_sites_origins_listed() -> None:
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        Settings(app_env="test", socketio_admin_ui=True, socketio_admin_password="a-real-password")


def test_a_function_cannot_publish_to_socketio_without_redis() -> None:
    with pytest.raises(SettingsError, match="SOCKETIO_REDIS_URL"):
        SocketIOProvider.from_settings(Settings(app_env="test", realtime_provider="socketio"))


async def test_the_admin_ui_namespace_admits_only_the_configured_credentials(database_url: str) -> None:
    settings = make_settings(
        database_url, realtime_provider="socketio", socketio_admin_password="s3cret-ui", **ADMIN_UI
    )
    async with live_node(settings) as live:
        wrong, right = socketio.AsyncClient(reconnection=False), socketio.AsyncClient(reconnection=False)
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await wrong.connect(
                    live.url,
                    socketio_path=settings.socketio_path,
                    namespaces=["/admin"],
                    auth={"username": "admin", "password": "guess"},
                    wait_timeout=WAIT_SECONDS,
                )
            await right.connect(
                live.url,
                socketio_path=settings.socketio_path,
                namespaces=["/admin"],
                auth={"username": "admin", "password": "s3cret-ui"},
                wait_timeout=WAIT_SECONDS,
            )
            assert "/admin" in right.namespaces
        finally:
            await wrong.disconnect()
            await right.disconnect()
