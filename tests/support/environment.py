"""What the tests take from the machine (where Postgres and Redis are) and nothing else: every setting a test runs
with comes from the test itself, whatever the developer has exported (JWT_SECRET, RATE_LIMIT_PER_MINUTE …)."""

from __future__ import annotations

import os

from core.settings import Settings

# Read before the settings variables are cleared: the servers the fixtures use (an embedded Postgres without one).
DATABASE_SERVER_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
REDIS_SERVER_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123"


def clear_settings_variables() -> None:
    """Removes every variable ``Settings`` reads, so that neither the app under test nor the subprocesses the tests
    start (CLI, Socket.IO nodes) see the developer's values."""
    for name in [name for name in os.environ if name.lower() in Settings.model_fields]:  # read in any case
        del os.environ[name]


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "database_url": database_url,
        "realtime_provider": "memory",
        "db_pool_size": 20,
        "jwt_secret": TEST_JWT_SECRET,
        "publish_timeout_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


def redis_url() -> str | None:
    """The Redis to test against; tests that need it skip without one unless REDIS_REQUIRED is set."""
    try:
        import redis

        redis.Redis.from_url(REDIS_SERVER_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("REDIS_REQUIRED"):
            raise RuntimeError(
                f"REDIS_REQUIRED is set but Redis at {REDIS_SERVER_URL} is not reachable: {exc}"
            ) from exc
        return None
    return REDIS_SERVER_URL
