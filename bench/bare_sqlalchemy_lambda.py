"""The cold start's floor for this stack: ``bench/bare_lambda.py``'s like, but its one INSERT made through
SQLAlchemy's async engine on psycopg, the data layer the project keeps, and built with the garbage collector off,
as the project's functions are. Against the bare handler it shows what importing SQLAlchemy costs by itself (its
asyncio extension loads the ORM too); against ours, what is left that is the project's own. Loaded in a fresh
process by ``bench/coldstart.py``; nothing of the project is imported here."""

from __future__ import annotations

import gc

gc.disable()  # until the handler is built, as core.gc_tuning.building_without_collections does for ours

import os  # noqa: E402

from fastapi import FastAPI  # noqa: E402
from mangum import Mangum  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

app = FastAPI()
# As the project's functions do: the engine is made at import, in autocommit, its one connection opened by the
# first request.
engine = create_async_engine(os.environ["BARE_DATABASE_URL"], pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")
INSERT = text("INSERT INTO bench_bare_likes (photo_id) VALUES (:photo_id)")


@app.post("/api/photos/{photo_id}/like")
async def like(photo_id: int) -> dict[str, int]:
    async with engine.connect() as conn:
        await conn.execute(INSERT, {"photo_id": photo_id})
    return {"photoId": photo_id}


handler = Mangum(app, lifespan="off")
gc.freeze()
gc.enable()
