"""Who is calling: tokens (JWT, HS256) and password hashing (scrypt)."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import secrets
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Literal

from core.errors import UnauthorizedError
from core.settings import Settings

Role = Literal["GUEST", "ADMIN"]

log = logging.getLogger("hafi.auth")

# scrypt at n=2**14, r=8 is the cost OWASP lists as a floor for interactive logins (about 16 MiB, tens of ms).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


@dataclass(frozen=True)
class Principal:
    """The caller of a request. ``subject`` is the guest's session id or ``admin:{id}``: one identity for likes,
    rate limits and realtime client ids. ``events`` lists the protected events a guest has unlocked."""

    role: Role
    subject: str
    events: frozenset[str] = frozenset()
    email: str | None = None
    # An admin's token carries the admin row's token version; a password change raises it (revoking the token).
    token_version: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"


class _CryptographyHiddenFromPyJWT:
    """A finder at the head of ``sys.meta_path`` that fails an import of ``cryptography`` (or a module of it not
    imported yet) as if it were not installed, in the one thread loading PyJWT and only while it does; every other
    import, and every other thread, it leaves to the finders after it."""

    def __init__(self) -> None:
        self._loading = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if getattr(self._loading, "pyjwt", False) and fullname.partition(".")[0] == "cryptography":
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

    def load_pyjwt(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        self._loading.pyjwt = True
        try:
            import jwt  # noqa: F401
        except ImportError:
            pass  # a PyJWT that cannot do without it: the caller's own import loads both
        finally:
            self._loading.pyjwt = False


_pyjwt_loader = _CryptographyHiddenFromPyJWT()
_pyjwt_loading = threading.Lock()


def load_pyjwt() -> None:
    """Loads PyJWT, on first use: /api/health does not need it. Loaded without the ``cryptography`` package unless
    something has loaded that already: our tokens are HS256 only (the standard library's HMAC), and PyJWT imports
    ``cryptography`` for its RSA and EC keys, which no token is ever accepted with. That import was half of the like
    function's first request (21 ms, bench/coldstart.py). ``cryptography`` is installed only because Pusher's SDK
    requires pyOpenSSL; anything else that imports it, in any thread, gets it."""
    if "jwt" in sys.modules:
        return
    with _pyjwt_loading:
        _pyjwt_loader.load_pyjwt()


def new_guest_session_id() -> str:
    return f"guest-{uuid.uuid4().hex}"


def issue_token(principal: Principal, settings: Settings) -> tuple[str, int]:
    """Returns the signed token and its lifetime in seconds."""
    load_pyjwt()
    import jwt

    ttl = settings.admin_token_ttl_seconds if principal.is_admin else settings.guest_token_ttl_seconds
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": principal.subject,
        "sid": principal.subject,
        "role": principal.role,
        "iat": now,
        "exp": now + ttl,
    }
    if principal.events:
        claims["events"] = sorted(principal.events)
    if principal.email:
        claims["email"] = principal.email
    if principal.token_version is not None:
        claims["ver"] = principal.token_version
    return jwt.encode(claims, settings.require_jwt_secret(), algorithm="HS256"), ttl


# Tokens verified lately, by their text, with their principal and ``exp``, for the terms (secret, issuer, audience)
# they verified under. A guest sends the same token with every like; verifying it again (PyJWT's key checks, HMAC and
# claims) was 13% of a like's Python in a profile of 200 concurrent likes. Only a token that verified is kept, so
# nothing sent can make a refused one pass; its expiry is still checked on every use. Oldest out first, past
# ``_VERIFIED_MAX``.
_VERIFIED_MAX = 4096
_verified: OrderedDict[str, tuple[Principal, float, tuple[str, str, str]]] = OrderedDict()


def verify_token(token: str, settings: Settings) -> Principal:
    """The token's principal; an admin's is still to be checked against its row (``accounts.check_admin_token``)."""
    return verify_token_until(token, settings)[0]


def verify_token_until(token: str, settings: Settings) -> tuple[Principal, float]:
    """``verify_token``, and the token's ``exp`` (wall-clock seconds): how long a connection may go on holding it."""
    terms = (settings.require_jwt_secret(), settings.jwt_issuer, settings.jwt_audience)
    known = _verified.get(token)
    if known is not None and known[2] == terms:
        principal, expires_at, _ = known
        ensure_unexpired(expires_at)
        return principal, expires_at
    principal, expires_at = _verify_signed(token, settings)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.popitem(last=False)
    _verified[token] = (principal, expires_at, terms)
    return principal, expires_at


def token_expired() -> UnauthorizedError:
    return UnauthorizedError("token_expired", "The token has expired; ask for a new one")


def ensure_unexpired(expires_at: float) -> None:
    """Refuses a token verified earlier once past its ``exp``, as PyJWT decides: no leeway."""
    if time.time() >= expires_at:
        raise token_expired()


def _verify_signed(token: str, settings: Settings) -> tuple[Principal, float]:
    load_pyjwt()
    import jwt

    try:
        claims = jwt.decode(
            token,
            settings.require_jwt_secret(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise token_expired() from None
    except jwt.PyJWTError as exc:
        # Why it failed is for our log, not for whoever sent it.
        log.info("token refused", extra={"reason": str(exc)[:200]})
        raise UnauthorizedError("invalid_token", "The token is not valid") from None
    role = claims.get("role")
    events = claims.get("events", [])
    version = claims.get("ver")
    if (
        role not in ("GUEST", "ADMIN")
        or not isinstance(events, list)
        or not all(isinstance(e, str) for e in events)
        or (role == "ADMIN" and (not isinstance(version, int) or isinstance(version, bool)))
    ):
        raise UnauthorizedError("invalid_token", "The token is not valid")
    principal = Principal(
        role=role,
        subject=str(claims["sub"]),
        events=frozenset(events),
        email=claims.get("email"),
        token_version=version if role == "ADMIN" else None,
    )
    return principal, float(claims["exp"])


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    encode = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


async def hash_secret_off_loop(secret: str) -> str:
    """``hash_secret`` in a worker thread: a scrypt takes tens of ms, which on the event loop would stall every other
    request of the process (hashlib releases the GIL while it runs)."""
    return await asyncio.to_thread(hash_secret, secret)


async def verify_secret_off_loop(secret: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_secret, secret, stored)


@functools.cache
def dummy_secret_hash() -> str:
    """Verifying against this when an account does not exist keeps a login's timing the same for known and unknown
    emails. Made on first use: a scrypt hash costs tens of milliseconds, too much for every cold start."""
    return hash_secret(secrets.token_urlsafe(16))
