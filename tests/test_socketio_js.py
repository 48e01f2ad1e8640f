"""The original platform's client, ``socket.io-client`` from npm, against our server (``tests/js``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import bearer
from tests.support.environment import make_settings
from tests.support.sockets import live_node

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "like_listener.js"


def node_or_skip() -> str:
    """The node binary, when it and ``tests/js/node_modules`` are there; a skip otherwise, unless NODE_REQUIRED."""
    node = shutil.which("node")
    missing = "node is not on PATH" if node is None else None
    if missing is None and not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        missing = "tests/js/node_modules is missing (run: npm ci --prefix tests/js)"
    if missing:
        if os.environ.get("NODE_REQUIRED"):
            raise RuntimeError(f"NODE_REQUIRED is set but {missing}")
        pytest.skip(missing)
    assert node is not None
    return node


async def read_step(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None and process.stderr is not None
    async with asyncio.timeout(15):
        line = await process.stdout.readline()
    if not line:
        await process.wait()
        raise AssertionError(f"node exited with {process.returncode}: {(await process.stderr.read()).decode()}")
    step: dict[str, Any] = json.loads(line)
    return step


async def test_socket_io_client_from_npm_joins_an_event_and_receives_photo_liked(database_url: str) -> None:
    node = node_or_skip()
    settings = make_settings(database_url, realtime_provider="socketio", rate_limit_per_minute=10_000)
    async with live_node(settings) as live:
        slug = f"js-{uuid.uuid4().hex[:8]}"
        photo_id, _ = await live.api.event(slug)
        guest = await live.api.guest()
        process = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            live.url,
            settings.socketio_path,
            slug,
            guest,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            joined = await read_step(process)
            response = await live.api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
            assert response.status_code == 200, response.text
            liked = await read_step(process)
            async with asyncio.timeout(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert joined["ack"] == {"room": f"event:{slug}", "eventSlug": slug, "count": 1}
    assert liked["data"]["photoId"] == photo_id and liked["data"]["likeCount"] == 1
    assert liked["data"]["eventSlug"] == slug and liked["data"]["seq"] == 1
