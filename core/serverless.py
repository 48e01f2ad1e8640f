"""Lambda glue: one event loop per sandbox, kept across warm invocations, so the async engine's pooled
connection (bound to the loop that opened it) is reused instead of reopened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from mangum import Mangum
from starlette.types import ASGIApp

T = TypeVar("T")
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

_loop = asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine on the sandbox's loop (for scheduled handlers)."""
    asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(coroutine)


def http_handler(app: ASGIApp) -> LambdaHandler:
    # lifespan "off": Mangum would run startup and shutdown on every invocation; everything is built at import.
    adapter = Mangum(cast(Any, app), lifespan="off")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Mangum runs the app on the current loop; make that always the sandbox's own.
        asyncio.set_event_loop(_loop)
        response: dict[str, Any] = adapter(event, context)
        return response

    return handler
