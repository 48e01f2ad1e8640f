"""Reading the ``application/x-www-form-urlencoded`` bodies that pusher-js and ably-js send to auth endpoints
(without python-multipart, which Starlette's form parser needs)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from core.errors import InvalidInputError

_MAX_FORM_BYTES = 4096


async def form_fields(request: Request) -> dict[str, str]:
    """The form's fields (the last value of a repeated name wins); an empty body has none."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise InvalidInputError("form_too_large", f"The form body must be at most {_MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise InvalidInputError("invalid_form", "The form body must be UTF-8") from None
