"""Shared helpers for integration tests: orgs with API keys, function test clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework

from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.guardrails import apikeys

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@dataclass(frozen=True)
class Tenant:
    org_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


#: Most tests are not about rate limits: their orgs get generous ones.
GENEROUS = {"rate_limits": {"crud": 100_000, "agent": 100_000}}


def make_tenant(
    slug: str,
    scopes: tuple[str, ...] = ("read", "write"),
    settings: dict[str, Any] | None = None,
) -> Tenant:
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(
            session, slug, settings=GENEROUS if settings is None else settings
        )
        tenancy.bind_org(session, org_id)
        _, raw = apikeys.create_key(session, "test", list(scopes))
    return Tenant(org_id, raw)


def client(name: str) -> Any:
    """A werkzeug test client for the real function file `functions/<name>/main.py`."""
    app = functions_framework.create_app(target=name, source=str(FUNCTIONS / name / "main.py"))
    return app.test_client()
