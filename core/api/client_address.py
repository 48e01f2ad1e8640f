"""Who the client is, for the limits per address: taken only from what the deployment's own edge vouches for, as
``CLIENT_ADDRESS_SOURCE`` names it, never from a header the client can write (the leftmost X-Forwarded-For).

- ``peer``: the ASGI client. Under uvicorn that is the TCP peer, replaced by X-Forwarded-For only when the peer is a
  proxy listed in FORWARDED_ALLOW_IPS (and then by the address that proxy saw: infra/nginx overwrites the header with
  it); under Mangum it is API Gateway's ``requestContext`` source IP.
- ``x-real-ip``: the X-Real-IP header, which infra/nginx sets to its peer, for setups where only nginx reaches the app.
- ``vercel``: the X-Real-IP header as Vercel's edge sets it (overwriting whatever the client sent).
"""

from __future__ import annotations

import ipaddress

from starlette.requests import HTTPConnection

from core.settings import ClientAddressSource

# Every address the source cannot vouch for shares this one key: a client that hides its address gains nothing.
UNKNOWN = "unknown"
# An IPv6 client (a home, a phone) gets a whole /64 and can pick any address in it; it is one client.
_IPV6_CLIENT_PREFIX = 64


def normalize(raw: str | None) -> str:
    if not raw:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def client_address(connection: HTTPConnection, source: ClientAddressSource) -> str:
    if source == "peer":
        return normalize(connection.client.host if connection.client else None)
    values = connection.headers.getlist("x-real-ip")
    # One header with one address, as the edge writes it; anything else was not written by the edge alone.
    return normalize(values[0]) if len(values) == 1 else UNKNOWN
