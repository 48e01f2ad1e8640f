"""What a subscriber makes of the messages it receives: a group is its events, in order, each as if sent alone."""

from __future__ import annotations

from collections.abc import Iterable

from core.messages import GROUP
from core.realtime.base import RealtimeMessage


def unpacked(messages: Iterable[RealtimeMessage]) -> list[RealtimeMessage]:
    """The events of ``messages`` one by one, as a client handles them."""
    events: list[RealtimeMessage] = []
    for message in messages:
        if message.name != GROUP:
            events.append(message)
            continue
        for event in message.data["events"]:
            events.append(RealtimeMessage(event["data"]["id"], message.channel, event["name"], event["data"]))
    return events
