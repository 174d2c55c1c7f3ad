"""The pg8000 wire layer (`ragline.db.wire`): fewer round trips, never a desynchronised or
unbound connection. Run on both kinds of pg8000 connection: the embedded server's URL
(`pg8000.legacy`) and the connectors' (`pg8000.dbapi`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pg8000.core
import pg8000.dbapi
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from ragline.core.config import Settings
from ragline.db import engine as db
from ragline.db import tenancy, wire

from .helpers import make_tenant


def _settings(database_url: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, database_url=database_url, db_pool_size=1, **extra)  # type: ignore[call-arg]


@pytest.fixture(params=["legacy", "dbapi"])
def engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    if request.param == "legacy":
        built = db.build_engine(_settings(database_url))
    else:
        url = make_url(database_url)

        def connect() -> Any:
            return pg8000.dbapi.connect(
                user=url.username, database=url.database, unix_sock=url.query["unix_sock"]
            )

        built = db.build_engine(_settings(database_url), creator=connect)
    yield built
    built.dispose()


@pytest.fixture()
def flushes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the writes pg8000 flushes to the server: one per round trip."""
    count = [0]
    real = pg8000.core._flush

    def counting(sock: Any) -> None:
        count[0] += 1
        real(sock)

    monkeypatch.setattr(pg8000.core, "_flush", counting)
    return count


def _visible_orgs(session: Session) -> int:
    return int(session.execute(sa.text("select count(*) from org")).scalar_one())


def test_a_tenant_read_is_two_round_trips(engine: Engine, flushes: list[int]) -> None:
    org = make_tenant("wire-rt").org_id
    with tenancy.tenant_session(org, engine=engine) as s:  # warm: connect, prepare
        _visible_orgs(s)
    flushes[0] = 0
    with tenancy.tenant_session(org, engine=engine) as s:
        assert _visible_orgs(s) == 1  # BEGIN + binding + the statement: one flush
    assert flushes[0] == 2  # ... and COMMIT


def test_the_query_log_rides_with_the_commit(
    engine: Engine, flushes: list[int], configure: Any
) -> None:
    """A logged search (`search.search_logged`'s upsert) adds no round trip: the upsert is
    deferred to the COMMIT's flush, and its row is there afterwards."""
    from ragline.retrieval import querylog

    configure(query_log_rate="1", query_log_size="8")
    org = make_tenant("wire-ql").org_id
    with tenancy.tenant_session(org, engine=engine) as s:  # warm: connect, prepare
        _visible_orgs(s)
        querylog.record(s, "warm")
    flushes[0] = 0
    with tenancy.tenant_session(org, engine=engine) as s:
        assert _visible_orgs(s) == 1
        assert querylog.record(s, "logged with the commit")
    assert flushes[0] == 2  # BEGIN + binding + the read; the upsert + COMMIT
    with tenancy.tenant_session(org, engine=engine) as s:
        assert "logged with the commit" in querylog.recent(s)


def test_the_binding_is_applied_before_the_first_statement(engine: Engine) -> None:
    a, b = make_tenant("wire-a").org_id, make_tenant("wire-b").org_id
    for org in (a, b, a):
        with tenancy.tenant_session(org, engine=engine) as s:
            got = s.execute(sa.text("select id from org")).scalars().all()
            assert got == [org]
            assert s.execute(sa.text("select current_setting('app.org_id')")).scalar() == str(org)


def test_a_failing_deferred_statement_fails_the_next_and_leaves_the_connection_in_step(
    engine: Engine,
) -> None:
    org = make_tenant("wire-fail").org_id
    with pytest.raises(sa_exc.DBAPIError, match="division by zero"), Session(engine) as s:
        assert wire.defer(s.connection(), "select 1 / %s", (0,))
        s.execute(sa.text("select :x"), {"x": 1})
    # The connection went back to the pool in step: its next answers are its own.
    with tenancy.tenant_session(org, engine=engine) as s:
        assert s.execute(sa.text("select :x + 1"), {"x": 41}).scalar() == 42
        assert _visible_orgs(s) == 1


