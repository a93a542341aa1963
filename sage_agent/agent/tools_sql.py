"""The agent's `run_sql` tool: the read-only path only.

Uses `sage_agent.ops.observe.sqlexec.run_read_only` (the path `*run-sql` uses) when it is installed; until then a
minimal fallback with the same layers: parsed with PostgreSQL's grammar (pglast), exactly one statement,
SELECT only (no writable CTE, no SELECT INTO, no FOR UPDATE/SHARE, no side-effect functions), run inside
`BEGIN READ ONLY` with `SET LOCAL statement_timeout` / `lock_timeout`, always rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sage_agent.ops.result import OpError

_WRITE_NODES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}
_DENIED = {"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_read_file", "pg_read_binary_file",
           "pg_ls_dir", "pg_stat_file", "set_config", "nextval", "setval", "txid_current", "pg_current_xact_id",
           "pg_notify", "pg_switch_wal", "pg_rotate_logfile", "query_to_xml", "pg_stat_reset",
           "pg_stat_statements_reset"}
_DENIED_PREFIXES = ("lo_", "dblink", "pg_advisory", "pg_try_advisory", "pg_replication_", "pg_create_", "pg_drop_")


class SqlRefusedFallback(OpError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, exit_code=2)


@dataclass
class SqlRows:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    total_rows: int | None
    statement: str = ""
    notes: list[str] = field(default_factory=list)


def run_sql(ctx, sql_text: str, *, limit: int = 50, timeout_ms: int = 15_000) -> SqlRows:
    """Run one read-only statement. Raises OpError (exit_code 2 = refused, nothing sent; 1 = server error)."""
    try:
        from sage_agent.ops.observe.sqlexec import run_read_only  # type: ignore[import-not-found]
    except ImportError:
        run_read_only = None
    if run_read_only is not None:
        res = run_read_only(ctx, sql_text, row_limit=limit, timeout_ms=timeout_ms)
        return SqlRows(list(res.columns), [list(r) for r in res.rows], bool(res.truncated), res.total_rows,
                       getattr(res, "statement", ""))
    return _fallback(ctx, sql_text, limit=limit, timeout_ms=timeout_ms)


def check_read_only(sql_text: str) -> None:
    """Refuse anything but one plain SELECT, decided on the parse tree. Nothing is sent to the server."""
    from pglast.parser import ParseError, parse_sql_json

    if not sql_text or not sql_text.strip():
        raise SqlRefusedFallback("no SQL given", "pass one SELECT statement")
    try:
        tree = json.loads(parse_sql_json(sql_text))
    except ParseError as exc:
        raise SqlRefusedFallback(f"the SQL does not parse: {exc}", "fix the syntax; nothing was sent") from None
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        raise SqlRefusedFallback(f"run_sql takes exactly one statement (got {len(stmts)}); nothing was run",
                                 "send one SELECT per call")
    stmt = stmts[0].get("stmt", {})
    kind = next(iter(stmt), "?")
    if kind != "SelectStmt":
        raise SqlRefusedFallback(f"{kind.removesuffix('Stmt')} is not read-only: run_sql runs SELECT only; "
                                 "nothing was run", "changes go through the migration commands, which ask the person")
    problems: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _WRITE_NODES:
                    problems.append(f"a data-modifying {key.removesuffix('Stmt').upper()} inside the query")
                elif key == "intoClause":
                    problems.append("SELECT ... INTO creates a table")
                elif key == "lockingClause":
                    problems.append("FOR UPDATE/SHARE takes row locks")
                elif key == "FuncCall":
                    names = [n.get("String", {}).get("sval", "") for n in value.get("funcname", [])]
                    short = (names[-1] if names else "").lower()
                    if short in _DENIED or short.startswith(_DENIED_PREFIXES):
                        problems.append(f"function {short}() has side effects")
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(stmt)
    if problems:
        raise SqlRefusedFallback(f"refused: {'; '.join(sorted(set(problems)))}; nothing was run",
                                 "run_sql is read-only")


def _fallback(ctx, sql_text: str, *, limit: int, timeout_ms: int) -> SqlRows:
    import psycopg

    check_read_only(sql_text)
    conn = ctx.connect(autocommit=True, timeouts=False)
    try:
        conn.execute("BEGIN READ ONLY")
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                         (f"{int(timeout_ms)}ms", "3000ms"))
            cur = conn.execute(sql_text)
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchmany(limit + 1)
        finally:
            conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        from sage_agent.db.redact import redact

        raise OpError(redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__),
                      "check the table and column names (run_sql with information_schema helps)") from None
    truncated = len(rows) > limit
    rows = rows[:limit]
    return SqlRows(columns, [list(r) for r in rows], truncated, None if truncated else len(rows), sql_text)
