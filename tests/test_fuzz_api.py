"""Requests generated from our own OpenAPI schema (schemathesis, property-based): whatever a client sends, the API
answers with a documented status and never with a 500. Served over loopback from a thread of its own, since
schemathesis calls it synchronously."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.services.accounts import upsert_admin
from tests.support.api import ADMIN_EMAIL, ADMIN_PASSWORD, bearer
from tests.support.database import empty_tables
from tests.support.environment import make_settings
from tests.support.loopback import serving


@pytest.fixture(scope="module")
def live_url(database_url: str) -> Iterator[str]:
    started = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        runtime = build_runtime(make_settings(database_url, rate_limit_per_minute=10**6), provider=MemoryProvider())
        await empty_tables(runtime.engine)
        async with runtime.engine.begin() as conn:
            await upsert_admin(conn, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        stop = asyncio.Event()
        async with serving(create_app(runtime)) as server:
            state.update(url=server.url, loop=asyncio.get_running_loop(), stop=stop)
            started.set()
            await stop.wait()
        await runtime.aclose()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert started.wait(30), "the API did not start"
    yield state["url"]
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(30)


@pytest.fixture(scope="module")
def admin_token(live_url: str) -> str:
    """An admin token, and some data (an event, photos, a comment) for ids to find."""
    with httpx.Client(base_url=live_url) as http:
        token: str = http.post("/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()[
            "token"
        ]
        http.post("/api/admin/events", json={"slug": "wedding", "title": "Wedding"}, headers=bearer(token))
        http.post(
            "/api/admin/events/wedding/photos",
            json={"photos": [{"url": f"https://cdn.example/{i}.jpg"} for i in range(3)]},
            headers=bearer(token),
        )
        http.post("/api/photos/1/comments", json={"authorName": "Al", "content": "Hi"}, headers=bearer(token))
    return token


def test_no_request_makes_the_api_fail_with_a_500(live_url: str, admin_token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_url}/api/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema has operations schemathesis cannot read"
    operations = [result.ok() for result in results if isinstance(result, Ok)]

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def never_a_server_error(case: Any) -> None:
            case.call_and_validate(headers=bearer(admin_token), checks=[not_a_server_error])

        never_a_server_error()

    assert len(operations) >= 20  # every route of docs/api.md was exercised
