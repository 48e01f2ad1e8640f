"""Serves an ASGI app on 127.0.0.1 inside the test's event loop, and can stop and restart it on the same port (so
a client sees "connection refused" while it is down): the fake Ably and Pusher services, the API with its Socket.IO
node, the pages a browser opens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp


class LoopbackServer:
    def __init__(self, app: ASGIApp, *, websockets: bool = False) -> None:
        self.app = app
        self._ws = "websockets-sansio" if websockets else "none"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        # No per-message deflate: a stand-in compressing every frame for every subscriber burns the CPU that the
        # app under test shares with it, which the real provider's servers would not take from it.
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            http="h11",
            ws=self._ws,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Closes the listening socket and every connection: the port refuses connections until ``start``."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, websockets: bool = False) -> AsyncIterator[LoopbackServer]:
    server = LoopbackServer(app, websockets=websockets)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
