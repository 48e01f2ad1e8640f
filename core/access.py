"""Who may see what: the one place access is decided, for HTTP reads, actions, and every provider's subscriptions.

A public event is open to anyone; a protected one to admins and to guests whose token carries it (unlocked with
its access code). The admin channel is for admins only. Looking up an event or photo answers the same 404 where
it does not exist and where it is protected and not unlocked, so that answers do not tell which slugs are
protected events or which photo ids exist in them (a 403 would; RFC 9110 lets a server answer 404 to hide that a
resource exists).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.auth import Principal
from core.errors import InvalidInputError, NotFoundError
from core.models import event_table, photo_table
from core.realtime.base import ChannelGrant
from core.realtime.channels import ADMIN_CHANNEL, event_channel, is_valid_slug, parse_channel
from core.runtime import Runtime
from core.unit_of_work import read_only


@dataclass(frozen=True)
class PhotoRef:
    id: int
    event_slug: str


@dataclass(frozen=True)
class EventRef:
    id: int
    slug: str
    title: str
    protected: bool


def can_see_event(principal: Principal | None, slug: str, *, protected: bool) -> bool:
    if not protected:
        return True
    return principal is not None and (principal.is_admin or slug in principal.events)


# ``can_see_event`` for a statement that checks it as it acts (the like): true for the event ``e`` where the caller
# may see it, given ``visibility_params``.
CAN_SEE_EVENT_SQL = "(e.access_code_hash IS NULL OR :sees_every_event OR CAST(:unlocked_events AS jsonb) ? e.slug)"


def visibility_params(principal: Principal | None) -> dict[str, Any]:
    # The unlocked slugs as a JSON array (``?``: is the slug one of them), not a text[]: see ratelimit.admission_params.
    return {
        "sees_every_event": principal is not None and principal.is_admin,
        "unlocked_events": json.dumps(sorted(principal.events)) if principal is not None else "[]",
    }


def photo_not_found(photo_id: int) -> NotFoundError:
    return NotFoundError("photo_not_found", f"No photo {photo_id}")


def _event_not_found(slug: str) -> NotFoundError:
    return NotFoundError(
        "event_not_found", f"No event {slug!r}, or it is protected: unlock it with its code (POST /api/auth/guest)"
    )


# Built once: every action starts with one of these lookups.
_PHOTO = (
    select(photo_table.c.id, event_table.c.slug, event_table.c.access_code_hash.is_not(None).label("protected"))
    .join(event_table, event_table.c.id == photo_table.c.event_id)
    .where(photo_table.c.id == bindparam("photo_id"))
)
_EVENT = select(
    event_table.c.id,
    event_table.c.slug,
    event_table.c.title,
    event_table.c.access_code_hash.is_not(None).label("protected"),
).where(event_table.c.slug == bindparam("slug"))


async def visible_photo(conn: AsyncConnection, principal: Principal | None, photo_id: int) -> PhotoRef:
    row = (await conn.execute(_PHOTO, {"photo_id": photo_id})).one_or_none()
    if row is None or not can_see_event(principal, row.slug, protected=row.protected):
        raise photo_not_found(photo_id)
    return PhotoRef(id=row.id, event_slug=row.slug)


async def visible_event(conn: AsyncConnection, principal: Principal | None, slug: str) -> EventRef:
    row = (await conn.execute(_EVENT, {"slug": slug})).one_or_none()
    if row is None or not can_see_event(principal, row.slug, protected=row.protected):
        raise _event_not_found(slug)
    return EventRef(id=row.id, slug=row.slug, title=row.title, protected=row.protected)


async def event_visible_to(runtime: Runtime, principal: Principal | None, slug: str) -> EventRef:
    """``visible_event`` on a connection of its own, for callers outside a transaction."""
    async with read_only(runtime) as conn:
        return await visible_event(conn, principal, slug)


def may_receive_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.is_admin


async def may_subscribe(runtime: Runtime, principal: Principal | None, logical_channel: str) -> bool:
    """Whether ``principal`` may receive ``logical_channel``."""
    channel = parse_channel(logical_channel)
    if channel is None:
        return False
    if channel.event_slug is None:
        return may_receive_admin(principal)
    try:
        await event_visible_to(runtime, principal, channel.event_slug)
    except NotFoundError:
        return False
    return True


def grant_for(principal: Principal, public_slugs: Iterable[str] = ()) -> ChannelGrant:
    """The channels a principal may subscribe to: the events its token carries plus the public ones asked for;
    an admin gets the admin channel and every event."""
    slugs = sorted(set(principal.events) | set(public_slugs))
    channels = [event_channel(slug) for slug in slugs]
    if principal.is_admin:
        channels.insert(0, ADMIN_CHANNEL)
    return ChannelGrant(client_id=principal.subject, channels=tuple(channels), all_events=principal.is_admin)


async def grant_including(runtime: Runtime, principal: Principal, event_slug: str | None) -> ChannelGrant:
    """The caller's grant plus ``event_slug`` where the caller may see that event (else 404)."""
    public: list[str] = []
    if event_slug:
        if not is_valid_slug(event_slug):
            raise InvalidInputError("invalid_input", "eventSlug must be an event slug (a-z, 0-9 and '-')")
        public.append((await event_visible_to(runtime, principal, event_slug)).slug)
    return grant_for(principal, public)
