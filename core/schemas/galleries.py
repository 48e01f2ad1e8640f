"""Events and their photos: what guests see, what admins create, and the catch-up of missed messages."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from core.realtime.channels import SLUG_MAX_LENGTH, SLUG_PATTERN
from core.schemas.base import Schema

if TYPE_CHECKING:
    from core.services.galleries import PhotoView

MIN_ACCESS_CODE_LENGTH = 8


class PhotoOut(Schema):
    id: str
    url: str
    caption: str | None
    like_count: int
    liked_by_me: bool
    created_at: datetime

    @classmethod
    def of(cls, photo: PhotoView) -> PhotoOut:
        return cls(
            id=str(photo.id),
            url=photo.url,
            caption=photo.caption,
            like_count=photo.like_count,
            liked_by_me=photo.liked_by_me,
            created_at=photo.created_at,
        )


class EventOut(Schema):
    slug: str
    title: str
    protected: bool
    channel: str
    seq: int
    photos: list[PhotoOut]


class UpdateOut(Schema):
    id: str
    seq: int
    channel: str
    name: str
    data: dict[str, Any]


class UpdatesOut(Schema):
    channel: str
    events: list[UpdateOut]
    last_seq: int
    has_more: bool


class EventCreateIn(Schema):
    slug: str = Field(pattern=SLUG_PATTERN, max_length=SLUG_MAX_LENGTH)
    title: str = Field(min_length=1, max_length=200)
    # Guessing is limited per address and per event (core.ratelimit); 8 characters keep a code out of reach of
    # those limits (36**8 codes of letters and digits against 200 guesses an hour).
    access_code: str | None = Field(default=None, min_length=MIN_ACCESS_CODE_LENGTH, max_length=200)


class EventCreatedOut(Schema):
    slug: str
    title: str
    protected: bool
    channel: str


class PhotoIn(Schema):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^(https?://|/)\S+$")
    caption: str | None = Field(default=None, max_length=500)


class PhotosIn(Schema):
    photos: list[PhotoIn] = Field(min_length=1, max_length=500)


class PhotosOut(Schema):
    photos: list[PhotoOut]
