"""Ably through the official ``ably`` SDK (REST, async).

Contract beyond ``RealtimeProvider``:
- ``publish`` sends every event in one batch publish request (``POST /messages``), one BatchSpec per event so each
  message carries its own id, the outbox id: Ably delivers a retried id only once (2-minute window);
- ``token_request`` signs an Ably TokenRequest locally (no network): clientId is the caller, the capability grants
  ``subscribe`` and ``presence`` on exactly the granted channels (never ``publish``), TTL from settings. The browser
  exchanges it with Ably itself, and renews it through ``authUrl`` (``renew_credentials``) before it expires.
Logical names are Ably names as they are (``event:{slug}``, ``admin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from ably import AblyException, AblyRest

from core.errors import ForbiddenError
from core.realtime.base import ChannelGrant, RealtimeError, RealtimeMessage, RealtimeProvider
from core.realtime.channels import ADMIN_CHANNEL, EVENT_PREFIX
from core.realtime.wire import encode
from core.settings import Settings

TOKEN_ENDPOINT = "/api/realtime/ably/token"
# The REST protocol version whose batch publish answers a list of per-channel results (or 40020 on partial failure).
_PROTOCOL_VERSION = "2"
_TOKEN_ERRORS = range(40140, 40150)  # expired or revoked token: get a new one and try once more


def capability_for(grant: ChannelGrant) -> dict[str, list[str]]:
    """Subscribe and presence on the granted event channels; an admin adds ``admin`` and ``event:*``."""
    event_ops = ["presence", "subscribe"]
    capability = {channel: list(event_ops) for channel in grant.channels if channel != ADMIN_CHANNEL}
    if ADMIN_CHANNEL in grant.channels:
        capability[ADMIN_CHANNEL] = ["subscribe"]
    if grant.all_events:
        capability[f"{EVENT_PREFIX}*"] = list(event_ops)
    return capability


def _failures(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Per-channel errors in a batch publish answer (a 40020 partial failure lists them under ``batchResponse``)."""
    found: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("batchResponse"), list):
            found += _failures(item["batchResponse"])
        elif isinstance(item.get("error"), dict):
            found.append(item["error"])
    return found


def _is_transient(status: int) -> bool:
    return status >= 500 or status == 429


class AblyProvider(RealtimeProvider):
    name: ClassVar[str] = "ably"

    def __init__(self, rest: AblyRest, *, token_ttl_seconds: int, browser: dict[str, Any] | None = None) -> None:
        self._rest = rest
        self._token_ttl_ms = token_ttl_seconds * 1000
        self._browser = browser or {}  # ably-js client options for a host other than Ably's (a stand-in)

    @classmethod
    def from_settings(cls, settings: Settings) -> AblyProvider:
        assert settings.ably_api_key  # checked by Settings
        options: dict[str, Any] = {
            "key": settings.ably_api_key.get_secret_value(),
            "tls": settings.ably_tls,
            "use_binary_protocol": settings.ably_use_binary_protocol,
            "http_open_timeout": settings.publish_timeout_seconds,
            "http_request_timeout": settings.publish_timeout_seconds,
        }
        if settings.ably_endpoint:
            options |= {"endpoint": settings.ably_endpoint, "fallback_hosts": []}
        if settings.ably_port:
            options["tls_port" if settings.ably_tls else "port"] = settings.ably_port
        if not settings.ably_tls:
            options["use_token_auth"] = True  # the SDK refuses basic auth (the key itself) over plain HTTP
        browser: dict[str, Any] = {}
        if settings.ably_endpoint:
            browser = {"endpoint": settings.ably_endpoint, "tls": settings.ably_tls}
            if settings.ably_port:
                browser["tlsPort" if settings.ably_tls else "port"] = settings.ably_port
        return cls(AblyRest(**options), token_ttl_seconds=settings.realtime_token_ttl_seconds, browser=browser)

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        if not events:
            return
        body = [
            {
                "channels": event.channel,
                "messages": {"id": event.id, "name": event.name, "data": encode(event.data), "encoding": "json"},
            }
            for event in events
        ]
        response = await self._post_batch(body)
        if _token_error(response):
            await self._rest.auth.authorize()
            response = await self._post_batch(body)
        failures = _failures(response.items) if response.items else []
        if response.success and not failures:
            return
        status = max([int(f.get("statusCode", 500)) for f in failures] or [response.status_code])
        detail = failures[0].get("message") if failures else response.error_message
        raise RealtimeError(
            f"ably: HTTP {response.status_code} ({response.error_code or '-'}): {detail}",
            transient=_is_transient(status),
        )

    async def _post_batch(self, body: list[dict[str, Any]]) -> Any:
        try:
            return await self._rest.request("POST", "/messages", _PROTOCOL_VERSION, body=body)
        except AblyException as exc:  # raised before the publish itself, e.g. while getting a token
            raise RealtimeError(f"ably: {exc}", transient=_is_transient(exc.status_code)) from exc
        except httpx.HTTPError as exc:
            raise RealtimeError(f"ably: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # an answer in neither JSON nor msgpack: a proxy's error page, not Ably
            raise RealtimeError(f"ably: unreadable answer: {exc}") from exc

    async def token_request(self, grant: ChannelGrant) -> dict[str, Any]:
        """A signed TokenRequest (camelCase, as ably-js takes it from ``authUrl`` or ``authCallback``)."""
        token_request = await self._rest.auth.create_token_request(
            token_params={"client_id": grant.client_id, "capability": capability_for(grant), "ttl": self._token_ttl_ms}
        )
        signed: dict[str, Any] = token_request.to_dict()
        return signed

    async def renew_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        if not grant.channels:  # Ably refuses a token with no capability at all
            raise ForbiddenError(
                "no_channels", "This token may not subscribe to any channel; name an event (eventSlug)"
            )
        return await self.token_request(grant)

    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        return {
            "provider": self.name,
            **self._browser,
            "clientId": grant.client_id,
            "channels": list(grant.channels),
            "channelNames": {channel: channel for channel in grant.channels},
            "authUrl": TOKEN_ENDPOINT,
            # Ably refuses a token with no capability at all; a caller with nothing to see gets no token.
            "tokenRequest": await self.token_request(grant) if grant.channels else None,
        }

    async def aclose(self) -> None:
        await self._rest.close()


def _token_error(response: Any) -> bool:
    code = response.error_code
    return bool(code and code.isdigit() and int(code) in _TOKEN_ERRORS)
