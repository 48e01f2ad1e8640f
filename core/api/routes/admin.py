from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy import func, select

from core import metrics
from core.api.deps import CurrentAdmin, IdempotencyKey, MutationId, RuntimeDep
from core.models import event_table, like_table, photo_table
from core.outbox import operations
from core.realtime.channels import SLUG_PATTERN
from core.schemas.comments import CommentStatusIn, ModeratedCommentOut, ModerationQueueOut
from core.schemas.galleries import EventCreatedOut, EventCreateIn, PhotosIn, PhotosOut
from core.services import comments
from core.unit_of_work import read_only
from core.use_cases import comments as comment_use_cases
from core.use_cases import galleries as gallery_use_cases

router = APIRouter(prefix="/api", tags=["admin"])

CommentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/admin/comments")
async def moderation_queue(
    runtime: RuntimeDep,
    _admin: CurrentAdmin,
    status_: Annotated[Literal["visible", "hidden"] | None, Query(alias="status")] = None,
    event_slug: Annotated[str | None, Query(alias="eventSlug", pattern=SLUG_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(alias="beforeId", ge=1, le=2**63 - 1)] = None,
) -> ModerationQueueOut:
    async with read_only(runtime) as conn:
        page = await comments.moderation_queue(
            conn, status=status_, event_slug=event_slug, limit=limit, before_id=before_id
        )
    return ModerationQueueOut(
        comments=[ModeratedCommentOut.with_status(c, status=s, event_slug=slug) for c, s, slug in page],
        next_before_id=str(page[-1][0].id) if len(page) == limit else None,
    )


@router.patch("/admin/comments/{comment_id}")
async def set_comment_status(
    comment_id: CommentId, body: CommentStatusIn, runtime: RuntimeDep, admin: CurrentAdmin, mutation: MutationId
) -> ModeratedCommentOut:
    """Hiding publishes ``comment:removed`` to the event's guests; showing again publishes ``comment:added``."""
    return await comment_use_cases.set_comment_status(
        runtime, admin, comment_id=comment_id, change=body, mutation_id=mutation
    )


@router.delete("/admin/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    comment_id: CommentId, runtime: RuntimeDep, admin: CurrentAdmin, mutation: MutationId, key: IdempotencyKey
) -> Response:
    await comment_use_cases.delete_comment(
        runtime, admin, comment_id=comment_id, mutation_id=mutation, idempotency_key=key
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/admin/events", status_code=status.HTTP_201_CREATED)
async def create_event(body: EventCreateIn, runtime: RuntimeDep, admin: CurrentAdmin) -> EventCreatedOut:
    return await gallery_use_cases.create_event(runtime, admin, event=body)


@router.post("/admin/events/{slug}/photos", status_code=status.HTTP_201_CREATED)
async def add_photos(
    slug: Annotated[str, Path(pattern=SLUG_PATTERN)], body: PhotosIn, runtime: RuntimeDep, admin: CurrentAdmin
) -> PhotosOut:
    return await gallery_use_cases.add_photos(runtime, admin, slug=slug, body=body)


@router.get("/metrics")
async def get_metrics(runtime: RuntimeDep, _admin: CurrentAdmin) -> dict[str, object]:
    async with read_only(runtime) as conn:
        outbox_stats = await operations.stats(conn)
        by_status = await comments.count_by_status(conn)
        totals = (
            await conn.execute(
                select(
                    select(func.count()).select_from(event_table).scalar_subquery().label("events"),
                    select(func.count()).select_from(photo_table).scalar_subquery().label("photos"),
                    select(func.count()).select_from(like_table).scalar_subquery().label("likes"),
                )
            )
        ).one()
    return {
        "provider": runtime.provider.name,
        "outbox": outbox_stats,
        "totals": {"events": totals.events, "photos": totals.photos, "likes": totals.likes, "comments": by_status},
        "process": metrics.snapshot(),
    }
