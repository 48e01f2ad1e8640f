from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy.exc import SQLAlchemyError

from core.api.deps import RuntimeDep
from core.errors import NOT_MIGRATED_HINT, schema_behind
from core.outbox import operations
from core.unit_of_work import read_only

router = APIRouter(prefix="/api", tags=["health"])
log = logging.getLogger("hafi.health")

# Well inside a load balancer's check timeout (ALB's default is 5 s), and short enough that a flood of readiness
# checks against a dead database holds each request at most this long (the pool bounds the connections it tries).
READINESS_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health(runtime: RuntimeDep) -> dict[str, str]:
    """Liveness: answers without touching the database, so a slow database does not take instances down."""
    return {"status": "ok", "provider": runtime.provider.name}


@router.get(
    "/health/ready",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "description": "The database does not answer in time (`database`: `unavailable`), or its schema is behind"
            " this release (`not_migrated`)."
        }
    },
)
async def ready(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    """Readiness, for load balancers and uptime checks: 503 unless the database answers within 2 s, migrated.

    One primary-key lookup on a pooled connection tells both that the database answers and how the realtime provider
    answered its last publishes (``provider.status`` ``ok`` or ``failing``, since when, the last error).

    A failing provider does not make this 503: actions are still accepted and their messages wait in the outbox until
    the provider is back, while taking instances out of a load balancer would refuse the actions themselves and cure
    nothing (every instance publishes to the same provider). Uptime checks that care read ``provider.status``.
    What went wrong with the database is logged, never answered.
    """
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), read_only(runtime) as conn:
            provider = await operations.provider_status(conn, runtime.provider.name)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        if schema_behind(exc):
            log.error(f"readiness: {NOT_MIGRATED_HINT}")
            return {"status": "unavailable", "database": "not_migrated", "provider": {"name": runtime.provider.name}}
        log.warning("readiness: the database did not answer", exc_info=True)
        return {"status": "unavailable", "database": "unavailable", "provider": {"name": runtime.provider.name}}
    return {"status": "ready", "database": "ok", "provider": {"name": runtime.provider.name, **provider}}
