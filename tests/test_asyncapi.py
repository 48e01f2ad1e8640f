"""docs/asyncapi.yaml is valid AsyncAPI 3, and what the backend publishes is what it says.

Every event published anywhere in the test run is also checked, by the plugin in tests/support/published_events.py.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from core.realtime.memory import MemoryProvider
from core.realtime.pusher import wire_channel
from tests.support.api import Api, bearer
from tests.support.environment import make_settings
from tests.support.event_contract import contracts, load_document, resolve, violations
from tests.support.sockets import clients, live_node

OFFICIAL_SCHEMA = (
    Path(__file__).parent / "js" / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
)


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            *([node["$ref"]] if "$ref" in node else []),
            *(r for value in node.values() for r in _references(value)),
        ]
    if isinstance(node, list):
        return [r for item in node for r in _references(item)]
    return []


def test_the_document_is_asyncapi_3_by_the_official_json_schema() -> None:
    if not OFFICIAL_SCHEMA.exists():
        missing = f"{OFFICIAL_SCHEMA} is missing: run npm ci --prefix tests/js"
        if os.environ.get("NODE_REQUIRED"):
            raise RuntimeError(f"NODE_REQUIRED is set but {missing}")
        pytest.skip(missing)
    official = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))

    errors = [f"{e.json_path}: {e.message}" for e in Draft7Validator(official).iter_errors(load_document())]

    assert errors == []


def test_the_document_holds_together() -> None:
    document = load_document()

    assert document["asyncapi"] == "3.0.0"
    for reference in _references(document):
        assert resolve(document, {"$ref": reference}) is not None, reference
    for name, operation in document["operations"].items():
        channel = resolve(document, operation["channel"])
        channel_messages = [resolve(document, m) for m in channel["messages"].values()]
        for message in operation["messages"]:
            assert resolve(document, message) in channel_messages, f"{name} sends a message its channel lacks"
    for name, schema in document["components"]["schemas"].items():
        Draft7Validator.check_schema(schema)
        if schema.get("type") == "object":
            assert schema.get("additionalProperties") is False, f"{name} must name every field it allows"
    for channel in document["channels"].values():
        assert set(channel["x-provider-names"]) == {"ably", "pusher", "socketio"}


def test_the_documented_pusher_names_are_the_ones_the_provider_uses() -> None:
    for channel in load_document()["channels"].values():
        logical = channel["address"].replace("{slug}", "a-wedding")
        documented = channel["x-provider-names"]

        assert wire_channel(logical) == documented["pusher"].replace("{slug}", "a-wedding")
        assert documented["ably"] == documented["socketio"] == channel["address"]


async def test_every_event_an_action_causes_over_http_is_published_as_documented(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest, admin = await api.guest(), await api.admin()
    as_guest = {**bearer(guest), "X-Mutation-Id": "tap-1"}
    client = api.client

    assert (await client.post(f"/api/photos/{photo_id}/like", headers=as_guest)).status_code == 200
    assert (await client.delete(f"/api/photos/{photo_id}/like", headers=bearer(guest))).status_code == 200
    comment = await client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Ann", "content": "Lovely ✨"}, headers=as_guest
    )
    assert comment.status_code == 201
    moderate = f"/api/admin/comments/{comment.json()['id']}"
    assert (await client.patch(moderate, json={"status": "hidden"}, headers=bearer(admin))).status_code == 200
    assert (await client.patch(moderate, json={"status": "visible"}, headers=bearer(admin))).status_code == 200
    assert (await client.delete(moderate, headers=bearer(admin))).status_code == 204

    sent = [(event.channel, event.name, json.loads(json.dumps(event.data))) for event in provider.published]
    # One action at a time: each event is published alone (groups are tested in tests/test_group_publishing.py).
    assert {name for _, name, _ in sent} == set(contracts()) - {"presence:count", "group"}
    assert [problem for channel, name, data in sent for problem in violations(channel, name, data)] == []
    assert sent[0][2]["mutationId"] == "tap-1"

    replayed = [
        *(await client.get("/api/events/wedding/updates", headers=bearer(guest))).json()["events"],
        *(await client.get("/api/admin/updates", headers=bearer(admin))).json()["events"],
    ]
    assert len(replayed) == len(sent)
    assert [p for update in replayed for p in violations(update["channel"], update["name"], update["data"])] == []


async def test_a_renamed_missing_or_extra_field_breaks_the_contract(api: Api, provider: MemoryProvider) -> None:
    photo_id, _ = await api.event("wedding")
    response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(await api.guest()))
    assert response.status_code == 200
    (event,) = provider.published
    assert violations(event.channel, event.name, event.data) == []

    renamed = {("likesCount" if key == "likeCount" else key): value for key, value in event.data.items()}
    without_seq = {key: value for key, value in event.data.items() if key != "seq"}

    assert violations(event.channel, event.name, renamed) != []
    assert violations(event.channel, event.name, without_seq) != []
    assert violations(event.channel, event.name, {**event.data, "note": "extra"}) != []
    assert violations(event.channel, event.name, {**event.data, "likeCount": "1"}) != []
    assert violations("event:another", event.name, event.data) != []
    assert violations("admin", event.name, event.data) != []


async def test_what_a_socketio_client_receives_is_as_documented(database_url: str) -> None:
    settings = make_settings(database_url, realtime_provider="socketio", rate_limit_per_minute=10_000)
    slug = f"contract-{uuid.uuid4().hex[:8]}"
    async with live_node(settings) as live, clients(1) as (guest,):
        (photo_id,) = await live.api.event(slug, photos=1)
        await guest.connect(live.url, token=await live.api.guest())
        await guest.call("join:event", slug)
        await guest.call("photo:like", {"photoId": photo_id, "mutationId": "socket-tap"})

        received = [
            ("event:" + slug, "presence:count", await guest.wait_for("presence:count")),
            ("event:" + slug, "photo:liked", await guest.wait_for("photo:liked")),
        ]

    assert [problem for channel, name, data in received for problem in violations(channel, name, data)] == []
