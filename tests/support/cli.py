"""The installed ``hafi-realtime`` command, found beside the interpreter running the tests (its venv's bin/), so
tests run the real entry point whether or not that venv is on PATH."""

from __future__ import annotations

import sys
from pathlib import Path


def hafi_realtime() -> str:
    script = Path(sys.executable).with_name("hafi-realtime")
    if not script.is_file():
        raise RuntimeError(f"{script} is missing: install the package (pip install -e '.[dev]')")
    return str(script)
