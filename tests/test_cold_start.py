"""What a cold start imports: the realtime SDKs load only where their provider is chosen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["ably", "pusher", "socketio", "engineio", "redis", "pgserver", "uvicorn"]


def _modules_after_import(module: str, env: dict[str, str]) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return {name.split(".")[0] for name in loaded}


@pytest.mark.parametrize("module", ["functions.api", "functions.outbox_relay"])
def test_a_function_with_the_memory_provider_loads_no_realtime_sdk(module: str) -> None:
    env = {"DATABASE_URL": "postgresql://localhost/none", "JWT_SECRET": "cold-start-0123456789abcdef-0123456789"}
    loaded = _modules_after_import(module, {**env, "PATH": "/usr/bin"})

    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
