"""The relay over HTTP, for platforms whose scheduler calls a URL (Vercel Cron sends ``Authorization: Bearer
$CRON_SECRET``); AWS runs ``functions/outbox_relay.py`` on a schedule instead. Off unless ``CRON_SECRET`` is set."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request

from core.api.deps import RuntimeDep
from core.errors import NotFoundError, UnauthorizedError
from core.outbox.relay import relay_once

router = APIRouter(prefix="/api/cron", tags=["cron"])


@router.get("/relay")
async def relay(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    secret = runtime.settings.cron_secret
    if secret is None or not secret.get_secret_value():
        raise NotFoundError("cron_disabled", "Set CRON_SECRET to run the relay over HTTP")
    given = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {secret.get_secret_value()}".encode()):
        raise UnauthorizedError("invalid_cron_secret", "The cron secret is missing or wrong")
    return await relay_once(runtime)
