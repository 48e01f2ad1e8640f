"""Every realtime message is built here, and nowhere else: its channel, its name and its payload (the wire
contract in docs/realtime.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import InvalidInputError
from core.models import Comment
from core.realtime.base import RealtimeMessage
from core.realtime.channels import ADMIN_CHANNEL, EVENT_PREFIX, SLUG_MAX_LENGTH, event_channel
from core.realtime.wire import MAX_PAYLOAD_BYTES, PayloadTooLargeError, encode, encoded_size
from core.schemas.base import MUTATION_ID_MAX_LENGTH

# id (bigint as a string), seq and timestamp are added at publish time; reserve room for their largest values.
_ENVELOPE_RESERVE = len(json.dumps({"id": "9" * 19, "seq": 9 * 10**18, "timestamp": 10**13}))

PHOTO_LIKED = "photo:liked"
PHOTO_UNLIKED = "photo:unliked"
COMMENT_ADDED = "comment:added"
COMMENT_REMOVED = "comment:removed"
NEW_COMMENT_NOTIFICATION = "notification:new-comment"
# Several events of one channel published together, as one provider message (docs/realtime.md).
GROUP = "group"
# The messages that carry a comment's text: what moderation takes out of the log.
CARRYING_COMMENT_TEXT = (COMMENT_ADDED, NEW_COMMENT_NOTIFICATION)


@dataclass(frozen=True)
class PendingMessage:
    """A message decided by a service, not yet numbered: the outbox gives it an id and a seq."""

    channel: str
    name: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class StoredMessage:
    """A message as the outbox stored it (``core.models.outbox_table``), numbered within its channel: what a
    publisher sends. Compared by identity: its payload, a dict, could not be hashed as a field."""

    id: int
    channel: str
    seq: int
    event: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


def _message(channel: str, name: str, payload: dict[str, Any], mutation_id: str | None) -> PendingMessage:
    return _checked(PendingMessage(channel, name, _with_mutation_id(payload, mutation_id)))


def _with_mutation_id(payload: dict[str, Any], mutation_id: str | None) -> dict[str, Any]:
    if mutation_id:
        payload["mutationId"] = mutation_id
    return payload


def _checked(message: PendingMessage) -> PendingMessage:
    size = encoded_size(message.payload) + _ENVELOPE_RESERVE
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"{message.name} payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return message


def comment_json(comment: Comment) -> dict[str, Any]:
    """A comment in a message: exactly what the HTTP API answers for it."""
    # imported here: the like function builds no comment model
    from core.schemas.comments import CommentOut

    return CommentOut.of(comment).model_dump(mode="json", by_alias=True)


def _like(
    channel: str, slug: str, photo_id: int, like_count: int, liked: bool, mutation_id: str | None
) -> PendingMessage:
    payload = {"photoId": str(photo_id), "eventSlug": slug, "likeCount": like_count}
    return PendingMessage(channel, PHOTO_LIKED if liked else PHOTO_UNLIKED, _with_mutation_id(payload, mutation_id))


# What only the statement that writes a like learns: the photo's event and its new count (core/services/likes.py).
LIKE_FILLED_IN_BY_STATEMENT = ("eventSlug", "likeCount")
# A message built before writing is checked against the size limit with what the statement fills in at its largest,
# before anything is written.
_LONGEST_SLUG = "a" * SLUG_MAX_LENGTH
_LARGEST_BIGINT = 2**63 - 1


def _before_writing(message: PendingMessage, filled_in_by_statement: tuple[str, ...]) -> PendingMessage:
    """``message`` less what the statement fills in: an event channel's message goes on
    ``EVENT_PREFIX`` (the statement appends the slug), its payload without ``filled_in_by_statement``."""
    return PendingMessage(
        EVENT_PREFIX if message.channel.startswith(EVENT_PREFIX) else message.channel,
        message.name,
        {key: value for key, value in message.payload.items() if key not in filled_in_by_statement},
    )


# The largest message a like can cause fits the size limit: checked once, here, rather than on every like (where
# building the largest one and encoding it was a twentieth of a like's Python).
_checked(
    _like(
        event_channel(_LONGEST_SLUG),
        _LONGEST_SLUG,
        _LARGEST_BIGINT,
        _LARGEST_BIGINT,
        liked=False,
        mutation_id="m" * MUTATION_ID_MAX_LENGTH,
    )
)


def like_changed_before_writing(*, photo_id: int, liked: bool, mutation_id: str | None) -> PendingMessage:
    """A like's ``photo:liked`` or ``photo:unliked`` as far as it is known before the like is written
    (``_before_writing``, less ``LIKE_FILLED_IN_BY_STATEMENT``). Its size needs no check: no like's message is larger
    than the one checked above."""
    if mutation_id is not None and len(mutation_id) > MUTATION_ID_MAX_LENGTH:
        raise InvalidInputError("invalid_mutation_id", f"A mutation id is at most {MUTATION_ID_MAX_LENGTH} characters")
    unfilled = _like(EVENT_PREFIX, "", photo_id, 0, liked, mutation_id)
    return _before_writing(unfilled, LIKE_FILLED_IN_BY_STATEMENT)


def comment_added(*, slug: str, comment: Comment, mutation_id: str | None) -> list[PendingMessage]:
    """A new visible comment: shown to the event's guests, and notified to the admins."""
    body = comment_json(comment)
    return [
        _message(
            event_channel(slug),
            COMMENT_ADDED,
            {"photoId": body["photoId"], "eventSlug": slug, "comment": body},
            mutation_id,
        ),
        _message(
            ADMIN_CHANNEL,
            NEW_COMMENT_NOTIFICATION,
            {"photoId": body["photoId"], "eventSlug": slug, "comment": body},
            mutation_id,
        ),
    ]


