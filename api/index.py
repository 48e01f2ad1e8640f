"""Vercel entry point: Vercel's Python runtime serves an ASGI ``app`` itself (no Mangum there)."""

from core.api.app import create_app

app = create_app()
