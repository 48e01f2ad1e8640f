from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from core.access import event_visible_to
from core.api.deps import CurrentAdmin, CurrentPrincipal, MaybePrincipal, RuntimeDep
from core.messages import message_data
from core.outbox import event_log
from core.realtime.channels import ADMIN_CHANNEL, SLUG_MAX_LENGTH, SLUG_PATTERN, event_channel
from core.schemas.galleries import EventOut, PhotoOut, UpdateOut, UpdatesOut
from core.services import galleries
from core.unit_of_work import read_only

router = APIRouter(prefix="/api", tags=["events"])

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=SLUG_MAX_LENGTH)]
After = Annotated[int, Query(ge=0, le=2**62, description="the last seq the client has seen")]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/events/{slug}")
async def get_event(slug: Slug, runtime: RuntimeDep, principal: MaybePrincipal) -> EventOut:
    async with read_only(runtime) as conn:
        view = await galleries.view_event(conn, principal=principal, slug=slug)
    return EventOut(
        slug=view.event.slug,
        title=view.event.title,
        protected=view.event.protected,
        channel=event_channel(view.event.slug),
        seq=view.seq,
        photos=[PhotoOut.of(photo) for photo in view.photos],
    )


async def _updates(runtime: RuntimeDep, channel: str, after: int, limit: int) -> UpdatesOut:
    async with read_only(runtime) as conn:
        rows = await event_log.messages_after(conn, channel, after, limit=limit + 1)
    page = rows[:limit]
    return UpdatesOut(
        channel=channel,
        events=[
            UpdateOut(id=str(r.id), seq=r.seq, channel=r.channel, name=r.event, data=message_data(r)) for r in page
        ],
        last_seq=page[-1].seq if page else after,
        has_more=len(rows) > limit,
    )


@router.get("/events/{slug}/updates")
async def event_updates(
    slug: Slug, runtime: RuntimeDep, principal: CurrentPrincipal, after: After = 0, limit: Limit = 100
) -> UpdatesOut:
    """The channel's events after ``after``, in order: what a reconnecting client missed."""
    await event_visible_to(runtime, principal, slug)
    return await _updates(runtime, event_channel(slug), after, limit)


@router.get("/admin/updates")
async def admin_updates(runtime: RuntimeDep, _admin: CurrentAdmin, after: After = 0, limit: Limit = 100) -> UpdatesOut:
    return await _updates(runtime, ADMIN_CHANNEL, after, limit)
