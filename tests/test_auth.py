from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from core.models import like_table, outbox_table
from core.realtime.memory import MemoryProvider
from tests.support.api import ADMIN_EMAIL, Api, api_with, bearer

SECRET = "test-secret-that-is-long-enough-for-hs256-0123"


def _forge(**overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "hafi-realtime",
        "aud": "hafi-realtime",
        "sub": "guest-x",
        "sid": "guest-x",
        "role": "GUEST",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    secret = str(claims.pop("_secret", SECRET))
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (_forge(_secret="someone-elses-secret-that-is-long-enough"), "invalid_token"),
        (_forge(exp=int(time.time()) - 10), "token_expired"),
        (_forge(aud="another-app"), "invalid_token"),
        (_forge(iss="someone-else"), "invalid_token"),
        (_forge(role="ROOT"), "invalid_token"),
        (jwt.encode({"role": "ADMIN", "sub": "admin-1"}, SECRET, algorithm="HS256"), "invalid_token"),
        ("not.a.jwt", "invalid_token"),
    ],
    ids=["forged", "expired", "wrong-audience", "wrong-issuer", "unknown-role", "missing-claims", "garbage"],
)
async def test_bad_tokens_get_401_and_nothing_is_written(
    api: Api, provider: MemoryProvider, token: str, code: str
) -> None:
    photo_id, _ = await api.event("wedding")

    response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(token))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(like_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 0
    assert provider.published == []


async def test_an_unsigned_token_is_refused(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    unsigned = jwt.encode({"iss": "hafi-realtime", "aud": "hafi-realtime", "sub": "a", "role": "ADMIN"}, "", "none")

    response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(unsigned))

    assert response.status_code == 401


async def test_a_token_that_was_accepted_is_refused_once_it_has_expired(api: Api) -> None:
    # A verified token may be remembered (core.auth), but never past its exp.
    photo_id, _ = await api.event("wedding")
    expires_at = int(time.time()) + 2
    expiring = _forge(exp=expires_at)
    accepted = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(expiring))
    await asyncio.sleep(expires_at - time.time() + 0.05)

    refused = await api.client.delete(f"/api/photos/{photo_id}/like", headers=bearer(expiring))

    assert accepted.status_code == 200
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_expired"


@pytest.mark.parametrize(
    "other",
    [
        {"jwt_secret": SecretStr("another-deployments-secret-0123456789abcdef")},
        {"jwt_audience": "another-app"},
        {"jwt_issuer": "someone-else"},
    ],
    ids=["secret", "audience", "issuer"],
)
async def test_a_token_accepted_by_one_deployment_is_refused_by_another_in_the_same_process(
    api: Api, other: dict[str, object]
) -> None:
    photo_id, _ = await api.event("wedding")
    token = await api.guest()
    assert (await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(token))).status_code == 200

    async with api_with(api.runtime.settings.model_copy(update=other)) as elsewhere:
        photo_elsewhere, _ = await elsewhere.event("wedding")
        response = await elsewhere.client.post(f"/api/photos/{photo_elsewhere}/like", headers=bearer(token))

    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_actions_without_a_token_get_401_and_a_malformed_header_too(api: Api) -> None:
    photo_id, _ = await api.event("wedding")

    missing = await api.client.post(f"/api/photos/{photo_id}/like")
    basic = await api.client.post(f"/api/photos/{photo_id}/like", headers={"Authorization": "Basic YTpi"})

    assert missing.status_code == 401 and missing.json()["error"]["code"] == "token_required"
    assert basic.status_code == 401 and basic.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/admin/comments", None),
        ("PATCH", "/api/admin/comments/1", {"status": "hidden"}),
        ("DELETE", "/api/admin/comments/1", None),
        ("POST", "/api/admin/events", {"slug": "party", "title": "Party"}),
        ("POST", "/api/admin/events/wedding/photos", {"photos": [{"url": "https://x.example/a.jpg"}]}),
        ("GET", "/api/admin/updates", None),
        ("GET", "/api/metrics", None),
    ],
)
async def test_a_guest_calling_admin_endpoints_gets_403(api: Api, method: str, path: str, body: object) -> None:
    await api.event("wedding")
    guest = await api.guest()

    response = await api.client.request(method, path, json=body, headers=bearer(guest))

    assert response.status_code == 403
    assert response.json() == {"error": {"code": "admin_only", "message": "Only admins may do this"}}


async def test_a_protected_event_opens_only_to_tokens_that_carry_its_code(api: Api, provider: MemoryProvider) -> None:
    photo_id, _ = await api.event("private-party", access_code="s3cret-code")
    stranger = await api.guest()

    denied_view = await api.client.get("/api/events/private-party", headers=bearer(stranger))
    denied_like = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(stranger))
    wrong_code = await api.client.post(
        "/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "guess"}, headers=bearer(stranger)
    )
    unlocked = await api.client.post(
        "/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "s3cret-code"}, headers=bearer(stranger)
    )
    token = unlocked.json()["token"]
    view = await api.client.get("/api/events/private-party", headers=bearer(token))
    liked = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(token))
    unknown = await api.client.post("/api/auth/guest", json={"eventSlug": "nope", "accessCode": "x"})

    # Until it is unlocked a protected event, and its photos, answer as unknown ones do (issue 9, enumeration).
    assert denied_view.status_code == 404 and denied_view.json()["error"]["code"] == "event_not_found"
    assert denied_like.status_code == 404 and denied_like.json()["error"]["code"] == "photo_not_found"
    assert wrong_code.status_code == 403 and wrong_code.json()["error"]["code"] == "invalid_access_code"
    assert unlocked.status_code == 200
    assert unlocked.json()["events"] == ["private-party"]
    assert unlocked.json()["sessionId"] == jwt.decode(stranger, options={"verify_signature": False})["sub"]
    assert view.status_code == 200
    assert liked.status_code == 200
    # An unknown slug is refused as a wrong code is: the answer does not tell which slugs are protected events.
    assert unknown.status_code == 403 and unknown.json() == wrong_code.json()
    assert [e.name for e in provider.published] == ["photo:liked"]


async def test_admin_login_takes_the_right_password_only(api: Api) -> None:
    await api.admin()

    wrong = await api.client.post("/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": "nope nope nope"})
    unknown = await api.client.post("/api/auth/admin/login", json={"email": "who@example.com", "password": "x" * 12})
    right = await api.client.post(
        "/api/auth/admin/login", json={"email": ADMIN_EMAIL.upper(), "password": "correct horse battery"}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert right.status_code == 200 and right.json()["role"] == "ADMIN"
    claims = jwt.decode(right.json()["token"], SECRET, algorithms=["HS256"], audience="hafi-realtime")
    assert claims["role"] == "ADMIN" and claims["exp"] > claims["iat"] and "password" not in str(claims)
