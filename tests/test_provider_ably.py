"""The Ably provider against a local Ably REST endpoint that checks every request as Ably does, and the browser's
TokenRequest checked from the secret and the documented string-to-sign, independently of the SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from core.access import grant_for
from core.auth import Principal
from core.realtime.ably import AblyProvider
from core.realtime.base import RealtimeError
from standins.ably_service import AblyError, FakeAbly, capability_allows, token_request_mac
from tests.fakes.in_flight import fresh_for_next_test
from tests.support.api import Api, api_with, bearer, realtime_message
from tests.support.environment import make_settings
from tests.support.loopback import LoopbackServer, serving


@pytest.fixture(scope="module")
async def loopback() -> AsyncIterator[tuple[FakeAbly, LoopbackServer]]:
    service = FakeAbly()
    async with serving(service.app) as server:
        yield service, server


@pytest.fixture
async def service(loopback: tuple[FakeAbly, LoopbackServer]) -> FakeAbly:
    await fresh_for_next_test(*loopback)
    return loopback[0]


@pytest.fixture
def server(loopback: tuple[FakeAbly, LoopbackServer], service: FakeAbly) -> LoopbackServer:
    return loopback[1]


def ably_settings(database_url: str, service: FakeAbly, server: LoopbackServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "realtime_provider": "ably",
        "ably_api_key": service.key,
        "ably_endpoint": "127.0.0.1",
        "ably_tls": False,
        "ably_port": server.port,
        "ably_use_binary_protocol": False,
    }
    return make_settings(database_url, **(values | overrides))


@asynccontextmanager
async def ably_provider(
    database_url: str, service: FakeAbly, server: LoopbackServer, **overrides: Any
) -> AsyncIterator[AblyProvider]:
    provider = AblyProvider.from_settings(ably_settings(database_url, service, server, **overrides))
    try:
        yield provider
    finally:
        await provider.aclose()


def ably_api(
    database_url: str, service: FakeAbly, server: LoopbackServer, **overrides: Any
) -> AbstractAsyncContextManager[Api]:
    return api_with(ably_settings(database_url, service, server, **overrides))


def recomputed_mac(secret: str, token_request: dict[str, Any]) -> str:
    """The spec's string-to-sign, written out here once more: six fields, each followed by a newline."""
    signed = "{keyName}\n{ttl}\n{capability}\n{clientId}\n{timestamp}\n{nonce}\n".format(**token_request)
    return base64.b64encode(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()).decode()


GUEST = Principal(role="GUEST", subject="guest-abc", events=frozenset({"party"}))
ADMIN = Principal(role="ADMIN", subject="admin:1")


# Browser credentials


async def test_a_guest_token_request_is_signed_as_documented_and_grants_only_its_events(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server, realtime_token_ttl_seconds=1800) as provider:
        token_request = await provider.token_request(grant_for(GUEST, ["open-day"]))

    assert token_request["mac"] == recomputed_mac(service.secret, token_request)
    assert token_request["mac"] == token_request_mac(service.secret, token_request)
    assert token_request["keyName"] == service.key_name and service.secret not in json.dumps(token_request)
    assert token_request["clientId"] == "guest-abc" and token_request["ttl"] == 1800 * 1000
    assert abs(token_request["timestamp"] - time.time() * 1000) < 5000 and len(token_request["nonce"]) >= 16
    assert json.loads(token_request["capability"]) == {
        "event:open-day": ["presence", "subscribe"],
        "event:party": ["presence", "subscribe"],
    }
    token = service.exchange(token_request)  # what Ably does when ably-js sends it
    assert capability_allows(token.capability, "event:party", "subscribe")
    assert not capability_allows(token.capability, "event:party", "publish")
    assert not capability_allows(token.capability, "admin", "subscribe")
    assert not capability_allows(token.capability, "event:other-party", "subscribe")


async def test_an_admin_token_request_adds_the_admin_channel_and_every_event_but_never_publish(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server) as provider:
        token_request = await provider.token_request(grant_for(ADMIN))

    token = service.exchange(token_request)
    assert token.capability == {"admin": ["subscribe"], "event:*": ["presence", "subscribe"]}
    assert token_request["clientId"] == "admin:1" and token_request["ttl"] == 3600 * 1000
    assert capability_allows(token.capability, "admin", "subscribe")
    assert capability_allows(token.capability, "event:any-event", "presence")
    assert not any(capability_allows(token.capability, c, "publish") for c in ("admin", "event:x"))


async def test_the_service_refuses_a_tampered_replayed_or_stale_token_request(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server) as provider:
        genuine = await provider.token_request(grant_for(GUEST))
        stale = await provider.token_request(grant_for(GUEST))
    escalated = {**genuine, "capability": json.dumps({"*": ["*"]})}
    stale["timestamp"] -= 121_000
    stale["mac"] = recomputed_mac(service.secret, stale)

    with pytest.raises(AblyError, match="Invalid mac"):
        service.exchange(escalated)
    service.exchange(genuine)
    with pytest.raises(AblyError, match="replayed"):
        service.exchange(genuine)
    with pytest.raises(AblyError, match="Timestamp"):
        service.exchange(stale)


