"""Document permissions inside an org (issue 18), tested like an attacker: a document with an
ACL is never returned, counted, cited or revealed to anyone outside it, through search,
answer, listing and detail, nor at SQL level as the application role."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragline.db import tenancy
from ragline.db.models import AppUser
from ragline.dev import oidc_issuer
from ragline.guardrails import oidc

from .helpers import Tenant, client, make_tenant

WORDS = "lantern harbour copper meadow"


@pytest.fixture(autouse=True)
def offline(offline_pipeline: Callable[..., None]) -> None:
    oidc.reset_cache()


def user(slug: str, email: str, groups: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {oidc_issuer.token(slug, email, groups=groups)}"}


def ingest(tenant: Tenant, title: str, acl: list[str] | None) -> str:
    body: dict[str, Any] = {"title": title, "text": f"{title}: {WORDS} {title} notes."}
    if acl is not None:
        body["acl"] = acl
    resp = client("ingest").post("/", json=body, headers=tenant.headers)
    assert resp.status_code == 202, resp.json
    return str(resp.json["document_id"])


def sign_in(slug: str, org_id: uuid.UUID, email: str, groups: list[str]) -> uuid.UUID:
    assert client("documents").get("/", headers=user(slug, email, groups)).status_code == 200
    with tenancy.tenant_session(org_id) as s:
        found = s.scalar(sa.select(AppUser.id).where(AppUser.email == email))
    assert found is not None
    return found


def seen_by_api(headers: dict[str, str]) -> dict[str, set[str]]:
    """The documents a caller meets through each endpoint."""
    listed = client("documents").get("/?limit=200", headers=headers)
    assert listed.status_code == 200, listed.json
    out = {"list": {d["id"] for d in listed.json["documents"]}}
    for mode in ("vector", "hybrid", "text"):
        found = client("search").post(
            "/", json={"query": WORDS, "top_k": 100, "mode": mode}, headers=headers
        )
        assert found.status_code == 200, found.json
        out[mode] = {r["document_id"] for r in found.json["results"]}
    answer = client("answer").post("/", json={"question": WORDS, "top_k": 20}, headers=headers)
    assert answer.status_code == 200, answer.json
    out["answer"] = {c["document_id"] for c in answer.json["citations"]}
    return out


def seen_by_sql(org_id: uuid.UUID, principals: frozenset[str]) -> dict[str, set[str]]:
    """Raw SQL as the application role with the caller's app.principals."""
    with tenancy.tenant_session(org_id, principals=principals) as s:
        return {
            "document": {str(r[0]) for r in s.execute(sa.text("select id from document"))},
            "chunk": {str(r[0]) for r in s.execute(sa.text("select document_id from chunk"))},
            "count": {
                str(s.scalar(sa.text("select count(*) from document where acl is not null")))
            },
        }


def visible(acl: list[str] | None, principals: frozenset[str]) -> bool:
    return acl is None or bool(set(acl) & principals)


def test_a_group_document_stays_inside_the_group(tenant: Tenant) -> None:
    public = ingest(tenant, "handbook", None)
    hr_doc = ingest(tenant, "salaries", ["group:hr"])
    hr, it = user("acme", "hr@x.io", ["hr"]), user("acme", "it@x.io", ["it"])
    for name, seen in seen_by_api(hr).items():
        assert hr_doc in seen or name == "answer", name
    for name, seen in seen_by_api(it).items():
        assert hr_doc not in seen, name
        assert public in seen or name == "answer", name
    # Detail and changes: a 404, like a document that does not exist.
    docs = client("documents")
    missing = docs.get(f"/{uuid.uuid4()}", headers=it)
    hidden = docs.get(f"/{hr_doc}", headers=it)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json["error"]["code"] == missing.json["error"]["code"]
    assert docs.patch(f"/{hr_doc}", json={"acl": None}, headers=it).status_code == 404
    assert docs.delete(f"/{hr_doc}", headers=it).json["deleted"] is False
    assert docs.get(f"/{hr_doc}", headers=hr).json["acl"] == ["group:hr"]
    # Re-ingesting the hidden content tells nothing about it.
    same = client("ingest").post(
        "/", json={"title": "x", "text": f"salaries: {WORDS} salaries notes."}, headers=it
    )
    assert same.status_code == 409 and hr_doc not in same.get_data(as_text=True)
    # The group opens it to the org; its chunks follow.
    opened = docs.patch(f"/{hr_doc}", json={"acl": None}, headers=hr)
    assert opened.status_code == 200 and opened.json["acl"] is None
    assert hr_doc in seen_by_api(it)["vector"]
    # And a member closes it to themselves only.
    me = sign_in("acme", tenant.org_id, "it@x.io", ["it"])
    assert docs.patch(f"/{hr_doc}", json={"acl": [f"user:{me}"]}, headers=it).status_code == 200
    assert hr_doc not in seen_by_api(hr)["vector"] and hr_doc in seen_by_api(it)["vector"]


@pytest.mark.parametrize(
    "acl", [[], ["hr"], ["group:a,b"], ["user:not-a-uuid"], ["*"], ["group:" + "x" * 200]]
)
def test_malformed_acls_are_422(tenant: Tenant, acl: list[str]) -> None:
    body = {"title": "t", "text": "some text", "acl": acl}
    assert client("ingest").post("/", json=body, headers=tenant.headers).status_code == 422


