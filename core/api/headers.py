"""Security headers on every answer: the API's JSON may not be framed, sniffed or used as a page; the demo pages
run scripts from their own origin only; the interactive API docs (development only) get what Swagger UI needs."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Realtime connections go to the provider's host (Ably, Pusher, a Socket.IO node), which may be another origin.
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self' https: wss: http: ws:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's Swagger UI page loads its bundle from jsDelivr and starts it with an inline script.
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' https://fastapi.tiangolo.com data:; "
    "frame-ancestors 'none'"
)
_COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


def _policy(path: str, docs_path: str) -> str:
    if path.startswith(docs_path):
        return _DOCS_POLICY
    if path.startswith("/api/"):
        return _API_POLICY
    return _PAGE_POLICY


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, docs_path: str = "/api/docs") -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = _policy(scope["path"], self.docs_path)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**_COMMON, "content-security-policy": policy}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
