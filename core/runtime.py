"""What one process (a warm Lambda sandbox, a dev server) builds once and reuses: settings, engine, provider."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.realtime.base import RealtimeProvider
from core.realtime.factory import create_provider
from core.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    provider: RealtimeProvider

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.engine.dispose()


def build_runtime(
    settings: Settings, *, engine: AsyncEngine | None = None, provider: RealtimeProvider | None = None
) -> Runtime:
    return Runtime(
        settings=settings,
        engine=engine or create_engine(settings),
        provider=provider or create_provider(settings),
    )
