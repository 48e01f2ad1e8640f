"""Live servers and real Socket.IO clients over loopback, for the Socket.IO tests.

``live_node`` serves the API and a Socket.IO node in the test's own event loop (uvicorn on a free port), so the
test, the server and its database engine share one loop. ``Client`` wraps ``socketio.AsyncClient`` and records
every event it receives, so a test can wait for one (bounded) or assert that one never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

from core.api.app import create_app
from core.settings import Settings
from core.socketio_server import SocketNode, build_node
from tests.support import processes
from tests.support.api import Api
from tests.support.cli import hafi_realtime
from tests.support.loopback import serving

WAIT_SECONDS = 5.0


@dataclass
class LiveServer:
    url: str
    node: SocketNode
    api: Api


@contextlib.asynccontextmanager
async def live_node(settings: Settings) -> AsyncIterator[LiveServer]:
    node = build_node(settings)
    try:
        async with (
            serving(node.asgi_app(create_app(node.runtime)), websockets=True) as server,
            httpx.AsyncClient(base_url=server.url, timeout=WAIT_SECONDS) as http,
        ):
            yield LiveServer(server.url, node, Api(http, node.runtime))
    finally:
        await node.aclose()


@dataclass
class Client:
    """A python-socketio client that keeps what it receives: ``events`` in order, as (name, data)."""

    sio: Any = field(default_factory=lambda: socketio.AsyncClient(reconnection=False))
    events: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def record(event: str, data: Any = None) -> None:
            self.events.append((event, data))

        async def refused(data: Any = None) -> None:
            self.events.append(("connect_error", data))

        self.sio.on("*", record)
        self.sio.on("connect_error", refused)

    async def connect(self, url: str, *, token: str | None = None, path: str = "/api/socket") -> None:
        await self.sio.connect(
            url,
            socketio_path=path,
            auth={"token": token} if token else None,
            transports=["websocket"],
            wait_timeout=WAIT_SECONDS,
        )

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, timeout=WAIT_SECONDS)

    def named(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    async def wait_for(self, name: str, match: Callable[[Any], bool] = lambda _: True) -> Any:
        """The first ``name`` event whose data matches, waiting at most ``WAIT_SECONDS``."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                for data in self.named(name):
                    if match(data):
                        return data
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.sio.disconnect()


@contextlib.asynccontextmanager
async def clients(count: int) -> AsyncIterator[list[Client]]:
    made = [Client() for _ in range(count)]
    try:
        yield made
    finally:
        for client in made:
            await client.close()


@contextlib.contextmanager
def socketio_process(port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``hafi-realtime socketio`` in its own process, ready (``/health`` answers) when this yields."""
    process = subprocess.Popen(
        [hafi_realtime(), "socketio", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"socketio node exited with {process.returncode}: {output}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"socketio node on port {port} did not start")
            time.sleep(0.1)
        yield process
    finally:
        processes.stop(process)


RECORD_SEPARATOR = "\x1e"  # between packets of one long-polling payload (Engine.IO v4)


@dataclass
class Polling:
    """An Engine.IO long-polling session spoken by hand, to send what no well-behaved client would."""

    http: httpx.AsyncClient
    path: str = "/api/socket/"
    sid: str = ""

    async def open(self, *, token: str | None = None) -> str:
        """Opens the session and the default namespace; returns the namespace's CONNECT answer."""
        response = await self.http.get(self.path, params={"EIO": "4", "transport": "polling"})
        assert response.status_code == 200 and response.text.startswith("0"), response.text
        self.sid = json.loads(response.text[1:])["sid"]
        await self.post("40" + (json.dumps({"token": token}) if token else ""))
        return (await self.receive())[0]

    async def post(self, *packets: str) -> httpx.Response:
        return await self.http.post(self.path, params=self.query(), content=RECORD_SEPARATOR.join(packets))

    async def receive(self) -> list[str]:
        response = await self.http.get(self.path, params=self.query())
        assert response.status_code == 200, response.text
        return response.text.split(RECORD_SEPARATOR)

    def query(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same database) has used: rooms and events per test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
