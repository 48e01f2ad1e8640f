"""Stopping a server a test or a benchmark started: asked to stop, then killed if it does not."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes], *, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