async def test_the_api_serves_token_requests_in_auth_and_at_the_ably_js_auth_url(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_api(database_url, service, server) as api:
        await api.event("open-day")
        await api.event("party", access_code="secret-code")
        guest = await api.guest()
        admin = await api.admin()

        auth = await api.client.post("/api/realtime/auth", json={"eventSlug": "open-day"}, headers=bearer(guest))
        by_get = await api.client.get("/api/realtime/ably/token?eventSlug=open-day", headers=bearer(guest))
        by_post = await api.client.post(
            "/api/realtime/ably/token",
            data={"eventSlug": "open-day", "capability": '{"*":["*"]}'},
            headers=bearer(guest),
        )
        nothing = await api.client.get("/api/realtime/ably/token", headers=bearer(guest))
        protected = await api.client.get("/api/realtime/ably/token?eventSlug=party", headers=bearer(guest))
        for_admin = await api.client.get("/api/realtime/ably/token", headers=bearer(admin))

    assert auth.status_code == 200, auth.text
    assert auth.json()["authUrl"] == "/api/realtime/ably/token" and auth.json()["channels"] == ["event:open-day"]
    for token_request in (auth.json()["tokenRequest"], by_get.json(), by_post.json()):
        token = service.exchange(token_request)
        assert token.capability == {"event:open-day": ["presence", "subscribe"]}
        assert token.client_id == auth.json()["clientId"]
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (403, "no_channels")
    assert protected.status_code == 404  # as an unknown event: the answer does not tell that it is protected
    assert "admin" in service.exchange(for_admin.json()).capability


# Publishing through the SDK


async def test_one_publish_is_one_batch_request_with_each_outbox_id_as_its_message_id(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    events = [
        realtime_message(7, likeCount=1, note="ünïcødé"),
        realtime_message(8, "admin", likeCount=2),
        realtime_message(9, likeCount=3),
    ]
    async with ably_provider(database_url, service, server) as provider:
        await provider.publish(events)

    [specs] = service.requests
    assert specs == [
        {
            "channels": e.channel,
            "messages": {
                "id": e.id,
                "name": e.name,
                "data": json.dumps(e.data, ensure_ascii=False, separators=(",", ":")),
                "encoding": "json",
            },
        }
        for e in events
    ]
    assert service.auth_schemes == ["Bearer"]  # plain HTTP: a token from the key, never the key itself
    assert [(d.channel, d.id, d.data) for d in service.delivered] == [(e.channel, e.id, e.data) for e in events]


async def test_a_repeated_id_is_delivered_once_within_two_minutes_and_again_after(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server) as provider:
        await provider.publish([realtime_message(1), realtime_message(2)])
        await provider.publish([realtime_message(2), realtime_message(3)])
        service.clock_offset_ms = 121_000
        try:
            await provider.publish([realtime_message(1)])
        finally:
            service.clock_offset_ms = 0

    assert len(service.requests) == 3
    assert [d.id for d in service.delivered] == ["1", "2", "3", "1"]


async def test_msgpack_is_used_when_set_and_the_service_reads_it(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server, ably_use_binary_protocol=True) as provider:
        await provider.publish([realtime_message(1, note="ünïcødé")])

    assert set(service.content_types) == {"application/x-msgpack"}
    assert [d.data for d in service.delivered] == [{"id": "1", "note": "ünïcødé"}]


async def test_the_service_accepts_basic_auth_with_the_key_and_nothing_else(
    service: FakeAbly, server: LoopbackServer
) -> None:
    body = {"channels": "event:x", "messages": {"id": "b-1", "name": "n", "data": "{}", "encoding": "json"}}

    async def post(credentials: str) -> int:
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{server.port}/messages", json=body, headers=headers)
        return response.status_code

    assert await post(service.key) == 200
    assert await post(f"{service.key_name}:wrong") == 401
    assert [d.id for d in service.delivered] == ["b-1"]


async def test_an_expired_token_is_renewed_once_and_the_publish_goes_through(
    database_url: str, service: FakeAbly, server: LoopbackServer
) -> None:
    async with ably_provider(database_url, service, server) as provider:
        await provider.publish([realtime_message(1)])
        for token in service.tokens.values():
            token.expires_ms = 0
        await provider.publish([realtime_message(2)])

    assert [d.id for d in service.delivered] == ["1", "2"]
    assert [code for _, code, _ in service.refusals] == [40142]


@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        ("status:500", True),
        ("status:503", True),
        ("status:429", True),
        ("status:400", False),
        ("wrong-key", False),
        ("channel:500", True),
        ("channel:400", False),
        ("slow", True),
    ],
)
async def test_publish_failures_are_classified_transient_or_rejected(
    database_url: str, service: FakeAbly, server: LoopbackServer, failure: str, transient: bool
) -> None:
    key = f"{service.key_name}:not-the-secret" if failure == "wrong-key" else service.key
    kind, _, status = failure.partition(":")
    if kind == "status":
        service.fail_status = int(status)
    elif kind == "channel":
        service.fail_channels = {"admin": int(status)}
    elif kind == "slow":
        service.delay_seconds = 1.0  # the client gives up after publish_timeout_seconds (0.5)
    async with ably_provider(database_url, service, server, ably_api_key=key) as provider:
        with pytest.raises(RealtimeError) as failed:
            await provider.publish([realtime_message(1), realtime_message(2, "admin")])

    assert failed.value.transient is transient, failed.value
    assert str(failed.value).startswith("ably: ")
