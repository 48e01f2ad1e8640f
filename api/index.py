"""Vercel entry point: Vercel's Python runtime serves an ASGI ``app`` itself (no Mangum there)."""

import os

from core.api.app import create_app

# On Vercel the client is in the X-Real-IP header its edge writes (overwriting the client's); the ASGI peer is
# Vercel's own machinery. Set here, where the platform is known, unless the deployment says otherwise.
os.environ.setdefault("CLIENT_ADDRESS_SOURCE", "vercel")

app = create_app()
