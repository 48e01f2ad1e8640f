from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy import func, select

from core import metrics, outbox
from core.actions import action, read
from core.api.deps import CurrentAdmin, MutationId, RuntimeDep
from core.api.schemas import (
    CommentOut,
    CommentStatusIn,
    EventCreatedOut,
    EventCreateIn,
    ModeratedCommentOut,
    ModerationQueueOut,
    PhotoOut,
    PhotosIn,
    PhotosOut,
)
from core.models import Comment, Event, Like, Photo
from core.realtime.channels import SLUG_PATTERN, event_channel
from core.services import comments, galleries

router = APIRouter(prefix="/api", tags=["admin"])

CommentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _moderated(comment: Comment, state: str, slug: str) -> ModeratedCommentOut:
    return ModeratedCommentOut(**CommentOut.of(comment).model_dump(), status=state, event_slug=slug)


@router.get("/admin/comments")
async def moderation_queue(
    runtime: RuntimeDep,
    _admin: CurrentAdmin,
    status_: Annotated[Literal["visible", "hidden"] | None, Query(alias="status")] = None,
    event_slug: Annotated[str | None, Query(alias="eventSlug", pattern=SLUG_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(alias="beforeId", ge=1, le=2**63 - 1)] = None,
) -> ModerationQueueOut:
    async with read(runtime) as conn:
        page = await comments.moderation_queue(
            conn, status=status_, event_slug=event_slug, limit=limit, before_id=before_id
        )
    return ModerationQueueOut(
        comments=[_moderated(c, s, slug) for c, s, slug in page],
        next_before_id=str(page[-1][0].id) if len(page) == limit else None,
    )


@router.patch("/admin/comments/{comment_id}")
async def set_comment_status(
    comment_id: CommentId, body: CommentStatusIn, runtime: RuntimeDep, admin: CurrentAdmin, mutation: MutationId
) -> ModeratedCommentOut:
    """Hiding publishes ``comment:removed`` to the event's guests; showing again publishes ``comment:added``."""
    async with action(runtime, rate_limit_key=admin.subject) as uow:
        comment, state, slug = await comments.set_status(
            uow, comment_id=comment_id, status=body.status, mutation_id=mutation
        )
    return _moderated(comment, state, slug)


@router.delete("/admin/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    comment_id: CommentId, runtime: RuntimeDep, admin: CurrentAdmin, mutation: MutationId
) -> Response:
    async with action(runtime, rate_limit_key=admin.subject) as uow:
        await comments.delete_comment(uow, comment_id=comment_id, mutation_id=mutation)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/admin/events", status_code=status.HTTP_201_CREATED)
async def create_event(body: EventCreateIn, runtime: RuntimeDep, admin: CurrentAdmin) -> EventCreatedOut:
    async with action(runtime, rate_limit_key=admin.subject) as uow:
        event = await galleries.create_event(uow, slug=body.slug, title=body.title, access_code=body.access_code)
    return EventCreatedOut(
        slug=event.slug, title=event.title, protected=event.protected, channel=event_channel(event.slug)
    )


@router.post("/admin/events/{slug}/photos", status_code=status.HTTP_201_CREATED)
async def add_photos(
    slug: Annotated[str, Path(pattern=SLUG_PATTERN)], body: PhotosIn, runtime: RuntimeDep, admin: CurrentAdmin
) -> PhotosOut:
    async with action(runtime, rate_limit_key=admin.subject) as uow:
        photos = await galleries.add_photos(
            uow, slug=slug, photos=[galleries.NewPhoto(url=p.url, caption=p.caption) for p in body.photos]
        )
    return PhotosOut(
        photos=[
            PhotoOut(
                id=str(p.id), url=p.url, caption=p.caption, like_count=0, liked_by_me=False, created_at=p.created_at
            )
            for p in photos
        ]
    )


@router.get("/metrics")
async def get_metrics(runtime: RuntimeDep, _admin: CurrentAdmin) -> dict[str, object]:
    async with read(runtime) as conn:
        outbox_stats = await outbox.stats(conn)
        by_status = await comments.count_by_status(conn)
        totals = (
            await conn.execute(
                select(
                    select(func.count()).select_from(Event).scalar_subquery().label("events"),
                    select(func.count()).select_from(Photo).scalar_subquery().label("photos"),
                    select(func.count()).select_from(Like).scalar_subquery().label("likes"),
                )
            )
        ).one()
    return {
        "provider": runtime.provider.name,
        "outbox": outbox_stats,
        "totals": {"events": totals.events, "photos": totals.photos, "likes": totals.likes, "comments": by_status},
        "process": metrics.snapshot(),
    }
