"""Errors the HTTP layer turns into ``{"error": {"code", "message"}}`` with their status."""

from __future__ import annotations

from http import HTTPStatus


class AppError(Exception):
    status_code: int = HTTPStatus.BAD_REQUEST

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class BadRequestError(AppError):
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
