"""Everything a guest or an admin can do, each written once for every transport.

The HTTP routes and the Socket.IO handlers parse their input into ``core.schemas`` models and call these; each owns
its transaction (rate limit, change and the messages it causes, in one commit), publishes after commit, and returns
the answer the client gets. Errors are ``core.errors`` exceptions, mapped to HTTP or Socket.IO by their transport.
"""

from __future__ import annotations

from core.auth import Principal
from core.realtime.channels import event_channel
from core.runtime import Runtime
from core.schemas import (
    CommentIn,
    CommentOut,
    CommentStatusIn,
    EventCreatedOut,
    EventCreateIn,
    LikeOut,
    ModeratedCommentOut,
    PhotoOut,
    PhotosIn,
    PhotosOut,
)
from core.services import comments, galleries, likes
from core.unit_of_work import transaction


async def set_like(
    runtime: Runtime, principal: Principal, *, photo_id: int, liked: bool, mutation_id: str | None
) -> LikeOut:
    """Likes or unlikes a photo for the caller's session; asking for the state it is in publishes nothing."""
    async with transaction(runtime, rate_limit_key=principal.subject) as uow:
        state = await likes.set_like(uow, principal=principal, photo_id=photo_id, liked=liked, mutation_id=mutation_id)
    return LikeOut.of(state)


async def add_comment(
    runtime: Runtime, principal: Principal, *, photo_id: int, comment: CommentIn, mutation_id: str | None
) -> CommentOut:
    async with transaction(runtime, rate_limit_key=principal.subject) as uow:
        added = await comments.add_comment(
            uow,
            principal=principal,
            photo_id=photo_id,
            author_name=comment.author_name,
            content=comment.content,
            mutation_id=mutation_id,
        )
    return CommentOut.of(added)


async def set_comment_status(
    runtime: Runtime, admin: Principal, *, comment_id: int, change: CommentStatusIn, mutation_id: str | None
) -> ModeratedCommentOut:
    """Hiding publishes ``comment:removed`` to the event's guests; showing again publishes ``comment:added``."""
    async with transaction(runtime, rate_limit_key=admin.subject) as uow:
        comment, status, slug = await comments.set_status(
            uow, comment_id=comment_id, status=change.status, mutation_id=mutation_id
        )
    return ModeratedCommentOut.with_status(comment, status=status, event_slug=slug)


async def delete_comment(runtime: Runtime, admin: Principal, *, comment_id: int, mutation_id: str | None) -> None:
    async with transaction(runtime, rate_limit_key=admin.subject) as uow:
        await comments.delete_comment(uow, comment_id=comment_id, mutation_id=mutation_id)


async def create_event(runtime: Runtime, admin: Principal, *, event: EventCreateIn) -> EventCreatedOut:
    async with transaction(runtime, rate_limit_key=admin.subject) as uow:
        created = await galleries.create_event(uow, slug=event.slug, title=event.title, access_code=event.access_code)
    return EventCreatedOut(
        slug=created.slug, title=created.title, protected=created.protected, channel=event_channel(created.slug)
    )


async def add_photos(runtime: Runtime, admin: Principal, *, slug: str, body: PhotosIn) -> PhotosOut:
    async with transaction(runtime, rate_limit_key=admin.subject) as uow:
        photos = await galleries.add_photos(
            uow, slug=slug, photos=[galleries.NewPhoto(url=p.url, caption=p.caption) for p in body.photos]
        )
    return PhotosOut(photos=[PhotoOut.of(photo) for photo in photos])
