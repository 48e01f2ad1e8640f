"""Scheduled function: publishes outbox events that their request could not (EventBridge schedule, every minute)."""

from __future__ import annotations

from typing import Any

from core.gc_tuning import building_without_collections

with building_without_collections():
    from core.outbox.relay import relay_once
    from core.runtime import build_runtime, renew_on_snapstart_restore
    from core.serverless import run
    from core.settings import get_settings

    runtime = build_runtime(get_settings())
    renew_on_snapstart_restore(runtime)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run(relay_once(runtime))
