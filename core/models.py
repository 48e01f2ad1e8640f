"""Database tables (SQLAlchemy Core), and the comment as the code passes it around. The schema itself is made only
by the Alembic migrations in infra/migrations; tests/test_migrations.py checks these tables' columns (types,
nullability, server defaults), foreign keys, indexes and unique constraints against it.

Tables, not ORM classes: nothing here loads rows into mapped objects, and declaring them as classes was a
thirtieth of a function's cold start (bench/coldstart.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from core.realtime.channels import SLUG_MAX_LENGTH

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _id() -> Column[int]:
    return Column("id", BigInteger, primary_key=True, autoincrement=True)


def _moment(name: str) -> Column[datetime]:
    """A moment that defaults to the inserting transaction's."""
    return Column(name, DateTime(timezone=True), server_default=func.now(), nullable=False)


def _reference(name: str, target: str, *, index: bool = False, primary_key: bool = False) -> Column[int]:
    """A row's owner: deleting it deletes the row."""
    return Column(
        name, BigInteger, ForeignKey(target, ondelete="CASCADE"), nullable=False, index=index, primary_key=primary_key
    )


event_table = Table(
    "events",
    metadata,
    _id(),
    Column("slug", String(SLUG_MAX_LENGTH), unique=True, nullable=False),
    Column("title", String(200), nullable=False),
    Column("access_code_hash", String(200)),
    _moment("created_at"),
)

photo_table = Table(
    "photos",
    metadata,
    _id(),
    _reference("event_id", "events.id", index=True),
    Column("url", String(2048), nullable=False),
    Column("caption", String(500)),
    Column("like_count", Integer, server_default=text("0"), nullable=False),
    _moment("created_at"),
    CheckConstraint("like_count >= 0", name="like_count_non_negative"),
)

like_table = Table(
    "likes",
    metadata,
    _reference("photo_id", "photos.id", primary_key=True),
    Column("session_id", String(80), primary_key=True),
    _moment("created_at"),
)

comment_table = Table(
    "comments",
    metadata,
    _id(),
    _reference("photo_id", "photos.id"),
    Column("session_id", String(80), nullable=False),
    Column("author_name", String(80), nullable=False),
    Column("content", Text, nullable=False),
    Column("status", String(16), server_default=text("'visible'"), nullable=False),
    _moment("created_at"),
    CheckConstraint("status IN ('visible', 'hidden')", name="status_known"),
    Index("ix_comments_photo_visible", "photo_id", "id", postgresql_where=text("status = 'visible'")),
)

admin_table = Table(
    "admins",
    metadata,
    _id(),
    Column("email", String(320), unique=True, nullable=False),
    Column("password_hash", String(200), nullable=False),
    # Carried in the admin's tokens; raised when the password is set again, which revokes the tokens issued before.
    Column("token_version", Integer, server_default=text("1"), nullable=False),
    _moment("created_at"),
)

# The last ``seq`` handed out per channel. Incrementing it inside the writing transaction locks the row until
# commit, so numbers are gapless: a rolled-back action gives its number back.
#
# It also carries the channel's publish lease (``publisher`` until ``publisher_until``: the one publisher that may
# publish the channel's pending events), the highest seq its publishers published (``published_seq``) and its
# ceiling (``next_publish_at``: the earliest its next publish may start); see core.outbox.publishing.
channel_sequence_table = Table(
    "channel_sequences",
    metadata,
    Column("channel", String(200), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("published_seq", BigInteger, server_default=text("0"), nullable=False),
    Column("publisher", String(64)),
    Column("publisher_until", DateTime(timezone=True)),
    Column("next_publish_at", DateTime(timezone=True)),
)

outbox_table = Table(
    "outbox",
    metadata,
    _id(),
    Column("channel", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event", String(64), nullable=False),  # the message name: photo:liked, comment:added …
    Column("payload", JSONB, nullable=False),
    _moment("created_at"),
    Column("published_at", DateTime(timezone=True)),
    Column("attempts", Integer, server_default=text("0"), nullable=False),
    Column("last_error", Text),
    _moment("next_attempt_at"),
    Column("parked_at", DateTime(timezone=True)),
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

# A key's admitted attempts within its window, counted per second, oldest first; functions are stateless, so they
# live here (see core.ratelimit).
rate_limit_table = Table(
    "rate_limits",
    metadata,
    Column("key", String(200), primary_key=True),
    # the seconds (whole, ascending) in which attempts were admitted, and how many in each
    Column("seconds", ARRAY(DateTime(timezone=True)), server_default=text("'{}'"), nullable=False),
    Column("counts", ARRAY(Integer), server_default=text("'{}'"), nullable=False),
    # The list of attempt times the code before migration 0009 kept, unread since: it stays one release, so that
    # functions running the earlier code while a deploy goes out keep working. A later migration drops it.
    Column("attempts", ARRAY(DateTime(timezone=True)), server_default=text("'{}'"), nullable=False),
    # when the last admitted attempt was made (its statement's now()): how a statement tells that it admitted one
    Column("admitted_at", DateTime(timezone=True)),
    Column("window_seconds", Integer, server_default=text("60"), nullable=False),
)

# The first answer to a mutation sent with an idempotency key, so a retry gets it again (see core.idempotency).
idempotent_request_table = Table(
    "idempotent_requests",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("answer", JSONB, nullable=False),
    _moment("created_at"),
    Index("ix_idempotent_requests_created_at", "created_at"),  # the relay prunes by age
)

# How the realtime provider answered publishers lately, shared by every function through Postgres: while it fails,
# one publisher at a time probes it (``next_probe_at`` is the probe's lease), the rest leave their messages to the
# relay (see core.outbox.publishing).
provider_health_table = Table(
    "provider_health",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("consecutive_failures", Integer, server_default=text("0"), nullable=False),
    Column("failing_since", DateTime(timezone=True)),
    Column("next_probe_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
)


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment as the API answers it and its messages carry it (``core.schemas.comments.CommentOut``)."""

    id: int
    photo_id: int
    author_name: str
    content: str
    created_at: datetime
