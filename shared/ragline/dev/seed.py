"""Demo data: one org, one user, one API key. Idempotent; the raw key is kept in RAGLINE_HOME."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import UnauthenticatedError
from ragline.db import orgs, tenancy
from ragline.guardrails import apikeys

DEMO_ORG = "demo"
DEMO_USER = "demo@example.com"
#: The demo bulk-loads a corpus and polls its progress: raise its per-minute limits.
DEMO_SETTINGS = {"rate_limits": {"crud": 100_000, "agent": 1_000}}


@dataclass(frozen=True)
class SeedResult:
    org_id: uuid.UUID
    user_id: uuid.UUID
    api_key: str
    created: list[str]


def seed(session: Session) -> SeedResult:
    """Create the demo org, user and key unless present (owner session)."""
    created: list[str] = []
    org_id, new_org = orgs.ensure_org(session, DEMO_ORG, "Demo org", DEMO_SETTINGS)
    if new_org:
        created.append("org")
    user_id, new_user = orgs.ensure_user(session, org_id, DEMO_USER, role="admin")
    if new_user:
        created.append("user")
    tenancy.bind_org(session, org_id)
    key_file = get_settings().ragline_home / "demo-api-key"
    raw = key_file.read_text().strip() if key_file.exists() else ""
    try:
        if not raw:
            raise UnauthenticatedError("no saved key")
        principal = apikeys.authenticate(session, raw)
        if principal.org_id != org_id:
            raise UnauthenticatedError("saved key belongs to another org")
    except UnauthenticatedError:
        _, raw = apikeys.create_key(session, "demo", ["read", "write", "admin"], user_id=user_id)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(raw + "\n")
        key_file.chmod(0o600)
        created.append("api_key")
    return SeedResult(org_id=org_id, user_id=user_id, api_key=raw, created=created)
