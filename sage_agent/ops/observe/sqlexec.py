"""The read-only SQL path, shared by `*run-sql`, `*explain` and the agent loop's `run_sql` tool.

Layered, never keyword-based (see shared/reference/agent-safety.md):

1. The text is parsed with the server's grammar (sqlkit/pglast): exactly ONE statement per call.
2. An allow-list of statement kinds decided on the parse tree: SELECT / VALUES / TABLE (with no
   data-modifying CTE, no ``SELECT ... INTO``, no ``FOR UPDATE/SHARE``), SHOW, and EXPLAIN of those.
3. A deny-list of functions with side effects that a read-only transaction does not stop
   (``pg_terminate_backend``, ``pg_read_file``, ``lo_export``, ``dblink``, ``set_config``, ``nextval``...),
   decided on the functions the parse tree calls; and volatile functions defined outside
   ``pg_catalog`` and not part of an extension (a user function may write or signal, e.g. as SECURITY
   DEFINER) are refused after a catalog look-up (run every call; a prepared statement on a direct
   connection, so its plan is not rebuilt each time).
4. The statement runs inside ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout`` and
   ``lock_timeout`` on the server, and the transaction is always rolled back.
5. At most ``row_limit`` rows are fetched (server-side cursor for queries); ``truncated`` says so.

Usage (the agent loop)::

    from sage_agent.ops.observe.sqlexec import run_read_only, SqlRefused
    try:
        result = run_read_only(ctx, "select * from orders", row_limit=50, timeout_ms=10_000)
    except SqlRefused as exc:      # not allowed on the read-only path: nothing was sent to the server
        ...                         # exc.message says why, exc.hint what to do instead (exit code 2)
    except SqlFailed as exc:       # the server rejected it (missing table, timeout...): exit code 1
        ...
    result.columns, result.rows, result.truncated, result.total_rows, result.statement

``target`` may be an OpContext (uses ``ctx.connect()``), a psycopg connection (must not be inside
a transaction; it is left as found), or a URL string.
"""

from __future__ import annotations

import datetime
import decimal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sage_agent.db.redact import redact
from sage_agent.ops.observe.own import READ_ONLY_CURSOR
from sage_agent.ops.result import OpError

# Exit codes: a refusal is a problem with the input (2, like a usage error); a server error is 1.
REFUSED_EXIT_CODE = 2

# Functions a read-only transaction does not make harmless (signals, files, config, sequences,
# other databases, large objects, WAL/replication control, SQL-in-a-string executors).
DENIED_FUNCTIONS = frozenset({
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_file_write", "pg_file_unlink",
    "pg_file_rename", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
    "set_config", "nextval", "setval", "currval", "lastval",
    "txid_current", "pg_current_xact_id", "txid_current_if_assigned", "pg_current_xact_id_if_assigned",
    "pg_notify", "pg_logical_emit_message", "pg_switch_wal", "pg_create_restore_point",
    "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_promote",
    "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_log_backend_memory_contexts",
    "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_replication_origin_create", "pg_replication_origin_drop", "pg_import_system_collations",
    "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters", "pg_stat_reset_slru", "pg_stat_reset_replication_slot",
    "pg_stat_statements_reset", "pg_advisory_lock", "pg_advisory_xact_lock", "pg_advisory_lock_shared",
    "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
    "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock_shared",
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "http", "http_get", "http_post", "http_put", "http_delete", "http_patch", "http_head", "net.http_get",
    "net.http_post", "net.http_delete",
})
DENIED_PREFIXES = ("lo_", "dblink", "pg_replication_", "pg_advisory_unlock")

_ALLOWED_KINDS = ("SelectStmt", "VariableShowStmt", "ExplainStmt")


class SqlRefused(OpError):
    """The statement is not allowed on the read-only path. Nothing was sent to the server. Exit code 2."""

    def __init__(self, message: str, hint: str | None = None, *, reason: str = "refused") -> None:
        super().__init__(message, hint, exit_code=REFUSED_EXIT_CODE)
        self.reason = reason


class SqlFailed(OpError):
    """The server rejected the statement (syntax it accepted, but a missing table, a timeout...). Exit code 1."""

    def __init__(self, message: str, hint: str | None = None, *, sqlstate: str | None = None) -> None:
        super().__init__(message, hint, exit_code=1)
        self.sqlstate = sqlstate


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    total_rows: int | None  # None when truncated (the rest was never fetched)
    statement: str
    duration_ms: float = 0.0
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated,
                "total_rows": self.total_rows, "statement": self.statement,
                "duration_ms": round(self.duration_ms, 2)}


