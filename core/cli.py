"""``hafi-realtime``: run everything locally, migrate, seed, manage admins, relay the outbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from core.settings import Settings, SettingsError, get_settings


def _settings() -> Settings:
    try:
        return get_settings()
    except (SettingsError, ValueError) as exc:
        sys.exit(f"hafi-realtime: {exc}")


def cmd_migrate(args: argparse.Namespace) -> None:
    from core.migrations import upgrade

    upgrade(_database_url())
    print("migrations applied")


def _database_url() -> str:
    try:
        return _settings().require_database_url()
    except SettingsError as exc:
        sys.exit(f"hafi-realtime: {exc}")


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from core.db import create_engine
    from core.demo import DEMO_SLUG, seed_demo

    async def seed() -> int:
        engine = create_engine(_settings())
        try:
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    added = asyncio.run(seed())
    print(f"demo event {DEMO_SLUG!r} ready ({added} photos added)")


def cmd_create_admin(args: argparse.Namespace) -> None:
    from core.db import begin, create_engine
    from core.errors import AppError
    from core.services.accounts import upsert_admin

    password = args.password or os.environ.get("ADMIN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            sys.exit("hafi-realtime: give --password, ADMIN_PASSWORD, or run in a terminal to be asked")
        password = getpass.getpass("Password: ")

    async def create() -> int:
        engine = create_engine(_settings())
        try:
            async with begin(engine) as conn:
                return await upsert_admin(conn, email=args.email, password=password)
        finally:
            await engine.dispose()

    try:
        admin_id = asyncio.run(create())
    except AppError as exc:
        sys.exit(f"hafi-realtime: {exc.message}")
    print(f"admin {args.email} ready (id {admin_id})")


def cmd_relay(args: argparse.Namespace) -> None:
    from core.db import begin
    from core.outbox.relay import relay_forever, relay_once
    from core.runtime import build_runtime

    async def relay() -> None:
        runtime = build_runtime(_settings())
        try:
            if args.retry_parked:
                from core.outbox import operations

                async with begin(runtime.engine) as conn:
                    print(f"{await operations.retry_parked(conn)} parked events queued again")
            if args.loop:
                await relay_forever(runtime, interval_seconds=args.interval)
            else:
                print(await relay_once(runtime))
        finally:
            await runtime.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay())


def cmd_dev(args: argparse.Namespace) -> None:
    from core.devserver import PortUnavailableError, run_dev

    try:
        run_dev(
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir),
            provider=args.provider,
            standin_port=args.standin_port,
        )
    except (PortUnavailableError, SettingsError) as exc:
        sys.exit(f"hafi-realtime: {exc}")


def cmd_socketio(args: argparse.Namespace) -> None:
    from core.socketio_server.standalone import run_socketio

    try:
        run_socketio(settings=_settings(), host=args.host, port=args.port)
    except SettingsError as exc:
        sys.exit(f"hafi-realtime: {exc}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hafi-realtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run everything locally: embedded Postgres (unless DATABASE_URL is set), migrations, demo data, the API",
        description="Everything on one machine, no accounts needed.",
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--data-dir", default=".hafi", help="where the embedded Postgres keeps its data (default: .hafi)")
    dev.add_argument(
        "--provider",
        choices=["socketio", "ably", "pusher"],
        help="socketio (default): our own server; ably or pusher: the browser uses the official SDK against a local "
        "stand-in of that provider, started in this process (no account needed)",
    )
    dev.add_argument(
        "--standin-port", type=int, default=0, help="where the ably/pusher stand-in listens (default: --port + 1)"
    )
    dev.set_defaults(func=cmd_dev)

    commands.add_parser("migrate", help="apply the migrations to DATABASE_URL").set_defaults(func=cmd_migrate)
    commands.add_parser("seed-demo", help="create the demo event 'demo-wedding' with photos").set_defaults(
        func=cmd_seed_demo
    )

    admin = commands.add_parser("create-admin", help="create an admin account (or set its password)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="also read from ADMIN_PASSWORD, or asked for")
    admin.set_defaults(func=cmd_create_admin)

    relay = commands.add_parser("relay", help="publish pending outbox events")
    relay.add_argument("--loop", action="store_true", help="keep relaying until stopped")
    relay.add_argument("--interval", type=float, default=1.0, help="seconds between runs with --loop")
    relay.add_argument("--retry-parked", action="store_true", help="queue parked events again first")
    relay.set_defaults(func=cmd_relay)

    sockets = commands.add_parser(
        "socketio",
        help="run the standalone Socket.IO server of the self-hosted fallback (needs SOCKETIO_REDIS_URL)",
        description="One Socket.IO node; nodes share rooms, and receive what the API publishes, through Redis.",
    )
    sockets.add_argument("--host", default="127.0.0.1")
    sockets.add_argument("--port", type=int, default=8001)
    sockets.set_defaults(func=cmd_socketio)
    return parser


def _unreachable_database(exc: BaseException) -> str | None:
    """Why the database could not be reached, in one line, where that is what ``exc`` says; None otherwise."""
    from psycopg import OperationalError as PsycopgOperationalError
    from sqlalchemy.exc import OperationalError

    cause = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(cause, PsycopgOperationalError):
        return None
    first = next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
    # psycopg says where it tried first ("connection to server at … failed: "); the cause is what follows.
    return first.rsplit("failed: ", 1)[-1]


def _where(database_url: str | None) -> str:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url or "")
    except Exception:
        return "DATABASE_URL"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Exception as exc:
        reason = _unreachable_database(exc)
        if reason is None:
            raise
        sys.exit(
            f"hafi-realtime: cannot reach the database at {_where(os.environ.get('DATABASE_URL'))} ({reason}); "
            "check DATABASE_URL, or unset it for `dev` to start an embedded Postgres"
        )