def test_raw_uploads_take_the_acl_as_a_query_parameter(tenant: Tenant) -> None:
    resp = client("ingest").post(
        "/?title=memo&acl=group:legal",
        data=f"memo {WORDS}",
        content_type="text/plain",
        headers=tenant.headers,
    )
    assert resp.status_code == 202, resp.json
    doc = resp.json["document_id"]
    assert client("documents").get(f"/{doc}", headers=tenant.headers).json["acl"] == ["group:legal"]
    assert doc not in seen_by_api(user("acme", "z@x.io", ["sales"]))["list"]


def test_sql_without_principals_sees_no_restricted_rows(tenant: Tenant) -> None:
    ingest(tenant, "open", None)
    ingest(tenant, "closed", ["group:x"])
    from ragline.db.engine import get_engine

    with get_engine().connect() as conn, conn.begin():
        conn.execute(
            sa.text("select set_config('app.org_id', :o, true)"), {"o": str(tenant.org_id)}
        )
        titles = {r[0] for r in conn.execute(sa.text("select title from document"))}
        chunks = conn.scalar(sa.text("select count(*) from chunk where acl is not null"))
        files = conn.execute(
            sa.text("update chunk set acl = null where acl is not null returning id")
        ).all()
    assert titles == {"open"} and chunks == 0 and files == []


GROUPS = ("a", "b", "c")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    users=st.lists(st.sets(st.sampled_from(GROUPS), max_size=2), min_size=2, max_size=3),
    acls=st.lists(
        st.one_of(
            st.none(),
            st.lists(
                st.one_of(
                    st.sampled_from(GROUPS).map(lambda g: f"group:{g}"),
                    st.integers(0, 2).map(lambda i: f"user#{i}"),
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_no_document_is_visible_outside_its_acl(
    users: list[set[str]], acls: list[list[str] | None]
) -> None:
    slug = f"h-{uuid.uuid4().hex[:10]}"
    tenant = make_tenant(slug)
    ids = [
        sign_in(slug, tenant.org_id, f"u{i}@x.io", sorted(groups)) for i, groups in enumerate(users)
    ]

    def resolve(acl: list[str] | None) -> list[str] | None:
        if acl is None:
            return None
        out = [p for p in acl if not p.startswith("user#")]
        out += [
            f"user:{ids[int(p[5:])]}"
            for p in acl
            if p.startswith("user#") and int(p[5:]) < len(ids)
        ]
        return out or None

    docs = {
        ingest(tenant, f"doc{n}x{slug}", resolve(acl)): resolve(acl) for n, acl in enumerate(acls)
    }
    for i, groups in enumerate(users):
        principals = frozenset({f"user:{ids[i]}", *(f"group:{g}" for g in groups)})
        allowed = {d for d, acl in docs.items() if visible(acl, principals)}
        api = seen_by_api(user(slug, f"u{i}@x.io", sorted(groups)))
        for name, seen in api.items():
            assert seen <= allowed, (name, seen - allowed)
        assert api["list"] == allowed and api["vector"] == allowed  # nothing lost either
        sql = seen_by_sql(tenant.org_id, principals)
        assert sql["document"] == allowed and sql["chunk"] == allowed
        assert sql["count"] == {str(sum(1 for d in allowed if docs[d] is not None))}
        for d in set(docs) - allowed:
            resp = client("documents").get(
                f"/{d}", headers=user(slug, f"u{i}@x.io", sorted(groups))
            )
            assert resp.status_code == 404


def test_vectors_of_other_spaces_follow_their_chunks_acl(tenant: Tenant) -> None:
    """A restricted chunk's vector in an embedding space's own table (chunk_vector_<dim>) is
    as invisible as the chunk, at SQL level as the application role."""
    ingest(tenant, "open", None)
    ingest(tenant, "closed", ["group:x"])
    from ragline.db.engine import get_engine

    with get_engine(app_role=False).begin() as conn:
        space = conn.scalar(
            sa.text(
                "INSERT INTO embedding_space (org_id, provider, model, dimension, state, storage) "
                "VALUES (:o, 'hashing', 'hashing-v1', 256, 'shadow', 'chunk_vector_256') "
                "RETURNING id"
            ),
            {"o": tenant.org_id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO chunk_vector_256 (space_id, chunk_id, org_id, embedding) "
                "SELECT :s, id, org_id, CAST(:v AS vector) FROM chunk WHERE org_id = :o"
            ),
            {"s": space, "o": tenant.org_id, "v": "[" + ",".join(["0.1"] * 256) + "]"},
        )
        every = conn.scalar(
            sa.text("SELECT count(*) FROM chunk_vector_256 WHERE org_id = :o"),
            {"o": tenant.org_id},
        )

    def visible(principals: str | None) -> int:
        with get_engine().connect() as conn, conn.begin():
            conn.execute(
                sa.text("SELECT set_config('app.org_id', :o, true)"), {"o": str(tenant.org_id)}
            )
            if principals is not None:
                conn.execute(
                    sa.text("SELECT set_config('app.principals', :p, true)"), {"p": principals}
                )
            return int(conn.scalar(sa.text("SELECT count(*) FROM chunk_vector_256")) or 0)

    closed = every - visible(None)
    assert every >= 2 and closed >= 1
    assert visible("group:y") == every - closed
    assert visible("group:x") == every
    assert visible("*") == every
