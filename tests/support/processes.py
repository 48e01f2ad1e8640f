"""Servers a test or a benchmark starts: waiting until one answers, and stopping it (asked to stop, then killed if it
does not)."""

from __future__ import annotations

import contextlib
import subprocess
import time

import httpx


def stop(process: subprocess.Popen[bytes], *, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
