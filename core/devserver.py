"""``hafi-realtime dev``: the whole backend in one process for a laptop, with nothing to install or sign up for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.db import begin
from core.runtime import Runtime, build_runtime
from core.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp

DEMO_ADMIN_EMAIL = "admin@demo.local"
STANDIN_PROVIDERS = ("ably", "pusher")


def start_embedded_postgres(data_dir: Path) -> str:
    """Starts (or reuses) a Postgres kept in ``data_dir`` and returns its URL; it stops when this process exits."""
    try:
        import pgserver
    except ImportError:
        raise SystemExit(
            "hafi-realtime dev: no DATABASE_URL and no embedded Postgres; install it with "
            "'pip install -e .[local]' or set DATABASE_URL"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


@dataclass
class DevApp:
    """What ``dev`` serves: the API, the demo pages and (with the socketio provider) the Socket.IO node."""

    served: ASGIApp
    api: FastAPI
    runtime: Runtime
    aclose: Callable[[], Awaitable[None]]


@dataclass
class Standin:
    """A local stand-in of a managed provider (``standins/``), serving its REST API and WebSocket on one port."""

    provider: str
    app: ASGIApp
    service: Any  # the FakeAbly or FakePusher, for tests that look inside

    def settings(self, *, host: str, port: int) -> dict[str, Any]:
        """The settings (field names) that point the backend, and through it the browser, at ``host:port``."""
        if self.provider == "ably":
            return {
                "realtime_provider": "ably",
                "ably_api_key": self.service.key,
                "ably_endpoint": host,
                "ably_tls": False,
                "ably_port": port,
                "ably_use_binary_protocol": False,
            }
        return {
            "realtime_provider": "pusher",
            "pusher_app_id": self.service.app_id,
            "pusher_key": self.service.key,
            "pusher_secret": self.service.secret,
            "pusher_host": host,
            "pusher_port": port,
            "pusher_scheme": "http",
        }


def make_standin(provider: str) -> Standin:
    """The stand-in of ``provider``, "ably" or "pusher"."""
    if provider == "ably":
        from standins.ably_service import FakeAbly

        ably = FakeAbly()
        return Standin(provider, ably.app, ably)
    if provider == "pusher":
        from standins.pusher_service import FakePusher

        pusher = FakePusher()
        return Standin(provider, pusher.app, pusher)
    raise ValueError(f"no stand-in for {provider!r}: one of {', '.join(STANDIN_PROVIDERS)}")


def build_dev_app(settings: Settings) -> DevApp:
    from core.api.app import create_app
    from core.web import mount_web

    node = None
    if settings.realtime_provider == "socketio":
        from core.socketio_server import build_node

        # The provider emits straight into this process's server (through Redis only if SOCKETIO_REDIS_URL is set).
        node = build_node(settings)
        runtime = node.runtime
    else:
        runtime = build_runtime(settings)
    runtime.publishes_after_answer = True  # a server, as core.api.app.server_app's
    api = create_app(runtime, parts_on_demand=False)  # a server: every part before the first request
    mount_web(api)
    if node is None:
        return DevApp(api, api, runtime, runtime.aclose)
    return DevApp(node.asgi_app(api), api, runtime, node.aclose)


class PortUnavailableError(Exception):
    """A port ``dev`` needs is taken (or not ours to bind); the message says which and what to do."""


def _listening_socket(host: str, port: int, *, option: str) -> socket.socket:
    """Bound before anything else starts, so a taken port fails at once, before the banner, and the port the
    backend is told is the one that listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortUnavailableError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); stop what runs there or choose another {option}"
        ) from None
    return sock


