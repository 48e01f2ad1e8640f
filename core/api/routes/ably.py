"""Ably token renewal: ably-js fetches a fresh TokenRequest here (``authUrl``, GET or POST) before its token expires."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from core.api.deps import CurrentPrincipal, RuntimeDep
from core.api.routes._form import form_fields
from core.api.routes.realtime import grant_including
from core.errors import ForbiddenError, NotFoundError
from core.runtime import Runtime

if TYPE_CHECKING:
    from core.realtime.ably import AblyProvider

router = APIRouter(prefix="/api/realtime/ably", tags=["realtime"])


def _ably(runtime: Runtime) -> AblyProvider:
    if runtime.provider.name != "ably":
        raise NotFoundError("provider_not_ably", f"Realtime runs on {runtime.provider.name}, not Ably")
    from core.realtime.ably import AblyProvider  # loaded already: Ably is the configured provider

    assert isinstance(runtime.provider, AblyProvider)
    return runtime.provider


@router.get("/token", operation_id="ably_token_get")
@router.post("/token", operation_id="ably_token_post")
async def ably_token(request: Request, runtime: RuntimeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """A signed TokenRequest for the caller's channels. ``eventSlug`` (query, or form body on POST: ably-js sends its
    ``authParams`` so) adds a public event being viewed; ably-js's own token params are ignored: we decide."""
    provider = _ably(runtime)
    fields = dict(request.query_params)
    if request.method == "POST":
        fields |= await form_fields(request)
    grant = await grant_including(runtime, principal, fields.get("eventSlug") or None)
    if not grant.channels:
        raise ForbiddenError("no_channels", "This token may not subscribe to any channel; name an event (eventSlug)")
    return await provider.token_request(grant)
