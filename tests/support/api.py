"""A thin client over the HTTP API for tests: tokens, events, photos, in a few calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from core.api.app import create_app
from core.realtime.base import RealtimeMessage, RealtimeProvider
from core.runtime import Runtime, build_runtime
from core.services.accounts import upsert_admin
from core.settings import Settings
from tests.support.database import empty_tables

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    runtime: Runtime

    async def guest(self, **body: Any) -> str:
        response = await self.client.post("/api/auth/guest", json=body or None)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    async def admin(self) -> str:
        async with self.runtime.engine.begin() as conn:
            await upsert_admin(conn, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        response = await self.client.post(
            "/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    async def event(self, slug: str = "wedding", *, photos: int = 2, access_code: str | None = None) -> list[str]:
        """Creates an event with photos; returns the photo ids."""
        admin = await self.admin()
        body: dict[str, Any] = {"slug": slug, "title": f"Event {slug}"}
        if access_code:
            body["accessCode"] = access_code
        response = await self.client.post("/api/admin/events", json=body, headers=bearer(admin))
        assert response.status_code == 201, response.text
        response = await self.client.post(
            f"/api/admin/events/{slug}/photos",
            json={"photos": [{"url": f"https://cdn.example.com/{slug}/{i}.jpg"} for i in range(photos)]},
            headers=bearer(admin),
        )
        assert response.status_code == 201, response.text
        return [photo["id"] for photo in response.json()["photos"]]


@asynccontextmanager
async def api_with(settings: Settings, *, provider: RealtimeProvider | None = None) -> AsyncIterator[Api]:
    """The API of a runtime of its own (other settings, another provider), over emptied tables."""
    runtime = build_runtime(settings, provider=provider)
    await empty_tables(runtime.engine)
    transport = httpx.ASGITransport(app=create_app(runtime), client=("203.0.113.9", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, runtime)
    finally:
        await runtime.aclose()


def realtime_message(i: int, channel: str = "event:wedding", **data: Any) -> RealtimeMessage:
    """A ready-to-publish event with id ``i``, for tests of a provider alone."""
    return RealtimeMessage(id=str(i), channel=channel, name="photo:liked", data={"id": str(i), **data})
