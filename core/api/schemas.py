"""Request and response bodies of the HTTP API (camelCase on the wire, like the realtime payloads)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from core.realtime.channels import SLUG_PATTERN

MIN_ACCESS_CODE_LENGTH = 8

if TYPE_CHECKING:
    from core.models import Comment
    from core.services.likes import LikeState


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        # Postgres cannot store NUL in text; refuse it here with the field's name rather than at the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    error: ErrorBody


class GuestAuthIn(Schema):
    event_slug: str | None = Field(default=None, max_length=64)
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


class PhotoOut(Schema):
    id: str
    url: str
    caption: str | None
    like_count: int
    liked_by_me: bool
    created_at: datetime


class EventOut(Schema):
    slug: str
    title: str
    protected: bool
    channel: str
    seq: int
    photos: list[PhotoOut]


class LikeOut(Schema):
    """The answer to a like or unlike, over HTTP and over Socket.IO alike."""

    photo_id: str
    like_count: int
    liked: bool
    changed: bool

    @classmethod
    def of(cls, state: LikeState) -> LikeOut:
        return cls(photo_id=str(state.photo_id), like_count=state.like_count, liked=state.liked, changed=state.changed)


class CommentIn(Schema):
    author_name: str = Field(max_length=1000)
    content: str = Field(max_length=10_000)


class CommentOut(Schema):
    """A comment as answered, over HTTP and over Socket.IO alike."""

    id: str
    photo_id: str
    author_name: str
    content: str
    created_at: datetime

    @classmethod
    def of(cls, comment: Comment) -> CommentOut:
        return cls(
            id=str(comment.id),
            photo_id=str(comment.photo_id),
            author_name=comment.author_name,
            content=comment.content,
            created_at=comment.created_at,
        )


class CommentsOut(Schema):
    comments: list[CommentOut]
    next_before_id: str | None


class ModeratedCommentOut(CommentOut):
    status: Literal["visible", "hidden"]
    event_slug: str


class ModerationQueueOut(Schema):
    comments: list[ModeratedCommentOut]
    next_before_id: str | None


class CommentStatusIn(Schema):
    status: Literal["visible", "hidden"]


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
    slug: str = Field(pattern=SLUG_PATTERN, max_length=64)
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


class RealtimeAuthIn(Schema):
    event_slug: str | None = Field(default=None, max_length=64)
