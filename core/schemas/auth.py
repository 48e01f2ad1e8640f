"""Tokens: a guest's, an admin's login, and the realtime provider's credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.realtime.channels import SLUG_MAX_LENGTH
from core.schemas.base import Schema


class GuestAuthIn(Schema):
    event_slug: str | None = Field(default=None, max_length=SLUG_MAX_LENGTH)
    access_code: str | None = Field(default=None, min_length=1, max_length=200)


class AdminLoginIn(Schema):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(Schema):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    role: Literal["GUEST", "ADMIN"]
    session_id: str
    events: list[str]


class RealtimeAuthIn(Schema):
    event_slug: str | None = Field(default=None, max_length=SLUG_MAX_LENGTH)
