"""Observability and query tuning: *run-sql, *explain, *optimize, *hotpaths, *monitor, *locks, *vacuum.

Every diagnostic reads through short read-only transactions with server-side timeouts. The only
actions (writes through *run-sql --write, cancel/terminate through *locks, *optimize --migration) raise
the risk of that one call (`raised_by`): they ask first with the exact SQL, and ask for PRODUCTION on a
production target, while looking at production never needs the PRODUCTION word.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sage_agent.ops.observe.common import command_line, short, sql_from_input
from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpError, OpResult, Table

# ================================================================================================
# *run-sql
# ================================================================================================


class RunSqlInput(BaseModel):
    sql: str
    write: bool = False
    limit: int | None = None
    csv: str | None = None


def _write_csv(ctx, path_text: str, columns: list[str], rows: list[list[Any]]) -> str:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = Path(ctx.project) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return str(path)


@operation("db-run-sql", risk="read", raised_by={"write": "write"})
def run_sql(inputs: RunSqlInput, ctx) -> OpResult:
    """Read-only by default (one statement, parse-tree allow-list, READ ONLY transaction, server timeout);
    --write runs the statements in one transaction after a confirmation showing them."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.observe.sqlexec import parse_statements, run_read_only

    text, source = sql_from_input(ctx, inputs.sql)
    limit = inputs.limit if inputs.limit is not None else ctx.settings.row_limit
    if limit < 0:
        raise OpError("limit must be 0 or more", exit_code=2)
    statements = parse_statements(text, source)
    if inputs.write:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.observe.sqlexec import SqlRefused, check_read_only

        read_only = False
        if len(statements) == 1:
            try:
                check_read_only(statements[0], ctx.server.major)
                read_only = True
            except SqlRefused:
                read_only = False
        if not read_only:
            return _run_writes(ctx, statements, limit, inputs.csv)
    result = run_read_only(ctx, text, row_limit=limit, timeout_ms=ctx.settings.statement_timeout_ms,
                           server_major=ctx.server.major, statements=statements)
    artifacts = []
    if inputs.csv:
        artifacts.append(_write_csv(ctx, inputs.csv, result.columns, result.rows))
    shown = len(result.rows)
    summary = (f"{shown} row(s)" + (f" shown (truncated at the limit of {limit})" if result.truncated else "")
               + f" in {result.duration_ms:.0f} ms (read-only)")
    notes = [f"NOTICE: {n}" for n in result.notices]
    if result.truncated:
        notes.append(f"more rows exist: raise --limit (now {limit}) or narrow the query")
    return OpResult(operation="db-run-sql", status="ok", summary=summary,
                    facts={"rows": shown, "truncated": result.truncated, "mode": "read-only",
                           "duration_ms": round(result.duration_ms, 1)},
                    tables=[Table(title="Result", columns=result.columns, rows=result.rows,
                                  truncated=result.truncated, total_rows=result.total_rows)],
                    notes=notes, artifacts=artifacts, data=result.as_dict(),
                    next_steps=[line for line in [_explain_line(result.statement)] if line]
                    if type(statements[0].node).__name__ == "SelectStmt" else [])


def _explain_line(statement: str) -> str | None:
    return command_line("explain", statement)


