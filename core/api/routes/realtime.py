"""What browsers need to subscribe, for whichever provider is configured: the credentials (``/auth``), and the
provider SDKs' own auth requests (Ably's ``authUrl``, Pusher's channel authorization). Access is decided by
``core.access``; the provider signs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from core import access
from core.api.deps import CurrentPrincipal, RuntimeDep
from core.api.routes._form import form_fields
from core.schemas.auth import RealtimeAuthIn

router = APIRouter(prefix="/api/realtime", tags=["realtime"])


@router.post("/auth")
async def realtime_auth(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: Annotated[RealtimeAuthIn | None, Body()] = None
) -> dict[str, Any]:
    """What the browser needs to subscribe with the configured provider: the channels of the events the token
    carries, plus the public event named in ``eventSlug``; admins also get the admin channel and every event."""
    grant = await access.grant_including(runtime, principal, body.event_slug if body else None)
    return await runtime.provider.browser_credentials(grant)


@router.get("/ably/token", operation_id="ably_token_get")
@router.post("/ably/token", operation_id="ably_token_post")
async def ably_token(request: Request, runtime: RuntimeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Ably token renewal (ably-js ``authUrl``): a signed TokenRequest for the caller's channels. ``eventSlug``
    (query, or form body on POST: ably-js sends its ``authParams`` so) adds a public event being viewed; ably-js's
    own token params are ignored: we decide."""
    fields = dict(request.query_params)
    if request.method == "POST":
        fields |= await form_fields(request)
    grant = await access.grant_including(runtime, principal, fields.get("eventSlug") or None)
    return await runtime.provider.renew_credentials(grant)


@router.post("/pusher/auth")
async def pusher_auth(request: Request, runtime: RuntimeDep, principal: CurrentPrincipal) -> dict[str, str]:
    """Pusher channel authorization: pusher-js POSTs ``socket_id`` and ``channel_name`` (a form) before subscribing
    to a ``private-`` channel; only channels this caller may see are signed."""
    return await runtime.provider.sign_subscription(
        await form_fields(request), lambda channel: access.may_subscribe(runtime, principal, channel)
    )
