from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import Settings, SettingsError, load_settings

STRONG = "0123456789abcdef" * 4


def test_production_refuses_the_default_jwt_secret_and_names_it() -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings(app_env="production", database_url="postgresql://db/app", realtime_provider="ably")


def test_production_refuses_a_short_secret_a_missing_database_and_the_memory_provider() -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings(app_env="production", jwt_secret="short", database_url="postgresql://db/app")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings(app_env="production", jwt_secret=STRONG)
    with pytest.raises(SettingsError, match="REALTIME_PROVIDER"):
        load_settings(app_env="production", jwt_secret=STRONG, database_url="postgresql://db/app")


def test_the_database_url_gets_the_psycopg_driver() -> None:
    assert Settings(database_url="postgres://u:p@h/db").database_url == "postgresql+psycopg://u:p@h/db"
    assert Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    assert Settings().jwt_secret is None


def test_cors_origins_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_the_api_function_refuses_to_start_in_production_with_the_default_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import functions.api"],
        env={"APP_ENV": "production", "DATABASE_URL": "postgresql://db/app", "REALTIME_PROVIDER": "socketio"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "JWT_SECRET must be set" in result.stderr
