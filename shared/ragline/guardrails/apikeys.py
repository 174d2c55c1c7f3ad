"""API keys: `rl_<prefix>_<secret>`; only the prefix and an HMAC-SHA256 of the key are stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, UnauthenticatedError, ValidationError
from ragline.db import tenancy
from ragline.db.models import ApiKey

#: `act_as_user`: a key created for a user (`user_id`) acts as that user (their rate limit,
#: runs and document permissions); without it the key is the org's server key (issue 18).
SCOPES = ("read", "write", "admin", "act_as_user")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key or the signed-in user, and the org it binds the request to."""

    api_key_id: uuid.UUID | None
    org_id: uuid.UUID
    scopes: frozenset[str]
    #: The end user (a token, or a key with `act_as_user`); None: a server key.
    user_id: uuid.UUID | None = None
    groups: frozenset[str] = frozenset()
    #: A verified ID token's identity (`ragline.guardrails.oidc.Identity`), for first sign-in.
    identity: Any = None

    @property
    def caller_id(self) -> uuid.UUID:
        """Whose rate-limit bucket a request takes from: the user's, else the key's."""
        caller = self.user_id or self.api_key_id
        assert caller is not None
        return caller

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def principals(self) -> frozenset[str] | None:
        """The `app.principals` of the caller: None (whole org) for a server key."""
        if self.user_id is None:
            return None
        return frozenset({f"user:{self.user_id}", *(f"group:{g}" for g in self.groups)})


def hash_key(raw: str, pepper: str | None = None) -> str:
    """Keyed hash of a full API key (the pepper is a server secret, never in the database)."""
    if pepper is None:
        try:
            pepper = get_settings().pepper()
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    secret = pepper
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()


_KEY_SHAPE = re.compile(r"rl_([0-9a-f]{12})_([A-Za-z0-9-]{20,200})")


def parse_key(raw: str) -> str:
    """The prefix of a well-formed key (`rl_<12 hex>_<20-200 url-safe chars>`), else
    UnauthenticatedError: checked before any SQL, so nothing odd (a NUL) reaches Postgres."""
    match = _KEY_SHAPE.fullmatch(raw)
    if match is None:
        raise UnauthenticatedError("malformed API key")
    return match.group(1)


def create_key(
    session: Session,
    name: str,
    scopes: list[str],
    *,
    user_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key in the session's org. Returns the row and the raw key (shown once)."""
    bad = set(scopes) - set(SCOPES)
    if bad or not scopes:
        raise ValidationError(f"scopes must be a non-empty subset of {SCOPES}", details=sorted(bad))
    prefix = secrets.token_hex(6)
    raw = f"rl_{prefix}_{secrets.token_urlsafe(32).replace('_', 'x')}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(raw),
        scopes=sorted(set(scopes)),
        user_id=user_id,
        expires_at=expires_at,
    )
    tenancy.add(session, row)
    session.flush()
    return row, raw


def authenticate(session: Session, raw: str) -> Principal:
    """Resolve a raw key to a principal (no org bound yet; uses the definer lookup)."""
    prefix = parse_key(raw)
    row = session.execute(
        sa.text("select * from ragline_api_key_by_prefix(:p)"), {"p": prefix}
    ).one_or_none()
    # Compare against a dummy hash when the prefix is unknown, to keep timing flat.
    expected = row.key_hash if row is not None else hash_key("rl_dummy_" + prefix)
    if not hmac.compare_digest(expected, hash_key(raw)) or row is None:
        raise UnauthenticatedError("invalid API key")
    now = datetime.now(UTC)
    if row.revoked_at is not None:
        raise UnauthenticatedError("API key revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise UnauthenticatedError("API key expired")
    scopes = frozenset(row.scopes)
    user_id = row.user_id if "act_as_user" in scopes else None
    return Principal(api_key_id=row.id, org_id=row.org_id, scopes=scopes, user_id=user_id)


def revoke_key(session: Session, key_id: uuid.UUID) -> bool:
    """Revoke a key of the session's org; False when there is no such key."""
    result = session.execute(
        tenancy.scoped_update(
            session, ApiKey, ApiKey.id == key_id, ApiKey.revoked_at.is_(None)
        ).values(revoked_at=sa.func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


#: `last_used_at` is written at most once per this many seconds per key.
TOUCH_EVERY_S = 60


def touch(session: Session, key_id: uuid.UUID) -> None:
    """Stamp `last_used_at`, coalesced: no write when it was stamped within TOUCH_EVERY_S."""
    session.execute(
        tenancy.scoped_update(
            session,
            ApiKey,
            ApiKey.id == key_id,
            sa.or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at
                < sa.func.now() - sa.text(f"interval '{TOUCH_EVERY_S} seconds'"),
            ),
        ).values(last_used_at=sa.func.now())
    )
