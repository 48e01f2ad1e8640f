"""The API's parts (a module of routes each) and which request paths each one's routes can answer, so that an app
includes a part on the first request that may need it rather than at its build. A function's cold start then
declares only the routes its first request needs: declaring a route is FastAPI analysing its signature and building
its models, and the routes the API function's first like did not need were about a tenth of its cold start
(bench/coldstart.py)."""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

# Stands for one segment of a path (a path parameter) in a part's path beginnings.
ANY_SEGMENT = "{}"


@dataclass(frozen=True)
class Part:
    """The routes of ``core.api.routes.<module>``; each route's path begins with one of ``paths``, segment by
    segment (``ANY_SEGMENT`` standing for a parameter), which tests/test_api_parts.py holds every route to."""

    module: str
    paths: tuple[str, ...]
    # ``paths`` as one expression, compiled once: it is matched on every request while a part is still waiting
    _beginnings: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_beginnings", re.compile("|".join(_beginning(path) for path in self.paths)))

    def router(self) -> APIRouter:
        router: APIRouter = importlib.import_module(f"core.api.routes.{self.module}").router
        return router

    def may_answer(self, path: str) -> bool:
        return self._beginnings.match(path) is not None


def _beginning(path: str) -> str:
    """A pattern for the paths that begin with ``path``'s segments (a "/" or the end follows the last one)."""
    segments = ("[^/]+" if segment == ANY_SEGMENT else re.escape(segment) for segment in path.split("/"))
    return "/".join(segments) + "(?=/|$)"


# The whole API, in the order its parts are matched against a request, however late each was included: the likes
# and the comments, the hottest, first.
PARTS = (
    Part("likes", ("/api/photos/{}/like",)),
    Part("photos", ("/api/photos/{}/comments",)),
    Part("health", ("/api/health",)),
    Part("auth", ("/api/auth",)),
    Part("events", ("/api/events", "/api/admin/updates")),
    Part("admin", ("/api/admin", "/api/metrics")),
    Part("realtime", ("/api/realtime",)),
    Part("cron", ("/api/cron",)),
)


class PartsOnDemand:
    """The parts an app has not included yet. A request's path includes the ones that may answer it. No route of
    a part can match a path the part does not claim (nor, the claims ending at a segment's end, that path with a
    trailing slash added or taken away), so a path no part claims needs none: the app answers it as one with every
    part would (a 404, the browser client).

    The parts' routes go where they would be had every part been included at the app's build: after the routes
    the app had when this was made (FastAPI's docs), in ``PARTS`` order, before what the app added later (the
    browser client's routes). Each request is then matched as by such an app, and the OpenAPI schema lists the
    same paths in the same order."""

    def __init__(self, app: FastAPI, parts: Sequence[Part] = PARTS) -> None:
        self._app = app
        self._parts = tuple(parts)
        self._waiting = list(parts)
        self._first_position = len(app.router.routes)
        self._routes_of: dict[Part, list[BaseRoute]] = {}
        self._lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def include_for(self, path: str) -> None:
        self._include([part for part in self._waiting if part.may_answer(path)])

    def include_all(self) -> None:
        self._include(list(self._waiting))

    def _include(self, parts: Sequence[Part]) -> None:
        if not parts:
            return
        with self._lock:  # a second thread finds them included, not included twice
            for part in parts:
                if part in self._waiting:
                    self._insert(part)
                    self._waiting.remove(part)

    def _insert(self, part: Part) -> None:
        routes = self._app.router.routes
        before = len(routes)
        self._app.include_router(part.router())  # appends what it includes
        added = routes[before:]
        del routes[before:]
        earlier = self._parts[: self._parts.index(part)]
        position = self._first_position + sum(len(self._routes_of.get(other, ())) for other in earlier)
        routes[position:position] = added
        self._routes_of[part] = added


def route_path(scope: Scope) -> str:
    """The path the app's router matches: the request's, less the ``root_path`` it is mounted under, as Starlette
    takes it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :]
    return path


class IncludingPartsOnDemand:
    """ASGI middleware: includes the parts that may answer a request before the app's router looks for its route."""

    def __init__(self, app: ASGIApp, parts: PartsOnDemand) -> None:
        self.app = app
        self.parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.parts.waiting and scope["type"] in ("http", "websocket"):
            self.parts.include_for(route_path(scope))
        await self.app(scope, receive, send)