def run_dev(*, host: str, port: int, data_dir: Path, provider: str | None = None, standin_port: int = 0) -> None:
    """``provider`` ably or pusher runs that provider's stand-in on ``standin_port`` in this process and points the
    backend at it (whatever ABLY_*/PUSHER_* say); socketio (the default) is our own server, in this process."""
    import uvicorn

    from core.demo import DEMO_SLUG, seed_demo
    from core.migrations import upgrade
    from core.outbox.relay import relay_forever
    from core.services.accounts import upsert_admin
    from core.settings import SettingsError, get_settings

    api_socket = _listening_socket(host, port, option="--port")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_embedded_postgres(data_dir)
        print(f"embedded Postgres running from {data_dir / 'pgdata'}")
    _default_env("DB_POOL_SIZE", "10")
    _default_env("DB_PREPARED_STATEMENTS", "true")  # a direct connection, no pooler in between
    # Live with no accounts: our own Socket.IO server, in this process, unless another provider is asked for.
    if provider:
        os.environ["REALTIME_PROVIDER"] = provider
    _default_env("REALTIME_PROVIDER", "socketio")
    standin: Standin | None = None
    standin_socket: socket.socket | None = None
    if os.environ["REALTIME_PROVIDER"] in STANDIN_PROVIDERS and provider:
        standin_socket = _listening_socket(host, standin_port or port + 1, option="--standin-port")
        standin_port = standin_socket.getsockname()[1]
        standin = make_standin(provider)
        overrides = standin.settings(host=host, port=standin_port)
        os.environ.update({name.upper(): str(value) for name, value in overrides.items()})
    # Only this command may serve without JWT_SECRET: a random one per start (tokens end with the process).
    _default_env("JWT_SECRET", secrets.token_hex(32))
    settings = get_settings()
    if settings.app_env == "production":
        raise SettingsError(
            "hafi-realtime dev refuses APP_ENV=production: it migrates, seeds the demo event and sets the demo admin's"
            " password in the database DATABASE_URL names; serve production with a function or the API's unit"
        )
    upgrade(settings.require_database_url())
    dev = build_dev_app(settings)
    runtime = dev.runtime
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await seed_demo(runtime.engine)
        async with begin(runtime.engine) as conn:
            await upsert_admin(conn, email=DEMO_ADMIN_EMAIL, password=password)
        relay = asyncio.create_task(relay_forever(runtime, interval_seconds=2.0, stop=stop))
        standin_server = standin_task = None
        if standin is not None and standin_socket is not None:
            config = uvicorn.Config(standin.app, log_level="warning", ws="websockets-sansio", lifespan="off")
            standin_server = uvicorn.Server(config)
            standin_task = asyncio.create_task(standin_server.serve(sockets=[standin_socket]))
        base = f"http://{host}:{port}"
        sockets = f"  Socket.IO  {base}{settings.socketio_path}\n" if settings.realtime_provider == "socketio" else ""
        if standin is not None:
            sockets = f"  {provider} stand-in  http://{host}:{standin_port} (REST and WebSocket, no account)\n"
        print(
            f"\nHafiportrait Realtime is running ({settings.realtime_provider} provider)\n"
            f"  gallery    {base}/?event={DEMO_SLUG}\n"
            f"  moderation {base}/admin  ({DEMO_ADMIN_EMAIL} / {password})\n"
            f"  API docs   {base}/api/docs\n"
            f"{sockets}",
            flush=True,
        )
        try:
            yield
        finally:
            stop.set()
            await relay
            await dev.aclose()
            if standin_server is not None and standin_task is not None:
                standin_server.should_exit = True
                await standin_task

    dev.api.router.lifespan_context = lifespan
    # Socket.IO broadcasts are sent uncompressed, as the Node socket.io server does by default: permessage-deflate
    # compresses the same message once per recipient (see core/socketio_server/standalone.py).
    config = uvicorn.Config(dev.served, log_level="warning", ws="websockets-sansio", ws_per_message_deflate=False)
    # uvicorn shuts down on SIGTERM, then raises it again under the handler it found; the default one ends the
    # process without running atexit, where the embedded Postgres is stopped. Ending by SystemExit runs them.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.Server(config).run(sockets=[api_socket])


def _default_env(name: str, value: str) -> None:
    """Sets ``name`` unless the environment gives it a value: an empty one counts as unset, as in Settings."""
    if not os.environ.get(name):
        os.environ[name] = value


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
