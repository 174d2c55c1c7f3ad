"""Fewer round trips on pg8000 connections: prepared statements, BEGIN and the tenant binding
sent with the first statement, one-message COMMIT and ROLLBACK (issue 14).

pg8000 (the driver of every deployment: the Cloud SQL and RDS connectors, the embedded
server) runs a statement with parameters in three round trips (Parse; Describe + Bind;
Execute), opens a transaction with one more and commits with three: a tenant search, whose
own work takes a fraction of a millisecond at a small org, spent eleven. On an engine built by
`db.engine.build_engine` (`install`):

- a statement with parameters is prepared once per connection (named, kept in a bounded LRU)
  and then costs one round trip (Bind + Execute + Sync);
- the BEGIN that opens a transaction, and statements whose result nobody reads (`defer`: the
  tenant binding of `db.tenancy.bind_org`), travel in the same flush as the next statement;
  their replies are read first, every one of them, so the protocol never falls out of step,
  and an error in any of them fails the statement (a failed binding aborts the transaction:
  nothing runs unbound);
- COMMIT and ROLLBACK are simple queries, one round trip each.

Plans stay custom (`plan_cache_mode = force_custom_plan`, `db.engine.SESSION_SETTINGS`): a
prepared statement is planned with its values every time. Only the connection's protocol
methods are used, plus the result fields pg8000's own `Cursor.execute` sets; `pyproject.toml`
pins the pg8000 versions this is tested with.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

#: Prepared statements kept per connection: the hot paths use a few dozen shapes; a bulk
#: insert's batch sizes or a rare filter combination evict the least recently used.
CACHE_SIZE = 128
#: Statements longer than this run unnamed (pg8000's own path): a one-off bulk statement is
#: not worth server memory for the connection's lifetime.
MAX_CACHED_CHARS = 20_000
_CACHE = "_ragline_prepared"
_PENDING = "_ragline_pending"
_BEGIN = "begin transaction"
#: Server errors after which a prepared statement must be made again: its result type changed
#: under it (a column added to a table it selects `*` from), or it no longer exists
#: (`DEALLOCATE ALL`, `DISCARD ALL`).
_STALE = {"0A000": "one", "26000": "all"}

Key = tuple[str, tuple[int, ...]]


def install(engine: Engine) -> None:
    """Route the engine's statements, commits and rollbacks through this module (pg8000
    engines only; another driver is left as it is)."""
    if engine.dialect.driver != "pg8000":
        return
    sa.event.listen(engine, "connect", _on_connect)
    sa.event.listen(engine, "do_execute", _do_execute)
    sa.event.listen(engine, "do_execute_no_params", _do_execute_no_params)
    sa.event.listen(engine, "do_executemany", _do_executemany)


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    setattr(dbapi_conn, _CACHE, OrderedDict())
    setattr(dbapi_conn, _PENDING, [])
    dbapi_conn.commit = lambda: _end(dbapi_conn, "commit")
    dbapi_conn.rollback = lambda: _end(dbapi_conn, "rollback")


def defer(connection: Connection, operation: str, args: tuple[Any, ...]) -> bool:
    """Queue `operation` (format paramstyle: `%s`) to be sent with the connection's next
    statement, its result discarded. False when the connection does not take deferred
    statements (another driver): the caller then executes it itself."""
    dbapi_conn: Any = connection.connection.dbapi_connection
    pending = getattr(dbapi_conn, _PENDING, None)
    if pending is None:
        return False
    from pg8000.converters import make_params

    statement = _converted(operation)
    name, columns, input_funcs = _prepared(dbapi_conn, statement, ())
    pending.append((name, make_params(dbapi_conn.py_types, args), statement, columns, input_funcs))
    return True


def defer_or_execute(connection: Connection, operation: str, args: tuple[Any, ...]) -> None:
    """`defer` on pg8000; on another driver, execute `operation` at once (`%s` placeholders,
    which the other PostgreSQL drivers take too)."""
    if not defer(connection, operation, args):
        connection.exec_driver_sql(operation, args)


def set_local(connection: Connection, values: dict[str, str]) -> None:
    """`set_config(name, value, true)` for each (transaction-local settings), in one statement
    deferred to the next statement's round trip (`defer_or_execute`)."""
    sql = "select " + ", ".join("set_config(%s, %s, true)" for _ in values)
    defer_or_execute(connection, sql, tuple(item for pair in values.items() for item in pair))


