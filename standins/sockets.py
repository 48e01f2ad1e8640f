"""One browser's WebSocket on a stand-in: frames leave in the order they were queued, whoever queued them (the
socket's own handler, or a publish arriving over HTTP), and a close ends the writer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect


class Connection:
    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self._frames: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._frames.put_nowait(json.dumps(message, separators=(",", ":")))

    async def _write(self) -> None:
        while (frame := await self._frames.get()) is not None:
            try:
                await self.socket.send_text(frame)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return

    async def close(self, code: int = 1000) -> None:
        """Sends what is queued, then closes."""
        if self.closed:
            return
        self.closed = True
        self._frames.put_nowait(None)
        await self._writer
        with contextlib.suppress(RuntimeError, OSError):
            await self.socket.close(code)

    async def finish(self) -> None:
        """The browser went away: drop what is queued."""
        self.closed = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


async def receive_json(socket: WebSocket) -> Any:
    """The next frame as JSON, ``None`` for a frame that is not JSON; raises ``WebSocketDisconnect`` at the end."""
    text = await socket.receive_text()
    try:
        return json.loads(text)
    except ValueError:
        return None