def _run_writes(ctx, statements, limit: int, csv_path: str | None) -> OpResult:
    # lazy: psycopg loads on the first database call; pglast (the SQL parser) loads only when SQL is parsed
    import psycopg

    from sage_agent.ops.observe.sqlexec import SqlFailed, SqlRefused, _jsonable, server_error
    from sage_agent.sqlkit.classify import classify

    ctx.require_primary()  # a hot standby refuses every write: say so before confirming anything
    major = ctx.server.major
    infos = [classify(s, major) for s in statements]
    for stmt, info in zip(statements, infos):
        if info.category == "transaction":
            raise SqlRefused(f"line {stmt.line}: {info.action} is not allowed: *run-sql --write runs all the "
                             "statements in one transaction itself", "remove BEGIN/COMMIT/ROLLBACK",
                             reason="transaction_control")
    non_tx = [i for i, info in enumerate(infos) if not info.transactional]
    if non_tx and len(statements) > 1:
        stmt = statements[non_tx[0]]
        raise SqlRefused(f"line {stmt.line}: {infos[non_tx[0]].action} cannot run inside a transaction; "
                         "it must be sent on its own", "run it as a single *run-sql --write call",
                         reason="non_transactional")
    plan = "\n".join(s.text.rstrip().rstrip(";") + ";" for s in statements)
    destructive = [(s, i) for s, i in zip(statements, infos) if i.is_destructive]
    if destructive:
        what = ", ".join(f"{i.action} (line {s.line})" for s, i in destructive[:5])
        ctx.confirm_destructive(f"{len(destructive)} destructive statement(s): {what}. Data will be lost.",
                                plan=plan)
    else:
        ctx.confirm(f"Run {len(statements)} statement(s) that change the database?", plan=plan)
    single_tx = not non_tx
    rows_out: list[list[Any]] = []
    last_columns: list[str] = []
    last_rows: list[list[Any]] = []
    truncated = False
    started = time.perf_counter()
    conn = ctx.connect(autocommit=not single_tx)
    with conn:
        try:
            if single_tx:
                with conn.transaction():
                    for n, (stmt, info) in enumerate(zip(statements, infos), start=1):
                        cur = conn.execute(stmt.text)
                        rows_out.append([n, stmt.line, info.action, cur.rowcount if cur.rowcount >= 0 else None,
                                         short(stmt.text, 80)])
                        if cur.description:
                            last_columns = [d.name for d in cur.description]
                            fetched = cur.fetchmany(limit + 1)
                            truncated = len(fetched) > limit
                            last_rows = [[_jsonable(v) for v in r] for r in fetched[:limit]]
            else:
                stmt, info = statements[0], infos[0]
                cur = conn.execute(stmt.text)
                rows_out.append([1, stmt.line, info.action, cur.rowcount if cur.rowcount >= 0 else None,
                                 short(stmt.text, 80)])
        except psycopg.Error as exc:
            failed = statements[len(rows_out)] if len(rows_out) < len(statements) else statements[-1]
            err = server_error(exc, f"statement {len(rows_out) + 1} (line {failed.line})")
            raise SqlFailed(err.message + ("; the transaction was rolled back: nothing was changed" if single_tx
                                           else ""), err.hint, sqlstate=err.sqlstate) from None
    elapsed = (time.perf_counter() - started) * 1000
    tables = [Table(title="Statements", columns=["#", "line", "statement", "rows affected", "sql"], rows=rows_out)]
    artifacts = []
    if last_columns:
        tables.append(Table(title="Result (last statement)", columns=last_columns, rows=last_rows,
                            truncated=truncated, total_rows=None if truncated else len(last_rows)))
        if csv_path:
            artifacts.append(_write_csv(ctx, csv_path, last_columns, last_rows))
    affected = sum(r[3] or 0 for r in rows_out)
    return OpResult(operation="db-run-sql", summary=f"{len(statements)} statement(s) committed "
                                                    f"({affected} row(s) affected) in {elapsed:.0f} ms",
                    facts={"statements": len(statements), "rows_affected": affected,
                           "mode": "write (one transaction)" if single_tx else "write (autocommit)",
                           "destructive": len(destructive)},
                    tables=tables, artifacts=artifacts,
                    data={"statements": [{"line": r[1], "action": r[2], "rows_affected": r[3]} for r in rows_out],
                          "columns": last_columns, "rows": last_rows, "truncated": truncated},
                    next_steps=["*vacuum" if affected > 10_000 else "*snapshot"])


# ================================================================================================
# *explain
# ================================================================================================


class ExplainInput(BaseModel):
    query: str
    analyze: bool = False


