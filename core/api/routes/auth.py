from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from core import ratelimit
from core.api.deps import CallerAddress, MaybePrincipal, RuntimeDep
from core.auth import Principal, issue_token, new_guest_session_id
from core.schemas.auth import AdminLoginIn, GuestAuthIn, TokenOut
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
    runtime: RuntimeDep,
    current: MaybePrincipal,
    address: CallerAddress,
    body: Annotated[GuestAuthIn | None, Body()] = None,
) -> TokenOut:
    """A guest token; with ``eventSlug`` and ``accessCode`` (and optionally the guest's current token, to keep its
    session and the events it unlocked already) it also carries that protected event. New identities are limited
    per client address (``GUEST_SESSIONS_PER_ADDRESS_PER_HOUR``)."""
    settings = runtime.settings
    guest = current if current is not None and not current.is_admin else None
    unlocked = set(guest.events) if guest else set()
    async with read_only(runtime) as conn:
        if guest is None:
            await ratelimit.hit(conn, [ratelimit.guest_session_limit(settings, address)])
        if body and body.event_slug:
            failures = ratelimit.access_code_failure_limits(settings, address=address, slug=body.event_slug)
            checks = [ratelimit.credential_check_limit(settings, address)]
            async with ratelimit.limit_failures(conn, failures=failures, attempts=checks):
                event = await galleries.unlock_event(conn, slug=body.event_slug, access_code=body.access_code)
            if event.protected:
                unlocked.add(event.slug)
    session_id = guest.subject if guest else new_guest_session_id()
    return _token_out(Principal(role="GUEST", subject=session_id, events=frozenset(unlocked)), runtime)


@router.post("/admin/login")
async def admin_login(runtime: RuntimeDep, address: CallerAddress, body: AdminLoginIn) -> TokenOut:
    settings = runtime.settings
    failures = ratelimit.admin_login_failure_limits(settings, address=address)
    checks = [ratelimit.credential_check_limit(settings, address)]
    async with read_only(runtime) as conn, ratelimit.limit_failures(conn, failures=failures, attempts=checks):
        principal = await accounts.authenticate(conn, email=body.email, password=body.password)
    return _token_out(principal, runtime)
