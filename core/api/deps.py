"""What routes depend on, as ``Annotated`` aliases: the runtime, the caller, the mutation id.

The dependencies are ``async`` although they never await: FastAPI runs a plain ``def`` dependency in a worker
thread, a thread hop per dependency per request for work that takes microseconds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.api.client_address import client_address
from core.auth import Principal, verify_token
from core.errors import ForbiddenError, InvalidInputError, UnauthorizedError
from core.runtime import Runtime
from core.schemas.base import MUTATION_ID_PATTERN
from core.services.accounts import check_admin_token
from core.unit_of_work import read_only

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
    return await _principal_of(request, runtime, credentials)


async def _principal_of(
    request: Request, runtime: Runtime, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    if credentials is None:
        if request.headers.get("authorization"):
            raise UnauthorizedError("invalid_token", "The Authorization header must be 'Bearer <token>'")
        return None
    principal = verify_token(credentials.credentials, runtime.settings)
    if principal.is_admin:
        async with read_only(runtime) as conn:
            await check_admin_token(conn, principal)
    request.state.role = principal.role
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def current_principal(principal: MaybePrincipal) -> Principal:
    return _required(principal)


def _required(principal: Principal | None) -> Principal:
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
    return _checked_mutation_id(x_mutation_id)


def _checked_mutation_id(x_mutation_id: str | None) -> str | None:
    if x_mutation_id is None:
        return None
    if not _MUTATION_ID.match(x_mutation_id):
        raise InvalidInputError("invalid_mutation_id", "X-Mutation-Id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return x_mutation_id


MutationId = Annotated[str | None, Depends(mutation_id)]

# RFC 9110 token-ish: what retrying HTTP clients generate (UUIDs, random strings), and nothing that could smuggle
# another header or a log line.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="1-255 visible ASCII characters; a retry with the same key gets the first answer"),
    ] = None,
) -> str | None:
    """The IETF ``Idempotency-Key`` of a retry-safe mutation: a repeat gets the first answer (core.idempotency)."""
    if idempotency_key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidInputError("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


async def caller_address(request: Request, runtime: RuntimeDep) -> str:
    """The client's address as the deployment's edge vouches for it (``CLIENT_ADDRESS_SOURCE``)."""
    return client_address(request, runtime.settings.client_address_source)


CallerAddress = Annotated[str, Depends(caller_address)]


@dataclass(frozen=True)
class Caller:
    """The caller of a like or a comment, as ``CurrentPrincipal``, ``CallerAddress`` and ``MutationId`` give it,
    with the runtime, from one dependency: FastAPI solves each dependency at some tens of microseconds per request,
    and these routes, the hottest, needed seven."""

    runtime: Runtime
    principal: Principal
    address: str
    mutation_id: str | None


async def acting_caller(request: Request) -> Caller:
    """Reads the token and ``X-Mutation-Id`` itself: as sub-dependencies (the bearer scheme, a ``Header``
    parameter) FastAPI solved them at a sixth of a like's Python in a profile of 200 concurrent likes. Each route
    that depends on it documents what it reads with ``openapi_extra=ACTING_CALLER_OPENAPI``."""
    runtime = await get_runtime(request)
    principal = _required(await _principal_of(request, runtime, await _bearer(request)))
    address = client_address(request, runtime.settings.client_address_source)
    return Caller(runtime, principal, address, _checked_mutation_id(request.headers.get("x-mutation-id")))


# What acting_caller reads, as FastAPI would have documented it as sub-dependencies (tests/test_docs.py checks that
# every route using it says so).
ACTING_CALLER_OPENAPI: dict[str, Any] = {
    "security": [{"HTTPBearer": []}],
    "parameters": [
        {
            "name": "x-mutation-id",
            "in": "header",
            "required": False,
            "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "X-Mutation-Id"},
        }
    ],
}


def defining_the_bearer_scheme(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the bearer scheme ``ACTING_CALLER_OPENAPI`` names defined, as FastAPI defines it for the
    routes that declare it: an app where none does (the like function) would otherwise name an undefined one."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault(_bearer.scheme_name, jsonable_encoder(_bearer.model, by_alias=True, exclude_none=True))
    return schema


ActingCaller = Annotated[Caller, Depends(acting_caller)]
