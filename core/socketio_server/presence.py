"""Who is connected to this node and in which rooms; tells each event room its count as it changes.

The counts are this node's own. Behind a load balancer with several nodes each room hears its node's count (the
announcement is emitted to local clients only, so nodes never overwrite each other's numbers); a cluster-wide
count would need a shared store and is not attempted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core.realtime.channels import EVENT_PREFIX

log = logging.getLogger("hafi.socketio")

PRESENCE_EVENT = "presence:count"
# "At most a few times a second": a burst of joins is announced once per interval, with the count at that moment.
MIN_INTERVAL_SECONDS = 0.25

Announce = Callable[[str, str, dict[str, Any]], Awaitable[None]]  # (event name, room, payload)


class Presence:
    def __init__(self, announce: Announce, *, interval: float = MIN_INTERVAL_SECONDS) -> None:
        self._announce = announce
        self._interval = interval
        self._connected: set[str] = set()
        self._rooms: dict[str, set[str]] = {}
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    @property
    def connected_clients(self) -> int:
        return len(self._connected)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def count(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

    def connected(self, sid: str) -> None:
        self._connected.add(sid)

    def joined(self, sid: str, room: str) -> None:
        members = self._rooms.setdefault(room, set())
        if sid not in members:
            members.add(sid)
            self._changed(room)

    def left(self, sid: str, room: str) -> None:
        members = self._rooms.get(room)
        if members is None or sid not in members:
            return
        members.discard(sid)
        if not members:
            del self._rooms[room]
        self._changed(room)

    def disconnected(self, sid: str) -> None:
        self._connected.discard(sid)
        for room in [room for room, members in self._rooms.items() if sid in members]:
            self.left(sid, room)

    def _changed(self, room: str) -> None:
        if room.startswith(EVENT_PREFIX) and room not in self._pending:
            self._pending[room] = asyncio.get_running_loop().create_task(self._send(room))

    async def _send(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            wait = self._last_sent.get(room, float("-inf")) + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        finally:
            # Released before emitting: a change during the emit schedules the next announcement.
            self._pending.pop(room, None)
        self._last_sent[room] = loop.time()
        count = self.count(room)
        if count == 0:
            self._last_sent.pop(room, None)  # nobody left to tell; forget the room
            return
        try:
            await self._announce(PRESENCE_EVENT, room, {"eventSlug": room[len(EVENT_PREFIX) :], "count": count})
        except Exception:
            # A lost count is corrected by the next change; nothing awaits this task to hear of the failure.
            log.warning("presence announcement failed", exc_info=True, extra={"room": room})

    async def aclose(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
