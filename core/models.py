"""Database tables (SQLAlchemy 2). The schema itself is made only by the Alembic migrations in infra/migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.realtime.channels import SLUG_MAX_LENGTH

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(SLUG_MAX_LENGTH), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    access_code_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (CheckConstraint("like_count >= 0", name="like_count_non_negative"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    caption: Mapped[str | None] = mapped_column(String(500))
    like_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = _now()


class Like(Base):
    __tablename__ = "likes"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = _now()


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("status IN ('visible', 'hidden')", name="status_known"),
        Index("ix_comments_photo_visible", "photo_id", "id", postgresql_where=text("status = 'visible'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(80))
    author_name: Mapped[str] = mapped_column(String(80))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'visible'"))
    created_at: Mapped[datetime] = _now()


class Admin(Base):
    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # Carried in the admin's tokens; raised when the password is set again, which revokes the tokens issued before.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()


class ChannelSequence(Base):
    """The last ``seq`` handed out per channel. Incrementing it inside the writing transaction locks the row until
    commit, so numbers are gapless: a rolled-back action gives its number back.

    It also carries the channel's publish lease (``publisher`` until ``publisher_until``: the one publisher that may
    publish the channel's pending events), the highest seq its publishers published (``published_seq``) and its
    ceiling (``next_publish_at``: the earliest its next publish may start); see core.outbox.publishing."""

    __tablename__ = "channel_sequences"

    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    published_seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    publisher: Mapped[str | None] = mapped_column(String(64))
    publisher_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_publish_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("channel", "seq", name="uq_outbox_channel_seq"),
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            "id",
            postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
        # A channel's pending events, for the publisher holding its lease (the unique index would read its whole log).
        Index(
            "ix_outbox_pending_channel",
            "channel",
            "seq",
            postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))  # the message name: photo:liked, comment:added …
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = _now()
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLimit(Base):
    """A key's admitted attempts within its window, counted per second, oldest first; functions are stateless, so
    they live here (see core.ratelimit)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # the seconds (whole, ascending) in which attempts were admitted, and how many in each
    seconds: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)), server_default=text("'{}'"))
    counts: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default=text("'{}'"))
    # The list of attempt times the code before migration 0009 kept, unread since: it stays one release, so that
    # functions running the earlier code while a deploy goes out keep working. A later migration drops it.
    attempts: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)), server_default=text("'{}'"))
    # when the last admitted attempt was made (its statement's now()): how a statement tells that it admitted one
    admitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_seconds: Mapped[int] = mapped_column(Integer, server_default=text("60"))


class IdempotentRequest(Base):
    """The first answer to a mutation sent with an idempotency key, so a retry gets it again (see core.idempotency)."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (Index("ix_idempotent_requests_created_at", "created_at"),)  # the relay prunes by age

    identity: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class ProviderHealth(Base):
    """How the realtime provider answered publishers lately, shared by every function through Postgres: while it
    fails, one publisher at a time probes it (``next_probe_at`` is the probe's lease), the rest leave their messages
    to the relay (see core.outbox.publishing)."""

    __tablename__ = "provider_health"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_probe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
