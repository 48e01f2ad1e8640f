"""The documentation in docs/ is the contract: generated parts match the code, and nothing points outside the repo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from fastapi.routing import APIRoute

from core.api.deps import acting_caller
from core.api.reference import API_DOC, dependency_calls, reference_app, render, routes_of
from core.api.routes import likes

REPOSITORY = Path(__file__).resolve().parents[1]
# What a clone does not have: the sibling folder the project was first specified in, or this machine's work paths.
OUTSIDE = re.compile(r"\.\./shared\b|/work/(?:shared|main|wt)\b|\bDESIGN\.md\b")


def test_docs_api_md_is_what_the_openapi_schema_gives() -> None:
    expected = render(reference_app())

    assert API_DOC.read_text(encoding="utf-8") == expected, "docs/api.md is stale: run python -m core.api.reference"


def test_every_route_acting_for_a_caller_documents_the_token_and_mutation_id_it_reads() -> None:
    # acting_caller reads both headers itself (core/api/deps.py): only the route's openapi_extra documents them.
    app = reference_app()
    schema = app.openapi()
    acting = [
        (method.lower(), route.path)
        for route in routes_of(app)
        if isinstance(route, APIRoute) and acting_caller in set(dependency_calls(route.dependant))
        for method in route.methods or ()
    ]

    assert len(acting) >= 3  # like, unlike, comment
    for method, path in acting:
        operation = schema["paths"][path][method]
        assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
        assert "x-mutation-id" in [p["name"] for p in operation["parameters"] if p["in"] == "header"], (method, path)


def test_the_like_function_s_schema_defines_the_bearer_scheme_its_routes_name() -> None:
    # The like function serves the like routes alone: no route of its own declares the bearer scheme.
    schema = reference_app(routers=[likes.router]).openapi()

    named = {
        name
        for operation in schema["paths"]["/api/photos/{photo_id}/like"].values()
        for s in operation["security"]
        for name in s
    }
    assert named == {"HTTPBearer"}
    assert set(schema.get("components", {}).get("securitySchemes") or {}) == {"HTTPBearer"}


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    found = []
    for name in filter(None, tracked):
        path = REPOSITORY / name
        if path.suffix in {".png", ".jpg", ".ico"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {match.group(0)}" for match in OUTSIDE.finditer(text)]

    assert found == []
