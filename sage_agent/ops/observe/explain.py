"""Getting a plan from the server safely: read-only unless ANALYZE of a write was asked for, and then
only inside a transaction that is always rolled back. `$1` parameters get a generic plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sage_agent.ops.observe.sqlexec import (SqlRefused, begin_read_only, denied_functions, end_transaction, one_statement,
                                          server_error)

EXPLAINABLE = ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


@dataclass
class PlanRequest:
    text: str
    node: Any
    action: str
    writes: bool
    params: int           # highest $n in the statement (0: none)
    notes: list[str] = field(default_factory=list)


def max_param(node: Any) -> int:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast

    from sage_agent.sqlkit.nodes import walk

    return max((n.number for n, _ in walk(node) if isinstance(n, ast.ParamRef) and n.number), default=0)


def prepare_request(sql_text: str, *, analyze: bool, server_major: int) -> PlanRequest:
    """Parse and vet the statement to explain. Raises SqlRefused for anything that cannot be explained."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.observe.sqlexec import parse_statements
    from sage_agent.sqlkit.classify import classify

    stmt = one_statement(parse_statements(sql_text), "*explain takes exactly one", "explain them one at a time")
    kind = type(stmt.node).__name__
    info = classify(stmt, server_major)
    if kind == "ExplainStmt":
        raise SqlRefused("give the statement without EXPLAIN: *explain adds it (and --analyze for ANALYZE)",
                         "e.g. *explain \"select ...\" --analyze", reason="nested_explain")
    if kind not in EXPLAINABLE:
        raise SqlRefused(f"{info.action} cannot be explained: EXPLAIN shows plans for SELECT, INSERT, UPDATE, "
                         "DELETE and MERGE", "for DDL use *lint or *dry-run (locks, rewrites, scans)",
                         reason="not_explainable")
    if kind == "SelectStmt" and stmt.node.intoClause is not None:
        raise SqlRefused("SELECT ... INTO creates a table: not explained", "explain the SELECT without INTO",
                         reason="select_into")
    params = max_param(stmt.node)
    if analyze:
        bad = denied_functions(set(info.calls_functions))
        if bad:
            raise SqlRefused(f"refused: EXPLAIN ANALYZE would run {', '.join(bad)}",
                             "explain without --analyze (plain EXPLAIN does not execute)", reason="denied_function")
        if params:
            raise SqlRefused(f"EXPLAIN ANALYZE needs values for ${params}: the statement has parameters",
                             "replace $1... with literal values, or drop --analyze for a generic plan",
                             reason="params_analyze")
    return PlanRequest(text=stmt.text, node=stmt.node, action=info.action, writes=not info.read_only,
                       params=params)


def explain_options(analyze: bool, generic: bool) -> str:
    opts = ["FORMAT JSON"]
    if analyze:
        opts += ["ANALYZE", "BUFFERS"]
    if generic:
        opts.append("GENERIC_PLAN")
    return ", ".join(opts)


def fetch_plan(conn, req: PlanRequest, *, analyze: bool, server_major: int, timeout_ms: int,
               lock_timeout_ms: int = 5_000) -> Any:
    """Run EXPLAIN and return its JSON document. The transaction is always rolled back.

    `conn` must be an autocommit connection.
    """
    # lazy: psycopg loads on the first database call
    import psycopg

    cur = conn.cursor()
    try:
        if analyze and req.writes:
            cur.execute("begin")
            cur.execute("select set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                        (f"{int(timeout_ms)}ms", f"{int(lock_timeout_ms)}ms"))
        else:
            begin_read_only(cur, timeout_ms, lock_timeout_ms)
        if req.params and server_major < 16:
            # PG < 16 has no GENERIC_PLAN: prepare with unknown parameter types (the server infers them)
            # and force a generic plan, so the NULLs passed to EXECUTE are never folded into the plan.
            cur.execute("set local plan_cache_mode = force_generic_plan")
            cur.execute("prepare sage_explain as " + req.text)
            nulls = ", ".join(["null"] * req.params)
            cur.execute(f"explain (format json) execute sage_explain({nulls})")
            req.notes.append(f"PostgreSQL {server_major} has no EXPLAIN (GENERIC_PLAN): planned with "
                             "PREPARE + plan_cache_mode=force_generic_plan (a generic plan, as for $n parameters)")
        else:
            generic = bool(req.params)
            cur.execute(f"explain ({explain_options(analyze, generic)}) " + req.text)
            if generic:
                req.notes.append("parameters $n: generic plan (EXPLAIN GENERIC_PLAN), valid for any values")
        doc = cur.fetchone()[0]
        if analyze and req.writes:
            req.notes.append(f"EXPLAIN ANALYZE ran the {req.action} inside a transaction that was rolled back: "
                             "nothing was changed")
        return doc
    except psycopg.Error as exc:
        raise server_error(exc, "EXPLAIN") from None
    finally:
        end_transaction(conn)
