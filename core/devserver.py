"""``hafi-realtime dev``: the whole backend in one process for a laptop, with nothing to install or sign up for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.runtime import Runtime, build_runtime
from core.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp

DEMO_ADMIN_EMAIL = "admin@demo.local"


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
    api = create_app(runtime)
    mount_web(api)
    if node is None:
        return DevApp(api, api, runtime, runtime.aclose)
    return DevApp(node.asgi_app(api), api, runtime, node.aclose)


def run_dev(*, host: str, port: int, data_dir: Path) -> None:
    import uvicorn

    from core.demo import DEMO_SLUG, seed_demo
    from core.migrations import upgrade
    from core.relay import relay_forever
    from core.services.accounts import upsert_admin
    from core.settings import get_settings

    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_embedded_postgres(data_dir)
        print(f"embedded Postgres running from {data_dir / 'pgdata'}")
    os.environ.setdefault("DB_POOL_SIZE", "10")
    # Live with no accounts: our own Socket.IO server, in this process, unless another provider is asked for.
    os.environ.setdefault("REALTIME_PROVIDER", "socketio")
    # Only this command may serve without JWT_SECRET: a random one per start (tokens end with the process).
    os.environ.setdefault("JWT_SECRET", secrets.token_hex(32))
    settings = get_settings()
    upgrade(settings.require_database_url())
    dev = build_dev_app(settings)
    runtime = dev.runtime
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await seed_demo(runtime.engine)
        async with runtime.engine.begin() as conn:
            await upsert_admin(conn, email=DEMO_ADMIN_EMAIL, password=password)
        relay = asyncio.create_task(relay_forever(runtime, interval_seconds=2.0, stop=stop))
        base = f"http://{host}:{port}"
        sockets = f"  Socket.IO  {base}{settings.socketio_path}\n" if settings.realtime_provider == "socketio" else ""
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

    dev.api.router.lifespan_context = lifespan
    uvicorn.run(dev.served, host=host, port=port, log_level="warning", ws="websockets-sansio")
