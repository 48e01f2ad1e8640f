"""A provider that keeps what it publishes in memory: the default for tests and for a single local process."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from core.realtime.base import ChannelGrant, RealtimeError, RealtimeMessage, RealtimeProvider


class MemoryProvider(RealtimeProvider):
    name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.published: list[RealtimeMessage] = []
        self.publish_calls: list[list[RealtimeMessage]] = []
        self.failure: Exception | None = None
        self.delay_seconds = 0.0

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failure is not None:
            raise RealtimeError(f"memory: {self.failure}") from self.failure
        batch = list(events)
        self.publish_calls.append(batch)
        self.published.extend(batch)

    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        return {
            "provider": self.name,
            "clientId": grant.client_id,
            "channels": list(grant.channels),
            "channelNames": {channel: channel for channel in grant.channels},
        }

    def reset(self) -> None:
        self.published.clear()
        self.publish_calls.clear()
        self.failure = None
        self.delay_seconds = 0.0