# What only the statement that stores a comment learns: the event's slug, and the comment's id (core/services/
# comments.py), which the statement adds to ``comment`` as the comment's ``id``.
COMMENT_FILLED_IN_BY_STATEMENT = ("eventSlug", "comment")


@dataclass(frozen=True)
class CommentBeforeWriting:
    """A new comment as far as it is known before it is stored: the comment as answers and messages carry it, less
    its ``id``, and ``comment_added``'s messages less ``COMMENT_FILLED_IN_BY_STATEMENT``, the event's on
    ``EVENT_PREFIX`` (the statement appends the slug)."""

    comment: dict[str, Any]
    messages: list[PendingMessage]


def comment_added_before_writing(
    *, photo_id: int, author_name: str, content: str, created_at: datetime, mutation_id: str | None
) -> CommentBeforeWriting:
    """``comment_added`` for a comment not yet stored (``_before_writing``, less
    ``COMMENT_FILLED_IN_BY_STATEMENT``)."""
    largest = Comment(
        id=_LARGEST_BIGINT, photo_id=photo_id, author_name=author_name, content=content, created_at=created_at
    )
    pending = comment_added(slug=_LONGEST_SLUG, comment=largest, mutation_id=mutation_id)
    comment = {key: value for key, value in comment_json(largest).items() if key != "id"}
    return CommentBeforeWriting(
        comment, [_before_writing(message, COMMENT_FILLED_IN_BY_STATEMENT) for message in pending]
    )


def comment_restored(*, slug: str, comment: Comment, mutation_id: str | None) -> PendingMessage:
    """A hidden comment made visible again reappears as added; admins already know of it."""
    body = comment_json(comment)
    payload = {"photoId": body["photoId"], "eventSlug": slug, "comment": body}
    return _message(event_channel(slug), COMMENT_ADDED, payload, mutation_id)


def comment_removed(*, slug: str, photo_id: int, comment_id: int, mutation_id: str | None) -> PendingMessage:
    payload = {"photoId": str(photo_id), "eventSlug": slug, "commentId": str(comment_id)}
    return _message(event_channel(slug), COMMENT_REMOVED, payload, mutation_id)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def message_data(row: StoredMessage) -> dict[str, Any]:
    """The payload a browser receives: what the service decided plus the outbox row's identity and order."""
    return {**row.payload, "id": str(row.id), "seq": row.seq, "timestamp": epoch_ms(row.created_at)}


def realtime_message(row: StoredMessage) -> RealtimeMessage:
    return RealtimeMessage(id=str(row.id), channel=row.channel, name=row.event, data=message_data(row))


# A group's fields around its events, at their largest: what a group's events may not use of the size limit.
_GROUP_RESERVE = len(
    json.dumps({"id": f"{'9' * 19}-{'9' * 19}", "fromSeq": 9 * 10**18, "toSeq": 9 * 10**18, "events": []})
)


def group_event(row: StoredMessage) -> dict[str, Any]:
    """One event inside a group: its name and exactly the payload it has when published alone."""
    return {"name": row.event, "data": message_data(row)}


def next_group(rows: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The events that go out together next: the longest run from the first of ``rows`` (one channel's, in seq
    order) that covers a contiguous seq range and fits the size limit as one message. At least the first."""
    if not rows:
        return []
    group = [rows[0]]
    size = _GROUP_RESERVE + len(encode(group_event(rows[0])).encode())
    for row in rows[1:]:
        size += 1 + len(encode(group_event(row)).encode())  # and a comma
        if row.seq != group[-1].seq + 1 or size > MAX_PAYLOAD_BYTES:
            break
        group.append(row)
    return group


def group_message(rows: Sequence[StoredMessage]) -> RealtimeMessage:
    """The provider message of ``next_group``'s events: one event alone exactly as ever; several as one ``group``
    whose id (also the provider message id) names its first and last event."""
    if len(rows) == 1:
        return realtime_message(rows[0])
    first, last = rows[0], rows[-1]
    group_id = f"{first.id}-{last.id}"
    data = {"id": group_id, "fromSeq": first.seq, "toSeq": last.seq, "events": [group_event(row) for row in rows]}
    return RealtimeMessage(id=group_id, channel=first.channel, name=GROUP, data=data)
