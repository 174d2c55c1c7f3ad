"""Cross-org access is impossible through the helpers and at SQL level (RLS)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from ragline.core.errors import TenancyError
from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.db.models import TENANT_TABLES, Chunk, Document, Org


def make_org(slug: str) -> uuid.UUID:
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(session, slug)
    return org_id


def add_document(org_id: uuid.UUID, title: str, chunks: int = 1) -> uuid.UUID:
    with tenancy.tenant_session(org_id) as session:
        doc = tenancy.add(
            session,
            Document(
                title=title, content=title, content_hash=hashlib.sha256(title.encode()).hexdigest()
            ),
        )
        session.flush()
        for i in range(chunks):
            tenancy.add(
                session,
                Chunk(document_id=doc.id, ord=i, text=f"{title} part {i}", token_count=3),
            )
        return doc.id


@pytest.fixture()
def two_orgs() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    a, b = make_org("org-a"), make_org("org-b")
    doc_b = add_document(b, "secret of b", chunks=2)
    add_document(a, "doc of a", chunks=1)
    return a, b, doc_b


def test_helpers_never_return_another_orgs_rows(two_orgs: tuple[uuid.UUID, ...]) -> None:
    a, _b, doc_b = two_orgs
    with tenancy.tenant_session(a) as session:
        assert tenancy.get(session, Document, doc_b) is None
        titles = [d.title for d in tenancy.list_(session, Document)]
        assert titles == ["doc of a"]
        assert tenancy.count(session, Chunk) == 1
        assert tenancy.count(session, Chunk, Chunk.document_id == doc_b) == 0


def test_helpers_refuse_models_without_org_id_and_unbound_sessions(
    two_orgs: tuple[uuid.UUID, ...],
) -> None:
    a = two_orgs[0]
    with tenancy.tenant_session(a) as session, pytest.raises(TenancyError):
        tenancy.scoped_select(session, Org)
    with Session(db.get_engine()) as session, pytest.raises(TenancyError):
        tenancy.list_(session, Document)


def test_add_refuses_a_row_of_another_org(two_orgs: tuple[uuid.UUID, ...]) -> None:
    a, b, _ = two_orgs
    with pytest.raises(TenancyError), tenancy.tenant_session(a) as session:
        tenancy.add(session, Document(org_id=b, title="x", content="x", content_hash="x"))


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_raw_sql_as_app_role_sees_nothing_without_org(
    two_orgs: tuple[uuid.UUID, ...], table: str
) -> None:
    with db.get_engine().connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "ragline_app"
        assert conn.execute(sa.text(f"select count(*) from {table}")).scalar() == 0


def test_raw_sql_with_another_orgs_setting_reads_and_writes_nothing_of_b(
    two_orgs: tuple[uuid.UUID, ...],
) -> None:
    a, b, doc_b = two_orgs
    with db.get_engine().connect() as conn:
        conn.execute(sa.text("select set_config('app.org_id', :o, true)"), {"o": str(a)})
        rows = conn.execute(sa.text("select id from document where org_id = :b"), {"b": b}).all()
        assert rows == []
        assert conn.execute(sa.text("select count(*) from chunk")).scalar() == 1
        assert conn.execute(sa.text("select count(*) from org")).scalar() == 1
        updated = conn.execute(
            sa.text("update document set title = 'pwned' where id = :d"), {"d": doc_b}
        )
        assert updated.rowcount == 0
        deleted = conn.execute(sa.text("delete from chunk where document_id = :d"), {"d": doc_b})
        assert deleted.rowcount == 0
        with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
            conn.execute(
                sa.text(
                    "insert into document (org_id, title, content, content_hash) "
                    "values (:b, 't', 't', 'h')"
                ),
                {"b": b},
            )
        conn.rollback()
    with tenancy.tenant_session(b) as session:
        assert tenancy.get(session, Document, doc_b).title == "secret of b"  # type: ignore[union-attr]
        assert tenancy.count(session, Chunk) == 2


def test_app_role_cannot_escape_rls(two_orgs: tuple[uuid.UUID, ...]) -> None:
    with db.get_engine().connect() as conn:
        flags = conn.execute(
            sa.text("select rolsuper, rolbypassrls from pg_roles where rolname = current_user")
        ).one()
        assert tuple(flags) == (False, False)
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text("alter table document disable row level security"))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.lists(
        st.lists(st.integers(min_value=0, max_value=3), max_size=3), min_size=2, max_size=4
    )
)
def test_property_no_org_ever_sees_another(layout: list[list[int]]) -> None:
    """Random orgs with random documents and chunks: each org sees exactly its own rows."""
    with db.get_engine(app_role=False).begin() as conn:
        conn.execute(sa.text("TRUNCATE org CASCADE"))
    expected: dict[uuid.UUID, tuple[set[uuid.UUID], int]] = {}
    for i, docs in enumerate(layout):
        org = make_org(f"prop-{i}")
        ids = {add_document(org, f"org {i} doc {j}", chunks=n) for j, n in enumerate(docs)}
        expected[org] = (ids, sum(docs))
    for org, (ids, n_chunks) in expected.items():
        with tenancy.tenant_session(org) as session:
            assert {d.id for d in tenancy.list_(session, Document)} == ids
            raw_docs = session.execute(sa.text("select id from document")).scalars().all()
            assert set(raw_docs) == ids
            assert session.execute(sa.text("select count(*) from chunk")).scalar() == n_chunks
            assert tenancy.count(session, Chunk) == n_chunks
