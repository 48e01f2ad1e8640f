"""What the API serves from web/: the browser client everywhere it runs, and the demo pages under
``hafi-realtime dev``.

The client (``/web/realtime.js``) and the official SDK builds it loads (``/web/vendor/``) are served by every
deployment of the whole API, so a page needs no script host but the API (the Lambda zip and the Vercel build ship
them). The demo gallery at ``/`` and moderation at ``/admin`` are for ``hafi-realtime dev`` only: in production the
platform serves its own pages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


CLIENT_SCRIPT = "realtime.js"
VENDOR_DIR = "vendor"


def mount_client(app: FastAPI, web_dir: Path = WEB_DIR) -> bool:
    """Serves ``/web/realtime.js`` and ``/web/vendor/`` where the artifact has them; returns whether it did."""
    if not (web_dir / CLIENT_SCRIPT).is_file() or not (web_dir / VENDOR_DIR).is_dir():
        return False
    script = web_dir / CLIENT_SCRIPT

    async def client() -> FileResponse:
        return FileResponse(script)

    app.add_api_route(f"/web/{CLIENT_SCRIPT}", client, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(f"/web/{VENDOR_DIR}", StaticFiles(directory=web_dir / VENDOR_DIR), name="vendor")
    return True


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
