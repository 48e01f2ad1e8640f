"""Likes: one per photo and session, with the photo's counter changed in the same statement as the like row."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from core import messages
from core.access import visible_photo
from core.auth import Principal
from core.models import Photo
from core.unit_of_work import UnitOfWork

# Also the bare peer of bench/concurrency.py: the like's own SQL, measured without the rest of the action.
LIKE_STATEMENT = text(
    """
    WITH added AS (
        INSERT INTO likes (photo_id, session_id) VALUES (:photo_id, :session_id)
        ON CONFLICT DO NOTHING RETURNING photo_id
    )
    UPDATE photos SET like_count = like_count + 1 FROM added WHERE photos.id = added.photo_id
    RETURNING photos.like_count
    """
)
_UNLIKE = text(
    """
    WITH removed AS (
        DELETE FROM likes WHERE photo_id = :photo_id AND session_id = :session_id RETURNING photo_id
    )
    UPDATE photos SET like_count = like_count - 1 FROM removed WHERE photos.id = removed.photo_id
    RETURNING photos.like_count
    """
)


@dataclass(frozen=True)
class LikeState:
    photo_id: int
    like_count: int
    liked: bool
    changed: bool


_LIKE_COUNT = select(Photo.like_count).where(Photo.id == bindparam("photo_id"))


async def _like_count(conn: AsyncConnection, photo_id: int) -> int:
    return int(await conn.scalar(_LIKE_COUNT, {"photo_id": photo_id}) or 0)


async def set_like(
    uow: UnitOfWork, *, principal: Principal, photo_id: int, liked: bool, mutation_id: str | None
) -> LikeState:
    """Likes or unlikes; asking for the state the session is already in changes and publishes nothing."""
    photo = await visible_photo(uow.conn, principal, photo_id)
    params = {"photo_id": photo.id, "session_id": principal.subject}
    new_count = await uow.conn.scalar(LIKE_STATEMENT if liked else _UNLIKE, params)
    if new_count is None:
        return LikeState(photo.id, await _like_count(uow.conn, photo.id), liked=liked, changed=False)
    await uow.emit(
        [
            messages.like_changed(
                slug=photo.event_slug, photo_id=photo.id, like_count=new_count, liked=liked, mutation_id=mutation_id
            )
        ]
    )
    return LikeState(photo.id, new_count, liked=liked, changed=True)
