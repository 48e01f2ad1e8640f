"""What the app answers when a dependency is down, and to browsers from other origins."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime, build_runtime
from tests.support.api import Api, bearer
from tests.support.database import fresh_database
from tests.support.environment import make_settings
from tests.support.web_client import CLIENT_PATH, sdk_paths


@contextlib.asynccontextmanager
async def _client_of(database_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API on a runtime of its own over ``database_url``."""
    runtime = build_runtime(make_settings(database_url, **settings), provider=MemoryProvider())
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await runtime.aclose()


@pytest.fixture
async def client_without_database(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on port 1: every connection attempt is refused at once.
    async with _client_of("postgresql+psycopg://postgres@127.0.0.1:1/none", db_connect_timeout=1) as client:
        yield client


async def test_a_database_outage_is_a_503_with_the_error_shape_and_health_stays_up(
    client_without_database: httpx.AsyncClient, api: Api
) -> None:
    guest = await api.guest()

    page = await client_without_database.get("/api/events/wedding")
    like = await client_without_database.post("/api/photos/1/like", headers=bearer(guest))
    health = await client_without_database.get("/api/health")

    assert page.status_code == like.status_code == 503
    assert page.json()["error"]["code"] == "database_unavailable"
    assert health.status_code == 200 and health.json()["status"] == "ok"


@pytest.fixture
async def cors_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(runtime.settings.require_database_url(), cors_origins=["https://gallery.example"])
    app = create_app(build_runtime(settings, engine=runtime.engine, provider=MemoryProvider()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def test_only_configured_origins_may_call_the_api_from_a_browser(cors_api: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-mutation-id",
    }

    allowed = await cors_api.options("/api/photos/1/like", headers={"Origin": "https://gallery.example", **preflight})
    refused = await cors_api.options("/api/photos/1/like", headers={"Origin": "https://evil.example", **preflight})
    simple_request = await cors_api.get("/api/health", headers={"Origin": "https://gallery.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://gallery.example"
    assert "x-mutation-id" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in refused.headers
    assert "retry-after" in simple_request.headers["access-control-expose-headers"].lower()


async def test_a_browser_on_an_allowed_origin_may_send_every_header_the_api_reads(cors_api: httpx.AsyncClient) -> None:
    schema = (await cors_api.get("/api/openapi.json")).json()
    documented = {
        parameter["name"].lower()
        for path in schema["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header"
    }
    assert {"idempotency-key", "x-mutation-id"} <= documented
    preflight = {
        "Origin": "https://gallery.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ",".join(sorted(documented | {"authorization", "content-type"})),
    }

    answer = await cors_api.options("/api/photos/1/comments", headers=preflight)

    assert answer.status_code == 200, answer.text


async def test_a_page_on_another_origin_loads_the_client_and_each_sdk_it_asks_for_from_the_api(
    cors_api: httpx.AsyncClient,
) -> None:
    # The whole API as every deployment builds it (not the dev server's demo pages): realtime.js, then each path
    # that realtime.js itself loads a provider's SDK from.
    client = await cors_api.get(CLIENT_PATH, headers={"Origin": "https://gallery.example"})
    paths = sdk_paths(client.text)
    sdks = [await cors_api.get(path) for path in paths]

    assert client.status_code == 200 and "javascript" in client.headers["content-type"]
    assert len(paths) == 3
    for path, sdk in zip(paths, sdks, strict=True):
        assert sdk.status_code == 200, path
        assert "javascript" in sdk.headers["content-type"] and len(sdk.content) > 10_000, path
    assert (await cors_api.get("/web/index.html")).status_code == 404  # the demo pages stay with the dev server


@pytest.fixture
async def client_before_migrating() -> AsyncIterator[httpx.AsyncClient]:
    with fresh_database(migrated=False) as database_url:
        async with _client_of(database_url) as client:
            yield client


async def test_a_database_not_yet_migrated_is_a_503_that_says_so_not_a_500(
    client_before_migrating: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    guest = await client_before_migrating.post("/api/auth/guest")
    page = await client_before_migrating.get("/api/events/wedding")
    ready = await client_before_migrating.get("/api/health/ready")

    for answer in (guest, page):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "database_not_migrated"
    assert ready.status_code == 503 and ready.json()["database"] == "not_migrated"
    assert "hafi-realtime migrate" in caplog.text
