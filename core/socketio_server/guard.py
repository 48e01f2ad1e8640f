"""What a hostile client can send below the handlers: oversized or slow long-polling bodies, malformed packets,
binary attachments. python-engineio alone answers none of these well:

- a polling POST over ``max_http_buffer_size`` makes it close the session *waiting* for a GET to take the close
  packet, so the POST is never answered, its body never read, and uvicorn's graceful shutdown waits for it forever;
  an unknown Engine.IO packet type takes the same path. Here the body is read first, bounded in size and time, an
  oversized one is answered 413 at once, and no POST is left unanswered past ``POST_DEADLINE_SECONDS``;
- a malformed Socket.IO packet is logged with a traceback each time and the connection stays open. Here it is one
  log line and the connection is closed, as the reference (Node) server closes it on a parse error;
- a binary packet may announce up to 10**10 attachments, and the server keeps every attachment that follows until
  the count is reached. Our clients never send binary: binary packets are refused;
- an event named ``connect`` or ``disconnect`` runs the server's own connect or disconnect handler;
- an empty WebSocket text frame raises out of the connection's handler and leaves its session alive without its
  socket; a frame of an unknown packet type is ignored, and so are such polling bodies (answered 200). Here all of
  them end the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from socketio import packet as sio_packet
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("hafi.socketio")

# A POST's body must arrive within this, and engine.io must answer it within this once it has arrived: a slow
# client cannot hold a request (and so a graceful shutdown) open. Parsing a payload takes microseconds.
BODY_DEADLINE_SECONDS = 10.0
POST_DEADLINE_SECONDS = 10.0
# Before a 413, up to this much of the body is read and dropped (not kept), so that the client hears the answer.
DISCARD_LIMIT_BYTES = 4 * 1024 * 1024


# Event names the reference server's parser refuses from a client: python-socketio would run its own connect and
# disconnect handlers for a client's *event* of that name (the viewer count dropped while the socket still received).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class ClientPacket(sio_packet.Packet):  # type: ignore[misc]  # python-socketio has no type hints
    """A Socket.IO packet that, on decode, holds a client to what the reference server's parser accepts
    (``isPayloadValid`` in socket.io-parser): CONNECT carries an object or nothing, DISCONNECT nothing, an EVENT a
    list whose first item is a name (not a reserved one) or a number, an ACK a list; a client never sends
    CONNECT_ERROR. Binary packets are refused too: our events are JSON. Packets we send are encoded as ever."""

    def decode(self, encoded_packet: Any) -> int:
        attachments: int = super().decode(encoded_packet)
        if attachments or not _valid_from_client(self.packet_type, self.data):
            raise ValueError(f"invalid {_type_name(self.packet_type)} packet")
        return attachments


def _valid_from_client(packet_type: Any, data: Any) -> bool:
    if packet_type == sio_packet.CONNECT:
        return data is None or isinstance(data, dict)
    if packet_type == sio_packet.DISCONNECT:
        return data is None
    if packet_type == sio_packet.EVENT:
        if not isinstance(data, list) or not data:
            return False
        name = data[0]
        return (isinstance(name, str) and name not in RESERVED_EVENTS) or (
            isinstance(name, int | float) and not isinstance(name, bool)
        )
    if packet_type == sio_packet.ACK:
        return isinstance(data, list)
    return False  # CONNECT_ERROR, binary packets, unknown types


def _type_name(packet_type: Any) -> str:
    names = sio_packet.packet_names
    return names[packet_type] if isinstance(packet_type, int) and 0 <= packet_type < len(names) else "unknown"


class OneLineErrors(logging.Filter):
    """python-engineio and python-socketio log a traceback for each malformed packet a client sends: the
    exception's type and message (cut by the formatter) say enough, on the record's one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.error = f"{type(error).__name__}: {error}"
            record.exc_info = record.exc_text = None
        return True


def library_logger(name: str) -> logging.Logger:
    """A logger for the library's own messages: warnings and errors only (its INFO is a line per packet), one line
    each, written like ours."""
    logger = logging.getLogger(f"hafi.socketio.{name}")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())
    return logger


def close_on_malformed_packets(sio: Any) -> None:
    """Wraps the Engine.IO ``message`` handler python-socketio registered, so that a packet it cannot decode ends
    that client's connection with one log line (the handler runs inline: engine.io's own handlers are not async)."""
    dispatch: Callable[[str, Any], Awaitable[None]] = sio.eio.handlers["message"]

    async def guarded(eio_sid: str, data: Any) -> None:
        session = sio.eio.sockets.get(eio_sid)
        if session is None or session.closed:
            return  # what a closed connection still sends (it had more in flight) is dropped, not logged again
        try:
            await dispatch(eio_sid, data)
        except Exception as exc:
            log.warning(
                "malformed Socket.IO packet; closing the connection",
                extra={"eio_sid": eio_sid, "error": f"{type(exc).__name__}: {exc}"},
            )
            await close_session(sio, eio_sid)

    sio.eio.on("message", guarded)


