"""The provider contract: what every realtime provider does, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import NotFoundError


@dataclass(frozen=True)
class RealtimeMessage:
    """One server-to-browser message, ready to publish.

    ``channel`` is the logical name (``event:{slug}`` or ``admin``); each provider maps it to its own.
    ``data`` is the complete payload (``id``, ``seq``, ``timestamp`` included), already checked against the size limit.
    """

    id: str
    channel: str
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ChannelGrant:
    """The logical channels one principal may subscribe to, decided by ``core.access``.

    ``all_events`` is an admin's right to every ``event:*`` channel, present and future.
    """

    client_id: str
    channels: tuple[str, ...]
    all_events: bool = False


# Asked by a provider that authorizes each subscription separately: may this caller receive this logical channel?
SubscriptionCheck = Callable[[str], Awaitable[bool]]


class RealtimeError(Exception):
    """Publishing or signing failed.

    ``transient`` is True where trying again later may succeed (timeout, connection refused, 5xx) and False where
    the provider rejected the request itself (bad key, malformed or oversized message): retrying that is pointless.
    ``delivered`` holds the ids of events the provider accepted before the failure (a publish it had to split into
    several requests), so that they are not sent again.
    """

    def __init__(self, message: str, *, transient: bool = True, delivered: Collection[str] = ()) -> None:
        super().__init__(message)
        self.transient = transient
        self.delivered = frozenset(delivered)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, transient={self.transient!r})"


class RealtimeProvider(ABC):
    """Publishes events to browsers and tells browsers how to subscribe.

    Contract for every implementation:
    - ``publish`` sends all given events in as few requests as the provider allows (one where it can), each carrying
      ``event.id`` as its message id so that a retried publish is recognised. It returns only when the provider has
      accepted every event, and otherwise raises ``RealtimeError`` (never an SDK exception), within the configured
      publish timeout.
    - ``browser_credentials`` returns the JSON a browser needs to subscribe to exactly the granted channels, with no
      right to publish. It never calls the network where the provider allows signing locally.
    - ``renew_credentials`` and ``sign_subscription`` serve the provider SDK's own auth requests (Ably's ``authUrl``,
      Pusher's channel authorization endpoint); a provider whose browsers make none keeps the default, a 404.
    Access is decided in ``core.access``, never by a provider: providers only sign what they are given or asked.
    """

    name: ClassVar[str]

    @abstractmethod
    async def publish(self, events: Sequence[RealtimeMessage]) -> None: ...

    @abstractmethod
    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]: ...

    async def renew_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        """What the browser SDK asks for before its credentials expire (``GET``/``POST /api/realtime/ably/token``)."""
        raise NotFoundError("provider_not_ably", f"Realtime runs on {self.name}, not Ably")

    async def sign_subscription(self, form: Mapping[str, str], may_subscribe: SubscriptionCheck) -> dict[str, str]:
        """The browser SDK's authorization request for one channel (``POST /api/realtime/pusher/auth``): the
        provider reads its own fields, asks ``may_subscribe`` about the logical channel, and signs or refuses."""
        raise NotFoundError("provider_not_pusher", f"Realtime runs on {self.name}, not Pusher")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing to close
        """Release connections; the default holds none."""
