from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime, build_runtime
from core.settings import Settings
from tests.support.api import Api
from tests.support.database import empty_tables, fresh_database
from tests.support.environment import clear_settings_variables, make_settings
from tests.support.sockets import LiveServer, live_node

clear_settings_variables()

pytest_plugins = ["tests.support.published_events"]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def session_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, provider=MemoryProvider())
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def runtime(session_runtime: Runtime) -> AsyncIterator[Runtime]:
    """The shared runtime with an empty database and a fresh memory provider."""
    await empty_tables(session_runtime.engine)
    provider = session_runtime.provider
    assert isinstance(provider, MemoryProvider)
    provider.reset()
    yield session_runtime


@pytest.fixture
def provider(runtime: Runtime) -> MemoryProvider:
    assert isinstance(runtime.provider, MemoryProvider)
    return runtime.provider


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[Api]:
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, runtime)


@pytest.fixture(scope="module")
def socket_settings(database_url: str) -> Settings:
    """A Socket.IO node's settings, with room for the many actions its tests send from one identity."""
    return make_settings(database_url, realtime_provider="socketio", rate_limit_per_minute=10_000)


@pytest.fixture
async def live(socket_settings: Settings, session_runtime: Runtime) -> AsyncIterator[LiveServer]:
    """The API and a Socket.IO node serving on loopback, as ``hafi-realtime socketio`` runs it, on an empty
    database as ``runtime`` gives: what an earlier test left pending on the admins' channel would otherwise go out
    with this test's first message there, as one group."""
    await empty_tables(session_runtime.engine)
    async with live_node(socket_settings) as server:
        yield server
