"""The command line, run as a user runs it: a separate process against a real database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.demo import DEMO_SLUG
from core.models import admin_table, event_table, photo_table
from core.runtime import Runtime
from tests.support import processes
from tests.support.cli import hafi_realtime
from tests.support.ports import free_port

COMMANDS = ["dev", "migrate", "seed-demo", "create-admin", "relay"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hafi_realtime(), *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str) -> None:
    result = _cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: hafi-realtime {command}")


async def test_migrate_seed_and_create_admin_work_against_the_database_and_can_run_twice(runtime: Runtime) -> None:
    env = {"DATABASE_URL": runtime.settings.require_database_url(), "ADMIN_PASSWORD": "a long enough password"}

    for _ in range(2):
        assert _cli("migrate", env=env).returncode == 0
        seeded = _cli("seed-demo", env=env)
        admin = _cli("create-admin", "--email", "Owner@Example.com", env=env)
        assert seeded.returncode == 0 and DEMO_SLUG in seeded.stdout
        assert admin.returncode == 0, admin.stderr
    weak = _cli("create-admin", "--email", "x@example.com", "--password", "short", env=env)
    relayed = _cli("relay", env=env)

    assert weak.returncode != 0 and "at least 12 characters" in weak.stderr
    assert relayed.returncode == 0, relayed.stderr
    async with runtime.engine.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).select_from(event_table).where(event_table.c.slug == DEMO_SLUG)) == 1
        )
        assert await conn.scalar(select(func.count()).select_from(photo_table)) == 5
        assert (await conn.execute(select(admin_table.c.email))).scalars().all() == ["owner@example.com"]


def test_a_command_without_a_database_says_what_is_missing() -> None:
    result = _cli("migrate", env={"DATABASE_URL": ""})
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


@pytest.mark.parametrize("command", ["dev", "migrate", "seed-demo", "relay"])
def test_a_database_that_cannot_be_reached_is_one_clear_line_not_a_traceback(command: str) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"

    result = _cli(command, env={"DATABASE_URL": unreachable, "DB_CONNECT_TIMEOUT": "2"})

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "cannot reach the database" in line and "DATABASE_URL" in line
    assert f"127.0.0.1:{unreachable.split(':')[2].split('/')[0]}" in line


def test_dev_on_a_taken_port_says_so_and_exits_before_announcing_anything(runtime: Runtime) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = _cli("dev", "--port", str(port), env={"DATABASE_URL": runtime.settings.require_database_url()})

    assert result.returncode != 0
    assert "is running" not in result.stdout and "Traceback" not in result.stderr, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_dev_refuses_a_production_environment_before_touching_its_database(runtime: Runtime) -> None:
    # `dev` migrates, seeds the demo event and sets the demo admin's password in whatever DATABASE_URL names.
    database_url = runtime.settings.require_database_url()
    env = {"DATABASE_URL": database_url, "APP_ENV": "production", "JWT_SECRET": "0123456789abcdef" * 4}

    result = _cli("dev", "--port", str(free_port()), env=env)

    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "APP_ENV=production" in line
    assert "is running" not in result.stdout


def _processes_using(path: Path) -> list[int]:
    """The processes whose command line names ``path`` (an embedded Postgres runs with ``-D <its data dir>``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in command:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_dev_stopped_by_a_signal_stops_its_embedded_postgres(tmp_path: Path, stop: signal.Signals) -> None:
    """A process manager (or ``kill``) stops with SIGTERM, a terminal with Ctrl-C: neither leaves Postgres behind."""
    pytest.importorskip("pgserver")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    server = subprocess.Popen(
        [hafi_realtime(), "dev", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        processes.wait_until_answering(f"http://127.0.0.1:{port}/api/health", server, timeout_s=90)
        assert _processes_using(tmp_path), "no embedded Postgres ran from the data directory"

        server.send_signal(stop)
        server.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _processes_using(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _processes_using(tmp_path), "the embedded Postgres outlived dev"
    finally:
        processes.stop(server)
        for pid in _processes_using(tmp_path):
            os.kill(pid, signal.SIGKILL)
