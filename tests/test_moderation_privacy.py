"""A moderated comment's text is served nowhere afterwards: not by /updates (the event log clients catch up from),
not by a publish still pending when the admin acted. Clients that catch up get the removal instead."""

from __future__ import annotations

import pytest

from core.outbox import relay
from core.realtime.memory import MemoryProvider
from tests.support.api import Api, bearer
from tests.support.groups import unpacked
from tests.support.outbox import make_due

SECRET = "my phone number is 555-0100"


async def _comment(api: Api, photo_id: str, token: str) -> str:
    response = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Eve", "content": SECRET}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    comment_id: str = response.json()["id"]
    return comment_id


async def _moderate(api: Api, admin: str, comment_id: str, how: str) -> None:
    if how == "hide":
        response = await api.client.patch(
            f"/api/admin/comments/{comment_id}", json={"status": "hidden"}, headers=bearer(admin)
        )
        assert response.status_code == 200, response.text
    else:
        response = await api.client.delete(f"/api/admin/comments/{comment_id}", headers=bearer(admin))
        assert response.status_code == 204, response.text


@pytest.mark.parametrize("how", ["hide", "delete"])
async def test_a_moderated_comment_leaves_the_event_log_and_catching_up_gets_its_removal(api: Api, how: str) -> None:
    photo_id, _ = await api.event("wedding")
    author, latecomer, admin = await api.guest(), await api.guest(), await api.admin()
    comment_id = await _comment(api, photo_id, author)

    await _moderate(api, admin, comment_id, how)
    guest_log = await api.client.get("/api/events/wedding/updates?after=0", headers=bearer(latecomer))
    admin_log = await api.client.get("/api/admin/updates?after=0", headers=bearer(admin))

    assert SECRET not in guest_log.text and "Eve" not in guest_log.text
    assert SECRET not in admin_log.text and "Eve" not in admin_log.text
    events = guest_log.json()["events"]
    # The comment's place in the log (seq 1) now says it is gone, and so does the moderation's own message.
    assert [(e["seq"], e["name"]) for e in events] == [(1, "comment:removed"), (2, "comment:removed")]
    assert all(e["data"]["commentId"] == comment_id and e["data"]["photoId"] == photo_id for e in events)
    assert [e["name"] for e in admin_log.json()["events"]] == ["comment:removed"]


async def test_a_comment_moderated_while_its_publish_is_pending_is_never_published(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    author, admin = await api.guest(), await api.admin()
    provider.failure = ConnectionRefusedError("provider down")
    comment_id = await _comment(api, photo_id, author)
    await _moderate(api, admin, comment_id, "hide")
    provider.failure = None

    await make_due(api.runtime)
    await relay.relay(api.runtime.engine, provider, api.runtime.settings)

    assert provider.published, "the relay published the pending messages"
    assert all(SECRET not in str(m.data) for m in provider.published)
    assert {m.name for m in unpacked(provider.published)} == {"comment:removed"}
