"""docs/api.md, written from the app's OpenAPI schema: ``python -m core.api.reference`` (``--check`` only compares).

The schema says what each route takes and answers; who may call a route is read from its dependencies (the schema
lists the bearer token for optional and required tokens alike).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from core.api.app import create_app
from core.api.deps import acting_caller, current_admin, current_principal, optional_principal
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import Settings

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"

_WHO: list[tuple[Callable[..., Any], str]] = [
    (current_admin, "admin token"),
    (current_principal, "guest or admin token"),
    (acting_caller, "guest or admin token"),
    (optional_principal, "anyone; a token may see more"),
]
_SCHEMA_PREFIX = "#/components/schemas/"
_CONSTRAINTS = (
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches `{}`"),
    ("format", "{}"),
    ("default", "default `{}`"),
)


def reference_app(routers: Sequence[APIRouter] | None = None) -> FastAPI:
    """The app as deployed (the whole API, or a function's ``routers``), on a runtime that never connects: the
    schema needs no database or provider."""
    settings = Settings(
        app_env="development",
        database_url="postgresql://unused/unused",
        realtime_provider="memory",
        jwt_secret=secrets.token_hex(32),  # signs nothing: the schema is all this app is asked for
    )
    # every part at once: its routes are read as well as its schema
    return create_app(build_runtime(settings, provider=MemoryProvider()), routers=routers, parts_on_demand=False)


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from dependency_calls(dependency)


def routes_of(app: FastAPI) -> Iterator[BaseRoute]:
    # FastAPI 0.165 keeps included routers whole in ``app.routes``; its public iterator opens them up.
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:
        yield from app.routes
    else:
        yield from (context.original_route for context in iterate(app.routes))


def _who(app: FastAPI) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for route in routes_of(app):
        if isinstance(route, APIRoute):
            calls = set(dependency_calls(route.dependant))
            who = next((label for call, label in _WHO if call in calls), "no token")
            for method in route.methods or ():
                found[(method.lower(), route.path)] = who
    return found


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_SCHEMA_PREFIX)
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return " \\| ".join(f'`"{value}"`' for value in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return "object"
    return str(schema.get("type", "any"))


def _constraints(schema: dict[str, Any]) -> str:
    options = [schema, *schema.get("anyOf", [])]
    found = [text.format(option[key]) for option in options for key, text in _CONSTRAINTS if key in option]
    return "; ".join(found)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _operation(method: str, path: str, operation: dict[str, Any], who: str) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", f"Who: {who}."]
    if description := operation.get("description"):
        lines += ["", " ".join(description.split())]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | type | required | constraints |", "| --- | --- | --- | --- | --- |"]
        for p in parameters:
            schema = p.get("schema", {})
            required = "yes" if p.get("required") else "no"
            details = _cell("; ".join(filter(None, [_constraints(schema), p.get("description", "")])))
            lines.append(f"| `{p['name']}` | {p['in']} | {_type(schema)} | {required} | {details} |")
    if body := operation.get("requestBody"):
        schema = body["content"]["application/json"]["schema"]
        optional = "" if body.get("required") else " (optional)"
        lines += ["", f"Body{optional}: {_type(schema)}"]
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            continue  # every route may answer the errors listed once at the top
        content = response.get("content", {}).get("application/json", {})
        answer = _type(content["schema"]) if content.get("schema") else "no body"
        lines += ["", f"Answers {status}: {answer}"]
    return lines


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if description := schema.get("description"):
        lines += [" ".join(description.split()), ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | constraints |", "| --- | --- | --- | --- |"]
    for field, field_schema in schema.get("properties", {}).items():
        mark = "yes" if field in required else "no"
        lines.append(f"| `{field}` | {_type(field_schema)} | {mark} | {_cell(_constraints(field_schema))} |")
    return lines


def render(app: FastAPI) -> str:
    schema = app.openapi()
    who = _who(app)
    errors = next(iter(schema["paths"].values()))
    error_statuses = next(iter(errors.values()))["responses"]
    lines = [
        "# HTTP API",
        "",
        "<!-- Generated from the app's OpenAPI schema by `python -m core.api.reference`; edit the code, not this. -->",
        "",
        f"{schema['info']['description']} Every body is JSON with camelCase names. A running server serves the",
        "same schema at `/api/openapi.json` and an interactive page at `/api/docs`.",
        "",
        "Tokens come from `POST /api/auth/guest` and `POST /api/auth/admin/login` and go in",
        "`Authorization: Bearer <token>`. `X-Mutation-Id` (1-64 of `A-Z a-z 0-9 _ . : -`) is echoed as `mutationId`",
        "in the realtime events the request causes (docs/realtime.md).",
        "",
        'Every route may answer an error, always as [ErrorResponse](#errorresponse) `{"error": {"code", "message"}}`:',
        "",
        "| status | meaning |",
        "| --- | --- |",
        *(f"| {status} | {r['description']} |" for status, r in error_statuses.items() if status[0] in "45"),
        "",
        "A 429 carries `Retry-After` (seconds). A 500 is always a bug.",
        "",
        "## Routes",
        "",
        "| method and path | who | does |",
        "| --- | --- | --- |",
    ]
    operations = [(m, p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]
    for method, path, operation in operations:
        lines.append(f"| `{method.upper()} {path}` | {who[(method, path)]} | {operation['summary']} |")
    for method, path, operation in operations:
        lines += ["", *_operation(method, path, operation, who[(method, path)])]
    lines += ["", "## Bodies"]
    for name, component in schema["components"]["schemas"].items():
        lines += ["", *_schema(name, component)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is not what the schema gives")
    args = parser.parse_args(argv)
    text = render(reference_app())
    if args.check:
        if API_DOC.read_text(encoding="utf-8") != text:
            print(f"{API_DOC} is out of date: run python -m core.api.reference", file=sys.stderr)
            return 1
        return 0
    API_DOC.write_text(text, encoding="utf-8")
    print(f"wrote {API_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
