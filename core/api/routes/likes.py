"""Liking and unliking a photo: all that the like function (functions/likes.py) serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from core import use_cases
from core.api.deps import CallerAddress, CurrentPrincipal, MutationId, RuntimeDep
from core.schemas import LikeOut

router = APIRouter(prefix="/api/photos", tags=["photos"])

PhotoId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/{photo_id}/like")
async def like_photo(
    photo_id: PhotoId, runtime: RuntimeDep, principal: CurrentPrincipal, address: CallerAddress, mutation: MutationId
) -> LikeOut:
    return await use_cases.set_like(
        runtime, principal, photo_id=photo_id, liked=True, mutation_id=mutation, client_address=address
    )


@router.delete("/{photo_id}/like")
async def unlike_photo(
    photo_id: PhotoId, runtime: RuntimeDep, principal: CurrentPrincipal, address: CallerAddress, mutation: MutationId
) -> LikeOut:
    return await use_cases.set_like(
        runtime, principal, photo_id=photo_id, liked=False, mutation_id=mutation, client_address=address
    )