# --- parsing and the allow-list --------------------------------------------------------------------
def parse_statements(sql_text: str, filename: str = "<sql>") -> list:
    """Split into sqlkit Statements; a syntax error becomes SqlRefused with line and column."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

    if not sql_text or not sql_text.strip():
        raise SqlRefused("no SQL given", "pass a statement, e.g. \"select count(*) from my_table\"", reason="empty")
    try:
        statements = split_sql(sql_text, filename)
    except SqlSyntaxError as exc:
        raise SqlRefused(f"the SQL does not parse: line {exc.line}, column {exc.column}: {exc.message}",
                         "fix the syntax; nothing was sent to the server", reason="syntax") from None
    if not statements:
        raise SqlRefused("no SQL statement found (only comments?)", "pass a statement", reason="empty")
    return statements


def denied_functions(calls: set[str]) -> list[str]:
    """The called function names (as the parse tree names them) that the read-only path refuses."""
    bad = []
    for name in calls:
        short = name.rsplit(".", 1)[-1].lower()
        if name.lower() in DENIED_FUNCTIONS or short in DENIED_FUNCTIONS or short.startswith(DENIED_PREFIXES):
            bad.append(short)
    return sorted(set(bad))


def check_read_only(statement, server_major: int = 18) -> Any:
    """Raise SqlRefused unless this one statement is allowed on the read-only path. Returns its StatementInfo."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast

    from sage_agent.sqlkit.classify import classify

    node = statement.node
    info = classify(statement, server_major)
    kind = type(node).__name__
    if kind not in _ALLOWED_KINDS:
        raise SqlRefused(f"{info.action} is not a read-only statement: the read-only path runs SELECT, "
                         "VALUES, TABLE, SHOW and EXPLAIN only",
                         "writes go through *run-sql --write (shows the statements and asks first)",
                         reason="not_read_only")
    inner = node.query if isinstance(node, ast.ExplainStmt) else node
    if isinstance(node, ast.ExplainStmt) and type(inner).__name__ not in ("SelectStmt",):
        raise SqlRefused(f"EXPLAIN of {classify(inner, server_major).action} is refused on the read-only path",
                         "use *explain for plans of writes (ANALYZE only inside a rolled-back transaction)",
                         reason="not_read_only")
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.nodes import walk

    for sub, _ in walk(inner):
        if isinstance(sub, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)):
            raise SqlRefused("a data-modifying statement is hidden in this query (writable CTE: "
                             "WITH ... AS (INSERT/UPDATE/DELETE ...))",
                             "writes go through *run-sql --write", reason="writable_cte")
        if isinstance(sub, ast.SelectStmt):
            if sub.intoClause is not None:
                raise SqlRefused("SELECT ... INTO creates a table: not read-only",
                                 "use CREATE TABLE ... AS through *run-sql --write", reason="select_into")
            if sub.lockingClause:
                raise SqlRefused("SELECT ... FOR UPDATE/SHARE takes row locks: not read-only",
                                 "drop the FOR UPDATE/SHARE clause to read", reason="row_locks")
    bad = denied_functions(set(info.calls_functions))
    if bad:
        raise SqlRefused(f"refused: the query calls {', '.join(bad)}, which has effects a read-only "
                         "transaction does not stop",
                         "signals, files, settings, sequences and remote calls are not allowed on this path; "
                         "use *locks to cancel or terminate a backend", reason="denied_function")
    if not info.read_only:
        raise SqlRefused(f"{info.action} is not read-only", "writes go through *run-sql --write",
                         reason="not_read_only")
    return info


_VOLATILE_SQL = """select distinct n.nspname || '.' || p.proname,
       exists (select 1 from pg_proc c join pg_namespace cn on cn.oid = c.pronamespace
                where cn.nspname = 'pg_catalog' and c.proname = p.proname) as in_catalog
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where p.proname = any({names}) and p.provolatile = 'v'
   and n.nspname not in ('pg_catalog', 'information_schema')
   and p.prolang <> (select oid from pg_language where lanname = 'internal')
   -- extension members (uuid-ossp, pgcrypto...) rely on the deny-list and the read-only transaction
   and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                      and d.objid = p.oid and d.deptype = 'e')"""


def _volatile_query(calls: set[str]) -> "sql.Composed | None":
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    names = sorted({c.rsplit(".", 1)[-1] for c in calls})
    return sql.SQL(_VOLATILE_SQL).format(names=sql.Literal(names)) if names else None


_MAX_PREPARED = 64  # volatile checks kept prepared per connection (one per set of function names)


