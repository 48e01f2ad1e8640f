"""The demo event ``demo-wedding`` with a few photos (idempotent). Its admin is made by ``hafi-realtime dev``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import begin
from core.models import event_table, photo_table

DEMO_SLUG = "demo-wedding"
# Served by `hafi-realtime dev` from web/demo/, so the demo needs no network.
DEMO_PHOTOS = [
    ("/web/demo/first-look.svg", "First look"),
    ("/web/demo/vows.svg", "The vows"),
    ("/web/demo/cake.svg", "Cutting the cake"),
    ("/web/demo/first-dance.svg", "First dance"),
    ("/web/demo/sparklers.svg", "Sparkler exit"),
]


async def seed_demo(engine: AsyncEngine) -> int:
    """Creates the demo event and its photos where missing; returns how many photos it added."""
    async with begin(engine) as conn:
        await conn.execute(
            pg_insert(event_table)
            .values(slug=DEMO_SLUG, title="Demo wedding: Hafi & Portrait")
            .on_conflict_do_nothing(index_elements=[event_table.c.slug])
        )
        event_id = await conn.scalar(select(event_table.c.id).where(event_table.c.slug == DEMO_SLUG))
        existing = set(
            (await conn.execute(select(photo_table.c.url).where(photo_table.c.event_id == event_id))).scalars()
        )
        missing = [
            {"event_id": event_id, "url": url, "caption": caption}
            for url, caption in DEMO_PHOTOS
            if url not in existing
        ]
        if missing:
            await conn.execute(pg_insert(photo_table), missing)
    return len(missing)
