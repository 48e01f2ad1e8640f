"""API Gateway events for invoking the Lambda handler the way AWS does (templates in tests/events/)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

EVENTS = Path(__file__).parent.parent / "events"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def http_event(
    version: str, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) or REST API (v1) proxy event for ``method url``."""
    parts = urlsplit(url)
    event = copy.deepcopy(load("apigw_v2.json" if version == "2.0" else "apigw_v1.json"))
    extra = dict(headers or {})
    encoded = None if body is None else json.dumps(body)
    if encoded is not None:
        extra["content-type"] = "application/json"
    if version == "2.0":
        event["rawPath"] = parts.path
        event["rawQueryString"] = parts.query
        event["requestContext"]["http"].update(method=method, path=parts.path)
        event["headers"].update({k.lower(): v for k, v in extra.items()})
    else:
        event["path"] = parts.path
        event["httpMethod"] = method
        event["requestContext"].update(httpMethod=method, path=f"/prod{parts.path}")
        event["pathParameters"] = {"proxy": parts.path.lstrip("/")}
        query = {k: v for k, v in parse_qs(parts.query).items()}
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None
        event["multiValueQueryStringParameters"] = query or None
        for name, value in extra.items():
            event["headers"][name] = value
            event["multiValueHeaders"][name] = [value]
    event["body"] = encoded
    return event


class FakeContext:
    function_name = "hafi-realtime-api"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
