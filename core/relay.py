"""The relay's entry points, shared by the scheduled function and ``hafi-realtime relay``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from core import outbox
from core.logs import configure_logging
from core.runtime import Runtime

log = logging.getLogger("hafi.relay")


async def relay_once(runtime: Runtime) -> dict[str, Any]:
    configure_logging(runtime.settings.log_level)
    result = await outbox.relay(runtime.engine, runtime.provider, runtime.settings)
    log.log(logging.INFO if result.batches else logging.DEBUG, "relay run", extra=result.as_dict())
    return result.as_dict()


async def relay_forever(runtime: Runtime, *, interval_seconds: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Relays until ``stop`` is set; a failing run (database down) is logged and tried again after the interval."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await relay_once(runtime)
        except Exception:
            log.exception("relay run failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
