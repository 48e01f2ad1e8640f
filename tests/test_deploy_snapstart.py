"""SnapStart: after a snapshot is resumed, the database engine and the provider client are new ones."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.api.app import create_app
from core.runtime import build_runtime, renew_on_snapstart_restore
from core.settings import Settings
from tests.support.environment import make_settings


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = await conn.scalar(text("select pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def test_a_restored_runtime_serves_requests_on_a_new_connection_and_a_new_provider(settings: Settings) -> None:
    runtime = build_runtime(make_settings(settings.require_database_url(), db_pool_size=1))
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        before_engine, before_provider = runtime.engine, runtime.provider
        pid_before = await _backend_pid(runtime.engine)

        runtime.renew_after_restore()
        guest = await client.post("/api/auth/guest")
        pid_after = await _backend_pid(runtime.engine)

    assert runtime.engine is not before_engine and runtime.provider is not before_provider
    assert guest.status_code == 200
    assert pid_after != pid_before
    await runtime.aclose()


def test_the_restore_hook_is_registered_where_the_lambda_runtime_offers_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[Callable[[], None]] = []
    hooks = ModuleType("snapshot_restore_py")
    hooks.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", hooks)
    runtime = build_runtime(settings)

    renew_on_snapstart_restore(runtime)

    assert registered == [runtime.renew_after_restore]


def test_without_the_lambda_runtime_nothing_is_registered(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # importing it raises ImportError

    renew_on_snapstart_restore(build_runtime(settings))
