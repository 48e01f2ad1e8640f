"""Pusher channel authorization: pusher-js POSTs ``socket_id`` and ``channel_name`` (a form) before subscribing to
a ``private-`` channel; we sign only channels this caller may see (decided by ``core.realtime.channels``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from core.actions import read
from core.api.deps import CurrentPrincipal, RuntimeDep
from core.api.routes._form import form_fields
from core.auth import Principal
from core.errors import BadRequestError, ForbiddenError, NotFoundError
from core.realtime.channels import LogicalChannel, can_subscribe, parse_channel
from core.runtime import Runtime
from core.services.photos import visible_event

if TYPE_CHECKING:
    from core.realtime.pusher import PusherProvider

router = APIRouter(prefix="/api/realtime/pusher", tags=["realtime"])


def _pusher(runtime: Runtime) -> PusherProvider:
    if runtime.provider.name != "pusher":
        raise NotFoundError("provider_not_pusher", f"Realtime runs on {runtime.provider.name}, not Pusher")
    from core.realtime.pusher import PusherProvider  # loaded already: Pusher is the configured provider

    assert isinstance(runtime.provider, PusherProvider)
    return runtime.provider


async def _may_subscribe(runtime: Runtime, principal: Principal, channel: LogicalChannel) -> bool:
    if channel.event_slug is None:
        return can_subscribe(principal, channel, event_protected=False)
    try:
        async with read(runtime) as conn:
            event = await visible_event(conn, principal, channel.event_slug)
    except (NotFoundError, ForbiddenError):
        return False  # an unknown event is refused like a forbidden one: the answer tells nothing about which
    return can_subscribe(principal, channel, event_protected=event.protected)


@router.post("/auth")
async def pusher_auth(request: Request, runtime: RuntimeDep, principal: CurrentPrincipal) -> dict[str, str]:
    provider = _pusher(runtime)
    from core.realtime.pusher import is_valid_socket_id, logical_channel

    fields = await form_fields(request)
    socket_id, channel_name = fields.get("socket_id", ""), fields.get("channel_name", "")
    if not is_valid_socket_id(socket_id):
        raise BadRequestError("invalid_socket_id", "socket_id must look like '123.456'")
    logical = logical_channel(channel_name)
    channel = parse_channel(logical) if logical else None
    if channel is None or not await _may_subscribe(runtime, principal, channel):
        raise ForbiddenError("channel_not_allowed", f"This token may not subscribe to {channel_name!r}")
    return provider.sign_channel(socket_id=socket_id, channel=channel_name)
