"""The cold-start peer: a bare FastAPI + Mangum handler, the least a Python function can do for a like: one INSERT
with psycopg on a connection opened by the first request (as ours opens its pool on first use); and a bare hello.
Loaded in a fresh process by ``bench/coldstart.py``; nothing of the project is imported here."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()
_connection: list[psycopg.Connection[Any]] = []


def _connect() -> psycopg.Connection[Any]:
    if not _connection:
        _connection.append(psycopg.connect(os.environ["BARE_DATABASE_URL"], autocommit=True))
    return _connection[0]


@app.post("/api/photos/{photo_id}/like")
def like(photo_id: int) -> dict[str, int]:
    _connect().execute("INSERT INTO bench_bare_likes (photo_id) VALUES (%s)", (photo_id,))
    return {"photoId": photo_id}


@app.get("/api/health")
def hello() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
