"""Adding a comment, and moderating one: its status, its deletion; each answered once per idempotency key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from core import idempotency
from core.auth import Principal
from core.errors import ConflictError
from core.runtime import Runtime
from core.schemas.comments import CommentIn, CommentOut, CommentStatusIn, ModeratedCommentOut
from core.services import comments
from core.unit_of_work import UnitOfWork, read_only, single_statement, transaction

Answer = TypeVar("Answer", bound=BaseModel)


class _Done(BaseModel):
    """The answer of an action that answers nothing (a deletion), as remembered for its retries."""


async def _once(
    runtime: Runtime,
    principal: Principal,
    *,
    key: idempotency.Key | None,
    answer_type: type[Answer],
    work: Callable[[UnitOfWork], Awaitable[Answer]],
) -> Answer:
    """Runs ``work`` in the action's transaction; with an idempotency key, a repeat gets the first answer and
    changes nothing (``core.idempotency``)."""
    identity = principal.subject
    try:
        async with transaction(runtime, rate_limit_key=identity) as uow:
            if key is None:
                return await work(uow)
            earlier = await idempotency.earlier_answer(uow.conn, identity=identity, key=key)
            if earlier is not None:
                return answer_type.model_validate(earlier)
            answer = await work(uow)
            remembered = answer.model_dump(mode="json", by_alias=True)
            await idempotency.remember(uow.conn, identity=identity, key=key, answer=remembered)
            return answer
    except idempotency.RepeatedRequestError:
        assert key is not None  # only a keyed request can be repeated
        return await _answer_of_first_copy(runtime, principal, key, answer_type)


async def _answer_of_first_copy(
    runtime: Runtime, principal: Principal, key: idempotency.Key, answer_type: type[Answer]
) -> Answer:
    """What the copy of a request that committed first answered, for the copy that raced it."""
    async with read_only(runtime) as conn:
        earlier = await idempotency.earlier_answer(conn, identity=principal.subject, key=key)
    if earlier is None:  # the first copy's row was pruned in between: a day-old race
        raise ConflictError("idempotency_conflict", "This request was just made with the same key; retry it") from None
    return answer_type.model_validate(earlier)


async def add_comment(
    runtime: Runtime,
    principal: Principal,
    *,
    photo_id: int,
    comment: CommentIn,
    mutation_id: str | None,
    idempotency_key: str | None = None,
    client_address: str | None = None,
) -> CommentOut:
    """``idempotency_key`` (or else ``mutation_id``) makes a retry answer the first comment instead of a second.
    Counted against the caller's identity and, where known, its client address."""
    key = idempotency.key_for(
        idempotency_key or mutation_id,
        "comment:add",
        photo_id=photo_id,
        author_name=comment.author_name,
        content=comment.content,
    )
    try:
        async with single_statement(runtime, rate_limit_key=principal.subject, client_address=client_address) as uow:
            added = await comments.add_comment(
                uow,
                principal=principal,
                photo_id=photo_id,
                author_name=comment.author_name,
                content=comment.content,
                mutation_id=mutation_id,
                key=key,
            )
    except idempotency.RepeatedRequestError:
        assert key is not None  # only a keyed request can be repeated
        return await _answer_of_first_copy(runtime, principal, key, CommentOut)
    if isinstance(added, idempotency.EarlierAnswer):
        return CommentOut.model_validate(added.answer)
    return CommentOut.of(added)


async def set_comment_status(
    runtime: Runtime,
    admin: Principal,
    *,
    comment_id: int,
    change: CommentStatusIn,
    mutation_id: str | None,
    idempotency_key: str | None = None,
) -> ModeratedCommentOut:
    """Hiding publishes ``comment:removed`` to the event's guests; showing again publishes ``comment:added``."""

    async def moderate(uow: UnitOfWork) -> ModeratedCommentOut:
        comment, status, slug = await comments.set_status(
            uow, comment_id=comment_id, status=change.status, mutation_id=mutation_id
        )
        return ModeratedCommentOut.with_status(comment, status=status, event_slug=slug)

    key = idempotency.key_for(
        idempotency_key or mutation_id, "comment:status", comment_id=comment_id, status=change.status
    )
    return await _once(runtime, admin, key=key, answer_type=ModeratedCommentOut, work=moderate)


async def delete_comment(
    runtime: Runtime, admin: Principal, *, comment_id: int, mutation_id: str | None, idempotency_key: str | None = None
) -> None:
    async def delete(uow: UnitOfWork) -> _Done:
        await comments.delete_comment(uow, comment_id=comment_id, mutation_id=mutation_id)
        return _Done()

    key = idempotency.key_for(idempotency_key or mutation_id, "comment:delete", comment_id=comment_id)
    await _once(runtime, admin, key=key, answer_type=_Done, work=delete)
