"""Events (galleries) and their photos: created by admins, read by guests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.access import EventRef, visible_event
from core.auth import Principal, dummy_secret_hash, hash_secret_off_loop, verify_secret_off_loop
from core.errors import ConflictError, ForbiddenError, NotFoundError
from core.models import event_table, like_table, photo_table
from core.outbox import event_log
from core.realtime.channels import event_channel
from core.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class PhotoView:
    id: int
    url: str
    caption: str | None
    like_count: int
    liked_by_me: bool
    created_at: datetime


@dataclass(frozen=True)
class EventView:
    event: EventRef
    photos: list[PhotoView]
    seq: int


async def create_event(uow: UnitOfWork, *, slug: str, title: str, access_code: str | None) -> EventRef:
    code_hash = await hash_secret_off_loop(access_code) if access_code else None
    row = (
        await uow.conn.execute(
            pg_insert(event_table)
            .values(slug=slug, title=title, access_code_hash=code_hash)
            .on_conflict_do_nothing(index_elements=[event_table.c.slug])
            .returning(event_table.c.id)
        )
    ).one_or_none()
    if row is None:
        raise ConflictError("event_exists", f"An event with slug {slug!r} already exists")
    return EventRef(id=row.id, slug=slug, title=title, protected=access_code is not None)


@dataclass(frozen=True)
class NewPhoto:
    url: str
    caption: str | None = None


async def add_photos(uow: UnitOfWork, *, slug: str, photos: list[NewPhoto]) -> list[PhotoView]:
    event_id = await uow.conn.scalar(select(event_table.c.id).where(event_table.c.slug == slug))
    if event_id is None:
        raise NotFoundError("event_not_found", f"No event {slug!r}")
    rows = await uow.conn.execute(
        insert(photo_table).returning(
            photo_table.c.id,
            photo_table.c.url,
            photo_table.c.caption,
            photo_table.c.created_at,
            sort_by_parameter_order=True,
        ),
        [{"event_id": event_id, "url": photo.url, "caption": photo.caption} for photo in photos],
    )
    return [PhotoView(row.id, row.url, row.caption, 0, False, row.created_at) for row in rows]


async def view_event(conn: AsyncConnection, *, principal: Principal | None, slug: str) -> EventView:
    """The gallery as a page load needs it; ``seq`` is read first, so any event after it reaches the subscriber."""
    event = await visible_event(conn, principal, slug)
    seq = await event_log.current_seq(conn, event_channel(slug))
    query = (
        select(
            photo_table.c.id,
            photo_table.c.url,
            photo_table.c.caption,
            photo_table.c.like_count,
            photo_table.c.created_at,
        )
        .where(photo_table.c.event_id == event.id)
        .order_by(photo_table.c.id)
    )
    if principal is not None:
        mine = select(like_table.c.photo_id).where(
            like_table.c.photo_id == photo_table.c.id, like_table.c.session_id == principal.subject
        )
        query = query.add_columns(mine.exists().label("liked"))
    rows = await conn.execute(query)
    photos = [
        PhotoView(row.id, row.url, row.caption, row.like_count, bool(principal and row.liked), row.created_at)
        for row in rows
    ]
    return EventView(event=event, photos=photos, seq=seq)


async def unlock_event(conn: AsyncConnection, *, slug: str, access_code: str | None) -> EventRef:
    """Checks a guest's access code for ``slug``; a public event needs none. An unknown slug is refused as a wrong
    code is (and counted as a failure), so the answer does not tell which slugs are protected events."""
    row = (
        await conn.execute(
            select(event_table.c.id, event_table.c.slug, event_table.c.title, event_table.c.access_code_hash).where(
                event_table.c.slug == slug
            )
        )
    ).one_or_none()
    wrong_code = ForbiddenError("invalid_access_code", "The access code is not right for this event")
    if row is None:
        # The same scrypt as a protected event's, so timing does not tell them apart either.
        await verify_secret_off_loop(access_code or "", dummy_secret_hash())
        raise wrong_code
    if row.access_code_hash is not None and not await verify_secret_off_loop(access_code or "", row.access_code_hash):
        raise wrong_code
    return EventRef(id=row.id, slug=row.slug, title=row.title, protected=row.access_code_hash is not None)