def async_commit(connection: Connection) -> None:
    """This transaction's COMMIT does not wait for the WAL flush (`synchronous_commit = off`,
    sent with the next statement): for writes a database crash may lose, as a whole and in
    order, because something else redoes them (pipeline stages: the queue and reconcile;
    fair-share leases: they expire)."""
    set_local(connection, {"synchronous_commit": "off"})


def cached(dbapi_conn: Any) -> int:
    """How many prepared statements the connection holds (tests, diagnostics)."""
    return len(getattr(dbapi_conn, _CACHE, None) or ())


# --------------------------------------------------------------------------- SQLAlchemy hooks


def _do_execute(cursor: Any, statement: str, parameters: Any, _context: Any) -> bool:
    if not parameters:
        return _do_execute_no_params(cursor, statement, _context)
    if len(statement) > MAX_CACHED_CHARS:
        _send_pending(cursor._c)
        return False  # pg8000's unnamed path
    _execute(cursor, statement, parameters)
    return True


def _do_execute_no_params(cursor: Any, statement: str, _context: Any) -> bool:
    """A statement without binds: a simple query (one statement or several), as pg8000 runs
    it, with the pending messages in the same flush."""
    conn = cursor._c
    from pg8000 import core

    replies = _write_pending(conn)
    conn.send_QUERY(statement)
    core._flush(conn._sock)
    result = core.Context(statement)
    _read(conn, replies, result)
    _set_result(cursor, result)
    return True


def _do_executemany(cursor: Any, _statement: str, _parameters: Any, _context: Any) -> bool:
    _send_pending(cursor._c)
    return False  # pg8000's executemany, after the pending messages


# --------------------------------------------------------------------------- the protocol


def _execute(cursor: Any, operation: str, args: Any) -> None:
    """What `pg8000.dbapi.Cursor.execute` does for a statement with parameters, through a
    prepared statement of the connection, with the pending messages in the same flush."""
    from pg8000 import core
    from pg8000.converters import make_params

    conn = cursor._c
    if getattr(cursor, "paramstyle", "format") != "format":
        raise RuntimeError(f"unexpected pg8000 paramstyle {cursor.paramstyle!r}")
    statement = _converted(operation)
    oids = tuple(cursor._input_oids)
    name, columns, input_funcs = _prepared(conn, statement, oids)
    params = make_params(conn.py_types, tuple(args))
    replies = _write_pending(conn)
    conn.send_BIND(name, params)
    conn.send_EXECUTE()
    core._write(conn._sock, core.SYNC_MSG)
    core._flush(conn._sock)
    result = core.Context(columns=columns, input_funcs=input_funcs, statement=statement)
    try:
        _read(conn, replies, result)
    except Exception as exc:
        _after_error(conn, (statement, oids), exc)
        raise
    _set_result(cursor, result)


def _write_pending(conn: Any) -> list[Any]:
    """Write (not flush) the BEGIN a statement needs and the deferred statements; return the
    contexts their replies will fill, in order."""
    from pg8000 import core

    replies = []
    pending = getattr(conn, _PENDING, [])
    if not conn._in_transaction and not conn.autocommit:
        conn.send_QUERY(_BEGIN)
        replies.append(core.Context(_BEGIN))
    for name, params, statement, columns, input_funcs in pending:
        conn.send_BIND(name, params)
        conn.send_EXECUTE()
        core._write(conn._sock, core.SYNC_MSG)
        replies.append(core.Context(columns=columns, input_funcs=input_funcs, statement=statement))
    pending.clear()
    return replies


def _send_pending(conn: Any) -> None:
    """Send the deferred statements on their own (before a path this module does not run)."""
    from pg8000 import core

    if not getattr(conn, _PENDING, None):
        return
    replies = _write_pending(conn)
    core._flush(conn._sock)
    _read(conn, replies[:-1], replies[-1])


