"""Admin accounts."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.auth import Principal, dummy_secret_hash, hash_secret_off_loop, verify_secret_off_loop
from core.errors import InvalidInputError, UnauthorizedError
from core.models import admin_table

MIN_PASSWORD_LENGTH = 12
MIN_PASSWORD_DISTINCT_CHARACTERS = 6
# What a guesser tries first; a password that is one of these once digits and symbols are stripped is refused.
_COMMON_WORDS = frozenset(
    {
        "password", "passwort", "passw", "admin", "administrator", "qwerty", "qwertyuiop", "azerty", "letmein",
        "welcome", "changeme", "changethis", "secret", "login", "iloveyou", "abc", "abcdef", "monkey", "dragon",
        "football", "baseball", "master", "sunshine", "princess", "shadow", "superman", "trustno", "hafiportrait",
        "hafi", "wedding", "portrait", "", "test", "root", "default", "guest", "user",
    }
)  # fmt: skip


def normalize_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in cleaned) or len(cleaned) > 320:
        raise InvalidInputError("invalid_input", "email is not a valid address")
    return cleaned


def password_problem(password: str, *, email: str = "") -> str | None:
    """Why ``password`` is too weak for an admin, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(set(password)) < MIN_PASSWORD_DISTINCT_CHARACTERS:
        return f"password must use at least {MIN_PASSWORD_DISTINCT_CHARACTERS} different characters"
    letters = re.sub(r"[^a-z]", "", password.lower())
    local_part = email.partition("@")[0].lower()
    if letters in _COMMON_WORDS or (local_part and letters == re.sub(r"[^a-z]", "", local_part)):
        return "password is a common word (or the email) with digits or symbols around it; choose a passphrase"
    return None


async def upsert_admin(conn: AsyncConnection, *, email: str, password: str) -> int:
    """Creates the admin, or sets a new password where the email exists already, revoking the tokens issued before
    (their token version no longer matches)."""
    address = normalize_email(email)
    problem = password_problem(password, email=address)
    if problem:
        raise InvalidInputError("weak_password", problem)
    statement = pg_insert(admin_table).values(email=address, password_hash=await hash_secret_off_loop(password))
    statement = statement.on_conflict_do_update(
        index_elements=[admin_table.c.email],
        set_={"password_hash": statement.excluded.password_hash, "token_version": admin_table.c.token_version + 1},
    )
    return int(await conn.scalar(statement.returning(admin_table.c.id)) or 0)


async def authenticate(conn: AsyncConnection, *, email: str, password: str) -> Principal:
    row = (
        await conn.execute(
            select(
                admin_table.c.id, admin_table.c.email, admin_table.c.password_hash, admin_table.c.token_version
            ).where(admin_table.c.email == email.strip().lower())
        )
    ).one_or_none()
    # Verify even when the account does not exist, so timing does not tell which emails are admins.
    valid = await verify_secret_off_loop(password, row.password_hash if row else dummy_secret_hash())
    if row is None or not valid:
        raise UnauthorizedError("invalid_credentials", "Email or password is wrong")
    return Principal(role="ADMIN", subject=f"admin-{row.id}", email=row.email, token_version=row.token_version)


_TOKEN_VERSION = select(admin_table.c.token_version)


async def check_admin_token(conn: AsyncConnection, principal: Principal) -> None:
    """Refuses an admin token issued before the admin's password last changed, or for an admin that is gone: one
    primary-key lookup per admin request (guests' requests make none)."""
    admin_id = principal.subject.removeprefix("admin-")
    current = await conn.scalar(_TOKEN_VERSION.where(admin_table.c.id == int(admin_id))) if admin_id.isdigit() else None
    if current is None or current != principal.token_version:
        raise UnauthorizedError("token_revoked", "This admin token is no longer valid; log in again")
