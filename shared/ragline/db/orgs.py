"""Orgs and their members. Creating an org is an admin act (owner session); the rest is tenant."""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.errors import ValidationError
from ragline.db.models import AppUser, Org

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def ensure_org(
    session: Session, slug: str, name: str | None = None, settings: dict[str, Any] | None = None
) -> tuple[uuid.UUID, bool]:
    """Create the org `slug` unless it exists (owner session). Returns (id, created).

    `settings` (e.g. rate-limit or retention overrides) apply only when the org is created."""
    if not _SLUG.match(slug):
        raise ValidationError("org slug must be 2-63 chars of a-z, 0-9 and '-'")
    inserted = session.execute(
        insert(Org)
        .values(slug=slug, name=name or slug, settings=settings or {})
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(Org.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return inserted, True
    return session.execute(sa.select(Org.id).where(Org.slug == slug)).scalar_one(), False


def ensure_user(
    session: Session, org_id: uuid.UUID, email: str, role: str = "member"
) -> tuple[uuid.UUID, bool]:
    """Create the user `email` in the org unless it exists. Returns (id, created)."""
    inserted = session.execute(
        insert(AppUser)
        .values(org_id=org_id, email=email.lower(), role=role)
        .on_conflict_do_nothing(index_elements=["org_id", "email"])
        .returning(AppUser.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return inserted, True
    existing = session.execute(
        sa.select(AppUser.id).where(AppUser.org_id == org_id, AppUser.email == email.lower())
    ).scalar_one()
    return existing, False


def org_id_by_slug(session: Session, slug_or_id: str) -> uuid.UUID | None:
    """Resolve an org given as slug or UUID (owner session)."""
    try:
        return uuid.UUID(slug_or_id)
    except ValueError:
        return session.execute(sa.select(Org.id).where(Org.slug == slug_or_id)).scalar_one_or_none()
