"""What routes depend on, as ``Annotated`` aliases: the runtime, the caller, the mutation id.

The dependencies are ``async`` although they never await: FastAPI runs a plain ``def`` dependency in a worker
thread, a thread hop per dependency per request for work that takes microseconds."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.actions import read
from core.api.client_address import client_address
from core.auth import Principal, verify_token
from core.errors import BadRequestError, ForbiddenError, UnauthorizedError
from core.events import MUTATION_ID_PATTERN
from core.runtime import Runtime
from core.services.accounts import check_admin_token

_bearer = HTTPBearer(auto_error=False, description="A guest or admin token from /api/auth/*")
_MUTATION_ID = re.compile(MUTATION_ID_PATTERN)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def optional_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    if credentials is None:
        if request.headers.get("authorization"):
            raise UnauthorizedError("invalid_token", "The Authorization header must be 'Bearer <token>'")
        return None
    principal = verify_token(credentials.credentials, runtime.settings)
    if principal.is_admin:
        async with read(runtime) as conn:
            await check_admin_token(conn, principal)
    request.state.role = principal.role
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def current_principal(principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise UnauthorizedError("token_required", "This needs a token: send 'Authorization: Bearer <token>'")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("admin_only", "Only admins may do this")
    return principal


CurrentAdmin = Annotated[Principal, Depends(current_admin)]


async def mutation_id(x_mutation_id: Annotated[str | None, Header()] = None) -> str | None:
    """The client's id for an optimistic update, echoed in the realtime events the request causes."""
    if x_mutation_id is None:
        return None
    if not _MUTATION_ID.match(x_mutation_id):
        raise BadRequestError("invalid_mutation_id", "X-Mutation-Id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return x_mutation_id


MutationId = Annotated[str | None, Depends(mutation_id)]


async def caller_address(request: Request, runtime: RuntimeDep) -> str:
    """The client's address as the deployment's edge vouches for it (``CLIENT_ADDRESS_SOURCE``)."""
    return client_address(request, runtime.settings.client_address_source)


CallerAddress = Annotated[str, Depends(caller_address)]