def explain_result(ctx, text: str, analyze: bool) -> tuple[OpResult, Any]:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.observe.explain import fetch_plan, prepare_request
    from sage_agent.ops.observe.plan import parse_plan, plan_catalog

    major = ctx.server.major
    req = prepare_request(text, analyze=analyze, server_major=major)
    if analyze and req.writes:
        ctx.confirm(f"EXPLAIN ANALYZE executes the {req.action} (taking its row locks) inside a transaction that "
                    "is then rolled back. Run it?", plan=f"BEGIN;\nEXPLAIN (ANALYZE, BUFFERS) {req.text};\nROLLBACK;")
    conn = ctx.connect(autocommit=True)
    with conn:
        doc = fetch_plan(conn, req, analyze=analyze, server_major=major,
                         timeout_ms=ctx.settings.statement_timeout_ms, lock_timeout_ms=ctx.settings.lock_timeout_ms)
        root, _top = parse_plan(doc)
        catalog = plan_catalog(conn, root)
    return plan_result(doc, catalog, analyze=analyze, action=req.action, text=req.text, notes=req.notes), root


MAX_TABLE_NODES = 60  # larger plans: the table shows the costliest nodes; the whole tree is in --markdown / data


def plan_result(doc: Any, catalog: Any, *, analyze: bool, action: str, text: str,
                notes: list[str] | None = None) -> OpResult:
    """The *explain result for an EXPLAIN JSON document (no database access; used by the benchmark too)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.observe.plan import analyse_plan, parse_plan, render_plan

    root, top = parse_plan(doc)
    findings = analyse_plan(root, catalog)
    lines, rows = render_plan(root)
    n_nodes = len(rows)
    facts: dict[str, Any] = {"statement": action, "nodes": n_nodes,
                             "total_cost": round(float(root.get("Total Cost", 0)), 2),
                             "estimated_rows": int(root.plan_rows)}
    if analyze:
        facts["actual_rows"] = int(root.actual_rows or 0)
        facts["planning_ms"] = round(float(top.get("Planning Time", 0)), 3)
        facts["execution_ms"] = round(float(top.get("Execution Time", 0)), 3)
    columns = ["node", "cost", "est rows", "actual rows", "loops", "time ms", "self ms", "buffers"]
    if not analyze:
        columns = columns[:3]
        rows = [r[:3] for r in rows]
    title = "Plan"
    truncated = False
    if n_nodes > MAX_TABLE_NODES:
        nodes = list(root.walk())
        order = sorted(range(n_nodes), key=lambda i: -((nodes[i].self_time or 0) if analyze
                                                       else float(nodes[i].get("Total Cost", 0))))
        rows = [[nodes[i].label(), *rows[i][1:]] for i in sorted(order[:MAX_TABLE_NODES // 2])]
        title = (f"Plan: the {len(rows)} nodes with the most {'self time' if analyze else 'cost'} of {n_nodes} "
                 "(--markdown prints the whole tree)")
        truncated = True
    status = "warning" if any(f.severity in ("warning", "error") for f in findings) else "ok"
    summary = (f"{action} plan: {n_nodes} node(s), cost {facts['total_cost']}"
               + (f", {facts['execution_ms']} ms" if analyze else " (estimates; --analyze runs it)")
               + (f", {len(findings)} finding(s)" if findings else ", no findings"))
    markdown = "\n".join([f"# EXPLAIN {action}", "", "```sql", text, "```", "", "```", *lines, "```", ""]
                         + ([f"- **{f.severity}** `{f.rule}` ({f.location}): {f.message}"
                             + (f" - fix: {f.fix}" if f.fix else "") for f in findings] or ["No findings."])) + "\n"
    next_steps = ["*optimize"] if any(f.rule in ("plan.seq_scan_large", "plan.join_without_index",
                                                  "plan.filter_discards") for f in findings) else []
    if any(f.rule == "plan.misestimate" for f in findings):
        next_steps.append("*vacuum")
    return OpResult(operation="db-explain", status=status, summary=summary, facts=facts,
                    tables=[Table(title=title, columns=columns, rows=rows, truncated=truncated,
                                  total_rows=n_nodes if truncated else None)],
                    findings=findings, notes=list(notes or []), next_steps=next_steps, markdown=markdown,
                    data={"plan": doc, "plan_text": lines, "analyze": analyze})


@operation("db-explain", risk="read")
def explain(inputs: ExplainInput, ctx) -> OpResult:
    """EXPLAIN (FORMAT JSON [, ANALYZE, BUFFERS]) rendered as a tree, with findings."""
    text, _ = sql_from_input(ctx, inputs.query)
    result, _root = explain_result(ctx, text, inputs.analyze)
    return result


# ================================================================================================
# *optimize
# ================================================================================================


class OptimizeInput(BaseModel):
    query: str
    migration: bool = False


@operation("query-optimization", risk="read", raised_by={"migration": "write"})
def optimize(inputs: OptimizeInput, ctx) -> OpResult:
    """Index candidates (sqlglot, against the real catalog), checked against existing indexes, what-if
    evaluated with hypopg when available; rewrite advice; CREATE INDEX CONCURRENTLY statements."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.optimize import optimize_query

    text, _ = sql_from_input(ctx, inputs.query)
    return optimize_query(ctx, text, migration=inputs.migration)


