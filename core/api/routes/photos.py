from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from core.actions import action, read
from core.api.deps import CallerAddress, CurrentPrincipal, MutationId, RuntimeDep
from core.api.schemas import CommentIn, CommentOut, CommentsOut, LikeOut
from core.services import comments, likes

router = APIRouter(prefix="/api/photos", tags=["photos"])

PhotoId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _set_like(
    runtime: RuntimeDep, principal: CurrentPrincipal, address: str, photo_id: int, liked: bool, mutation: str | None
) -> LikeOut:
    async with action(runtime, rate_limit_key=principal.subject, client_address=address) as uow:
        state = await likes.set_like(uow, principal=principal, photo_id=photo_id, liked=liked, mutation_id=mutation)
    return LikeOut.of(state)


@router.post("/{photo_id}/like")
async def like_photo(
    photo_id: PhotoId, runtime: RuntimeDep, principal: CurrentPrincipal, address: CallerAddress, mutation: MutationId
) -> LikeOut:
    return await _set_like(runtime, principal, address, photo_id, True, mutation)


@router.delete("/{photo_id}/like")
async def unlike_photo(
    photo_id: PhotoId, runtime: RuntimeDep, principal: CurrentPrincipal, address: CallerAddress, mutation: MutationId
) -> LikeOut:
    return await _set_like(runtime, principal, address, photo_id, False, mutation)


@router.get("/{photo_id}/comments")
async def list_comments(
    photo_id: PhotoId,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(alias="beforeId", ge=1, le=2**63 - 1)] = None,
) -> CommentsOut:
    async with read(runtime) as conn:
        page = await comments.visible_comments(
            conn, principal=principal, photo_id=photo_id, limit=limit, before_id=before_id
        )
    return CommentsOut(
        comments=[CommentOut.of(c) for c in page],
        next_before_id=str(page[-1].id) if len(page) == limit else None,
    )


@router.post("/{photo_id}/comments", status_code=status.HTTP_201_CREATED)
async def add_comment(
    photo_id: PhotoId,
    body: CommentIn,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    address: CallerAddress,
    mutation: MutationId,
) -> CommentOut:
    async with action(runtime, rate_limit_key=principal.subject, client_address=address) as uow:
        comment = await comments.add_comment(
            uow,
            principal=principal,
            photo_id=photo_id,
            author_name=body.author_name,
            content=body.content,
            mutation_id=mutation,
        )
    return CommentOut.of(comment)
