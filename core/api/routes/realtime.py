from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from core.actions import read
from core.api.deps import CurrentPrincipal, RuntimeDep
from core.api.schemas import RealtimeAuthIn
from core.auth import Principal
from core.errors import BadRequestError
from core.realtime.base import ChannelGrant
from core.realtime.channels import grant_for, is_valid_slug
from core.runtime import Runtime
from core.services.photos import visible_event

router = APIRouter(prefix="/api/realtime", tags=["realtime"])


async def grant_including(runtime: Runtime, principal: Principal, event_slug: str | None) -> ChannelGrant:
    """The caller's grant: the events its token carries, plus ``event_slug`` where the caller may see that event
    (404 unknown, or protected and not unlocked)."""
    public: list[str] = []
    if event_slug:
        if not is_valid_slug(event_slug):
            raise BadRequestError("invalid_input", "eventSlug must be an event slug (a-z, 0-9 and '-')")
        async with read(runtime) as conn:
            event = await visible_event(conn, principal, event_slug)
        public.append(event.slug)
    return grant_for(principal, public)


@router.post("/auth")
async def realtime_auth(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: Annotated[RealtimeAuthIn | None, Body()] = None
) -> dict[str, Any]:
    """What the browser needs to subscribe with the configured provider: the channels of the events the token
    carries, plus the public event named in ``eventSlug``; admins also get the admin channel and every event."""
    grant = await grant_including(runtime, principal, body.event_slug if body else None)
    return await runtime.provider.browser_credentials(grant)
