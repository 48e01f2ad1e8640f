"""A photo's comments: listing and adding them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from core.api.deps import ACTING_CALLER_OPENAPI, ActingCaller, CurrentPrincipal, IdempotencyKey, RuntimeDep
from core.api.routes.likes import PhotoId
from core.schemas.comments import CommentIn, CommentOut, CommentsOut
from core.services import comments
from core.unit_of_work import read_only
from core.use_cases import comments as comment_use_cases

router = APIRouter(prefix="/api/photos", tags=["photos"])


@router.get("/{photo_id}/comments")
async def list_comments(
    photo_id: PhotoId,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(alias="beforeId", ge=1, le=2**63 - 1)] = None,
) -> CommentsOut:
    async with read_only(runtime) as conn:
        page = await comments.visible_comments(
            conn, principal=principal, photo_id=photo_id, limit=limit, before_id=before_id
        )
    return CommentsOut(
        comments=[CommentOut.of(c) for c in page],
        next_before_id=str(page[-1].id) if len(page) == limit else None,
    )


@router.post("/{photo_id}/comments", status_code=status.HTTP_201_CREATED, openapi_extra=ACTING_CALLER_OPENAPI)
async def add_comment(
    photo_id: PhotoId,
    body: CommentIn,
    caller: ActingCaller,
    key: IdempotencyKey,
) -> CommentOut:
    """A retry with the same ``Idempotency-Key`` (or ``X-Mutation-Id``) answers the first comment again."""
    return await comment_use_cases.add_comment(
        caller.runtime,
        caller.principal,
        photo_id=photo_id,
        comment=body,
        mutation_id=caller.mutation_id,
        idempotency_key=key,
        client_address=caller.address,
    )
