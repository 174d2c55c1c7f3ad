"""Signed-in end users (issue 18): ID tokens of the local test issuer beside API keys, users
created at first sign-in, no default org, per-user rate limits and runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.db.models import AppUser, Run
from ragline.dev import oidc_issuer
from ragline.guardrails import apikeys, oidc

from .helpers import Tenant, client, make_tenant


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_headers(
    org: str | None, email: str, groups: list[str] | None = None, **kw: Any
) -> dict[str, str]:
    return bearer(oidc_issuer.token(org, email, groups=groups, **kw))


@pytest.fixture(autouse=True)
def offline(offline_pipeline: Callable[..., None]) -> None:
    oidc.reset_cache()


def users_of(org_id: uuid.UUID) -> list[AppUser]:
    with tenancy.tenant_session(org_id) as s:
        return tenancy.list_(s, AppUser, order_by=[AppUser.created_at])


def test_a_user_signs_in_and_is_created_once(tenant: Tenant) -> None:
    headers = user_headers("acme", "Ann@Example.com", ["hr"])
    for _ in range(2):
        resp = client("documents").get("/", headers=headers)
        assert resp.status_code == 200, resp.json
    (user,) = users_of(tenant.org_id)
    assert user.email == "ann@example.com" and user.subject and user.groups == ["hr"]
    assert user.issuer == "https://ragline.local/oidc"
    # Groups follow the token.
    client("documents").get("/", headers=user_headers("acme", "ann@example.com", ["it"]))
    assert users_of(tenant.org_id)[0].groups == ["it"]


def test_the_org_claim_may_be_the_org_id(tenant: Tenant) -> None:
    resp = client("documents").get("/", headers=user_headers(str(tenant.org_id), "b@x.io"))
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("name", "org", "status"),
    [("unknown org", "nope", 403), ("no org claim", None, 403)],
)
def test_unmapped_users_get_no_org(tenant: Tenant, name: str, org: str | None, status: int) -> None:
    resp = client("documents").get("/", headers=user_headers(org, "c@x.io"))
    assert resp.status_code == status
    assert users_of(tenant.org_id) == []


def test_bad_tokens_are_401(tenant: Tenant) -> None:
    good = oidc_issuer.token("acme", "d@x.io")
    head, body, sig = good.split(".")
    for token in (
        f"{head}.{body}.{sig[:-4]}AAAA",
        oidc_issuer.token("acme", "d@x.io", lifetime_s=-120),
    ):
        resp = client("documents").get("/", headers=bearer(token))
        assert resp.status_code == 401
        assert resp.json["error"]["code"] == "unauthenticated"
    # A token is never taken for an API key, and X-API-Key never carries a token.
    assert client("documents").get("/", headers={"X-API-Key": good}).status_code == 401


def test_the_local_issuer_is_refused_outside_local_and_test(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    token = oidc_issuer.token("acme", "e@x.io")
    configure(environment="gcp", api_key_pepper="p" * 32)
    assert client("documents").get("/", headers=bearer(token)).status_code == 401


def test_membership_issuer_needs_an_invitation(
    tenant: Tenant, configure: Callable[..., None], tmp_path: Path
) -> None:
    """An issuer without an org claim: the org comes from the app_user table (an invite by
    verified email, bound to the identity at first sign-in)."""
    oidc_issuer.ensure_key()
    jwks = get_settings().ragline_home / "oidc" / "jwks.json"
    issuer = "https://members.example"
    conf = {
        "issuer": issuer,
        "audiences": ["app"],
        "jwks_uri": jwks.resolve().as_uri(),
        "org_claim": None,
    }
    configure(oidc_issuers=json.dumps([conf]))

    def headers(email: str, verified: bool = True) -> dict[str, str]:
        return user_headers(
            None,
            email,
            iss=issuer,
            aud="app",
            email_verified=verified,
        )

    assert client("documents").get("/", headers=headers("f@x.io")).status_code == 403
    with db.owner_session() as s:
        orgs.ensure_user(s, tenant.org_id, "f@x.io")
    assert (
        client("documents").get("/", headers=headers("f@x.io", verified=False)).status_code == 403
    )
    assert client("documents").get("/", headers=headers("f@x.io")).status_code == 200
    (user,) = users_of(tenant.org_id)
    assert user.issuer == issuer and user.subject is not None
    # Another org inviting the same email: the identity stays in the org it is bound to...
    other = make_tenant("other")
    with db.owner_session() as s:
        orgs.ensure_user(s, other.org_id, "f@x.io")
        orgs.ensure_user(s, other.org_id, "g@x.io")
        orgs.ensure_user(s, tenant.org_id, "g@x.io")
    assert client("documents").get("/", headers=headers("f@x.io")).status_code == 200
    # ...and an identity invited by two orgs is ambiguous: refused, never a default org.
    assert client("documents").get("/", headers=headers("g@x.io")).status_code == 403


def ask(headers: dict[str, str]) -> Any:
    return client("answer").post("/", json={"question": "anything?"}, headers=headers)


def test_the_sixth_answer_in_a_minute_is_429_for_that_user_only() -> None:
    tenant = make_tenant("acme", settings={"rate_limits": {"crud": 100_000}})  # agent: 5/min
    ann, bob = user_headers("acme", "ann@x.io"), user_headers("acme", "bob@x.io")
    assert [ask(ann).status_code for _ in range(5)] == [200] * 5
    sixth = ask(ann)
    assert sixth.status_code == 429 and sixth.headers["Retry-After"]
    assert ask(bob).status_code == 200
    assert ask(tenant.headers).status_code == 200  # the server key has its own bucket


def test_runs_belong_to_their_user_unless_admin(tenant: Tenant) -> None:
    ann, bob = user_headers("acme", "ann@x.io"), user_headers("acme", "bob@x.io")
    a_run = ask(ann).json["run_id"]
    b_run = ask(bob).json["run_id"]
    ask(tenant.headers)
    runs = client("runs")

    def listed(headers: dict[str, str]) -> set[str]:
        resp = runs.get("/", headers=headers)
        assert resp.status_code == 200, resp.json
        return {r["id"] for r in resp.json["runs"]}

    assert listed(ann) == {a_run} and listed(bob) == {b_run}
    assert len(listed(tenant.headers)) == 3  # a server key sees the org's runs
    assert runs.get(f"/{b_run}", headers=ann).status_code == 404
    assert runs.get(f"/{a_run}", headers=ann).json["user_id"] is not None
    with tenancy.tenant_session(tenant.org_id) as s:
        s.execute(sa.update(AppUser).where(AppUser.email == "bob@x.io").values(role="admin"))
    assert len(listed(bob)) == 3


def test_a_key_acts_for_a_user_only_with_the_scope(tenant: Tenant) -> None:
    ask(user_headers("acme", "ann@x.io"))
    (ann,) = users_of(tenant.org_id)
    raws = {}
    for name, scopes in (("plain", ["read", "write"]), ("as", ["read", "write", "act_as_user"])):
        with tenancy.tenant_session(tenant.org_id) as s:
            _, raws[name] = apikeys.create_key(s, name, scopes, user_id=ann.id)
    plain = ask(bearer(raws["plain"])).json["run_id"]
    acting = ask(bearer(raws["as"])).json["run_id"]
    with tenancy.tenant_session(tenant.org_id) as s:
        owners = {r.id: r.user_id for r in tenancy.list_(s, Run)}
    assert owners[uuid.UUID(plain)] is None and owners[uuid.UUID(acting)] == ann.id


def test_ragline_dev_token_prints_a_token_the_functions_accept(tenant: Tenant) -> None:
    from typer.testing import CliRunner

    from ragline.dev.cli import app

    result = CliRunner().invoke(
        app, ["dev", "token", "--org", "acme", "--user", "cli@x.io", "--groups", "hr, it"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert client("documents").get("/", headers=bearer(token)).status_code == 200
    assert users_of(tenant.org_id)[0].groups == ["hr", "it"]
