"""Comments: added by token holders, listed while visible, moderated by admins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import TextualSelect, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core import idempotency, messages, ratelimit
from core.access import CAN_SEE_EVENT_SQL, photo_not_found, visibility_params, visible_photo
from core.auth import Principal
from core.db import returning
from core.errors import NotFoundError
from core.models import Comment, comment_table, event_table, photo_table
from core.outbox import event_log, store
from core.realtime.channels import EVENT_PREFIX
from core.realtime.wire import encode
from core.unit_of_work import UnitOfWork

CommentStatus = Literal["visible", "hidden"]


def _comment_from_row(row: Any) -> Comment:
    return Comment(
        id=row.id,
        photo_id=row.photo_id,
        author_name=row.author_name,
        content=row.content,
        created_at=row.created_at,
    )


# The attempt counted, the key's earlier answer, the caller's visibility, the comment and the answer remembered
# under the key, in front of the outbox insert (core.outbox.store), whose input is the two messages completed with
# the event's slug and the comment's id. Nothing is stored where the attempt was refused, the key was used before
# (its answer is read instead) or the photo is not found. Two copies of a keyed request racing each other both
# find no earlier answer (each reads as of its statement's start); the second one's ``remembered`` then fails on
# the key the first stored, which undoes its whole statement, the comment and its messages with it. A comment sent
# without a key runs the same statement without the key's two CTEs, which Postgres would otherwise parse and plan
# for nothing.
_EARLIER = """
    earlier AS (
        SELECT fingerprint, answer FROM idempotent_requests WHERE identity = :identity AND key = :key
    ),
"""
_NO_EARLIER = "earlier AS (SELECT NULL::text AS fingerprint, NULL::jsonb AS answer WHERE false),"
_ADD_BEFORE = """
    {admission},
    {earlier}
    photo AS (
        SELECT p.id, e.slug FROM photos p JOIN events e ON e.id = p.event_id
        WHERE p.id = :photo_id AND {can_see_event}
    ),
    added AS (
        INSERT INTO comments (photo_id, session_id, author_name, content, created_at)
        SELECT photo.id, :identity, :author_name, :content, :created_at FROM photo
        WHERE (SELECT admitted FROM admission) AND NOT EXISTS (SELECT FROM earlier)
        RETURNING id
    ),
    comment AS (
        SELECT added.id, photo.slug, CAST(:comment AS jsonb) || jsonb_build_object('id', added.id::text) AS body
        FROM added, photo
    )
    {remembered}
"""
_REMEMBERED = """,
    remembered AS (
        INSERT INTO idempotent_requests (identity, key, fingerprint, answer)
        SELECT :identity, :key, :fingerprint, comment.body FROM comment
    )
"""
_ADD_MESSAGES = """
    SELECT CASE WHEN m.channel = CAST(:event_prefix AS text) THEN m.channel || comment.slug ELSE m.channel END
               AS channel,
           m.event,
           m.payload::jsonb || jsonb_build_object('eventSlug', comment.slug, 'comment', comment.body) AS payload,
           m.ord
    FROM comment, unnest(CAST(:channels AS text[]), CAST(:names AS text[]), CAST(:payloads AS text[]))
         WITH ORDINALITY AS m(channel, event, payload, ord)
"""
# One row, or one per message to publish where the statement took a channel's lease (the lease's holder publishes
# everyone else's).
_ADD_ANSWER = """
    SELECT admission.admitted, admission.retry_after_seconds, photo.id AS photo_id, comment.id AS comment_id,
           earlier.fingerprint AS earlier_fingerprint, earlier.answer AS earlier_answer,
           publishable.id IS NOT NULL AS publishable,
           publishable.*
    FROM admission LEFT JOIN photo ON true LEFT JOIN comment ON true LEFT JOIN earlier ON true
    LEFT JOIN publishable ON publishable.leased
