"""The HTTP surface an attacker sees first: body size, what production publishes about itself, the headers every
answer carries, and what error bodies say."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.api.app import create_app
from core.api.limits import MAX_BODY_BYTES
from core.errors import database_error
from core.web import mount_web
from tests.support.api import Api, api_with, bearer
from tests.support.environment import make_settings


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


async def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(api: Api) -> None:
    declared = await api.client.post(
        "/api/auth/guest",
        content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}",
        headers={"Content-Type": "application/json"},
    )
    # No Content-Length: the body streams in chunks and is cut off once it passes the limit.
    streamed = await api.client.post(
        "/api/auth/guest", content=_chunks(50 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "body_too_large"


async def test_a_body_within_the_limit_is_served(api: Api) -> None:
    await api.event("wedding", photos=1)
    admin = await api.admin()
    photos = {"photos": [{"url": f"https://cdn.example.com/{'x' * 1500}/{i}.jpg"} for i in range(500)]}

    response = await api.client.post("/api/admin/events/wedding/photos", json=photos, headers=bearer(admin))

    assert response.status_code == 201, response.text


async def test_production_serves_no_api_docs_or_schema(database_url: str) -> None:
    # Production refuses the in-process provider; a Pusher app that is never called here will do.
    pusher = {"pusher_app_id": "1", "pusher_key": "key", "pusher_secret": "s" * 32, "pusher_host": "127.0.0.1"}
    settings = make_settings(database_url, app_env="production", realtime_provider="pusher", **pusher)
    async with api_with(settings) as production:
        docs = await production.client.get("/api/docs")
        schema = await production.client.get("/api/openapi.json")
    async with api_with(make_settings(database_url)) as development:
        local_docs = await development.client.get("/api/docs")

    assert (docs.status_code, schema.status_code) == (404, 404)
    assert local_docs.status_code == 200


@pytest.mark.parametrize("path", ["/api/health", "/api/events/no-such-event", "/api/photos/1/like"])
async def test_api_answers_carry_security_headers(api: Api, path: str) -> None:
    response = await api.client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_the_pages_allow_scripts_from_their_own_origin_only(api: Api) -> None:
    app = create_app(api.runtime)
    assert mount_web(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/")
        script = await client.get("/web/realtime.js")

    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == script.headers["x-content-type-options"] == "nosniff"


async def test_a_value_the_database_refuses_is_answered_without_the_databases_words(api: Api) -> None:
    # Reaching Postgres with a value it cannot store: the answer names our code, the log keeps its reason.
    with pytest.raises(DBAPIError) as refused:
        async with api.runtime.engine.connect() as conn:
            await conn.execute(text("SELECT CAST(:value AS text)"), {"value": "a\x00b"})

    error = database_error(refused.value)

    assert error is not None and error.code == "invalid_input"
    assert "NUL" not in error.message and "0x00" not in error.message and "psycopg" not in error.message.lower()
