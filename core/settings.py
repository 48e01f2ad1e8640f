"""Every setting the backend reads, in one place, from the environment (DESIGN.md "Settings")."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
ProviderName = Literal["ably", "pusher", "socketio", "memory"]

_ABLY_KEY = re.compile(r"^[\w-]+\.[\w-]+:[\w+/=-]+$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    db_pool_size: int = Field(default=1, ge=1, le=100)
    db_connect_timeout: int = Field(default=5, ge=1, le=60)

    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_issuer: str = "hafi-realtime"
    jwt_audience: str = "hafi-realtime"
    guest_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    admin_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    cors_origins: Annotated[list[str], NoDecode] = []
    rate_limit_per_minute: int = Field(default=60, ge=1)

    realtime_provider: ProviderName = "memory"
    publish_timeout_seconds: float = Field(default=3.0, gt=0, le=10)
    # A publisher (request or relay) owns the events it claims for this long; it must be well above the publish
    # timeout so that a claim always outlives the publish attempt that holds it.
    outbox_lease_seconds: int = Field(default=30, ge=15, le=600)
    outbox_max_attempts: int = Field(default=10, ge=1)
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    realtime_token_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)

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
    socketio_path: str = "/api/socket"

    log_level: str = "INFO"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

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
        if self.app_env == "production":
            secret = self.jwt_secret.get_secret_value()
            if secret == DEFAULT_JWT_SECRET or len(secret) < 32:
                raise SettingsError("JWT_SECRET must be set to a random value of at least 32 characters in production")
            if not self.database_url:
                raise SettingsError("DATABASE_URL must be set in production")
            if self.realtime_provider == "memory":
                raise SettingsError("REALTIME_PROVIDER=memory keeps events in one process; choose ably, pusher or socketio")
        self._check_provider_settings()
        return self

    def _check_provider_settings(self) -> None:
        if self.realtime_provider == "ably":
            key = self.ably_api_key.get_secret_value() if self.ably_api_key else ""
            if not key:
                raise SettingsError("ABLY_API_KEY must be set when REALTIME_PROVIDER=ably")
            if not _ABLY_KEY.match(key):
                raise SettingsError("ABLY_API_KEY must look like '<appId>.<keyId>:<secret>'")
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

    @property
    def socketio_redis(self) -> str | None:
        return self.socketio_redis_url or self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (hafi-realtime dev starts an embedded Postgres instead)")
        return self.database_url


@functools.cache
def get_settings() -> Settings:
    return Settings()
