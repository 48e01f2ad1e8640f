"""Vercel entry point: Vercel's Python runtime serves an ASGI ``app`` itself (no Mangum there)."""

import logging
import os
from typing import TYPE_CHECKING

from core.gc_tuning import building_without_collections

if TYPE_CHECKING:
    from fastapi import FastAPI

# On Vercel the client is in the X-Real-IP header its edge writes (overwriting the client's); the ASGI peer is
# Vercel's own machinery. Set here, where the platform is known, unless the deployment says otherwise.
os.environ.setdefault("CLIENT_ADDRESS_SOURCE", "vercel")


def _built_app() -> "FastAPI":
    with building_without_collections():
        from core.api.app import create_app

        return create_app()


# Assigned here, at the top level of the file: Vercel's builder looks for it there before running anything.
app = _built_app()

_settings = app.state.runtime.settings
if _settings.app_env == "production" and _settings.cron_secret is None:
    # Not a refusal: a deployment may run `hafi-realtime relay --loop` elsewhere against the same database.
    logging.getLogger("hafi.vercel").warning(
        "CRON_SECRET is not set: Vercel Cron cannot run the relay (GET /api/cron/relay answers 404), so publishes "
        "that failed are not retried unless another scheduler runs `hafi-realtime relay`"
    )
