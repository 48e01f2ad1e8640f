"""The provider contract: what every realtime provider does, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class RealtimeEvent:
    """One server-to-browser event, ready to publish.

    ``channel`` is the logical name (``event:{slug}`` or ``admin``); each provider maps it to its own.
    ``data`` is the complete payload (``id``, ``seq``, ``timestamp`` included), already checked against the size limit.
    """

    id: str
    channel: str
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ChannelGrant:
    """The logical channels one principal may subscribe to, decided by ``core.realtime.channels``.

    ``all_events`` is an admin's right to every ``event:*`` channel, present and future.
    """

    client_id: str
    channels: tuple[str, ...]
    all_events: bool = False
    presence: bool = field(default=True)


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
    """

    name: ClassVar[str]

    @abstractmethod
    async def publish(self, events: Sequence[RealtimeEvent]) -> None: ...

    @abstractmethod
    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing to close
        """Release connections; the default holds none."""