def test_a_rolled_back_binding_never_reaches_the_next_transaction(engine: Engine) -> None:
    org = make_tenant("wire-rollback").org_id
    with pytest.raises(RuntimeError), tenancy.tenant_session(org, engine=engine):
        raise RuntimeError("before any statement: the binding was never sent")
    with Session(engine) as s, s.begin():
        # No binding here: row-level security shows no org at all.
        assert _visible_orgs(s) == 0
        assert s.execute(sa.text("select current_setting('app.org_id', true)")).scalar() in (
            None,
            "",
        )


def test_a_binding_without_statements_commits_cleanly(engine: Engine) -> None:
    org = make_tenant("wire-empty").org_id
    with tenancy.tenant_session(org, engine=engine):
        pass
    with tenancy.tenant_session(org, engine=engine) as s:
        assert _visible_orgs(s) == 1


def test_statements_are_prepared_once_and_evicted_in_order(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "CACHE_SIZE", 3)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        before = wire.cached(raw)
        for _ in range(3):
            assert conn.execute(sa.text("select :a * 2"), {"a": 21}).scalar() == 42
        assert wire.cached(raw) == min(before + 1, 3)
        for n in range(6):  # more shapes than the cache holds: the oldest are closed
            sql = f"select :a + {n}"
            assert conn.execute(sa.text(sql), {"a": 1}).scalar() == 1 + n
        assert wire.cached(raw) == 3
        assert conn.execute(sa.text("select :a * 2"), {"a": 5}).scalar() == 10
        n_server = conn.execute(sa.text("select count(*) from pg_prepared_statements")).scalar()
        assert n_server == wire.cached(raw)


def test_a_statement_whose_result_type_changed_is_prepared_again(
    engine: Engine, database_url: str
) -> None:
    owner = sa.create_engine(database_url)
    table = f"wire_{uuid.uuid4().hex[:8]}"
    with owner.begin() as c:
        c.execute(sa.text(f"create table {table} (a int)"))
        c.execute(sa.text(f"insert into {table} values (1)"))
        c.execute(sa.text(f"grant select on {table} to ragline_app"))
    try:
        with engine.connect() as conn:
            query = sa.text(f"select * from {table} where a = :a")
            assert conn.execute(query, {"a": 1}).all() == [(1,)]
            conn.rollback()
            with owner.begin() as c:
                c.execute(sa.text(f"alter table {table} add column b int default 7"))
            with pytest.raises(sa_exc.DBAPIError, match="cached plan must not change"):
                conn.execute(query, {"a": 1})
            conn.rollback()
            assert conn.execute(query, {"a": 1}).all() == [(1, 7)]
    finally:
        with owner.begin() as c:
            c.execute(sa.text(f"drop table {table}"))
        owner.dispose()


def test_server_errors_keep_their_db_api_classes(engine: Engine) -> None:
    with pytest.raises(sa_exc.IntegrityError), engine.connect() as conn:
        conn.exec_driver_sql("create temp table wire_unique (a int primary key)")
        for _ in range(2):
            conn.execute(sa.text("insert into wire_unique values (:a)"), {"a": 1})
    with pytest.raises(sa_exc.ProgrammingError), engine.connect() as conn:
        conn.execute(sa.text("select no_such_column from org where id = :id"), {"id": 1})


def test_many_statements_and_no_parameter_statements_run_after_the_binding(
    engine: Engine,
) -> None:
    org = make_tenant("wire-many").org_id
    with tenancy.tenant_session(org, engine=engine) as s:
        # executemany (no RETURNING): pg8000's own loop, after the pending binding is sent.
        s.execute(sa.text("select set_config('app.scratch', :v, true)"), [{"v": "1"}, {"v": "2"}])
        assert s.execute(sa.text("select count(*) from org")).scalar() == 1  # no parameters
    with tenancy.tenant_session(org, engine=engine) as s:
        s.connection().exec_driver_sql("select 1; select 2")  # a multi-statement simple query
        assert _visible_orgs(s) == 1


def test_a_connection_idle_past_the_bound_is_pinged_and_replaced(database_url: str) -> None:
    engine = db.build_engine(_settings(database_url, db_ping_after_idle_s=0))
    owner = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("select pg_backend_pid()")).scalar()
        with owner.begin() as c:
            c.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pid})
        with engine.connect() as conn:  # the dead connection is noticed at checkout
            assert conn.execute(sa.text("select pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        owner.dispose()
