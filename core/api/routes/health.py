from __future__ import annotations

from fastapi import APIRouter

from core.api.deps import RuntimeDep

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
async def health(runtime: RuntimeDep) -> dict[str, str]:
    """Liveness: answers without touching the database, so a slow database does not take instances down."""
    return {"status": "ok", "provider": runtime.provider.name}
