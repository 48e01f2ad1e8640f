"""Realtime publishing, provider-neutral. No SDK is imported here: each provider module imports its own."""

from core.realtime.base import ChannelGrant, RealtimeError, RealtimeMessage, RealtimeProvider

__all__ = ["ChannelGrant", "RealtimeError", "RealtimeMessage", "RealtimeProvider"]
