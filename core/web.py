"""The demo pages (web/) for ``hafi-realtime dev``: the gallery at ``/`` and moderation at ``/admin``.

In production the platform serves its own pages; ``web/realtime.js`` is the piece it takes from here.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def mount_web(app: FastAPI, web_dir: Path = WEB_DIR) -> bool:
    """Serves the pages where the source tree has them (an editable install); returns whether it did."""
    if not (web_dir / "index.html").is_file():
        return False
    app.mount("/web", StaticFiles(directory=web_dir), name="web")

    async def gallery() -> FileResponse:
        return FileResponse(web_dir / "index.html")

    async def moderation() -> FileResponse:
        return FileResponse(web_dir / "admin.html")

    app.add_api_route("/", gallery, include_in_schema=False)
    app.add_api_route("/admin", moderation, include_in_schema=False)
    return True
