"""What every benchmark shares: percentiles, the machine's description and load, the results folder, servers on
free loopback ports. A benchmark is a module with ``run(smoke: bool) -> dict``; ``bench/__main__.py`` runs them."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from tests.support import processes

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


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def error_lines(self) -> dict[str, int]:
        """The server's error and warning lines, counted by their first words: what failed under load."""
        counts: dict[str, int] = {}
        for line in self.output().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):  # the app's structured log: key by what happened, not when
                failed = record.get("level") in ("warning", "error", "critical") or str(record.get("status", "")) >= "5"
                key = " ".join(str(record.get(f, "")) for f in ("level", "logger", "message", "status", "error"))
                detail = str(record.get("exc_info") or record.get("exception") or "").strip().splitlines()
                key += f" {detail[-1]}" if detail else ""
            else:
                lowered = line.lower()
                failed = any(word in lowered for word in ("error", "warning", "traceback", "exception"))
                key = line.strip()
            if failed:
                counts[key[:200]] = counts.get(key[:200], 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1])[:20])


@contextlib.contextmanager
def running(command: Sequence[str], *, env: dict[str, str], ready_url: str) -> Iterator[RunningServer]:
    """A server process, stopped (SIGTERM, then SIGKILL) when the block ends, whatever happens inside."""
    # Its output goes to a file, not a pipe: a server that logs every request would stall on a full pipe.
    with tempfile.TemporaryFile() as log:
        server = RunningServer(subprocess.Popen(list(command), env=env, stdout=log, stderr=subprocess.STDOUT), log)
        try:
            try:
                processes.wait_until_answering(ready_url, server.process)
            except RuntimeError as error:
                raise RuntimeError(f"{error}; its output ends with: {server.output()[-2000:]}") from error
            yield server
        finally:
            processes.stop(server.process, timeout=15)


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def base_env(**extra: str) -> dict[str, str]:
    """A child's environment: nothing from ours but PATH, so a stray setting cannot change what is measured."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "JWT_SECRET": JWT_SECRET, **extra}
