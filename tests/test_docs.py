"""The documentation in docs/ is the contract: generated parts match the code, and nothing points outside the repo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from core.api.reference import API_DOC, reference_app, render

REPOSITORY = Path(__file__).resolve().parents[1]
# What a clone does not have: the sibling folder the project was first specified in, or this machine's work paths.
OUTSIDE = re.compile(r"\.\./shared\b|/work/(?:shared|main|wt)\b|\bDESIGN\.md\b")


def test_docs_api_md_is_what_the_openapi_schema_gives() -> None:
    expected = render(reference_app())

    assert API_DOC.read_text(encoding="utf-8") == expected, "docs/api.md is stale: run python -m core.api.reference"


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