async def close_session(sio: Any, eio_sid: str) -> None:
    """Ends an Engine.IO session now: the disconnect handlers run and a pending poll gets the close packet. Not
    ``eio.disconnect``, which then waits until a poll has taken that packet: forever, for a client that never
    polls again."""
    session = sio.eio.sockets.get(eio_sid)
    if session is not None and not session.closed:
        await session.close(wait=False, reason=sio.eio.reason.TRANSPORT_ERROR)
        # After the close packet, the end of the queue: a websocket's writer then closes the websocket (engine.io
        # would otherwise keep reading it), a pending poll returns.
        session.queue.put_nowait(None)


# The Engine.IO packet types a client sends as a WebSocket text frame: open, close, ping, pong, message, upgrade, noop.
CLIENT_TEXT_FRAME_TYPES = frozenset("0123456")


def closing_on_undecodable_frames(receive: Receive) -> Receive:
    """python-engineio decodes a WebSocket frame outside its error handling: an empty text frame raised out of the
    connection's handler, leaving its session (rooms, viewer counts) alive without a socket until the ping timeout,
    and an unknown packet type was ignored. Such a frame reaches engine.io as the client's disconnect instead, which
    it handles: the session ends and the WebSocket is closed."""

    async def guarded() -> Message:
        message = await receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            if text is not None and text[:1] not in CLIENT_TEXT_FRAME_TYPES:
                log.warning("undecodable Engine.IO frame; closing the connection", extra={"frame": text[:16]})
                return {"type": "websocket.disconnect", "code": 1002}
        return message

    return guarded


class PollingGuard:
    """ASGI middleware in front of python-socketio's app: long-polling POSTs to the Socket.IO path, and WebSocket
    frames engine.io cannot decode (``closing_on_undecodable_frames``)."""

    def __init__(self, app: ASGIApp, sio: Any, *, path: str, max_body_bytes: int) -> None:
        self._app = app
        self._sio = sio
        self._path = path.rstrip("/") + "/"
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and (scope["path"] + "/").startswith(self._path):
            await self._app(scope, closing_on_undecodable_frames(receive), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or not (scope["path"] + "/").startswith(self._path):
            await self._app(scope, receive, send)
            return
        session = _query_value(scope, "sid")
        declared = _content_length(scope)
        try:
            async with asyncio.timeout(BODY_DEADLINE_SECONDS):
                if declared is not None and declared > self._max_body_bytes:
                    raise _TooLarge
                body = await self._read_body(receive)
        except TimeoutError:
            await self._refuse(send, session, 408, "request_timeout", "The request body did not arrive in time")
            return
        except _TooLarge:
            if declared is None or declared <= DISCARD_LIMIT_BYTES:
                await self._discard_rest(receive)
            await self._refuse(send, session, 413, "payload_too_large", self._too_large())
            return
        except _Gone:
            return
        if not _decodable_payload(body):
            await self._refuse(send, session, 400, "bad_request", "The packets could not be decoded")
            return
        await self._forward(scope, body, receive, send, session)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _discard_rest(self, receive: Receive) -> None:
        """Reads what the client still sends (dropping it), within the deadline and a bound: closing with unread data
        resets the connection, and the client would lose the 413 it is owed. Before answering: once a response is
        complete, uvicorn hands the app no more of the body."""
        left = DISCARD_LIMIT_BYTES
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(BODY_DEADLINE_SECONDS):
                while left > 0:
                    message = await receive()
                    left -= len(message.get("body", b""))
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return

    async def _forward(self, scope: Scope, body: bytes, receive: Receive, send: Send, session: str | None) -> None:
        delivered = False
        started = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watched(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            async with asyncio.timeout(POST_DEADLINE_SECONDS):
                await self._app(scope, replay, watched)
        except TimeoutError:
            if not started:
                await self._refuse(send, session, 400, "bad_request", "The packets could not be taken")

    def _too_large(self) -> str:
        return f"A Socket.IO request may carry at most {self._max_body_bytes} bytes"

    async def _refuse(self, send: Send, session: str | None, status: int, code: str, message: str) -> None:
        """Answers and closes the HTTP connection (an unread body stays unread), and ends the client's session: it
        sent what the protocol forbids, as engine.io itself would end it. ``sid`` may be anyone's; closing another
        client's session needs its sid, which only that client and the server know."""
        log.warning("refused Socket.IO request", extra={"status": status, "code": code})
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        if session is not None:
            await close_session(self._sio, session)


# Engine.IO v4 separates the packets of a polling payload with this character.
_RECORD_SEPARATOR = "\x1e"


def _decodable_payload(body: bytes) -> bool:
    """Whether engine.io can take every packet of a polling POST: python-engineio answers an empty payload or a
    packet of an unknown type 200 and keeps the session, as over a WebSocket (``closing_on_undecodable_frames``).
    Our clients never send binary (a ``b``-prefixed packet), which ``ClientPacket`` refuses anyway."""
    try:
        packets = body.decode("utf-8").split(_RECORD_SEPARATOR)
    except UnicodeDecodeError:
        return False
    return all(packet[:1] in CLIENT_TEXT_FRAME_TYPES for packet in packets)


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _query_value(scope: Scope, key: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(key)
    return values[0] if values else None