def _may_prepare(conn: Any) -> bool:
    """A server-side prepared statement only on DB Sage's own direct connections: never through a pooler (it would
    outlive us on a shared backend), nor on a connection the caller lent us."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import SageConnection

    return isinstance(conn, SageConnection) and not conn.pooled


def _volatile_rows(conn: Any, cur: Any, check_sql: str) -> list:
    """Run the volatile-function check on DB Sage's own direct connection as a server-side prepared statement
    (PREPARE/EXECUTE, one per set of function names): its plan is built once per connection, and the server
    rebuilds it itself when the catalog changes. psycopg's own preparing cannot be used: it forgets every prepared
    statement at each ROLLBACK, which ends every read call."""
    # lazy: psycopg loads on the first database call
    import hashlib

    import psycopg

    prepared: set[str] | None = getattr(conn, "_sage_volatile_prepared", None)
    if prepared is None:
        prepared = set()
        conn._sage_volatile_prepared = prepared  # type: ignore[attr-defined]
    name = "sage_volatile_" + hashlib.sha256(check_sql.encode()).hexdigest()[:20]
    if name not in prepared and len(prepared) >= _MAX_PREPARED:
        cur.execute(check_sql, prepare=False)
        return cur.fetchall()
    for _ in range(2):
        try:
            if name in prepared:
                cur.execute(f"execute {name}", prepare=False)
            else:
                cur.execute(f"prepare {name} as {check_sql}; execute {name}", prepare=False)
                cur.nextset()
                prepared.add(name)
            return cur.fetchall()
        except psycopg.errors.InvalidSqlStatementName:  # deallocated meanwhile (DEALLOCATE ALL, DISCARD ALL)
            prepared.discard(name)
        except psycopg.errors.DuplicatePreparedStatement:  # prepared by an earlier call we lost track of
            prepared.add(name)
    cur.execute(check_sql, prepare=False)
    return cur.fetchall()


def _volatile_from_rows(rows: list, calls: set[str]) -> list[str]:
    """Volatile functions outside pg_catalog that the query calls (they may write, lock or signal). A name that
    exists in pg_catalog resolves there first unless schema-qualified elsewhere."""
    qualified = {c for c in calls if "." in c}
    return sorted(name for name, in_catalog in rows if not in_catalog or name in qualified)


# --- execution -------------------------------------------------------------------------------------
class _Conn:
    """Open (and later close) a connection from a ctx, a URL or an existing connection."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.owned = False
        self.conn = None

    def __enter__(self):
        # lazy: psycopg loads on the first database call
        import psycopg

        if isinstance(self.target, psycopg.Connection):
            self.conn = self.target
        elif isinstance(self.target, str):
            # lazy: psycopg loads on the first database call
            from sage_agent.db.connect import connect

            self.conn = connect(self.target, autocommit=True)
            self.owned = True
        else:
            self.conn = self.target.connect(autocommit=True)
            self.owned = True
        return self.conn

    def __exit__(self, *exc):
        if self.owned and self.conn is not None:
            self.conn.close()
        return False


def server_error(exc: Exception, what: str = "the statement") -> SqlFailed:
    """Turn a psycopg error into a SqlFailed with a next step."""
    # lazy: psycopg loads on the first database call
    import psycopg

    diag = getattr(exc, "diag", None)
    state = getattr(exc, "sqlstate", None)
    primary = (diag.message_primary if diag and diag.message_primary else str(exc).splitlines()[0]).strip()
    hint = diag.message_hint if diag and diag.message_hint else None
    if state == "57014":
        primary, hint = f"{what} hit the statement timeout and was cancelled on the server", \
            hint or "narrow the query (WHERE, LIMIT) or raise the timeout (SAGE_STATEMENT_TIMEOUT_MS)"
    elif state == "55P03":
        hint = hint or "another session holds a conflicting lock: *locks shows who"
    elif state in ("42P01", "42703", "42883"):
        hint = hint or "check the names: *run-sql \"select * from information_schema.tables\" lists tables"
    elif state == "25006":
        hint = hint or "the read-only transaction stopped a write: use *run-sql --write"
    elif isinstance(exc, psycopg.OperationalError):
        hint = hint or "*env-check diagnoses the connection"
    return SqlFailed(redact(f"{what} failed: {primary}" + (f" (SQLSTATE {state})" if state else "")), hint,
                     sqlstate=state)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return "\\x" + raw[:64].hex() + ("..." if len(raw) > 64 else "")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def one_statement(statements: list, takes: str, next_step: str) -> Any:
    """The single statement of `statements`, or SqlRefused saying how many were given and what `takes` takes."""
    if len(statements) != 1:
        raise SqlRefused(f"{len(statements)} statements given: {takes}", next_step, reason="multiple_statements")
    return statements[0]


def end_transaction(conn: Any) -> None:
    """Roll back whatever the connection has open; a connection already broken has nothing left to undo."""
    # lazy: psycopg loads on the first database call
    import psycopg

    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("rollback")
    except psycopg.Error:
        pass


