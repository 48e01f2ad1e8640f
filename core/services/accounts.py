"""Admin accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.auth import Principal, dummy_secret_hash, hash_secret, verify_secret
from core.errors import InvalidInputError, UnauthorizedError
from core.models import Admin

MIN_PASSWORD_LENGTH = 10


def normalize_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in cleaned) or len(cleaned) > 320:
        raise InvalidInputError("invalid_input", "email is not a valid address")
    return cleaned


async def upsert_admin(conn: AsyncConnection, *, email: str, password: str) -> int:
    """Creates the admin, or sets a new password where the email exists already."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError("invalid_input", f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    statement = pg_insert(Admin).values(email=normalize_email(email), password_hash=hash_secret(password))
    statement = statement.on_conflict_do_update(
        index_elements=[Admin.email], set_={"password_hash": statement.excluded.password_hash}
    )
    return int(await conn.scalar(statement.returning(Admin.id)) or 0)


async def authenticate(conn: AsyncConnection, *, email: str, password: str) -> Principal:
    row = (
        await conn.execute(
            select(Admin.id, Admin.email, Admin.password_hash).where(Admin.email == email.strip().lower())
        )
    ).one_or_none()
    # Verify even when the account does not exist, so timing does not tell which emails are admins.
    valid = verify_secret(password, row.password_hash if row else dummy_secret_hash())
    if row is None or not valid:
        raise UnauthorizedError("invalid_credentials", "Email or password is wrong")
    return Principal(role="ADMIN", subject=f"admin-{row.id}", email=row.email)
