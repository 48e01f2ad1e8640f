from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from core.api.deps import MaybePrincipal, RuntimeDep, client_address
from core.auth import Principal, issue_token, new_guest_session_id
from core.ratelimit import limit_failures
from core.schemas import AdminLoginIn, GuestAuthIn, TokenOut
from core.services import accounts, galleries
from core.unit_of_work import read_only

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _token_out(principal: Principal, runtime: RuntimeDep) -> TokenOut:
    token, ttl = issue_token(principal, runtime.settings)
    return TokenOut(
        token=token, expires_in=ttl, role=principal.role, session_id=principal.subject, events=sorted(principal.events)
    )


@router.post("/guest")
async def guest_token(
    request: Request,
    runtime: RuntimeDep,
    current: MaybePrincipal,
    body: Annotated[GuestAuthIn | None, Body()] = None,
) -> TokenOut:
    """A guest token; with ``eventSlug`` and ``accessCode`` (and optionally the guest's current token, to keep its
    session and the events it unlocked already) it also carries that protected event."""
    guest = current if current is not None and not current.is_admin else None
    session_id = guest.subject if guest else new_guest_session_id()
    unlocked = set(guest.events) if guest else set()
    if body and body.event_slug:
        key, limit = f"access-code:{client_address(request)}", runtime.settings.rate_limit_per_minute
        async with read_only(runtime) as conn, limit_failures(conn, key, limit=limit):
            event = await galleries.unlock_event(conn, slug=body.event_slug, access_code=body.access_code)
        if event.protected:
            unlocked.add(event.slug)
    return _token_out(Principal(role="GUEST", subject=session_id, events=frozenset(unlocked)), runtime)


@router.post("/admin/login")
async def admin_login(request: Request, runtime: RuntimeDep, body: AdminLoginIn) -> TokenOut:
    key, limit = f"admin-login:{client_address(request)}", runtime.settings.rate_limit_per_minute
    async with read_only(runtime) as conn, limit_failures(conn, key, limit=limit):
        principal = await accounts.authenticate(conn, email=body.email, password=body.password)
    return _token_out(principal, runtime)
