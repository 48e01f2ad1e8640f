"""Attacks on secrets and tokens (issue 9): the public built-in secret, weak secrets and passwords, tokens that
outlive a password reset, and internals in error bodies."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import jwt
import pytest

from core.api.app import create_app
from core.runtime import Runtime, build_runtime
from core.settings import PUBLIC_JWT_SECRET, SettingsError, load_settings
from tests.support.api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, bearer
from tests.support.cli import hafi_realtime

STRONG = "0123456789abcdef" * 4


def _admin_claims(secret: str, **extra: object) -> str:
    now = int(time.time())
    claims = {"iss": "hafi-realtime", "aud": "hafi-realtime", "sub": "admin-1", "role": "ADMIN", "iat": now}
    return jwt.encode({**claims, "exp": now + 600, **extra}, secret, algorithm="HS256")


@pytest.mark.parametrize("entry", ["functions.api", "api.index"])
def test_serving_without_app_env_and_jwt_secret_refuses_to_start_and_names_the_setting(entry: str) -> None:
    """As vercel.json deploys it: no APP_ENV, no JWT_SECRET."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {entry}"],
        env={"DATABASE_URL": "postgresql://db/app", "REALTIME_PROVIDER": "memory"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "JWT_SECRET must be set" in result.stderr


def test_a_socketio_node_refuses_to_start_without_the_secret() -> None:
    env = {"DATABASE_URL": "postgresql://db/app", "SOCKETIO_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [hafi_realtime(), "socketio", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "JWT_SECRET must be set" in result.stderr


def test_the_app_refuses_to_be_built_without_a_secret_outside_tests() -> None:
    development = load_settings(app_env="development", database_url="postgresql://db/app")
    runtime = build_runtime(development)

    with pytest.raises(SettingsError, match="JWT_SECRET"):
        create_app(runtime)


async def test_an_admin_token_signed_with_the_public_built_in_secret_is_refused(api: Api) -> None:
    await api.event("wedding")
    forged = _admin_claims(PUBLIC_JWT_SECRET, ver=1)

    response = await api.client.get("/api/admin/comments", headers=bearer(forged))

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", PUBLIC_JWT_SECRET),
        ("JWT_SECRET", "a" * 64),
        ("JWT_SECRET", "abababababababababababababababababab"),
        ("JWT_SECRET", "short-but-varied-0123"),
        ("CRON_SECRET", "a"),
        ("CRON_SECRET", "x" * 40),
    ],
)
def test_weak_secrets_are_refused_naming_the_setting(name: str, value: str) -> None:
    values = {"app_env": "production", "database_url": "postgresql://db/app", "realtime_provider": "socketio"}
    values = {"jwt_secret": STRONG, **values, name.lower(): value}
    with pytest.raises(SettingsError, match=name):
        load_settings(**values)


def test_a_random_secret_is_accepted() -> None:
    settings = load_settings(
        app_env="production",
        database_url="postgresql://db/app",
        realtime_provider="socketio",
        jwt_secret="9f1c2be07a54d3e86b1f0c4a7d29e53b" * 2,
        cron_secret="Zq3-vT8_pL2mW9xR4kN7cY1bH6jF0sD5",
    )
    assert settings.require_jwt_secret().startswith("9f1c")


def _create_admin(runtime: Runtime, password: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": runtime.settings.require_database_url(), "ADMIN_PASSWORD": password}
    return subprocess.run(
        [hafi_realtime(), "create-admin", "--email", ADMIN_EMAIL], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("password", ["password12", "Password123!", "aaaaaaaaaaaaaaaa", "admin@2026!!", "short"])
def test_weak_admin_passwords_are_refused(runtime: Runtime, password: str) -> None:
    result = _create_admin(runtime, password)

    assert result.returncode != 0
    assert "password" in result.stderr


async def test_resetting_an_admins_password_revokes_the_tokens_issued_before(api: Api) -> None:
    old = await api.admin()
    assert (await api.client.get("/api/admin/comments", headers=bearer(old))).status_code == 200

    reset = _create_admin(api.runtime, "a brand new passphrase")
    revoked = await api.client.get("/api/admin/comments", headers=bearer(old))
    new_login = await api.client.post(
        "/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": "a brand new passphrase"}
    )
    old_password = await api.client.post(
        "/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )

    assert reset.returncode == 0, reset.stderr
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "token_revoked"
    assert new_login.status_code == 200
    fresh = new_login.json()["token"]
    assert (await api.client.get("/api/admin/comments", headers=bearer(fresh))).status_code == 200
    assert old_password.status_code == 401


async def test_an_admin_token_without_a_version_is_refused(api: Api) -> None:
    await api.admin()
    unversioned = _admin_claims(api.runtime.settings.require_jwt_secret())

    response = await api.client.get("/api/admin/comments", headers=bearer(unversioned))

    assert response.status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        _admin_claims("someone-elses-secret-that-is-long-enough-0123", ver=1),
        "not.a.jwt",
        jwt.encode({"role": "GUEST"}, "x" * 40, algorithm="HS256"),
    ],
    ids=["bad-signature", "garbage", "missing-claims"],
)
async def test_token_errors_say_our_words_and_log_the_reason(
    api: Api, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    response = await api.client.get("/api/events/wedding", headers=bearer(token))

    assert response.status_code == 401
    assert response.json() == {"error": {"code": "invalid_token", "message": "The token is not valid"}}
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["message"] == "token refused" and line.get("reason") for line in logged)


@pytest.mark.parametrize("cron_secret", [None, STRONG[::-1]])
def test_the_vercel_entry_in_production_says_at_start_when_nothing_can_run_the_relay(cron_secret: str | None) -> None:
    # On Vercel the relay runs only as Vercel Cron calling /api/cron/relay with CRON_SECRET; without it, publishes
    # that failed wait for a scheduler that never comes.
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql://db/app",
        "JWT_SECRET": STRONG,
        "REALTIME_PROVIDER": "ably",
        "ABLY_API_KEY": "app.key:secret",
    }
    if cron_secret:
        env["CRON_SECRET"] = cron_secret
    result = subprocess.run(
        [sys.executable, "-c", "import api.index"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    warned = "CRON_SECRET" in result.stdout + result.stderr
    assert warned == (cron_secret is None), result.stdout + result.stderr
