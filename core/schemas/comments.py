"""Comments, as guests add them and admins moderate them; ``CommentOut`` is also what comment messages carry."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from core.schemas.base import Schema

if TYPE_CHECKING:
    from core.models import Comment

AUTHOR_NAME_MAX = 80
COMMENT_MAX = 1000


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
