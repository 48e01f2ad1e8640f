"""Creating an event, and adding its photos."""

from __future__ import annotations

from core.auth import Principal
from core.realtime.channels import event_channel
from core.runtime import Runtime
from core.schemas.galleries import EventCreatedOut, EventCreateIn, PhotoOut, PhotosIn, PhotosOut
from core.services import galleries
from core.unit_of_work import transaction


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
