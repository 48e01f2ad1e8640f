"""``hafi-realtime dev``: the whole backend in one process for a laptop, with nothing to install or sign up for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

DEMO_ADMIN_EMAIL = "admin@demo.local"
log = logging.getLogger("hafi.dev")


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


def run_dev(*, host: str, port: int, data_dir: Path) -> None:
    import uvicorn

    from core.api.app import create_app
    from core.demo import DEMO_SLUG, seed_demo
    from core.migrations import upgrade
    from core.relay import relay_forever
    from core.runtime import build_runtime
    from core.services.accounts import upsert_admin
    from core.settings import get_settings

    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_embedded_postgres(data_dir)
        print(f"embedded Postgres running from {data_dir / 'pgdata'}")
    os.environ.setdefault("DB_POOL_SIZE", "10")
    settings = get_settings()
    upgrade(settings.require_database_url())
    runtime = build_runtime(settings)
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)

    async def prepare() -> None:
        await seed_demo(runtime.engine)
        async with runtime.engine.begin() as conn:
            await upsert_admin(conn, email=DEMO_ADMIN_EMAIL, password=password)

    app = create_app(runtime)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await prepare()
        relay = asyncio.create_task(relay_forever(runtime, interval_seconds=2.0, stop=stop))
        base = f"http://{host}:{port}"
        print(
            f"\nHafiportrait Realtime is running ({settings.realtime_provider} provider)\n"
            f"  API docs   {base}/api/docs\n"
            f"  demo event {base}/api/events/{DEMO_SLUG}\n"
            f"  admin      {DEMO_ADMIN_EMAIL} / {password}\n",
            flush=True,
        )
        try:
            yield
        finally:
            stop.set()
            await relay
            await runtime.aclose()

    app.router.lifespan_context = lifespan
    uvicorn.run(app, host=host, port=port, log_level="warning")
