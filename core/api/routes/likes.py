"""Liking and unliking a photo: all that the like function (functions/likes.py) serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from core.api.deps import ACTING_CALLER_OPENAPI, ActingCaller, Caller
from core.schemas.likes import LikeOut
from core.use_cases.likes import set_like

router = APIRouter(prefix="/api/photos", tags=["photos"])

PhotoId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/{photo_id}/like", response_model=LikeOut, openapi_extra=ACTING_CALLER_OPENAPI)
async def like_photo(photo_id: PhotoId, caller: ActingCaller) -> Response:
    return await _set_like(photo_id, caller, liked=True)


@router.delete("/{photo_id}/like", response_model=LikeOut, openapi_extra=ACTING_CALLER_OPENAPI)
async def unlike_photo(photo_id: PhotoId, caller: ActingCaller) -> Response:
    return await _set_like(photo_id, caller, liked=False)


async def _set_like(photo_id: int, caller: Caller, *, liked: bool) -> Response:
    # Answered as the JSON of the LikeOut the use case made: returned as the model, FastAPI would validate it again
    # and encode it once more, a twentieth of a like's Python.
    answer = await set_like(
        caller.runtime,
        caller.principal,
        photo_id=photo_id,
        liked=liked,
        mutation_id=caller.mutation_id,
        client_address=caller.address,
    )
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")