def _begin_sql(timeout_ms: int, lock_timeout_ms: int) -> str:
    # idle_in_transaction_session_timeout protects the server if this client dies mid-way
    return ("begin transaction read only; select set_config('statement_timeout', "
            f"'{int(timeout_ms)}ms', true), set_config('lock_timeout', '{int(lock_timeout_ms)}ms', true), "
            "set_config('idle_in_transaction_session_timeout', '60s', true)")


def begin_read_only(cur, timeout_ms: int, lock_timeout_ms: int = 5_000) -> None:
    """Start the read-only transaction with server-side limits (autocommit connection), in one round trip."""
    cur.execute(_begin_sql(timeout_ms, lock_timeout_ms))


def run_read_only(target: Any, sql_text: str, *, row_limit: int = 200, timeout_ms: int = 30_000,
                  server_major: int | None = None, statements: list | None = None) -> QueryResult:
    """Run ONE read-only statement and return at most ``row_limit`` rows (`statements`: sql_text already parsed).

    One round trip, two when the query calls functions: first the check for volatile user functions (a prepared
    statement on a direct connection; otherwise with the BEGIN), then BEGIN READ ONLY with the timeouts, the
    statement (a SELECT through a server-side cursor, so at most row_limit + 1 rows leave the server) and the
    ROLLBACK.
    Raises SqlRefused (exit code 2, nothing sent to the server) or SqlFailed (exit code 1).
    """
    statements = statements if statements is not None else parse_statements(sql_text)
    stmt = one_statement(statements, "the read-only path runs exactly one per call", "send them one at a time")
    info = check_read_only(stmt, server_major or 18)
    row_limit = max(0, int(row_limit))
    # lazy: psycopg loads on the first database call
    import psycopg

    with _Conn(target) as conn:
        if not conn.autocommit:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise SqlFailed("the connection is inside a transaction", "pass an idle connection")
            conn.autocommit = True
            restore = True
        else:
            restore = False
        notices: list[str] = []

        def on_notice(diag) -> None:
            notices.append(diag.message_primary or "")

        conn.add_notice_handler(on_notice)
        started = time.perf_counter()
        try:
            cur = conn.cursor()
            calls = set(info.calls_functions)
            volatile = _volatile_query(calls)
            first = _begin_sql(timeout_ms, 5_000)
            begun = False
            if volatile is not None:
                if _may_prepare(conn):
                    # its own statement before the transaction, prepared (planning this catalog join was most of a
                    # read call's time); it still runs every call, so a function created or replaced since the
                    # last call is seen
                    rows = _volatile_rows(conn, cur, volatile.as_string(conn))
                else:  # through a pooler (no prepared statements): in the BEGIN round trip, planned each time
                    cur.execute(first + "; " + volatile.as_string(conn))
                    cur.nextset()  # BEGIN -> the set_config row
                    cur.nextset()  # -> the volatile functions
                    rows, begun = cur.fetchall(), True
                bad = _volatile_from_rows(rows, calls)
                if bad:
                    raise SqlRefused(f"refused: the query calls volatile function(s) {', '.join(bad)}, which may "
                                     "change data or have side effects", "run it through *run-sql --write",
                                     reason="volatile_function")
            # one round trip: BEGIN READ ONLY + timeouts (unless begun above), the statement (exactly one, checked on
            # its parse tree; the newline ends a trailing -- comment) and the ROLLBACK
            begin = "" if begun else f"{first};\n"
            if type(stmt.node).__name__ == "SelectStmt":
                cur.execute(f"{begin}declare {READ_ONLY_CURSOR} no scroll cursor for\n{stmt.text}\n; "
                            f"fetch forward {row_limit + 1 if row_limit else 1} from {READ_ONLY_CURSOR}; rollback")
                skip = 1 if begun else 3  # [BEGIN, set_config,] DECLARE -> the FETCH's rows
            else:
                cur.execute(f"{begin}{stmt.text}\n; rollback")
                skip = 0 if begun else 2  # [BEGIN, set_config] -> the statement's rows
            for _ in range(skip):
                cur.nextset()
            columns = [d.name for d in cur.description or []]
            fetched = cur.fetchall() if cur.description else []
            truncated = len(fetched) > row_limit
            rows = [[_jsonable(v) for v in r] for r in fetched[:row_limit]]
        except SqlRefused:
            raise
        except psycopg.Error as exc:
            raise server_error(exc) from None
        finally:
            end_transaction(conn)
            conn.remove_notice_handler(on_notice)
            if restore:
                conn.autocommit = False
        elapsed = (time.perf_counter() - started) * 1000
    return QueryResult(columns=columns, rows=rows, truncated=truncated,
                       total_rows=None if truncated else len(rows), statement=stmt.text,
                       duration_ms=elapsed, notices=notices)
