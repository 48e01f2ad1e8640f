"""Who is connected to this node and in which rooms; tells each event room its viewer count as it changes.

What a join storm may cost: an announcement goes to every socket of the room, so announcing each of 5,000 joins
would be 12.5 million sends. Announcements to a room are coalesced (trailing edge: the count of the moment, once
per interval) and the interval grows with the room: at least ``MIN_INTERVAL_SECONDS``, and long enough that
announcing costs at most ``ANNOUNCED_SENDS_PER_SECOND`` socket sends a second per room (5,000 viewers: every 2.5 s).

The count is the cluster's where the nodes share Redis (``RedisCounts``): each node keeps its own count of each room
in one Redis hash per room, with a deadline it renews every ``REFRESH_SECONDS``, and reads the sum of the live
entries; a node that dies drops out of the sum within ``ENTRY_TTL_SECONDS``. Each node announces to its own clients
(a count is never relayed between nodes, so no node's older number can overwrite a newer one), when its own count
changes and when the refresh finds that the cluster's has. Without Redis the count is this node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio

from core.realtime.channels import EVENT_PREFIX

log = logging.getLogger("hafi.socketio")

PRESENCE_EVENT = "presence:count"
MIN_INTERVAL_SECONDS = 0.25
ANNOUNCED_SENDS_PER_SECOND = 2000
REFRESH_SECONDS = 1.0
ENTRY_TTL_SECONDS = 10

Announce = Callable[[str, str, dict[str, Any]], Awaitable[None]]  # (event name, room, payload)


class ClusterCounts(Protocol):
    async def publish(self, counts: dict[str, int]) -> dict[str, int]:
        """Records this node's count of each room (0: gone) and answers each room's count over every node."""
        ...

    async def aclose(self) -> None: ...


# One round trip per call, atomic per room: record this node's entry, drop expired ones, sum the rest.
_PUBLISH_SCRIPT = """
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local node = ARGV[3]
local totals = {}
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[3 + i])
  if count > 0 then
    redis.call('HSET', key, node, count .. ':' .. (now + ttl))
  else
    redis.call('HDEL', key, node)
  end
  local total = 0
  local entries = redis.call('HGETALL', key)
  for j = 1, #entries, 2 do
    local separator = string.find(entries[j + 1], ':', 1, true)
    local deadline = separator and tonumber(string.sub(entries[j + 1], separator + 1))
    if deadline and deadline > now then
      total = total + tonumber(string.sub(entries[j + 1], 1, separator - 1))
    else
      redis.call('HDEL', key, entries[j])
    end
  end
  if total > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  totals[i] = total
end
return totals
"""


class RedisCounts:
    """Each node's count of each room in a Redis hash per room (``{prefix}:presence:{room}``, field: the node)."""

    def __init__(self, url: str, *, prefix: str, node_id: str | None = None) -> None:
        self._redis = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = prefix
        self._node_id = node_id or uuid.uuid4().hex
        self._script = self._redis.register_script(_PUBLISH_SCRIPT)

    def _key(self, room: str) -> str:
        return f"{self._prefix}:presence:{room}"

    async def publish(self, counts: dict[str, int]) -> dict[str, int]:
        if not counts:
            return {}
        rooms = list(counts)
        totals = await self._script(
            keys=[self._key(room) for room in rooms],
            args=[time.time(), ENTRY_TTL_SECONDS, self._node_id, *(counts[room] for room in rooms)],
        )
        return {room: int(total) for room, total in zip(rooms, totals, strict=True)}

    async def aclose(self) -> None:
        await self._redis.aclose()


