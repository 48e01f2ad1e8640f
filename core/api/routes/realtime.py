from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from core.actions import read
from core.api.deps import CurrentPrincipal, RuntimeDep
from core.api.schemas import RealtimeAuthIn
from core.realtime.channels import grant_for
from core.services.photos import visible_event

router = APIRouter(prefix="/api/realtime", tags=["realtime"])


@router.post("/auth")
async def realtime_auth(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: Annotated[RealtimeAuthIn | None, Body()] = None
) -> dict[str, Any]:
    """What the browser needs to subscribe with the configured provider: the channels of the events the token
    carries, plus the public event named in ``eventSlug``; admins also get the admin channel and every event."""
    public: list[str] = []
    if body and body.event_slug:
        async with read(runtime) as conn:
            event = await visible_event(conn, principal, body.event_slug)
        public.append(event.slug)
    return await runtime.provider.browser_credentials(grant_for(principal, public))