"""
_ADD_ANSWER_COLUMNS = (
    "admitted",
    "retry_after_seconds",
    "photo_id",
    "comment_id",
    "earlier_fingerprint",
    "earlier_answer",
    "publishable",
    *store.PUBLISHABLE_COLUMN_NAMES,
)


def _add_statement(*, keyed: bool) -> TextualSelect:
    before = _ADD_BEFORE.format(
        admission=ratelimit.ADMISSION_CTES,
        earlier=_EARLIER if keyed else _NO_EARLIER,
        can_see_event=CAN_SEE_EVENT_SQL,
        remembered=_REMEMBERED if keyed else "",
    )
    return returning(store.insert_sql(_ADD_MESSAGES, before=before) + _ADD_ANSWER, *_ADD_ANSWER_COLUMNS)


_ADD_KEYED = _add_statement(keyed=True)
_ADD = _add_statement(keyed=False)


async def add_comment(
    uow: UnitOfWork,
    *,
    principal: Principal,
    photo_id: int,
    author_name: str,
    content: str,
    mutation_id: str | None,
    key: idempotency.Key | None,
) -> Comment | idempotency.EarlierAnswer:
    """Adds a comment whose author name and text were already checked (``core.schemas.comments``), in one
    statement (a ``single_statement`` action). With ``key``, a repeat answers what the first stored
    (``EarlierAnswer``) and changes nothing; two copies racing each other raise
    ``idempotency.RepeatedRequestError`` in the second.

    Only a comment with a key is run again when its connection is lost (``UnitOfWork.execute_action``): without
    one, a repeat of a run that committed would store it twice, so the loss fails the request (503) and the client
    decides, as it would for any request whose answer it did not get."""
    created_at = datetime.now(UTC)
    before_writing = messages.comment_added_before_writing(
        photo_id=photo_id, author_name=author_name, content=content, created_at=created_at, mutation_id=mutation_id
    )
    params = {
        "photo_id": photo_id,
        "identity": principal.subject,
        "author_name": author_name,
        "content": content,
        "created_at": created_at,
        "comment": encode(before_writing.comment),
        "event_prefix": EVENT_PREFIX,
        "channels": [message.channel for message in before_writing.messages],
        "names": [message.name for message in before_writing.messages],
        "payloads": [encode(message.payload) for message in before_writing.messages],
        **visibility_params(principal),
        **uow.insert_params(),
        **({"key": key.key, "fingerprint": key.fingerprint} if key else {}),
    }
    try:
        rows = await uow.execute_action(_ADD_KEYED if key else _ADD, params, repeatable=key is not None)
    except IntegrityError as exc:
        if key is not None and idempotency.is_repeated_request(exc):
            raise idempotency.RepeatedRequestError from exc
        raise
    answer = rows[0]
    if key is not None and answer.earlier_fingerprint is not None:
        return idempotency.answer_under(key, answer.earlier_fingerprint, answer.earlier_answer)
    if answer.photo_id is None:
        raise photo_not_found(photo_id)
    uow.stored(store.publishable_rows(row for row in rows if row.publishable))
    return Comment(
        id=answer.comment_id, photo_id=photo_id, author_name=author_name, content=content, created_at=created_at
    )


_COLUMNS = (
    comment_table.c.id,
    comment_table.c.photo_id,
    comment_table.c.author_name,
    comment_table.c.content,
    comment_table.c.created_at,
)


async def visible_comments(
    conn: AsyncConnection, *, principal: Principal | None, photo_id: int, limit: int, before_id: int | None
) -> list[Comment]:
    """Newest first, ``limit`` at a time; ``before_id`` pages back."""
    await visible_photo(conn, principal, photo_id)
    query = select(*_COLUMNS).where(comment_table.c.photo_id == photo_id, comment_table.c.status == "visible")
    if before_id is not None:
        query = query.where(comment_table.c.id < before_id)
    rows = await conn.execute(query.order_by(comment_table.c.id.desc()).limit(limit))
    return [_comment_from_row(row) for row in rows]


async def moderation_queue(
    conn: AsyncConnection, *, status: CommentStatus | None, event_slug: str | None, limit: int, before_id: int | None
) -> list[tuple[Comment, str, str]]:
    """Comments for admins, newest first, with their status and event slug."""
    query = (
        select(*_COLUMNS, comment_table.c.status, event_table.c.slug)
        .join(photo_table, photo_table.c.id == comment_table.c.photo_id)
        .join(event_table, event_table.c.id == photo_table.c.event_id)
    )
    if status:
        query = query.where(comment_table.c.status == status)
    if event_slug:
        query = query.where(event_table.c.slug == event_slug)
    if before_id is not None:
        query = query.where(comment_table.c.id < before_id)
    rows = await conn.execute(query.order_by(comment_table.c.id.desc()).limit(limit))
    return [(_comment_from_row(row), row.status, row.slug) for row in rows]


async def _locate(conn: AsyncConnection, comment_id: int) -> Any:
    row = (
        await conn.execute(
            select(*_COLUMNS, comment_table.c.status, event_table.c.slug)
            .join(photo_table, photo_table.c.id == comment_table.c.photo_id)
            .join(event_table, event_table.c.id == photo_table.c.event_id)
            .where(comment_table.c.id == comment_id)
            .with_for_update(of=comment_table)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("comment_not_found", f"No comment {comment_id}")
    return row


async def set_status(
    uow: UnitOfWork, *, comment_id: int, status: CommentStatus, mutation_id: str | None
) -> tuple[Comment, str, str]:
    """Hides a comment (guests see ``comment:removed``) or shows it again (``comment:added``)."""
    row = await _locate(uow.conn, comment_id)
    comment = _comment_from_row(row)
    if row.status == status:
        return comment, status, row.slug
    await uow.conn.execute(update(comment_table).where(comment_table.c.id == comment_id).values(status=status))
    if status == "hidden":
        await _forget_text(uow, row)
        event = messages.comment_removed(
            slug=row.slug, photo_id=comment.photo_id, comment_id=comment.id, mutation_id=mutation_id
        )
    else:
        event = messages.comment_restored(slug=row.slug, comment=comment, mutation_id=mutation_id)
    await uow.emit([event])
    return comment, status, row.slug


async def _forget_text(uow: UnitOfWork, row: Any) -> None:
    """Moderated text is served nowhere afterwards: the log's messages that carried it become its removal."""
    removal = messages.comment_removed(slug=row.slug, photo_id=row.photo_id, comment_id=row.id, mutation_id=None)
    await event_log.replace_comment_text(uow.conn, comment_id=row.id, removal=removal)


async def delete_comment(uow: UnitOfWork, *, comment_id: int, mutation_id: str | None) -> None:
    row = await _locate(uow.conn, comment_id)
    await uow.conn.execute(delete(comment_table).where(comment_table.c.id == comment_id))
    await _forget_text(uow, row)
    if row.status == "visible":
        await uow.emit(
            [messages.comment_removed(slug=row.slug, photo_id=row.photo_id, comment_id=row.id, mutation_id=mutation_id)]
        )


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(comment_table.c.status, func.count()).group_by(comment_table.c.status))
    return {status: int(n) for status, n in rows}