class Presence:
    def __init__(
        self, announce: Announce, *, interval: float = MIN_INTERVAL_SECONDS, cluster: ClusterCounts | None = None
    ) -> None:
        self._announce = announce
        self._interval = interval
        self._cluster = cluster
        self._connected: set[str] = set()
        self._rooms: dict[str, set[str]] = {}
        # Each socket's rooms: python-socketio's own ``rooms(sid)`` goes through every room of the server (each
        # socket has one of its own), which made each of 5,000 joins cost 5,000 steps.
        self._rooms_of: dict[str, set[str]] = {}
        self._elsewhere: dict[str, int] = {}  # each room's count on the other nodes, as Redis last said
        self._announced: dict[str, int] = {}
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._refresher: asyncio.Task[None] | None = None

    @property
    def connected_clients(self) -> int:
        return len(self._connected)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def local_count(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

    def count(self, room: str) -> int:
        """The room's viewers: this node's, and the other nodes' as last read (without Redis, none)."""
        return self.local_count(room) + self._elsewhere.get(room, 0)

    def connected(self, sid: str) -> None:
        self._connected.add(sid)

    def rooms_of(self, sid: str) -> frozenset[str]:
        return frozenset(self._rooms_of.get(sid, ()))

    def joined(self, sid: str, room: str) -> None:
        members = self._rooms.setdefault(room, set())
        if sid not in members:
            members.add(sid)
            self._rooms_of.setdefault(sid, set()).add(room)
            self._changed(room)

    def left(self, sid: str, room: str) -> None:
        members = self._rooms.get(room)
        if members is None or sid not in members:
            return
        members.discard(sid)
        if not members:
            del self._rooms[room]
        held = self._rooms_of.get(sid)
        if held is not None:
            held.discard(room)
            if not held:
                del self._rooms_of[sid]
        self._changed(room)

    def disconnected(self, sid: str) -> None:
        self._connected.discard(sid)
        for room in self.rooms_of(sid):
            self.left(sid, room)

    def _changed(self, room: str) -> None:
        if not room.startswith(EVENT_PREFIX):
            return
        loop = asyncio.get_running_loop()
        if self._cluster is not None and self._refresher is None:
            self._refresher = loop.create_task(self._refresh_forever())
        if room not in self._pending:
            self._pending[room] = loop.create_task(self._send(room))

    def _spacing(self, room: str) -> float:
        """Seconds between two announcements to the room: more for a larger room (see the module's docstring)."""
        return max(self._interval, self.local_count(room) / ANNOUNCED_SENDS_PER_SECOND)

    async def _send(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            wait = self._last_sent.get(room, float("-inf")) + self._spacing(room) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            told = self.local_count(room)
            await self._read_cluster({room: told})
        finally:
            # Released before emitting: a change during the emit schedules the next announcement.
            self._pending.pop(room, None)
        self._last_sent[room] = loop.time()
        if self.local_count(room) != told:
            # It changed while Redis was being told, so Redis holds a stale count of ours; an emptied room would
            # keep it until the entry expires, as the refresh renews only the rooms this node still has.
            self._changed(room)
        await self._tell(room)

    async def _tell(self, room: str) -> None:
        if self.local_count(room) == 0:
            # Nobody here to tell; forget the room.
            for known in (self._last_sent, self._announced, self._elsewhere):
                known.pop(room, None)
            return
        count = self.count(room)
        self._announced[room] = count
        try:
            await self._announce(PRESENCE_EVENT, room, {"eventSlug": room[len(EVENT_PREFIX) :], "count": count})
        except Exception:
            # A lost count is corrected by the next change; nothing awaits this task to hear of the failure.
            log.warning("presence announcement failed", exc_info=True, extra={"room": room})

    async def _read_cluster(self, counts: dict[str, int]) -> None:
        """Records this node's counts in Redis and learns the other nodes'; with Redis out of reach, the counts
        stay as last known (this node's own, fresh)."""
        if self._cluster is None:
            return
        try:
            totals = await self._cluster.publish(counts)
        except Exception:
            log.warning("presence: cannot reach Redis for the cluster's counts", exc_info=True)
            return
        for room, total in totals.items():
            # Ours as sent, not as now: a join during the round trip is counted once, when it is announced.
            self._elsewhere[room] = max(0, total - counts[room])

    async def _refresh_forever(self) -> None:
        """Renews this node's entries (so they outlive ``ENTRY_TTL_SECONDS``) and tells each room whose cluster
        count moved on another node."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            rooms = {room: len(members) for room, members in self._rooms.items() if room.startswith(EVENT_PREFIX)}
            await self._read_cluster(rooms)
            for room in rooms:
                if room not in self._pending and self._announced.get(room) != self.count(room):
                    self._pending[room] = asyncio.get_running_loop().create_task(self._send(room))

    async def aclose(self) -> None:
        tasks = [*self._pending.values(), *([self._refresher] if self._refresher is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._cluster is not None:
            # Leaves the cluster's counts now rather than at the entries' deadline.
            with contextlib.suppress(Exception):
                await self._cluster.publish(dict.fromkeys(self._rooms, 0))
            await self._cluster.aclose()
