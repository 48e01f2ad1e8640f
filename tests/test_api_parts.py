"""The whole API includes each part of it on the first request that may need it (``core.api.parts``): an app built
so answers every request, first or not, exactly as one with every part included."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from core.api.app import create_app
from core.api.parts import ANY_SEGMENT, PARTS, Part
from core.api.reference import routes_of
from core.runtime import Runtime
from tests.support.api import Api, bearer

ROUTES = Path(__file__).resolve().parents[1] / "core" / "api" / "routes"
# A path parameter as our routes write one: a whole segment, whose converter cannot match a "/" (":path" can).
WHOLE_SEGMENT_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(:(str|int|float|uuid))?\}")


def _routes(part: Part) -> list[APIRoute]:
    routes = part.router().routes
    # only routes whose paths are checked below: a mount or a websocket route would need a check of its own
    assert routes and all(isinstance(route, APIRoute) for route in routes), part.module
    return [route for route in routes if isinstance(route, APIRoute)]


def _begins_with(route_path: str, beginning: str) -> bool:
    segments, wanted = route_path.split("/"), beginning.split("/")
    if len(segments) < len(wanted):
        return False
    for segment, expected in zip(segments, wanted, strict=False):
        if expected == ANY_SEGMENT:
            if not WHOLE_SEGMENT_PARAMETER.fullmatch(segment):
                return False
        elif segment != expected or "{" in segment:
            return False
    return True


def test_the_parts_are_every_module_of_routes() -> None:
    modules = {path.stem for path in ROUTES.glob("*.py") if not path.stem.startswith("_")}

    assert sorted(part.module for part in PARTS) == sorted(modules)


@pytest.mark.parametrize("part", PARTS, ids=[part.module for part in PARTS])
def test_every_route_of_a_part_begins_with_one_of_its_paths(part: Part) -> None:
    """What makes including a part on demand safe: a path that a part's route matches, or matches but for its
    method (405), or but for a trailing slash (a redirect), is one that the part says it may answer."""
    for route in _routes(part):
        assert any(_begins_with(route.path, beginning) for beginning in part.paths), (part.module, route.path)
        # the segments past the beginning may hold parameters too, but none that could swallow a "/"
        assert ":path}" not in route.path, route.path


def _sample_path(route: APIRoute) -> str:
    return WHOLE_SEGMENT_PARAMETER.sub("1", route.path)


def test_no_route_of_a_part_matches_a_path_of_another_part() -> None:
    """Were one to, which of the two answered would depend on the order the parts were included in."""
    overlapping = [
        (part.module, route.path, other.module, other_route.path)
        for part in PARTS
        for route in _routes(part)
        for other in PARTS
        if other != part
        for other_route in _routes(other)
        if other_route.path_regex.match(_sample_path(route))
    ]

    assert not overlapping


def _requests() -> list[tuple[str, str]]:
    """Each route with a sample of its parameters, with its own methods and a method it does not have, with and
    without a trailing slash; and paths that no route has."""
    requests = []
    for part in PARTS:
        for route in _routes(part):
            path = _sample_path(route)
            for method in sorted(route.methods or ()):
                requests += [(method, path), (method, path + "/")]
            requests.append(("PUT", path))
    return [
        *requests,
        ("GET", "/api/photos/1"),
        ("GET", "/api/photos/1/likes"),
        ("GET", "/api/photos//like"),
        ("GET", "/api/nothing"),
        ("GET", "/api"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/web/realtime.js"),
        ("GET", "/"),
    ]


Answer = tuple[int, str, str, str]


async def _answer(app: FastAPI, method: str, path: str) -> Answer:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, path)
    body = response.text if path in ("/api/openapi.json", "/api/docs") or response.status_code >= 400 else ""
    return response.status_code, response.headers.get("location", ""), response.headers.get("allow", ""), body


async def test_every_request_is_answered_as_by_an_app_with_every_part(runtime: Runtime) -> None:
    """Each request first to a fresh app, and all of them, one after the other, to one app; then the OpenAPI
    schema, as text: the same paths in the same order."""
    whole = create_app(runtime, parts_on_demand=False)
    one_app = create_app(runtime)
    differing = []
    for method, path in _requests():
        expected = await _answer(whole, method, path)
        first = await _answer(create_app(runtime), method, path)
        in_turn = await _answer(one_app, method, path)
        if not first == in_turn == expected:
            differing.append((method, path, first[:3], in_turn[:3], expected[:3]))

    assert not differing
    fresh = create_app(runtime)
    await _answer(fresh, "GET", "/api/health")
    assert (await _answer(fresh, "GET", "/api/openapi.json")) == (await _answer(whole, "GET", "/api/openapi.json"))


def _included(app: FastAPI) -> set[str]:
    """The parts whose routes ``app`` has."""
    modules = {route.endpoint.__module__ for route in routes_of(app) if isinstance(route, APIRoute)}
    return {module.removeprefix("core.api.routes.") for module in modules if module.startswith("core.api.routes.")}


async def test_a_like_includes_the_like_routes_alone_and_later_requests_the_others(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    app = create_app(api.runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        liked = await client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        after_the_like = _included(app)
        comments = await client.get(f"/api/photos/{photo_id}/comments", headers=bearer(guest))
        after_the_comments = _included(app)
        unknown = await client.get("/api/nothing")
        after_the_unknown = _included(app)
        schema = await client.get("/api/openapi.json")

    assert liked.status_code == 200 and liked.json()["likeCount"] == 1
    assert after_the_like == {"likes"}
    assert comments.status_code == 200 and comments.json()["comments"] == []
    assert after_the_comments == {"likes", "photos"}
    assert unknown.status_code == 404
    assert after_the_unknown == {"likes", "photos"}  # no part can answer it: none is needed to refuse it
    assert schema.status_code == 200
    assert _included(app) == {part.module for part in PARTS}


def test_an_app_with_every_part_at_once_matches_them_in_order_before_the_browser_client(runtime: Runtime) -> None:
    app = create_app(runtime, parts_on_demand=False)

    modules = [route.endpoint.__module__ for route in routes_of(app) if isinstance(route, APIRoute)]
    in_order = list(dict.fromkeys(modules))

    assert in_order == [f"core.api.routes.{part.module}" for part in PARTS] + ["core.web"]


async def test_an_app_under_a_root_path_includes_the_parts_of_the_path_its_router_matches(runtime: Runtime) -> None:
    """Mounted under a prefix (a proxy's, a stage's), the request's path begins with it; the router matches what
    follows it, and so must the parts."""
    answers = []
    for app in (create_app(runtime), create_app(runtime, parts_on_demand=False)):
        transport = httpx.ASGITransport(app=app, root_path="/prod", client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers.append((await client.get("/prod/api/health")).status_code)

    assert answers == [200, 200]
