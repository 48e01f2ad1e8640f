"""Errors every transport answers in one shape, ``{"error": {"code", "message"}}``, and the one mapping from any
failure to what the caller is told (HTTP status and code, or a Socket.IO error ack)."""

from __future__ import annotations

import logging
from http import HTTPStatus

log = logging.getLogger("hafi.errors")


class AppError(Exception):
    status_code: int = HTTPStatus.BAD_REQUEST

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidInputError(AppError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


class UnauthorizedError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED


class ForbiddenError(AppError):
    status_code = HTTPStatus.FORBIDDEN


class NotFoundError(AppError):
    status_code = HTTPStatus.NOT_FOUND


class ConflictError(AppError):
    status_code = HTTPStatus.CONFLICT


class RateLimitedError(AppError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("rate_limited", f"Too many actions; try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class UnavailableError(AppError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE


NOT_MIGRATED_HINT = "the database's schema is behind this release: run `hafi-realtime migrate` against it"


def schema_behind(exc: BaseException) -> bool:
    """A table or column this release reads is missing: the deploy skipped ``hafi-realtime migrate``."""
    from psycopg.errors import UndefinedColumn, UndefinedTable
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError) and isinstance(exc.orig, UndefinedTable | UndefinedColumn)


def database_error(exc: BaseException) -> AppError | None:
    """What a database failure means to the caller: unreachable, overloaded or not migrated (503) or a value it
    refused (422). None for anything else, which is a bug in our SQL."""
    from psycopg import DataError, OperationalError
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    if isinstance(exc, PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc.orig, OperationalError))
    ):
        return UnavailableError("database_unavailable", "The database is not reachable; try again shortly")
    if schema_behind(exc):
        log.error(NOT_MIGRATED_HINT, extra={"error": str(exc).splitlines()[0]})
        return UnavailableError("database_not_migrated", "The service is not ready; try again shortly")
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, DataError):
        # Values our validation let through but Postgres cannot store; its reason is for our log, not the client.
        log.warning("database refused a value", extra={"error": str(exc.orig).splitlines()[0]})
        return InvalidInputError("invalid_input", "A value in the request cannot be stored")
    return None


def as_app_error(exc: BaseException) -> AppError | None:
    """What ``exc`` tells the caller, or None where it is a bug (answered as a 500 and logged by the transport)."""
    if isinstance(exc, AppError):
        return exc
    error = database_error(exc)
    if isinstance(error, UnavailableError):
        log.error("database unavailable", extra={"error": str(exc).splitlines()[0]})
    return error
