"""The Lambda handlers, invoked with API Gateway and EventBridge events as AWS would, in one warm process."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from core.models import outbox_table, photo_table
from core.settings import get_settings
from tests.support.api import Api, bearer
from tests.support.lambda_events import FakeContext, http_event, load
from tests.support.outbox import make_due


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, api: Api) -> Iterator[None]:
    settings = api.runtime.settings
    monkeypatch.setenv("DATABASE_URL", settings.require_database_url())
    monkeypatch.setenv("JWT_SECRET", settings.require_jwt_secret())
    monkeypatch.setenv("REALTIME_PROVIDER", "memory")
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _fresh_import(name: str) -> ModuleType:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def _invoke(module: ModuleType, event_: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event_, FakeContext())
    return response


@pytest.mark.parametrize("version", ["2.0", "1.0"])
async def test_a_like_through_api_gateway_is_counted_and_published_reusing_one_connection(
    api: Api, lambda_env: None, version: str
) -> None:
    photo_id, _ = await api.event("wedding")
    functions_api = _fresh_import("functions.api")
    runtime = functions_api.app.state.runtime
    backend_pids: list[int] = []

    def remember_backend(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        backend_pids.append(dbapi_connection.info.backend_pid)

    event.listen(runtime.engine.sync_engine, "checkout", remember_backend)

    def invoke(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _invoke(functions_api, http_event(version, method, path, **kwargs))

    issued = await asyncio.to_thread(invoke, "POST", "/api/auth/guest")
    token = json.loads(issued["body"])["token"]
    liked = await asyncio.to_thread(
        invoke,
        "POST",
        f"/api/photos/{photo_id}/like",
        headers={"Authorization": f"Bearer {token}", "X-Mutation-Id": "m1"},
    )
    page = await asyncio.to_thread(
        invoke, "GET", "/api/events/wedding?x=1", headers={"Authorization": f"Bearer {token}"}
    )
    missing = await asyncio.to_thread(invoke, "GET", "/api/events/nope")

    assert issued["statusCode"] == 200
    assert liked["statusCode"] == 200, liked["body"]
    assert json.loads(liked["body"]) == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": True}
    assert json.loads(page["body"])["photos"][0]["likedByMe"] is True
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["code"] == "event_not_found"
    assert runtime.engine.pool.size() == 1
    # Four invocations that query (a new guest identity is counted against its address), one backend.
    assert len(backend_pids) == 4 and len(set(backend_pids)) == 1
    [published] = runtime.provider.published
    assert (published.channel, published.name, published.data["likeCount"]) == ("event:wedding", "photo:liked", 1)
    assert published.data["mutationId"] == "m1"
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(select(photo_table.c.like_count).where(photo_table.c.id == int(photo_id))) == 1
        row = (await conn.execute(select(outbox_table.c.id, outbox_table.c.published_at))).one()
    assert str(row.id) == published.id and row.published_at is not None
    await runtime.engine.dispose()


async def test_the_scheduled_relay_publishes_what_requests_left_pending(api: Api, lambda_env: None) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    api.runtime.provider.failure = ConnectionError("down")  # type: ignore[attr-defined]
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    await make_due(api.runtime)
    relay = _fresh_import("functions.outbox_relay")

    first = await asyncio.to_thread(_invoke, relay, load("schedule.json"))
    second = await asyncio.to_thread(_invoke, relay, load("schedule.json"))

    assert first["published"] == 1 and second["published"] == 0
    assert [e.name for e in relay.runtime.provider.published] == ["photo:liked"]
    await relay.runtime.engine.dispose()


async def test_the_vercel_entry_serves_the_same_app_without_mangum(api: Api, lambda_env: None) -> None:
    vercel = _fresh_import("api.index")
    transport = httpx.ASGITransport(app=vercel.app)

    async with httpx.AsyncClient(transport=transport, base_url="https://hafi.vercel.app") as client:
        health = await client.get("/api/health")
        issued = await client.post("/api/auth/guest")

    assert health.json() == {"status": "ok", "provider": "memory"}
    assert issued.status_code == 200 and issued.json()["role"] == "GUEST"
    await vercel.app.state.runtime.aclose()
