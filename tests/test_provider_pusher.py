"""The Pusher provider against a local Pusher HTTP API that checks every request as Pusher does, and the Pusher auth
endpoint checked with the documented string-to-sign, independently of the SDK."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pusher
import pytest

from core.outbox.relay import relay_once
from core.realtime.base import RealtimeError
from core.realtime.pusher import PusherProvider, logical_channel, wire_channel
from standins.pusher_service import FakePusher, channel_auth, hmac_hex, string_to_sign
from tests.fakes.in_flight import fresh_for_next_test
from tests.support.api import Api, api_with, bearer, realtime_message
from tests.support.environment import make_settings
from tests.support.loopback import LoopbackServer, serving
from tests.support.outbox import make_due, outbox_rows

# The worked examples of Pusher's docs (library_auth_reference/rest-api.md and auth-signatures.md).
DOC_KEY, DOC_SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"
DOC_BODY = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'


@pytest.fixture(scope="module")
async def loopback() -> AsyncIterator[tuple[FakePusher, LoopbackServer]]:
    service = FakePusher()
    async with serving(service.app) as server:
        yield service, server


@pytest.fixture
async def service(loopback: tuple[FakePusher, LoopbackServer]) -> FakePusher:
    await fresh_for_next_test(*loopback)
    return loopback[0]


@pytest.fixture
def server(loopback: tuple[FakePusher, LoopbackServer], service: FakePusher) -> LoopbackServer:
    return loopback[1]


def pusher_settings(database_url: str, service: FakePusher, server: LoopbackServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "realtime_provider": "pusher",
        "pusher_app_id": service.app_id,
        "pusher_key": service.key,
        "pusher_secret": service.secret,
        "pusher_host": "127.0.0.1",
        "pusher_port": server.port,
        "pusher_scheme": "http",
    }
    return make_settings(database_url, **(values | overrides))


def pusher_api(
    database_url: str, service: FakePusher, server: LoopbackServer, **overrides: Any
) -> AbstractAsyncContextManager[Api]:
    return api_with(pusher_settings(database_url, service, server, **overrides))


def signed_url(service: FakePusher, server: LoopbackServer, path: str, body: bytes, timestamp: int) -> str:
    params = {
        "auth_key": service.key,
        "auth_timestamp": str(timestamp),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    params["auth_signature"] = hmac_hex(service.secret, string_to_sign("POST", path, params))
    return f"http://127.0.0.1:{server.port}{path}?" + "&".join(f"{k}={v}" for k, v in params.items())


# Signatures, from the documentation's worked examples


def test_the_request_signature_reproduces_the_documented_http_api_example() -> None:
    params = {"auth_key": DOC_KEY, "auth_timestamp": "1353088179", "auth_version": "1.0"}
    params["body_md5"] = hashlib.md5(DOC_BODY).hexdigest()

    assert params["body_md5"] == "ec365a775a4cd0599faeb73354201b6f"
    assert hmac_hex(DOC_SECRET, string_to_sign("POST", "/apps/3/events", params)) == (
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    )
    # The same request, eleven years later, is outside the 600 s window.
    fake = FakePusher(app_id="3", key=DOC_KEY, secret=DOC_SECRET)
    params["auth_signature"] = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    assert "Timestamp expired" in str(fake.check_signature("POST", "/apps/3/events", params, DOC_BODY))
    params["auth_timestamp"] = str(int(time.time()))
    assert (
        fake.check_signature("POST", "/apps/3/events", params, DOC_BODY)
        == "Invalid signature: you should have sent HmacSHA256Hex(...)"
    )


def test_the_channel_auth_reproduces_the_documented_example_and_the_sdk_agrees() -> None:
    documented = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"

    assert channel_auth(DOC_KEY, DOC_SECRET, "1234.1234", "private-foobar") == documented
    sdk = pusher.Pusher(app_id="3", key=DOC_KEY, secret=DOC_SECRET)
    assert sdk.authenticate(channel="private-foobar", socket_id="1234.1234") == {"auth": documented}


def test_logical_channels_map_to_private_pusher_channels_and_back() -> None:
    assert wire_channel("event:wedding-2024") == "private-event-wedding-2024"
    assert wire_channel("admin") == "private-admin"
    assert logical_channel("private-event-wedding-2024") == "event:wedding-2024"
    assert logical_channel("private-admin") == "admin"
    for foreign in ("event-wedding", "presence-event-wedding", "private-event-", "private-event-Bad", "private-adminx"):
        assert logical_channel(foreign) is None, foreign
    with pytest.raises(ValueError):
        wire_channel("event:x:y")


# The fake refuses what Pusher refuses


async def test_the_service_refuses_a_stale_timestamp_eleven_events_big_data_and_colons(
    service: FakePusher, server: LoopbackServer
) -> None:
    path = f"/apps/{service.app_id}/batch_events"

    async def post(batch: list[dict[str, str]], timestamp: float) -> int:
        body = json.dumps({"batch": batch}).encode()
        async with httpx.AsyncClient() as client:
            response = await client.post(signed_url(service, server, path, body, int(timestamp)), content=body)
        return response.status_code

    one = {"channel": "private-event-a", "name": "photo:liked", "data": "{}"}
    assert await post([one], time.time()) == 200
    assert await post([one], time.time() - 601) == 401
    assert await post([one] * 11, time.time()) == 400
    assert await post([{**one, "data": "x" * 10241}], time.time()) == 413
    assert await post([{**one, "channel": "private-event:a"}], time.time()) == 400
    assert await post([{**one, "channel": "private-" + "a" * 157}], time.time()) == 400
    assert len(service.requests) == 1


# Publishing through the SDK


async def test_publish_splits_into_batches_of_ten_with_mapped_channels_and_unchanged_data(
    database_url: str, service: FakePusher, server: LoopbackServer
) -> None:
    provider = PusherProvider.from_settings(pusher_settings(database_url, service, server))
    events = [
        realtime_message(i, "admin" if i % 5 == 0 else "event:wedding", likeCount=i, note="ünïcødé") for i in range(23)
    ]
    try:
        await provider.publish(events)
    finally:
        await provider.aclose()

    assert [len(batch) for batch in service.requests] == [10, 10, 3]
    assert [e["channel"] for e in service.accepted] == [wire_channel(e.channel) for e in events]
    assert [json.loads(e["data"]) for e in service.accepted] == [e.data for e in events]
    assert events[1].data == {"id": "1", "likeCount": 1, "note": "ünïcødé"}  # ours, not rewritten by the SDK


async def test_an_event_over_ten_kilobytes_of_utf8_is_refused_before_anything_is_sent(
    database_url: str, service: FakePusher, server: LoopbackServer
) -> None:
    provider = PusherProvider.from_settings(pusher_settings(database_url, service, server))
    # 3,500 euro signs: about 7 KB as a Python object (what the SDK measures), 10.5 KB of UTF-8 (what Pusher counts).
    events = [realtime_message(1), realtime_message(2, text="€" * 3500)]
    try:
        with pytest.raises(RealtimeError) as refused:
            await provider.publish(events)
    finally:
        await provider.aclose()

    assert refused.value.transient is False
    assert service.requests == [] and service.refusals == []


@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        ("status:500", True),
        ("status:503", True),
        ("status:429", True),
        ("status:403", False),
        ("status:400", False),
        ("wrong-secret", False),
        ("slow", True),
    ],
)
async def test_publish_failures_are_classified_transient_or_rejected(
    database_url: str, service: FakePusher, server: LoopbackServer, failure: str, transient: bool
) -> None:
    secret = "not-the-secret" if failure == "wrong-secret" else service.secret
    provider = PusherProvider.from_settings(pusher_settings(database_url, service, server, pusher_secret=secret))
    if failure.startswith("status:"):
        service.fail_status = int(failure.split(":")[1])
    elif failure == "slow":
        service.delay_seconds = 1.0  # the client gives up after publish_timeout_seconds (0.5)
    try:
        with pytest.raises(RealtimeError) as failed:
            await provider.publish([realtime_message(1)])
    finally:
        await provider.aclose()

    assert failed.value.transient is transient, failed.value
    assert str(failed.value).startswith("pusher: ")


# The channel authorization endpoint


async def test_the_auth_endpoint_signs_only_channels_the_caller_may_see(
    database_url: str, service: FakePusher, server: LoopbackServer
) -> None:
    async with pusher_api(database_url, service, server) as api:
        await api.event("open-day")
        await api.event("private-party", access_code="secret-code")
        await api.event("other-party", access_code="other-code")
        guest = await api.guest(eventSlug="private-party", accessCode="secret-code")
        admin = await api.admin()

        async def auth(token: str, channel: str, socket_id: str = "1234.5678") -> httpx.Response:
            return await api.client.post(
                "/api/realtime/pusher/auth",
                data={"socket_id": socket_id, "channel_name": channel},
                headers=bearer(token),
            )

        for channel in ("private-event-open-day", "private-event-private-party"):
            allowed = await auth(guest, channel)
            assert allowed.status_code == 200, allowed.text
            assert allowed.json() == {"auth": channel_auth(service.key, service.secret, "1234.5678", channel)}
        for channel in (
            "private-admin",
            "private-event-other-party",
            "private-event-no-such-event",
            "event-open-day",
            "presence-event-open-day",
            "private-event-open-day-x",
            "private-encrypted-admin",
        ):
            refused = await auth(guest, channel)
            assert refused.status_code == 403, (channel, refused.text)
            assert refused.json()["error"]["code"] == "channel_not_allowed"
        for channel in ("private-admin", "private-event-other-party"):
            assert (await auth(admin, channel)).json() == {
                "auth": channel_auth(service.key, service.secret, "1234.5678", channel)
            }
        for bad_socket in ("1234", "1.2:private-admin", "1.2\n", "", "\u0661.\u0662"):  # Arabic-Indic digits
            assert (await auth(admin, "private-admin", bad_socket)).status_code == 422
        anonymous = await api.client.post(
            "/api/realtime/pusher/auth", data={"socket_id": "1.2", "channel_name": "private-admin"}
        )
        assert anonymous.status_code == 401


async def test_realtime_auth_tells_the_browser_the_key_host_and_auth_endpoint(
    database_url: str, service: FakePusher, server: LoopbackServer
) -> None:
    async with pusher_api(database_url, service, server, pusher_cluster="eu") as api:
        await api.event("open-day")
        guest = await api.guest()

        response = await api.client.post("/api/realtime/auth", json={"eventSlug": "open-day"}, headers=bearer(guest))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "pusher" and body["key"] == service.key and body["cluster"] == "eu"
    assert body["authEndpoint"] == "/api/realtime/pusher/auth"
    assert body["channels"] == ["private-event-open-day"]
    assert (body["wsHost"], body["wsPort"], body["forceTLS"]) == ("127.0.0.1", server.port, False)
    assert service.secret not in response.text


async def test_the_provider_endpoints_answer_404_when_another_provider_is_configured(api: Api) -> None:
    guest = await api.guest()

    pusher_auth = await api.client.post(
        "/api/realtime/pusher/auth", data={"socket_id": "1.2", "channel_name": "private-admin"}, headers=bearer(guest)
    )
    ably_token = await api.client.get("/api/realtime/ably/token", headers=bearer(guest))

    assert (pusher_auth.status_code, pusher_auth.json()["error"]["code"]) == (404, "provider_not_pusher")
    assert (ably_token.status_code, ably_token.json()["error"]["code"]) == (404, "provider_not_ably")


# A publish split into requests that fails midway


async def test_a_relay_batch_that_fails_midway_resends_only_what_pusher_did_not_accept(
    database_url: str, service: FakePusher, server: LoopbackServer
) -> None:
    async with pusher_api(database_url, service, server) as api:
        # 23 channels: the relay sends one message per channel per call (one channel's events would be one group).
        photo_ids = [photo for i in range(23) for photo in await api.event(f"wedding-{i:02d}", photos=1)]
        guest = await api.guest()
        await server.stop()  # every like's own publish fails: 23 pending events for the relay
        for photo_id in photo_ids:
            assert (await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))).status_code == 200
        await server.start()
        service.reset()
        service.fail_status, service.fail_from_request = 503, 1  # the first request of 10 goes through, then 503

        await make_due(api.runtime)
        first = await relay_once(api.runtime)
        rows = await outbox_rows(api.runtime)
        service.fail_status = None
        await make_due(api.runtime)
        second = await relay_once(api.runtime)

    assert (first["published"], first["failed"]) == (10, 13)
    assert [row.published_at is not None for row in rows] == [True] * 10 + [False] * 13
    assert second["published"] == 13
    delivered_ids = [json.loads(event["data"])["id"] for event in service.accepted]
    assert sorted(delivered_ids, key=int) == [str(row.id) for row in rows]  # each once: no event sent twice
