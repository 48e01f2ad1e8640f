"""What a Socket.IO client may do, each checked exactly as the HTTP API checks it.

Connecting: ``io(url, {path: "/api/socket", auth: {token}})`` with a guest or admin token from ``/api/auth/*``.
Without a token the connection is a guest with no rights beyond public events; a bad or expired token is refused
(``connect_error`` with ``message`` and ``data: {"error": {"code", "message"}}``). The token is verified again on
every request below, and at its ``exp`` the socket is sent ``error`` ``{"event": "auth", "error": {"code":
"token_expired", ...}}`` and disconnected by the server (it leaves every room: nothing reaches it past ``exp``).
A client that wants to stay connected sends ``auth:refresh`` ``{token}`` before then with a new token for the same
identity (same ``sub`` and role, and every event of the old one; a connection without a token may add one); ack
``{expiresAt}`` (Unix seconds), or ``token_mismatch`` for another identity: that is a new connection.

Limits per connection (``joins.py``): 10 event rooms at once, joins at 1/s with bursts of 20, and a connection
refused 20 times (joins past that rate, events no client may emit) is closed. A malformed packet, a binary one, or
an event named like the protocol's own (``connect``, ``disconnect``...) closes the connection (``guard.py``).

Client events, with the payloads of the original platform's browser code. Each answers through the Socket.IO ack;
a refusal is also sent as an ``error`` event ``{"event": <name>, "error": {"code", "message"}}`` (the HTTP API's
error shape), for clients that emit without an ack:

- ``join:event``: ``"slug"`` or ``{eventSlug}``; ack ``{room, eventSlug, count}``.
- ``leave:event``: ``"slug"`` or ``{eventSlug}``; ack ``{room}``.
- ``join:admin``: no payload; ack ``{room: "admin"}``.
- ``photo:like``: ``{photoId, liked?: true, eventSlug?, mutationId?}``; ack as the HTTP like,
  ``{photoId, likeCount, liked, changed}``.
- ``comment:new``: ``{photoId, authorName, content, eventSlug?, mutationId?}``; ack the comment,
  ``{id, photoId, authorName, content, createdAt}``.

``photo:like`` and ``comment:new`` are requests, not broadcasts: they run the same services as ``POST
/api/photos/{id}/like`` and ``POST /api/photos/{id}/comments`` (rate limit, one transaction with the outbox, publish
after commit), so a like is counted once per session and the broadcast carries the stored count. ``liked: false``
unlikes. ``eventSlug`` is accepted and ignored: the photo decides its event. Any other event a client emits (a forged
``photo:liked``, say) is refused and reaches nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, ValidationError
from pydantic.alias_generators import to_camel
from socketio.exceptions import ConnectionRefusedError as RefusedError
from starlette.requests import HTTPConnection

from core import access, metrics
from core.access import EventRef
from core.api.client_address import client_address
from core.auth import Principal, ensure_unexpired, token_expired, verify_token_until
from core.errors import ForbiddenError, InvalidInputError, RateLimitedError, UnauthorizedError, as_app_error
from core.realtime.channels import ADMIN_CHANNEL, EVENT_PREFIX, event_channel, is_valid_slug
from core.runtime import Runtime
from core.schemas.base import MutationIdField, PhotoId
from core.schemas.comments import CommentIn
from core.services.accounts import check_admin_token
from core.socketio_server.expiry import Expiries
from core.socketio_server.guard import close_session
from core.socketio_server.joins import MAX_EVENT_ROOMS, Lookups, SocketBudget, access_key
from core.socketio_server.presence import Presence
from core.unit_of_work import read_only
from core.use_cases.comments import add_comment
from core.use_cases.likes import set_like

log = logging.getLogger("hafi.socketio")

ERROR_EVENT = "error"
Answer = dict[str, Any]
Work = Callable[[str, Any], Awaitable[Answer]]


# Unknown fields (the original platform's ``eventSlug``) are ignored: the photo decides its event.
_REQUEST_CONFIG = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True)


def _not_a_boolean(value: Any) -> Any:
    # pydantic's lax mode reads true as 1: a photo id is a number or a numeric string (docs/socketio.md).
    if isinstance(value, bool):
        raise ValueError("must be a number or a numeric string")
    return value


class _Request(BaseModel):
    model_config = _REQUEST_CONFIG

    photo_id: Annotated[PhotoId, BeforeValidator(_not_a_boolean)]
    mutation_id: MutationIdField = None


class LikeRequest(_Request):
    liked: StrictBool = True  # not "yes", 0 or "false"


class CommentRequest(_Request, CommentIn):
    """A ``CommentIn`` (the same fields and limits as the HTTP body) naming its photo."""

    model_config = _REQUEST_CONFIG


R = TypeVar("R", bound=_Request)

# How often a node checks its admin sockets' tokens against their accounts. A request over a socket checks at once;
# a socket that only listens (notifications) learns of a password reset, which revokes its token, within this.
ADMIN_RECHECK_SECONDS = 30.0

EVENT_NAME_SHOWN = 64  # characters of a refused event's name that are logged and sent back


def shortened(name: Any) -> str:
    text = name if isinstance(name, str) else repr(name)
    return text if len(text) <= EVENT_NAME_SHOWN else f"{text[:EVENT_NAME_SHOWN]}…"


def _parse(model: type[R], data: Any) -> R:
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        described = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError("invalid_input", described) from None


def _slug(data: Any) -> str:
    slug = data.get("eventSlug") if isinstance(data, dict) else data
    if not isinstance(slug, str) or not is_valid_slug(slug):
        raise InvalidInputError("invalid_input", "Give an event slug, as a string or as {eventSlug}")
    return slug


def _error(exc: Exception) -> dict[str, str]:
    if (error := as_app_error(exc)) is not None:
        return {"code": error.code, "message": error.message}
    log.exception("unhandled error in a Socket.IO handler", exc_info=exc)
    return {"code": "internal_error", "message": "Something went wrong on our side"}


def _may_replace(held: Principal, new: Principal) -> bool:
    """A refresh renews a session; it does not change who it is, nor drop an event a joined room may need."""
    return new.subject == held.subject and new.role == held.role and new.events >= held.events


@dataclass(frozen=True)
class Credentials:
    """A token verified once (signature and claims, at connect or refresh), its principal, and its ``exp``: what
    can change afterwards is only whether it has expired, so a request checks that and nothing else (verifying the
    signature again for each of 5,000 joins was a tenth of the node's time in a join storm)."""

    principal: Principal
    expires_at: float

    def current(self) -> Principal:
        ensure_unexpired(self.expires_at)  # the answer verify_token gives a token past its exp
        return self.principal


class ClientEvents:
    """The handlers of one server; ``register`` attaches them to its ``socketio.AsyncServer``."""

    def __init__(self, sio: Any, runtime: Runtime, presence: Presence) -> None:
        self._sio = sio
        self._runtime = runtime
        self._presence = presence
        self._credentials: dict[str, Credentials] = {}  # the sockets that connected with a token
        self._addresses: dict[str, str] = {}  # the client address of each socket, for the per-address limits
        self._sockets_from: Counter[str] = Counter()  # how many sockets each address holds (only those above)
        self._expiries = Expiries(self._expired)
        self._admin_watch: asyncio.Task[None] | None = None
        self._budgets: dict[str, SocketBudget] = {}
        self._event_lookups: Lookups[EventRef] = Lookups()

    def register(self) -> None:
        # A client's own event named "connect" or "disconnect" would run these too: the packet class refuses
        # such events (guard.ClientPacket).
        self._sio.on("connect", self.connect)
        self._sio.on("disconnect", self.disconnect)
        for event, work in (
            ("join:event", self._join_event),
            ("leave:event", self._leave_event),
            ("join:admin", self._join_admin),
            ("auth:refresh", self._refresh),
            ("photo:like", self._like),
            ("comment:new", self._comment),
        ):
            self._sio.on(event, self._handler(event, work))
        self._sio.on("*", self.refuse)

    def _handler(self, event: str, work: Work) -> Callable[..., Awaitable[Answer]]:
        # python-socketio awaits only coroutine functions (a lambda's coroutine would be sent back unawaited).
        async def handle(sid: str, data: Any = None, *_: Any) -> Answer:
            return await self._answer(sid, event, lambda: work(sid, data))

        return handle

    @property
    def tracked_sockets(self) -> int:
        """Sockets whose client address is held: each one connected and not yet disconnected."""
        return len(self._addresses)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Nothing is kept for a refused connect: python-socketio calls ``disconnect`` only for accepted ones. The
        address's bound is checked again, and the socket counted, only after the last wait (an admin token's
        check), so connects that wait at once cannot all pass it."""
        address: str | None = None
        scope = environ.get("asgi.scope")
        if scope is not None:  # the client address the deployment vouches for, counted as over HTTP
            address = client_address(HTTPConnection(scope), self._runtime.settings.client_address_source)
            self._refuse_if_full(address)
        token = auth.get("token") if isinstance(auth, dict) else None
        credentials = None
        if token is not None:
            try:
                credentials = self._verify(token)
                if credentials.principal.is_admin:
                    await self._check_admin(credentials.principal)
            except UnauthorizedError as exc:
                metrics.incr("socketio_refused")
                raise RefusedError(exc.message, {"error": {"code": exc.code, "message": exc.message}}) from None
        if self._closed_while_connecting(sid):
            # python-socketio skips the disconnect handler of a session that closes while its connect is pending
            raise RefusedError("The connection closed while it was being accepted")
        if address is not None:
            self._refuse_if_full(address)
            self._addresses[sid] = address
            self._sockets_from[address] += 1
        if credentials is not None:
            self._hold(sid, credentials)
        self._presence.connected(sid)

    def _refuse_if_full(self, address: str) -> None:
        if self._sockets_from[address] >= self._connections_per_address:
            metrics.incr("socketio_refused")
            message = "Too many connections from this address; close some and try again"
            raise RefusedError(message, {"error": {"code": "too_many_connections", "message": message}})

    def _closed_while_connecting(self, sid: str) -> bool:
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        session = self._sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        return session is None or bool(session.closed)

    @property
    def _connections_per_address(self) -> int:
        return self._runtime.settings.socketio_connections_per_address

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        self._credentials.pop(sid, None)
        address = self._addresses.pop(sid, None)
        if address is not None:
            self._sockets_from[address] -= 1
            if self._sockets_from[address] <= 0:
                del self._sockets_from[address]
        self._budgets.pop(sid, None)
        self._expiries.cancel(sid)
        self._presence.disconnected(sid)

    def _hold(self, sid: str, credentials: Credentials) -> None:
        self._credentials[sid] = credentials
        self._expiries.set(sid, credentials.expires_at)
        if credentials.principal.is_admin and (self._admin_watch is None or self._admin_watch.done()):
            self._admin_watch = asyncio.get_running_loop().create_task(self._watch_admins())

    async def _expired(self, sid: str) -> None:
        """At the token's ``exp`` the socket leaves every room and the server: told why, then disconnected."""
        await self._end(sid, token_expired())

    async def _end(self, sid: str, reason: UnauthorizedError) -> None:
        error = {"code": reason.code, "message": reason.message}
        await self._sio.emit(ERROR_EVENT, {"event": "auth", "error": error}, to=sid, ignore_queue=True)
        await self._sio.disconnect(sid, ignore_queue=True)

    async def _watch_admins(self) -> None:
        """While admin sockets are connected, ends those whose token has been revoked since (one lookup per admin
        every ``ADMIN_RECHECK_SECONDS``); stops when none is left, and starts again with the next one."""
        while any(held.principal.is_admin for held in self._credentials.values()):
            await asyncio.sleep(ADMIN_RECHECK_SECONDS)
            sockets_of: dict[Principal, list[str]] = {}
            for sid, held in list(self._credentials.items()):
                if held.principal.is_admin:
                    sockets_of.setdefault(held.principal, []).append(sid)
            for principal, sids in sockets_of.items():
                try:
                    await self._check_admin(principal)
                    continue
                except UnauthorizedError as error:
                    revoked = error
                except Exception:
                    log.warning("checking the admin sockets' tokens failed; trying again later", exc_info=True)
                    break
                for sid in sids:
                    try:
                        await self._end(sid, revoked)
                    except Exception:  # one socket's end must not keep the others connected
                        log.warning("ending a revoked admin socket failed", exc_info=True, extra={"sid": sid})

    async def _refresh(self, sid: str, data: Any) -> Answer:
        """A new token for the same identity keeps the connection (and its rooms) past the old one's ``exp``."""
        credentials = self._verify(data.get("token") if isinstance(data, dict) else None)
        if credentials.principal.is_admin:
            await self._check_admin(credentials.principal)
        held = self._credentials.get(sid)
        if held is not None and not _may_replace(held.principal, credentials.principal):
            raise ForbiddenError(
                "token_mismatch", "A refreshed token must be for the same identity and its events; reconnect instead"
            )
        self._hold(sid, credentials)
        return {"expiresAt": credentials.expires_at}

    async def aclose(self) -> None:
        await self._expiries.aclose()
        if self._admin_watch is not None:
            self._admin_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._admin_watch

    async def refuse(self, event: Any, sid: str, *args: Any) -> Answer:
        """Clients never publish: any event we do not serve is refused, whatever its name (which a hostile client
        makes as long as a message may be: only its start is logged and sent back)."""
        name = shortened(event)
        budget = self._budget(sid)
        if budget.exhausted or not self._sio.manager.is_connected(sid, "/"):
            return {}  # handed over before its connection was closed for a flood: nobody to tell, nothing to log
        budget.refused()
        log.warning("refused client event", extra={"event": name, "sid": sid})
        await self._disconnect_if_exhausted(sid)
        return await self._answer(
            sid, name, lambda: self._forbid(f"Clients cannot emit {name!r}; actions go through requests")
        )

    def _budget(self, sid: str) -> SocketBudget:
        return self._budgets.setdefault(sid, SocketBudget())

    async def _disconnect_if_exhausted(self, sid: str) -> None:
        """Closes the whole connection, not the namespace: engine.io would go on reading (and python-socketio
        logging) every packet the client still sends."""
        budget = self._budgets.get(sid)
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        if budget is not None and budget.exhausted and eio_sid is not None:
            log.warning("too many refusals; closing the connection", extra={"sid": sid})
            await close_session(self._sio, eio_sid)

    async def _forbid(self, message: str) -> Answer:
        raise ForbiddenError("client_event_refused", message)

    def _verify(self, token: Any) -> Credentials:
        if not isinstance(token, str):
            raise UnauthorizedError("invalid_token", "auth.token must be a string")
        return Credentials(*verify_token_until(token, self._runtime.settings))

    async def _principal(self, sid: str) -> Principal | None:
        """The socket's principal now: its token not expired and, for an admin, not revoked since (a password reset),
        checked on each request as over HTTP."""
        held = self._credentials.get(sid)
        if held is None:
            return None
        principal = held.current()
        if principal.is_admin:
            await self._check_admin(principal)
        return principal

    async def _caller(self, sid: str) -> Principal:
        principal = await self._principal(sid)
        if principal is None:
            raise UnauthorizedError("token_required", "This needs a token: connect with auth: {token}")
        return principal

    async def _answer(self, sid: str, event: str, work: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            return await work()
        except Exception as exc:
            error = _error(exc)
        metrics.incr("socketio_refused")
        # The client is on this node: no need to go through the message queue to reach it.
        await self._sio.emit(ERROR_EVENT, {"event": event, "error": error}, to=sid, ignore_queue=True)
        return {"error": error}

    async def _join_event(self, sid: str, data: Any) -> Answer:
        if not self._budget(sid).take():
            await self._disconnect_if_exhausted(sid)
            raise RateLimitedError(retry_after_seconds=1)
        principal, slug = await self._principal(sid), _slug(data)
        room = event_channel(slug)
        held = self._presence.rooms_of(sid)
        if room not in held and sum(r.startswith(EVENT_PREFIX) for r in held) >= MAX_EVENT_ROOMS:
            raise ForbiddenError("too_many_rooms", f"A connection may follow at most {MAX_EVENT_ROOMS} events")
        event = await self._event_lookups.get(access_key(principal, slug), lambda: self._visible_event(principal, slug))
        if not self._sio.manager.is_connected(sid, "/"):
            return {"room": room}  # it left while we looked: nothing to join, nothing to tell
        await self._sio.enter_room(sid, room)
        self._presence.joined(sid, room)
        return {"room": room, "eventSlug": event.slug, "count": self._presence.count(room)}

    async def _visible_event(self, principal: Principal | None, slug: str) -> EventRef:
        return await access.event_visible_to(self._runtime, principal, slug)

    async def _leave_event(self, sid: str, data: Any) -> Answer:
        room = event_channel(_slug(data))
        await self._sio.leave_room(sid, room)
        self._presence.left(sid, room)
        return {"room": room}

    async def _check_admin(self, principal: Principal) -> None:
        """An admin token whose password has been reset since is refused here as over HTTP."""
        async with read_only(self._runtime) as conn:
            await check_admin_token(conn, principal)

    async def _join_admin(self, sid: str, data: Any) -> Answer:
        principal = await self._principal(sid)
        if not access.may_receive_admin(principal):
            raise ForbiddenError("admin_only", "Only admins may join the admin room")
        await self._sio.enter_room(sid, ADMIN_CHANNEL)
        self._presence.joined(sid, ADMIN_CHANNEL)
        return {"room": ADMIN_CHANNEL}

    async def _like(self, sid: str, data: Any) -> Answer:
        principal = await self._caller(sid)
        request = _parse(LikeRequest, data)
        answer = await set_like(
            self._runtime,
            principal,
            photo_id=request.photo_id,
            liked=request.liked,
            mutation_id=request.mutation_id,
            client_address=self._addresses.get(sid),
        )
        return answer.model_dump(mode="json", by_alias=True)

    async def _comment(self, sid: str, data: Any) -> Answer:
        principal = await self._caller(sid)
        request = _parse(CommentRequest, data)
        answer = await add_comment(
            self._runtime,
            principal,
            photo_id=request.photo_id,
            comment=request,
            mutation_id=request.mutation_id,
            client_address=self._addresses.get(sid),
        )
        return answer.model_dump(mode="json", by_alias=True)
