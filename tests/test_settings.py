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


def test_a_setting_left_empty_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # serverless.yml passes every setting through as ${env:NAME, ''}: what a deployer did not set arrives empty.
    for name in ("DB_PREPARED_STATEMENTS", "ABLY_PORT", "SOCKETIO_REDIS_URL", "CORS_ORIGINS", "JWT_SECRET"):
        monkeypatch.setenv(name, "")

    settings = Settings()

    assert settings.db_prepared_statements is False and settings.ably_port is None
    assert settings.socketio_redis_url is None and settings.cors_origins == []
    with pytest.raises(SettingsError, match="JWT_SECRET must be set"):
        settings.require_jwt_secret()


def test_an_empty_app_env_is_refused_not_taken_for_development(monkeypatch: pytest.MonkeyPatch) -> None:
    # APP_ENV decides how strict every other check is: an empty one must not quietly mean development.
    monkeypatch.setenv("APP_ENV", "")

    with pytest.raises(SettingsError, match="APP_ENV"):
        load_settings()


# Read only by a Socket.IO node (`hafi-realtime socketio`) or the Vercel cron, never by a Lambda function.
_NOT_FOR_LAMBDA = {
    "CRON_SECRET",
    "SOCKETIO_PING_INTERVAL",
    "SOCKETIO_PING_TIMEOUT",
    "SOCKETIO_MAX_MESSAGE_BYTES",
    "SOCKETIO_COMPRESSION_THRESHOLD",
    "SOCKETIO_CONNECTIONS_PER_ADDRESS",
    "SOCKETIO_ADMIN_UI",
    "SOCKETIO_ADMIN_USERNAME",
    "SOCKETIO_ADMIN_PASSWORD",
}


def test_serverless_yml_passes_every_setting_a_function_reads_to_lambda() -> None:
    import yaml

    from tests.deploy.artifacts import ROOT

    text = (ROOT / "serverless.yml").read_text()
    # osls' variables (${env:NAME, 'default'}) are not YAML's business: read the keys only.
    environment = yaml.safe_load(text.replace("${", "$["))["provider"]["environment"]
    every_setting = {name.upper() for name in Settings.model_fields}

    assert every_setting - _NOT_FOR_LAMBDA - set(environment) == set()
    assert set(environment) <= every_setting


def test_the_readme_lists_every_setting() -> None:
    from tests.deploy.artifacts import ROOT

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") : readme.index("## Limits")]

    assert [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table] == []


def test_settings_come_from_variables_of_their_name_in_any_case_and_values_given_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "7")
    monkeypatch.setenv("log_level", "DEBUG")
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "on")
    monkeypatch.setenv("NOT_A_SETTING", "ignored")

    assert Settings().rate_limit_per_minute == 7
    assert Settings(rate_limit_per_minute=9).rate_limit_per_minute == 9
    assert Settings().log_level == "DEBUG"
    assert Settings().db_prepared_statements is True


def test_a_malformed_variable_is_refused_by_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "many")

    with pytest.raises(SettingsError, match="DB_POOL_SIZE"):
        load_settings()


def test_a_setting_given_directly_is_read_in_any_case_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", STRONG)

    with pytest.raises(SettingsError, match="JWT_SECRET must be set"):
        load_settings(
            APP_ENV="production", JWT_SECRET=None, database_url="postgresql://db/app", realtime_provider="ably"
        )
    with pytest.raises(SettingsError, match="JWT_SECRET is too weak"):
        load_settings(JWT_SECRET="short")
    assert load_settings(Db_Pool_Size=5).db_pool_size == 5
