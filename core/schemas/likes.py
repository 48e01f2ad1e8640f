"""A like's answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.schemas.base import Schema

if TYPE_CHECKING:
    from core.services.likes import LikeState


class LikeOut(Schema):
    """The answer to a like or unlike, over HTTP and over Socket.IO alike."""

    photo_id: str
    like_count: int
    liked: bool
    changed: bool

    @classmethod
    def of(cls, state: LikeState) -> LikeOut:
        return cls(photo_id=str(state.photo_id), like_count=state.like_count, liked=state.liked, changed=state.changed)
