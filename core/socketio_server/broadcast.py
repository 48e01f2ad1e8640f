"""Room broadcasts that cost one encoding per message and no task per recipient.

python-socketio's ``AsyncManager.emit`` encodes a broadcast once but then creates one asyncio task per recipient
(and waits for them all) only to put the packet on each engine.io socket's queue, which never blocks: with 5,000
viewers in a room that is 5,000 tasks per like, and the largest per-recipient cost of a fan-out after the socket
write itself. Here the same packet goes on each recipient's queue in one loop; each socket's own writer task (one
per connection, engine.io's) sends it, as before. The packet is the library's own (``server.packet_class``), so
what a client receives is unchanged.

Only the plain case is taken over: an emit with an acknowledgement callback needs a packet per recipient (its own
ack id), and goes to the library as it is. Both managers (alone, and sharing rooms through Redis, where a message
from another node arrives through ``AsyncPubSubManager._handle_emit``, which ends in ``AsyncManager.emit``) use it.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.exceptions import SocketIsClosedError
from socketio import packet as sio_packet

log = logging.getLogger("hafi.socketio")


class EncodedOncePacket(eio_packet.Packet):  # type: ignore[misc]
    """An engine.io packet that every recipient's writer shares: encoded the first time, then reused."""

    def __init__(self, packet_type: int, data: Any) -> None:
        super().__init__(packet_type, data)
        self._encoded: dict[bool, Any] = {}

    def encode(self, b64: bool = False) -> Any:
        encoded = self._encoded.get(b64)
        if encoded is None:
            encoded = self._encoded[b64] = super().encode(b64=b64)
        return encoded


class BroadcastingManager(socketio.AsyncManager):  # type: ignore[misc]
    """``AsyncManager`` whose broadcasts (no callback) enqueue one shared packet per recipient, in one loop."""

    server: Any
    rooms: dict[str, Any]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each socket's rooms, kept beside the library's room -> members map: its own ``get_rooms`` and
        # ``basic_disconnect`` go through every room of the namespace (each socket has one of its own), so 5,000
        # sockets leaving at the end of an event cost 25 million steps, seconds with the loop blocked.
        self._rooms_of: dict[tuple[str, str], dict[Any, None]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        held = self._rooms_of.get((namespace, sid))
        if held is not None:
            held.pop(room, None)
            if not held:
                del self._rooms_of[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), {}) if room is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """The library's own, except that the socket's rooms come from the index instead of a scan."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), {})):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if sid in pending.get(namespace, ()):
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        # The library's argument rules: a tuple is several arguments, None none, anything else one.
        arguments = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *arguments]).encode()
        packets = [EncodedOncePacket(eio_packet.MESSAGE, part) for part in _as_list(encoded)]
        skipped = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        # A snapshot: a recipient whose send closes it (ping timeout) leaves the room while we go through it.
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skipped]
        for eio_sid in recipients:
            await self._send_to(eio_sid, packets)

    async def _send_to(self, eio_sid: str, packets: list[EncodedOncePacket]) -> None:
        """Puts the packets on the socket's queue (unbounded: this does not wait for the client). A socket that is
        gone or closing misses them, as it would with the library's own emit."""
        try:
            for pkt in packets:
                await self.server._send_eio_packet(eio_sid, pkt)
        except SocketIsClosedError:
            pass
        except Exception:
            # One broken socket must not keep the message from the rest of the room.
            log.warning("broadcast to one socket failed", exc_info=True, extra={"sid": eio_sid})


class BroadcastingRedisManager(socketio.AsyncRedisManager, BroadcastingManager):  # type: ignore[misc]
    """The Redis manager with the same local broadcast: its local emits and the messages other nodes publish both
    reach ``AsyncManager.emit`` through ``super()``, which resolves to ``BroadcastingManager`` first."""


def _as_list(encoded: Any) -> list[Any]:
    return encoded if isinstance(encoded, list) else [encoded]
