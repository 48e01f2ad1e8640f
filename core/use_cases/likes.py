"""Liking and unliking a photo."""

from __future__ import annotations

from core.auth import Principal
from core.runtime import Runtime
from core.schemas.likes import LikeOut
from core.services import likes
from core.unit_of_work import single_statement


async def set_like(
    runtime: Runtime,
    principal: Principal,
    *,
    photo_id: int,
    liked: bool,
    mutation_id: str | None,
    client_address: str | None = None,
) -> LikeOut:
    """Likes or unlikes a photo for the caller's session; asking for the state it is in publishes nothing. Counted
    against the caller's identity and, where known, its client address."""
    async with single_statement(runtime, rate_limit_key=principal.subject, client_address=client_address) as uow:
        state = await likes.set_like(uow, principal=principal, photo_id=photo_id, liked=liked, mutation_id=mutation_id)
    return LikeOut.of(state)
