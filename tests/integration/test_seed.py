from __future__ import annotations

import sqlalchemy as sa

from ragline.db import engine as db
from ragline.db.models import ApiKey, AppUser, Org
from ragline.dev import seed
from ragline.guardrails import apikeys


def test_seed_is_idempotent_and_its_key_authenticates() -> None:
    with db.owner_session() as session:
        first = seed.seed(session)
    with db.owner_session() as session:
        second = seed.seed(session)
    assert set(first.created) == {"org", "user", "api_key"}
    assert second.created == []
    assert (second.org_id, second.api_key) == (first.org_id, first.api_key)
    with db.owner_session() as session:
        for model in (Org, AppUser, ApiKey):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 1
        stored = session.scalars(sa.select(ApiKey.key_hash)).one()
        assert first.api_key not in stored
    with db.get_engine().connect() as conn:
        from sqlalchemy.orm import Session

        principal = apikeys.authenticate(Session(bind=conn), first.api_key)
    assert principal.org_id == first.org_id
    assert principal.scopes == {"read", "write", "admin"}
