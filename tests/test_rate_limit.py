from __future__ import annotations

from sqlalchemy import func, select

from core.models import OutboxEvent
from tests.support.api import Api, bearer


async def test_the_61st_action_in_a_minute_is_refused_with_retry_after(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest, other = await api.guest(), await api.guest()

    responses = []
    for i in range(61):
        method = api.client.post if i % 2 == 0 else api.client.delete
        responses.append(await method(f"/api/photos/{photo_id}/like", headers=bearer(guest)))
    others = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(other))

    assert [r.status_code for r in responses[:60]] == [200] * 60
    refused = responses[60]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert others.status_code == 200
    async with api.runtime.engine.connect() as conn:
        # 60 accepted toggles and the other guest's like; the refused one wrote nothing.
        assert await conn.scalar(select(func.count()).select_from(OutboxEvent)) == 61


async def test_wrong_access_codes_count_against_the_limit_so_codes_cannot_be_guessed(api: Api) -> None:
    await api.event("private-party", access_code="s3cret-code")

    statuses = [
        (
            await api.client.post("/api/auth/guest", json={"eventSlug": "private-party", "accessCode": f"guess-{i}"})
        ).status_code
        for i in range(61)
    ]
    right_code_too_late = await api.client.post(
        "/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "s3cret-code"}
    )

    assert statuses == [403] * 60 + [429]
    assert right_code_too_late.status_code == 429


async def test_a_whole_wedding_entering_the_right_code_from_the_venues_one_address_is_never_refused(
    api: Api,
) -> None:
    await api.event("private-party", access_code="s3cret-code")

    statuses = [
        (
            await api.client.post("/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "s3cret-code"})
        ).status_code
        for _ in range(70)
    ]

    assert statuses == [200] * 70


async def test_wrong_admin_passwords_are_limited_per_address(api: Api) -> None:
    await api.admin()
    body = {"email": "admin@example.com", "password": "not the password"}

    statuses = [(await api.client.post("/api/auth/admin/login", json=body)).status_code for _ in range(61)]

    assert statuses == [401] * 60 + [429]