# ================================================================================================
# *hotpaths
# ================================================================================================


class HotpathsInput(BaseModel):
    by: str = "all"
    limit: int | None = None
    include_own: bool = False


@operation("db-analyze-hotpaths", risk="read")
def hotpaths(inputs: HotpathsInput, ctx) -> OpResult:
    """Top statements from pg_stat_statements, with the next step for each."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.diagnostics import hotpaths_report

    return hotpaths_report(ctx, inputs.by, inputs.limit or 10, include_own=inputs.include_own)


# ================================================================================================
# *monitor
# ================================================================================================


class MonitorInput(BaseModel):
    once: bool = False
    interval: str = "2"   # seconds between refreshes (text input: the task file's default is the source)
    count: str = "5"      # refreshes in the REPL
    include_own: bool = False


@operation("db-monitor-queries", risk="read")
def monitor(inputs: MonitorInput, ctx) -> OpResult:
    """pg_stat_activity: long-running, idle in transaction, wait events, connections vs max_connections."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.diagnostics import monitor_report

    try:
        interval, count = float(inputs.interval), int(inputs.count)
    except ValueError:
        raise OpError("interval must be a number of seconds and count a whole number",
                      "e.g. *monitor --interval 5 --count 12", exit_code=2) from None
    if interval <= 0 or count < 1:
        raise OpError("interval must be > 0 and count >= 1", exit_code=2)
    return monitor_report(ctx, once=inputs.once, interval=interval, count=count, include_own=inputs.include_own)


# ================================================================================================
# *locks
# ================================================================================================


class LocksInput(BaseModel):
    cancel: int | None = None
    terminate: int | None = None
    include_own: bool = False


@operation("db-check-locks", risk="read", raised_by={"cancel": "write", "terminate": "destructive"})
def locks(inputs: LocksInput, ctx) -> OpResult:
    """The blocking tree (pg_blocking_pids) with lock modes, conflicts, waits and statements; optionally
    cancel (confirm) or terminate (typed word) a blocking backend."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.diagnostics import locks_report

    return locks_report(ctx, cancel=inputs.cancel, terminate=inputs.terminate, include_own=inputs.include_own)


# ================================================================================================
# *vacuum
# ================================================================================================


class VacuumInput(BaseModel):
    table: str | None = None
    limit: int | None = None


@operation("db-vacuum-status", risk="read")
def vacuum(inputs: VacuumInput, ctx) -> OpResult:
    """Dead tuples, (auto)vacuum/analyze history, thresholds, wraparound age, bloat, running vacuums."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.diagnostics import vacuum_report

    return vacuum_report(ctx, table=inputs.table, limit=inputs.limit or 20)
