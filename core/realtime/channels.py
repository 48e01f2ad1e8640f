"""Logical channel names, the one place they are defined. Each provider maps them to its own names (Pusher's
``private-event-{slug}``); who may subscribe to which is decided in ``core.access``."""

from __future__ import annotations

import re
from dataclasses import dataclass

ADMIN_CHANNEL = "admin"
EVENT_PREFIX = "event:"
SLUG_MAX_LENGTH = 64
SLUG_PATTERN = rf"^[a-z0-9](?:[a-z0-9-]{{0,{SLUG_MAX_LENGTH - 2}}}[a-z0-9])?$"
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


def parse_channel(name: str) -> LogicalChannel | None:
    """The logical channel ``name`` denotes, or None where it is not one of ours."""
    if name == ADMIN_CHANNEL:
        return LogicalChannel(name, None)
    if name.startswith(EVENT_PREFIX) and is_valid_slug(slug := name[len(EVENT_PREFIX) :]):
        return LogicalChannel(name, slug)
    return None
