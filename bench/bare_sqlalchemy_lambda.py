"""The cold start's floor for this stack: ``bench/bare_lambda.py``'s like, but its one INSERT made through
SQLAlchemy's async engine on psycopg, the data layer the project keeps. Against the bare handler it shows what
importing SQLAlchemy costs by itself (its asyncio extension loads the ORM too); against ours, what is left that is
the project's own. Loaded in a fresh process by ``bench/coldstart.py``; nothing of the project is imported here."""

from __future__ import annotations

import os

from fastapi import FastAPI
from mangum import Mangum
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

app = FastAPI()
# as the project's functions do: the engine is made at import, its one connection opened by the first request
engine = create_async_engine(os.environ["BARE_DATABASE_URL"], pool_size=1, max_overflow=0)
INSERT = text("INSERT INTO bench_bare_likes (photo_id) VALUES (:photo_id)")


@app.post("/api/photos/{photo_id}/like")
async def like(photo_id: int) -> dict[str, int]:
    async with engine.begin() as conn:
        await conn.execute(INSERT, {"photo_id": photo_id})
    return {"photoId": photo_id}


handler = Mangum(app, lifespan="off")