def _read(conn: Any, replies: list[Any], result: Any) -> None:
    """Read every reply in order, then the statement's; raise the first error only after all
    were read (a reply left unread would be taken for the next statement's)."""
    first: BaseException | None = None
    for context in (*replies, result):
        try:
            conn.handle_messages(context)
        except Exception as exc:
            if first is None:
                first = exc
            if conn._sock is None:
                break  # the connection is gone: nothing more to read
    if first is not None:
        _raise_as_dbapi(first)


def _raise_as_dbapi(exc: BaseException) -> NoReturn:
    converted = _dbapi_error(exc)
    if converted is exc:
        raise exc
    raise converted from exc


def _dbapi_error(exc: BaseException) -> BaseException:
    """A server error as the DB-API class pg8000's cursor gives it (`pg8000.legacy`, which
    SQLAlchemy's dialect uses): a unique violation an IntegrityError, and so on. The
    connectors' `pg8000.dbapi` connections raise a bare DatabaseError for everything; through
    this module both kinds of connection raise the same classes."""
    from pg8000 import dbapi

    fields = exc.args[0] if exc.args else None
    if type(exc) is not dbapi.DatabaseError or not isinstance(fields, dict):
        return exc
    code = fields.get("C")
    cls = (
        dbapi.InterfaceError
        if code == "28000"
        else dbapi.IntegrityError
        if code == "23505"
        else dbapi.ProgrammingError
    )
    converted: BaseException = cls(fields)
    return converted


def _set_result(cursor: Any, result: Any) -> None:
    cursor._context = result
    cursor._row_iter = iter(result.rows or [])
    cursor._input_oids = ()
    cursor.input_types = []


def _end(conn: Any, verb: str) -> None:
    """COMMIT (after any deferred statements, in the same flush) or ROLLBACK (deferred
    statements dropped: never sent, or undone by it) as one simple query."""
    from pg8000 import core

    pending = getattr(conn, _PENDING, [])
    if verb == "rollback":
        pending.clear()  # never sent, or undone by the rollback
        if conn._in_transaction:
            conn.execute_simple(verb)
        return
    if not pending and not conn._in_transaction:
        return
    replies = _write_pending(conn)  # BEGIN too, if the pending statements are all there is
    conn.send_QUERY(verb)
    core._flush(conn._sock)
    _read(conn, replies, core.Context(verb))


@functools.lru_cache(maxsize=512)
def _converted(operation: str) -> str:
    """The statement with `$n` placeholders, as pg8000 converts it (a character-by-character
    scan that cost ~0.5 ms per search statement): once per statement text."""
    from pg8000 import dbapi

    return str(dbapi.convert_paramstyle("format", operation, ())[0])


def _prepared(conn: Any, statement: str, oids: tuple[int, ...]) -> tuple[bytes, Any, Any]:
    cache: OrderedDict[Key, tuple[bytes, Any, Any]] = getattr(conn, _CACHE)
    key = (statement, oids)
    entry = cache.get(key)
    if entry is not None:
        cache.move_to_end(key)
        return entry
    if len(cache) >= CACHE_SIZE:
        _, (old, _c, _f) = cache.popitem(last=False)
        _close(conn, old)
    try:
        entry = tuple(conn.prepare_statement(statement, list(oids)))
    except Exception as exc:  # a syntax error, an unknown column: the server's own reply
        _raise_as_dbapi(exc)
    cache[key] = entry
    return entry


def _close(conn: Any, name: bytes) -> None:
    """Close a statement without a round trip of its own: the Close message rides with the
    next Sync, its CloseComplete is read (and ignored) with that reply."""
    from pg8000 import core

    conn._send_message(core.CLOSE, core.STATEMENT + name)
    conn._statement_nums.discard(name)


def _after_error(conn: Any, key: Key, exc: Exception) -> None:
    fields = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    scope = _STALE.get(str(fields.get("C", "")))
    cache = getattr(conn, _CACHE)
    if scope == "all":
        cache.clear()  # the names stay taken: some statements may still exist
    elif scope == "one" and key in cache:
        _close(conn, cache.pop(key)[0])
