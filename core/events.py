"""Every realtime event payload is built here, and nowhere else (docs/realtime.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.models import Comment, OutboxEvent
from core.realtime.base import RealtimeEvent
from core.realtime.channels import ADMIN_CHANNEL, event_channel

# Pusher's limit, the smallest of our providers'; checked in UTF-8 bytes of the JSON that is sent.
MAX_PAYLOAD_BYTES = 10 * 1024
# id (bigint as a string), seq and timestamp are added at publish time; reserve room for their largest values.
_ENVELOPE_RESERVE = len(json.dumps({"id": "9" * 19, "seq": 9 * 10**18, "timestamp": 10**13}))

# A client's id for its optimistic update, echoed in the events its request causes (X-Mutation-Id, or a socket payload).
MUTATION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

PHOTO_LIKED = "photo:liked"
PHOTO_UNLIKED = "photo:unliked"
COMMENT_ADDED = "comment:added"
COMMENT_REMOVED = "comment:removed"
NEW_COMMENT_NOTIFICATION = "notification:new-comment"


class PayloadTooLargeError(ValueError):
    pass


@dataclass(frozen=True)
class PendingEvent:
    """An event decided by a service, not yet numbered: the outbox gives it an id and a seq."""

    channel: str
    name: str
    payload: dict[str, Any]


def encode(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _event(channel: str, name: str, payload: dict[str, Any], mutation_id: str | None) -> PendingEvent:
    if mutation_id:
        payload["mutationId"] = mutation_id
    size = len(encode(payload).encode()) + _ENVELOPE_RESERVE
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"{name} payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return PendingEvent(channel, name, payload)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def comment_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "photoId": str(comment.photo_id),
        "authorName": comment.author_name,
        "content": comment.content,
        "createdAt": iso(comment.created_at),
    }


def like_changed(*, slug: str, photo_id: int, like_count: int, liked: bool, mutation_id: str | None) -> PendingEvent:
    payload = {"photoId": str(photo_id), "eventSlug": slug, "likeCount": like_count}
    return _event(event_channel(slug), PHOTO_LIKED if liked else PHOTO_UNLIKED, payload, mutation_id)


def comment_added(*, slug: str, comment: Comment, mutation_id: str | None) -> list[PendingEvent]:
    """A new visible comment: shown to the event's guests, and notified to the admins."""
    body = comment_json(comment)
    return [
        _event(
            event_channel(slug),
            COMMENT_ADDED,
            {"photoId": body["photoId"], "eventSlug": slug, "comment": body},
            mutation_id,
        ),
        _event(
            ADMIN_CHANNEL,
            NEW_COMMENT_NOTIFICATION,
            {"photoId": body["photoId"], "eventSlug": slug, "comment": body},
            mutation_id,
        ),
    ]


def comment_restored(*, slug: str, comment: Comment, mutation_id: str | None) -> PendingEvent:
    """A hidden comment made visible again reappears as added; admins already know of it."""
    body = comment_json(comment)
    payload = {"photoId": body["photoId"], "eventSlug": slug, "comment": body}
    return _event(event_channel(slug), COMMENT_ADDED, payload, mutation_id)


def comment_removed(*, slug: str, photo_id: int, comment_id: int, mutation_id: str | None) -> PendingEvent:
    payload = {"photoId": str(photo_id), "eventSlug": slug, "commentId": str(comment_id)}
    return _event(event_channel(slug), COMMENT_REMOVED, payload, mutation_id)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def message_data(row: OutboxEvent) -> dict[str, Any]:
    """The payload a browser receives: what the service decided plus the outbox row's identity and order."""
    return {**row.payload, "id": str(row.id), "seq": row.seq, "timestamp": epoch_ms(row.created_at)}


def realtime_event(row: OutboxEvent) -> RealtimeEvent:
    return RealtimeEvent(id=str(row.id), channel=row.channel, name=row.event, data=message_data(row))
