"""Looking up an event or photo the way every service must: unknown, and protected without its access code, are
the same 404, so that answers do not tell which slugs are protected events or which photo ids exist in them (a 403
would; RFC 9110 lets a server answer 404 to hide that a resource exists)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.auth import Principal
from core.errors import NotFoundError
from core.models import Event, Photo
from core.realtime.channels import can_see_event


@dataclass(frozen=True)
class PhotoRef:
    id: int
    event_id: int
    event_slug: str


@dataclass(frozen=True)
class EventRef:
    id: int
    slug: str
    title: str
    protected: bool


def _event_not_found(slug: str) -> NotFoundError:
    return NotFoundError(
        "event_not_found", f"No event {slug!r}, or it is protected: unlock it with its code (POST /api/auth/guest)"
    )


# Built once: every action starts with one of these lookups.
_PHOTO = (
    select(Photo.id, Photo.event_id, Event.slug, Event.access_code_hash.is_not(None).label("protected"))
    .join(Event, Event.id == Photo.event_id)
    .where(Photo.id == bindparam("photo_id"))
)
_EVENT = select(Event.id, Event.slug, Event.title, Event.access_code_hash.is_not(None).label("protected")).where(
    Event.slug == bindparam("slug")
)


async def visible_photo(conn: AsyncConnection, principal: Principal | None, photo_id: int) -> PhotoRef:
    row = (await conn.execute(_PHOTO, {"photo_id": photo_id})).one_or_none()
    if row is None or not can_see_event(principal, row.slug, protected=row.protected):
        raise NotFoundError("photo_not_found", f"No photo {photo_id}")
    return PhotoRef(id=row.id, event_id=row.event_id, event_slug=row.slug)


async def visible_event(conn: AsyncConnection, principal: Principal | None, slug: str) -> EventRef:
    row = (await conn.execute(_EVENT, {"slug": slug})).one_or_none()
    if row is None or not can_see_event(principal, row.slug, protected=row.protected):
        raise _event_not_found(slug)
    return EventRef(id=row.id, slug=row.slug, title=row.title, protected=row.protected)
