"""The paths a page loads from the API: ``/web/realtime.js``, then the SDK build that realtime.js itself asks for,
read from its ``PROVIDER_SCRIPTS`` so that a path it names but no deployment serves fails a test."""

from __future__ import annotations

import re

from core.web import CLIENT_SCRIPT, WEB_DIR

CLIENT_PATH = f"/web/{CLIENT_SCRIPT}"


def sdk_paths(client_script: str | None = None) -> list[str]:
    text = (WEB_DIR / CLIENT_SCRIPT).read_text() if client_script is None else client_script
    block = re.search(r"const PROVIDER_SCRIPTS = \{(.*?)\};", text, flags=re.DOTALL)
    assert block is not None, "realtime.js no longer has PROVIDER_SCRIPTS"
    return re.findall(r'^\s+\w+: "(/web/vendor/[^"]+)",?$', block.group(1), flags=re.MULTILINE)
