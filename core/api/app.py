"""The FastAPI application: routers, JSON errors in one shape, CORS, the access log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.api.deps import defining_the_bearer_scheme
from core.api.headers import SecurityHeadersMiddleware
from core.api.limits import BodyLimitMiddleware
from core.api.middleware import AccessLogMiddleware
from core.api.parts import PARTS, IncludingPartsOnDemand, PartsOnDemand
from core.errors import AppError, RateLimitedError, as_app_error
from core.gc_tuning import tune_garbage_collection
from core.logs import configure_logging
from core.runtime import Runtime, build_runtime, initializing_a_snapshot
from core.schemas.base import ErrorResponse
from core.settings import get_settings

log = logging.getLogger("hafi.api")

# Every route may answer these, always in the one error shape; documented once for the whole API.
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "A body that cannot be parsed"),
        (401, "No token, or a bad or expired one"),
        (403, "Not allowed for this token"),
        (404, "Unknown resource"),
        (409, "Conflict"),
        (422, "Invalid input"),
        (429, "Rate limited; see Retry-After"),
        (503, "A dependency (the database) is unavailable"),
    )
}

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _mapped_error(request: Request, exc: Exception) -> JSONResponse:
    error = as_app_error(exc)
    if error is None:
        return await _unexpected(request, exc)
    headers = {"Retry-After": str(error.retry_after_seconds)} if isinstance(error, RateLimitedError) else None
    return error_response(error.status_code, error.code, error.message, headers)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", "; ".join(_describe(e) for e in exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}) or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"request_id": getattr(request.state, "request_id", None)})
    return error_response(500, "internal_error", "Something went wrong on our side")


def create_app(
    runtime: Runtime | None = None, *, routers: Sequence[APIRouter] | None = None, parts_on_demand: bool = True
) -> FastAPI:
    """Builds the app serving ``routers``, or by default the whole API with the browser client (``core/web.py``);
    without a runtime it builds one from the environment (engine and provider included).

    The whole API includes each of its parts (``core.api.parts``) on the first request that may need it, as a
    function's cold start wants; all of them at once without ``parts_on_demand``, and in a SnapStart INIT, whose
    snapshot should hold them."""
    runtime = runtime or build_runtime(get_settings())
    runtime.settings.require_jwt_secret()  # refuse to start, naming the setting, rather than fail every request
    configure_logging(runtime.settings.log_level)
    # Production publishes no map of itself; docs/api.md documents the API instead.
    documented = runtime.settings.app_env != "production"
    app = FastAPI(
        title="Hafiportrait Realtime",
        version="0.1.0",
        description="Likes and comments on photo-event galleries, persisted and published live.",
        docs_url="/api/docs" if documented else None,
        openapi_url="/api/openapi.json" if documented else None,
        redoc_url=None,
        responses=_ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    parts = PartsOnDemand(app, () if routers is not None else PARTS)
    for router in routers or ():
        app.include_router(router)
    if not parts_on_demand or initializing_a_snapshot():
        parts.include_all()
    generate_schema = app.openapi

    def every_part_documented() -> dict[str, Any]:
        parts.include_all()
        return defining_the_bearer_scheme(generate_schema())

    app.openapi = every_part_documented  # type: ignore[method-assign]
    if routers is None:
        from core.web import mount_client  # the whole API only: the like function's cold start does without

        mount_client(app)
    for mapped in (AppError, DBAPIError, PoolTimeoutError):
        app.add_exception_handler(mapped, _mapped_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    if runtime.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=runtime.settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Mutation-Id", "X-Request-Id"],
            expose_headers=["Retry-After", "X-Request-Id"],
            max_age=600,
        )
    if parts.waiting:
        app.add_middleware(IncludingPartsOnDemand, parts=parts)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(AccessLogMiddleware)
    return app


def create_server_app() -> FastAPI:
    """``uvicorn core.api.app:create_server_app --factory`` (docker compose, the systemd unit): ``server_app`` with
    a runtime built from the environment."""
    return server_app(build_runtime(get_settings()))


def server_app(runtime: Runtime) -> FastAPI:
    """The whole API for a process that outlives its requests: an action answers once its change is committed, and
    the publishing it took on goes on after the answer, so no guest waits while one publishes a venue's likes at the
    channel's ceiling; the garbage collector is tuned as a Socket.IO node's is. Shutting down waits for those
    publishes, then closes the engine."""
    runtime.publishes_after_answer = True
    app = create_app(runtime, parts_on_demand=False)  # paid once, before the first request
    tune_garbage_collection()

    @asynccontextmanager
    async def closing_runtime(_: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.aclose()

    app.router.lifespan_context = closing_runtime
    return app
