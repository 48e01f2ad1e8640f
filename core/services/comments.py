"""Comments: added by token holders, listed while visible, moderated by admins."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core import messages
from core.access import visible_photo
from core.auth import Principal
from core.errors import NotFoundError
from core.models import Comment, Event, Photo
from core.outbox import event_log
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


async def add_comment(
    uow: UnitOfWork,
    *,
    principal: Principal,
    photo_id: int,
    author_name: str,
    content: str,
    mutation_id: str | None,
) -> Comment:
    """Adds a comment whose author name and text were already checked (``core.schemas``)."""
    photo = await visible_photo(uow.conn, principal, photo_id)
    row = (
        await uow.conn.execute(
            insert(Comment)
            .values(photo_id=photo.id, session_id=principal.subject, author_name=author_name, content=content)
            .returning(Comment.id, Comment.photo_id, Comment.author_name, Comment.content, Comment.created_at)
        )
    ).one()
    comment = _comment_from_row(row)
    await uow.emit(messages.comment_added(slug=photo.event_slug, comment=comment, mutation_id=mutation_id))
    return comment


_COLUMNS = (Comment.id, Comment.photo_id, Comment.author_name, Comment.content, Comment.created_at)


async def visible_comments(
    conn: AsyncConnection, *, principal: Principal | None, photo_id: int, limit: int, before_id: int | None
) -> list[Comment]:
    """Newest first, ``limit`` at a time; ``before_id`` pages back."""
    await visible_photo(conn, principal, photo_id)
    query = select(*_COLUMNS).where(Comment.photo_id == photo_id, Comment.status == "visible")
    if before_id is not None:
        query = query.where(Comment.id < before_id)
    rows = await conn.execute(query.order_by(Comment.id.desc()).limit(limit))
    return [_comment_from_row(row) for row in rows]


async def moderation_queue(
    conn: AsyncConnection, *, status: CommentStatus | None, event_slug: str | None, limit: int, before_id: int | None
) -> list[tuple[Comment, str, str]]:
    """Comments for admins, newest first, with their status and event slug."""
    query = (
        select(*_COLUMNS, Comment.status, Event.slug)
        .join(Photo, Photo.id == Comment.photo_id)
        .join(Event, Event.id == Photo.event_id)
    )
    if status:
        query = query.where(Comment.status == status)
    if event_slug:
        query = query.where(Event.slug == event_slug)
    if before_id is not None:
        query = query.where(Comment.id < before_id)
    rows = await conn.execute(query.order_by(Comment.id.desc()).limit(limit))
    return [(_comment_from_row(row), row.status, row.slug) for row in rows]


async def _locate(conn: AsyncConnection, comment_id: int) -> Any:
    row = (
        await conn.execute(
            select(*_COLUMNS, Comment.status, Event.slug)
            .join(Photo, Photo.id == Comment.photo_id)
            .join(Event, Event.id == Photo.event_id)
            .where(Comment.id == comment_id)
            .with_for_update(of=Comment)
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
    await uow.conn.execute(update(Comment).where(Comment.id == comment_id).values(status=status))
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
    await uow.conn.execute(delete(Comment).where(Comment.id == comment_id))
    await _forget_text(uow, row)
    if row.status == "visible":
        await uow.emit(
            [messages.comment_removed(slug=row.slug, photo_id=row.photo_id, comment_id=row.id, mutation_id=mutation_id)]
        )


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(Comment.status, func.count()).group_by(Comment.status))
    return {status: int(n) for status, n in rows}
