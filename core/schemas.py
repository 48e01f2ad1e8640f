"""What clients send and get, over HTTP and Socket.IO alike (camelCase on the wire, like the realtime payloads).

Input limits are declared here once: the HTTP bodies and the Socket.IO requests use the same field types."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from core.realtime.channels import SLUG_MAX_LENGTH, SLUG_PATTERN

if TYPE_CHECKING:
    from core.models import Comment
    from core.services.galleries import PhotoView
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


MIN_ACCESS_CODE_LENGTH = 8
AUTHOR_NAME_MAX = 80
COMMENT_MAX = 1000
# A client's id for its optimistic update, echoed in the messages its request causes (X-Mutation-Id, or a socket
# payload).
MUTATION_ID_MAX_LENGTH = 64
MUTATION_ID_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MUTATION_ID_MAX_LENGTH}}}$"


# Characters that change how text reads without being seen: bidi embeddings, overrides and isolates (they show text
# in another order than it is stored), and invisible separators that hide words from readers and filters.
_MISLEADING = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates
    "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e"  # zero-width space, word joiner, invisible operators, BOM
)
# Letters and symbols that draw nothing, a known way to post an "empty" comment or name.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Joiners that shape text (emoji sequences, Persian) and marks that set direction in right-to-left text.
_SHAPING_FORMATS = frozenset("\u200c\u200d\u200e\u200f\u061c")
# Real scripts stack a few marks on a letter; hundreds of them ("Zalgo") draw over the neighbouring lines.
MAX_COMBINING_MARKS = 4


def _clean_text(value: str, *, max_length: int, allowed_controls: frozenset[str]) -> str:
    """Composes (NFC) and trims; refuses empty, too long, control characters (they corrupt displays and logs),
    characters that mislead a reader, text with nothing visible, and piles of combining marks. The text is stored
    as given otherwise: escaping is the renderer's job, and we never render it as HTML."""
    if len(value) > 4 * max_length:  # refuse the absurd before normalising it
        raise PydanticCustomError(
            "text_too_long", "must be at most {max_length} characters", {"max_length": max_length}
        )
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned:
        raise PydanticCustomError("empty_text", "must not be empty")
    if len(cleaned) > max_length:
        raise PydanticCustomError(
            "text_too_long", "must be at most {max_length} characters", {"max_length": max_length}
        )
    visible = False
    marks_in_a_row = 0
    for char in cleaned:
        category = unicodedata.category(char)
        if (
            (category in ("Cc", "Cs") and char not in allowed_controls)
            or char in _MISLEADING
            or (category == "Cf" and char not in _SHAPING_FORMATS)
        ):
            raise PydanticCustomError(
                "hidden_character",
                "must not contain control, formatting or invisible characters (U+{code})",
                {"code": f"{ord(char):04X}"},
            )
        marks_in_a_row = marks_in_a_row + 1 if category in ("Mn", "Me") else 0
        if marks_in_a_row > MAX_COMBINING_MARKS:
            raise PydanticCustomError(
                "too_many_marks",
                "must not stack more than {limit} combining marks on a character",
                {"limit": MAX_COMBINING_MARKS},
            )
        visible = visible or not (char.isspace() or category in ("Cc", "Cf", "Mn", "Me") or char in _BLANK_GLYPHS)
    if not visible:
        raise PydanticCustomError("empty_text", "must contain something visible")
    return cleaned


def _clean_author_name(value: str) -> str:
    return _clean_text(value, max_length=AUTHOR_NAME_MAX, allowed_controls=frozenset())


def _clean_comment(value: str) -> str:
    return _clean_text(value, max_length=COMMENT_MAX, allowed_controls=frozenset("\n\t"))


# The limits are checked by the validators (after trimming and composing); the schema states them for clients.
AuthorName = Annotated[
    str, AfterValidator(_clean_author_name), Field(json_schema_extra={"minLength": 1, "maxLength": AUTHOR_NAME_MAX})
]
CommentText = Annotated[
    str, AfterValidator(_clean_comment), Field(json_schema_extra={"minLength": 1, "maxLength": COMMENT_MAX})
]
PhotoId = Annotated[int, Field(ge=1, le=2**63 - 1)]
MutationIdField = Annotated[str | None, Field(pattern=MUTATION_ID_PATTERN)]


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    error: ErrorBody


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
    author_name: AuthorName
    content: CommentText


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

    @classmethod
    def with_status(cls, comment: Comment, *, status: str, event_slug: str) -> ModeratedCommentOut:
        return cls.model_validate({**CommentOut.of(comment).model_dump(), "status": status, "event_slug": event_slug})


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


class RealtimeAuthIn(Schema):
    event_slug: str | None = Field(default=None, max_length=SLUG_MAX_LENGTH)
