from __future__ import annotations

import json

import pytest

from tests.support.api import Api, bearer


async def test_each_request_and_publish_is_one_json_line_without_secrets(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    capsys.readouterr()

    await api.client.post(f"/api/photos/{photo_id}/like", headers={**bearer(guest), "X-Request-Id": "req-123"})
    await api.client.post("/api/auth/admin/login", json={"email": "a@b.example", "password": "hunter2-secret"})

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["message"] == "request"]
    publishes = [line for line in lines if line["message"] == "publish"]
    like = requests[0]
    assert like["request_id"] == "req-123"
    assert like["route"] == "/api/photos/{photo_id}/like"
    assert like["status"] == 200 and like["role"] == "GUEST" and like["latency_ms"] > 0
    assert publishes[0]["provider"] == "memory" and publishes[0]["outcome"] == "published"
    assert publishes[0]["events"] == 1
    assert requests[1]["status"] == 401
    everything = "\n".join(json.dumps(line) for line in lines)
    assert guest not in everything and "hunter2-secret" not in everything
