"""What every benchmark shares: percentiles, the machine's description and load, the results folder, servers on
free loopback ports. A benchmark is a module with ``run(smoke: bool) -> dict``; ``bench/__main__.py`` runs them."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).parent
RESULTS_DIR = BENCH_DIR / "results"
JS_DIR = BENCH_DIR / "js"
# Identical for every process a benchmark starts, so that tokens made by one are accepted by the other.
JWT_SECRET = "bench-secret-0123456789-0123456789-0123"
PYTHON_PACKAGES = [
    "fastapi",
    "starlette",
    "uvicorn",
    "mangum",
    "sqlalchemy",
    "psycopg",
    "python-socketio",
    "python-engineio",
    "websockets",
    "pydantic",
]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float | int | None]:
    if not samples_ms:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    ordered = sorted(samples_ms)

    def pick(quantile: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _node_package_version(name: str) -> str | None:
    manifest = JS_DIR / "node_modules" / name / "package.json"
    if not manifest.is_file():
        return None
    import json

    version: str = json.loads(manifest.read_text())["version"]
    return version


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    node = shutil.which("node")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else None
    versions: dict[str, str | None] = {}
    for name in PYTHON_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "node": node_version,
        "python_packages": versions,
        "node_packages": {name: _node_package_version(name) for name in ("socket.io", "socket.io-client")},
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes], *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before answering {url}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def running(command: Sequence[str], *, env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, stopped (SIGTERM, then SIGKILL) when the block ends, whatever happens inside."""
    process = subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_answering(ready_url, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def base_env(**extra: str) -> dict[str, str]:
    """A child's environment: nothing from ours but PATH, so a stray setting cannot change what is measured."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "JWT_SECRET": JWT_SECRET, **extra}
