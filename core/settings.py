"""Every setting the backend reads, in one place, from the environment (README.md "Settings")."""

from __future__ import annotations

import functools
import os
import re
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

# Published in this repository's history as the built-in development secret: refused everywhere.
PUBLIC_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
SECRET_MIN_LENGTH = 32
# `openssl rand -hex 32` gives 16 distinct characters at most; a secret with fewer than this is a pattern, not random.
SECRET_MIN_DISTINCT_CHARACTERS = 10
# Passwords that ship in examples and tutorials; the Socket.IO Admin UI refuses to start with one of them.
DEFAULT_ADMIN_UI_PASSWORDS = frozenset({"", "admin", "password", "changeme", "changethis", "socketio"})
ProviderName = Literal["ably", "pusher", "socketio", "memory"]
ClientAddressSource = Literal["peer", "x-real-ip", "vercel"]

_ABLY_KEY = re.compile(r"^[\w-]+\.[\w-]+:[\w+/=-]+$")
_PUSHER_KEY = re.compile(r"^[\w.-]+$")
_PUSHER_CLUSTER = re.compile(r"^[a-z0-9-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[?[0-9A-Fa-f:]+\]?$")  # a name or an IP: no scheme, port or path


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(BaseModel):
    """Each setting is read from the environment variable of its name, in any case; values given to the
    constructor, named in any case too, win. A plain pydantic model: pydantic-settings, for what it adds here, was
    a fiftieth of a cold start (bench/coldstart.py)."""

    model_config = ConfigDict(extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    db_pool_size: int = Field(default=1, ge=1, le=100)
    db_connect_timeout: int = Field(default=5, ge=1, le=60)
    # Off by default: transaction-mode poolers older than PgBouncer 1.21 (or without max_prepared_statements) fail
    # on them. On a direct connection, or a pooler that supports them, they spare Postgres parsing and planning
    # every statement again, most of its work per like.
    db_prepared_statements: bool = False

    # Required to serve, except in tests (a random one per process) and under `hafi-realtime dev` (which makes one).
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "hafi-realtime"
    jwt_audience: str = "hafi-realtime"
    guest_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    admin_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    cors_origins: list[str] = []
    rate_limit_per_minute: int = Field(default=60, ge=1)
    # Who the client is, for the limits per address: "peer" is the ASGI client (the TCP peer, which uvicorn takes
    # from X-Forwarded-For only for the proxies in FORWARDED_ALLOW_IPS; API Gateway's source IP under Mangum),
    # "x-real-ip" the header our nginx sets, "vercel" the x-real-ip header Vercel's edge sets. Never the client's own.
    client_address_source: ClientAddressSource = "peer"
    # The ceilings per client address; a venue's guests share one (README "Limits": 500 guests fit).
    address_actions_per_minute: int = Field(default=1200, ge=1)
    guest_sessions_per_address_per_hour: int = Field(default=1000, ge=1)
    credential_checks_per_address_per_minute: int = Field(default=600, ge=1)
    access_code_failures_per_event_per_hour: int = Field(default=200, ge=1)

    realtime_provider: ProviderName = "memory"
    publish_timeout_seconds: float = Field(default=3.0, gt=0, le=10)
    # A publisher (request or relay) owns the events it claims for this long; it must be well above the publish
    # timeout so that a claim always outlives the publish attempt that holds it.
    outbox_lease_seconds: int = Field(default=30, ge=15, le=600)
    outbox_max_attempts: int = Field(default=10, ge=1)
    # Publishes per second on one channel at most (requests and relay alike): events committed meanwhile go out
    # together in the next publish. Ably refuses more than 50 per second per channel; 20 keeps well under it.
    channel_publish_ceiling_per_second: int = Field(default=20, ge=1, le=1000)
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    # Published events stay this long for /updates (clients catching up), then the relay deletes them.
    outbox_retention_days: int = Field(default=30, ge=1, le=3650)
    realtime_token_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    # Lets a platform scheduler (Vercel Cron) run the relay over HTTP: GET /api/cron/relay with this as Bearer.
    cron_secret: SecretStr | None = None

    ably_api_key: SecretStr | None = None
    ably_endpoint: str | None = None
    ably_tls: bool = True
    ably_port: int | None = None
    ably_use_binary_protocol: bool = True

    pusher_app_id: str | None = None
    pusher_key: str | None = None
    pusher_secret: SecretStr | None = None
    pusher_cluster: str | None = None
    pusher_host: str | None = None
    pusher_port: int | None = None
    pusher_scheme: Literal["http", "https"] = "https"

    socketio_redis_url: str | None = None
    redis_url: str | None = None
    # The Redis pub/sub channel Socket.IO nodes and publishers share; deployments sharing one Redis need their own.
    socketio_redis_channel: str = Field(default="socketio", min_length=1, max_length=200)
    socketio_path: str = "/api/socket"
    # Where browsers reach the Socket.IO server; None means the API's own origin (as in `hafi-realtime dev`).
    socketio_public_url: str | None = None
    # The original platform's server options, with its values as defaults.
    socketio_ping_interval: float = Field(default=25.0, gt=0, le=300)
    socketio_ping_timeout: float = Field(default=60.0, gt=0, le=600)
    # Not the original's 1 MB: a client's largest message is a comment (1,080 characters, under 8 KB as JSON), and
    # a polling POST carries at most 16 packets; every request may be held this large while it is read.
    socketio_max_message_bytes: int = Field(default=64 * 1024, ge=1024, le=100_000_000)
    socketio_compression_threshold: int = Field(default=1024, ge=0)
    # Sockets one client address may hold on one node. A venue's guests share its address, so the bound is wide:
    # it stops one client from opening thousands of sessions (and viewers), not a wedding on one Wi-Fi.
    socketio_connections_per_address: int = Field(default=500, ge=1)
    # The Socket.IO Admin UI (https://admin.socket.io), read-only; off unless asked for with real credentials.
    socketio_admin_ui: bool = False
    socketio_admin_username: str = Field(default="admin", min_length=1)
    socketio_admin_password: SecretStr = SecretStr("")

    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _from_the_environment(cls, given: Any) -> Any:
        """The environment under what was given. An empty setting is an unset one (serverless.yml passes every
        setting as ${env:NAME, ''}), except APP_ENV: it decides how strict the other checks are, so an empty one is
        refused, not taken for development."""
        if not isinstance(given, dict):
            return given
        names = cls.model_fields
        environment = {name.lower(): value for name, value in os.environ.items() if name.lower() in names}
        values = environment | {name.lower(): value for name, value in given.items()}
        if values.get("app_env") == "":
            raise ValueError("APP_ENV is empty: set it to production, development or test")
        return {name: value for name, value in values.items() if value != ""}

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("socketio_path")
    @classmethod
    def _normalise_socketio_path(cls, value: str) -> str:
        path = "/" + value.strip("/")
        if path == "/":
            raise ValueError("SOCKETIO_PATH must not be the root path")
        return path

    @field_validator("database_url")
    @classmethod
    def _use_psycopg_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        self._check_secrets()
        if self.app_env == "production":
            if self.jwt_secret is None:
                raise SettingsError(f"JWT_SECRET must be set to a random value of {SECRET_MIN_LENGTH}+ characters")
            if not self.database_url:
                raise SettingsError("DATABASE_URL must be set in production")
            if self.realtime_provider == "memory":
                raise SettingsError(
                    "REALTIME_PROVIDER=memory keeps events in one process; choose ably, pusher or socketio"
                )
        self._check_provider_settings()
        self._check_socketio_admin_ui()
        return self

    def _check_secrets(self) -> None:
        if self.jwt_secret is None and self.app_env == "test":
            self.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        for name, secret in (("JWT_SECRET", self.jwt_secret), ("CRON_SECRET", self.cron_secret)):
            value = secret.get_secret_value() if secret is not None else None
            if value is None or (name == "CRON_SECRET" and not value):
                continue
            if value == PUBLIC_JWT_SECRET:
                raise SettingsError(f"{name} is the public example value; set a random one (openssl rand -hex 32)")
            if len(value) < SECRET_MIN_LENGTH or len(set(value)) < SECRET_MIN_DISTINCT_CHARACTERS:
                raise SettingsError(
                    f"{name} is too weak: use a random value of {SECRET_MIN_LENGTH}+ characters (openssl rand -hex 32)"
                )

    def require_jwt_secret(self) -> str:
        """The token signing secret; serving without one refuses to start (only tests and `hafi-realtime dev`,
        which make their own, run without setting it)."""
        if self.jwt_secret is None:
            raise SettingsError(
                f"JWT_SECRET must be set to a random value of {SECRET_MIN_LENGTH}+ characters (openssl rand -hex 32)"
            )
        return self.jwt_secret.get_secret_value()

    def _check_socketio_admin_ui(self) -> None:
        if not self.socketio_admin_ui:
            return
        if self.socketio_admin_password.get_secret_value().strip().lower() in DEFAULT_ADMIN_UI_PASSWORDS:
            raise SettingsError(
                "SOCKETIO_ADMIN_PASSWORD must be set, to a non-default value, when SOCKETIO_ADMIN_UI=on"
            )
        if not self.cors_origins:
            raise SettingsError(
                "SOCKETIO_ADMIN_UI needs CORS_ORIGINS to list the site's own origins: allowing the Admin UI's origin "
                "replaces Socket.IO's same-origin default"
            )

    def _check_provider_settings(self) -> None:
        if self.realtime_provider == "ably":
            key = self.ably_api_key.get_secret_value() if self.ably_api_key else ""
            if not key:
                raise SettingsError("ABLY_API_KEY must be set when REALTIME_PROVIDER=ably")
            if not _ABLY_KEY.match(key):
                raise SettingsError("ABLY_API_KEY must look like '<appId>.<keyId>:<secret>'")
            # An endpoint is a host, or a routing policy such as "main" or "nonprod:sandbox".
            endpoint = self.ably_endpoint.removeprefix("nonprod:") if self.ably_endpoint else None
            _check_host("ABLY_ENDPOINT", endpoint, "use ABLY_TLS and ABLY_PORT")
            _check_port("ABLY_PORT", self.ably_port)
        elif self.realtime_provider == "pusher":
            missing = [
                name
                for name, value in (
                    ("PUSHER_APP_ID", self.pusher_app_id),
                    ("PUSHER_KEY", self.pusher_key),
                    ("PUSHER_SECRET", self.pusher_secret and self.pusher_secret.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"{', '.join(missing)} must be set when REALTIME_PROVIDER=pusher")
            if not (self.pusher_app_id or "").isdigit():
                raise SettingsError("PUSHER_APP_ID must be the numeric app id")
            if not self.pusher_cluster and not self.pusher_host:
                raise SettingsError("PUSHER_CLUSTER (or PUSHER_HOST for a self-hosted server) must be set")
            if not _PUSHER_KEY.match(self.pusher_key or ""):
                raise SettingsError("PUSHER_KEY must be the app key (letters, digits, '_', '.', '-'), not the secret")
            if self.pusher_cluster and not _PUSHER_CLUSTER.match(self.pusher_cluster):
                raise SettingsError("PUSHER_CLUSTER must be a cluster name such as 'mt1' or 'eu'")
            _check_host("PUSHER_HOST", self.pusher_host, "use PUSHER_SCHEME and PUSHER_PORT")
            _check_port("PUSHER_PORT", self.pusher_port)

    @property
    def socketio_redis(self) -> str | None:
        return self.socketio_redis_url or self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (hafi-realtime dev starts an embedded Postgres instead)")
        return self.database_url


def _check_host(name: str, host: str | None, instead: str) -> None:
    if host is not None and not _HOST.match(host):
        raise SettingsError(f"{name} must be a bare host name or IP address, without scheme, port or path ({instead})")


def _check_port(name: str, port: int | None) -> None:
    if port is not None and not 0 < port < 65536:
        raise SettingsError(f"{name} must be a TCP port (1-65535)")


def _explain(error: ValidationError) -> str:
    messages = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        messages.append(f"{field}: {message}" if field else message)
    return "; ".join(messages)


def load_settings(**overrides: Any) -> Settings:
    """Reads the environment (``overrides`` win); raises ``SettingsError`` naming each bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


@functools.cache
def get_settings() -> Settings:
    return load_settings()
