"""Likes: one per photo and session. A like or an unlike is one statement: the attempt counted against the rate
limits, the visibility check, the like row, the photo's counter and the numbered outbox message, atomic by itself
(autocommit), so no lock is held across round trips and a venue's likes on one photo queue only for the counter
row, for the length of one statement."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import TextualSelect, text

from core import messages, ratelimit
from core.access import CAN_SEE_EVENT_SQL, photo_not_found, visibility_params
from core.auth import Principal
from core.db import returning
from core.outbox import store
from core.realtime.wire import encode
from core.unit_of_work import UnitOfWork

# Also the bare peer of bench/concurrency.py: the like's own SQL, measured without the rest of the action.
LIKE_STATEMENT = text(
    """
    WITH added AS (
        INSERT INTO likes (photo_id, session_id) VALUES (:photo_id, :session_id)
        ON CONFLICT DO NOTHING RETURNING photo_id
    )
    UPDATE photos SET like_count = like_count + 1 FROM added WHERE photos.id = added.photo_id
    RETURNING photos.like_count
    """
)

# The attempt counted, the caller's visibility, the like row and the counter, in front of the outbox insert
# (core.outbox.store), whose input is the one message, completed with the photo's event and new count; none where
# nothing changed. A refused attempt finds no photo, so it changes nothing else.
_CHANGE_LIKE_BEFORE = """
    {admission},
    photo AS (
        SELECT p.id, e.slug FROM photos p JOIN events e ON e.id = p.event_id
        WHERE p.id = :photo_id AND {can_see_event} AND (SELECT admitted FROM admission)
    ),
    changed AS ({change}),
    counted AS (
        UPDATE photos SET like_count = like_count {step} FROM changed WHERE photos.id = changed.photo_id
        RETURNING photos.like_count
    )
"""
_LIKE_MESSAGE = """
    SELECT CAST(:channel_prefix AS text) || photo.slug AS channel, CAST(:event AS text) AS event,
           CAST(:payload AS jsonb) || jsonb_build_object('eventSlug', photo.slug, 'likeCount', counted.like_count)
               AS payload,
           1 AS ord
    FROM photo, counted
"""
# One row, or one per message to publish: the admission, and the photo where the caller may see it (a null
# photo_id where it may not, it does not exist, or the attempt was refused). The count read from photos is the one
# before this statement (its own changes are not visible to it): the answer when nothing changed. Only a statement
# that took the channel's lease reads its messages back (the lease's holder publishes everyone else's).
_ANSWER = """
    SELECT admission.admitted, admission.retry_after_seconds,
           photo.id AS photo_id, coalesce(counted.like_count, current.like_count) AS like_count,
           counted.like_count IS NOT NULL AS changed, publishable.id IS NOT NULL AS publishable,
           publishable.*
    FROM admission LEFT JOIN (photo JOIN photos current ON current.id = photo.id) ON true
    LEFT JOIN counted ON true LEFT JOIN publishable ON publishable.leased
"""


_ANSWER_COLUMNS = (
    "admitted",
    "retry_after_seconds",
    "photo_id",
    "like_count",
    "changed",
    "publishable",
    *store.PUBLISHABLE_COLUMN_NAMES,
)


def _statement(change: str, step: str) -> TextualSelect:
    before = _CHANGE_LIKE_BEFORE.format(
        admission=ratelimit.ADMISSION_CTES, can_see_event=CAN_SEE_EVENT_SQL, change=change, step=step
    )
    return returning(store.insert_sql(_LIKE_MESSAGE, before=before) + _ANSWER, *_ANSWER_COLUMNS)


_LIKE = _statement(
    "INSERT INTO likes (photo_id, session_id) SELECT id, :session_id FROM photo ON CONFLICT DO NOTHING"
    " RETURNING photo_id",
    "+ 1",
)
_UNLIKE = _statement(
    "DELETE FROM likes USING photo WHERE likes.photo_id = photo.id AND likes.session_id = :session_id"
    " RETURNING likes.photo_id",
    "- 1",
)


@dataclass(frozen=True)
class LikeState:
    photo_id: int
    like_count: int
    liked: bool
    changed: bool


async def set_like(
    uow: UnitOfWork, *, principal: Principal, photo_id: int, liked: bool, mutation_id: str | None
) -> LikeState:
    """Likes or unlikes; asking for the state the session is already in changes and publishes nothing. A photo the
    caller may not see is not found, as one that does not exist, and nothing is written."""
    message = messages.like_changed_before_writing(photo_id=photo_id, liked=liked, mutation_id=mutation_id)
    params = {
        "photo_id": photo_id,
        "session_id": principal.subject,
        "channel_prefix": message.channel,
        "event": message.name,
        "payload": encode(message.payload),
        **visibility_params(principal),
        **uow.insert_params(),
    }
    rows = await uow.execute_action(_LIKE if liked else _UNLIKE, params, repeatable=True)
    answer = rows[0]
    if answer.photo_id is None:
        raise photo_not_found(photo_id)
    uow.stored(store.publishable_rows(row for row in rows if row.publishable))
    return LikeState(answer.photo_id, answer.like_count, liked=liked, changed=answer.changed)
