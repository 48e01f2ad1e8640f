"""Logical channel names and who may subscribe to them: the one place this is decided.

Providers map a logical name to their own (``event:{slug}`` becomes Pusher's ``private-event-{slug}``); every
subscription check (Ably capability, Pusher auth, Socket.IO join, HTTP reads) asks ``can_see_event`` or
``can_subscribe`` here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.auth import Principal
from core.realtime.base import ChannelGrant

ADMIN_CHANNEL = "admin"
EVENT_PREFIX = "event:"
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_SLUG = re.compile(SLUG_PATTERN)


def is_valid_slug(slug: str) -> bool:
    return bool(_SLUG.match(slug))


def event_channel(slug: str) -> str:
    if not is_valid_slug(slug):
        raise ValueError(f"invalid event slug: {slug!r}")
    return f"{EVENT_PREFIX}{slug}"


@dataclass(frozen=True)
class LogicalChannel:
    name: str
    event_slug: str | None  # None for the admin channel

    @property
    def is_admin(self) -> bool:
        return self.event_slug is None


def parse_channel(name: str) -> LogicalChannel | None:
    """The logical channel ``name`` denotes, or None where it is not one of ours."""
    if name == ADMIN_CHANNEL:
        return LogicalChannel(name, None)
    if name.startswith(EVENT_PREFIX) and is_valid_slug(slug := name[len(EVENT_PREFIX) :]):
        return LogicalChannel(name, slug)
    return None


def can_see_event(principal: Principal | None, slug: str, *, protected: bool) -> bool:
    """A public event is open to anyone; a protected one to admins and to guests whose token carries it."""
    if not protected:
        return True
    return principal is not None and (principal.is_admin or slug in principal.events)


def can_subscribe(principal: Principal | None, channel: LogicalChannel, *, event_protected: bool) -> bool:
    if channel.event_slug is None:
        return principal is not None and principal.is_admin
    return can_see_event(principal, channel.event_slug, protected=event_protected)


def grant_for(principal: Principal, public_slugs: Iterable[str] = ()) -> ChannelGrant:
    """The channels a principal may subscribe to: the events its token carries plus the public ones asked for;
    an admin gets the admin channel and every event."""
    slugs = sorted(set(principal.events) | set(public_slugs))
    channels = [event_channel(slug) for slug in slugs]
    if principal.is_admin:
        channels.insert(0, ADMIN_CHANNEL)
    return ChannelGrant(client_id=principal.subject, channels=tuple(channels), all_events=principal.is_admin)
