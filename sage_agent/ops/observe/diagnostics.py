"""The catalog diagnostics: locks, vacuum, monitor, hotpaths. Each is one or a few queries run in a
read-only transaction with a server-side statement timeout."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Iterator

from sage_agent.db.schemas import is_managed_schema
from sage_agent.ops.observe.common import command_line, seconds, short
from sage_agent.ops.result import Finding, OpError, OpResult, Table, human_bytes
from sage_agent.sqlkit.idents import readable

DIAG_TIMEOUT_MS = 30_000
LONG_RUNNING_S = 60          # an active query older than this is "long running"
IDLE_IN_TX_S = 60            # idle in transaction longer than this holds locks and blocks vacuum
XID_WRAP_LIMIT = 2_147_483_647


@contextmanager
def read_only(ctx, timeout_ms: int = DIAG_TIMEOUT_MS) -> Iterator[Any]:
    """An autocommit connection inside BEGIN READ ONLY with server-side timeouts; rolled back after."""
    # lazy: psycopg loads on the first database call
    import psycopg

    from sage_agent.ops.observe.sqlexec import begin_read_only, end_transaction, server_error

    conn = ctx.connect(autocommit=True)
    with conn:
        cur = conn.cursor()
        try:
            begin_read_only(cur, min(timeout_ms, ctx.settings.statement_timeout_ms), ctx.settings.lock_timeout_ms)
            yield conn
        except psycopg.Error as exc:
            raise server_error(exc, "the diagnostic query") from None
        finally:
            end_transaction(conn)


def _rows(conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    # lazy: psycopg loads on the first database call
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# ================================================================================================
# locks
# ================================================================================================
LOCK_MODES = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
              "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]
_CONFLICTS = {  # PostgreSQL's table-level lock conflict matrix (docs: explicit-locking)
    "AccessShareLock": {"AccessExclusiveLock"},
    "RowShareLock": {"ExclusiveLock", "AccessExclusiveLock"},
    "RowExclusiveLock": {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
    "ShareUpdateExclusiveLock": {"ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock",
                                 "AccessExclusiveLock"},
    "ShareLock": {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock",
                  "AccessExclusiveLock"},
    "ShareRowExclusiveLock": {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock",
                              "ExclusiveLock", "AccessExclusiveLock"},
    "ExclusiveLock": set(LOCK_MODES) - {"AccessShareLock"},
    "AccessExclusiveLock": set(LOCK_MODES),
}


def conflicts(held: str, wanted: str) -> bool:
    return wanted in _CONFLICTS.get(held, set())


_SESSIONS_SQL = """
with act as (
  select a.pid, pg_blocking_pids(a.pid) as blocked_by, a.usename, a.application_name, a.datname, a.state,
         a.wait_event_type, a.wait_event, a.backend_type,
         extract(epoch from now() - a.query_start)::float8 as query_s,
         extract(epoch from now() - a.xact_start)::float8 as xact_s,
         extract(epoch from now() - a.state_change)::float8 as state_s,
         left(a.query, 2000) as query
    from pg_stat_activity a
   where a.pid <> pg_backend_pid()
)
select * from act
 where cardinality(blocked_by) > 0
    or pid in (select unnest(blocked_by) from act)
 order by xact_s desc nulls last
"""

_LOCKS_SQL = """
select l.pid, l.locktype, l.mode, l.granted, l.database, l.relation, l.page, l.tuple, l.virtualxid,
       l.transactionid::text as transactionid, l.classid, l.objid, l.objsubid,
       case when l.relation is not null then l.relation::regclass::text end as relname,
       {waitstart}
  from pg_locks l
 where l.pid = any(%s)
"""


def _lock_object(lock: dict[str, Any]) -> str:
    kind = lock["locktype"]
    if kind == "relation":
        return f"table {lock['relname']}"
    if kind == "tuple":
        return f"row ({lock['page']},{lock['tuple']}) of {lock['relname']}"
    if kind == "transactionid":
        return f"transaction {lock['transactionid']} (a row it changed)"
    if kind == "virtualxid":
        return f"virtual transaction {lock['virtualxid']}"
    if kind == "advisory":
        return f"advisory lock {lock['objid']}"
    return f"{kind} {lock.get('objid') or ''}".strip()


def _same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("locktype", "database", "relation", "page", "tuple", "virtualxid", "transactionid", "classid", "objid",
            "objsubid")
    return all(a[k] == b[k] for k in keys)


def lock_snapshot(conn, server_major: int) -> dict[str, Any]:
    """Blocking sessions, their locks, and the blocked -> blocking edges."""
    sessions = _rows(conn, _SESSIONS_SQL)
    pids = [s["pid"] for s in sessions]
    waitstart = ("extract(epoch from now() - l.waitstart)::float8 as wait_s" if server_major >= 14
                 else "null::float8 as wait_s")
    locks = _rows(conn, _LOCKS_SQL.format(waitstart=waitstart), (pids,)) if pids else []
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for lock in locks:
        by_pid.setdefault(lock["pid"], []).append(lock)
    edges = []
    for s in sessions:
        waiting = next((l for l in by_pid.get(s["pid"], []) if not l["granted"]), None)
        for blocker in s["blocked_by"] or []:
            held = [l for l in by_pid.get(blocker, []) if waiting and l["granted"] and _same_object(l, waiting)]
            edges.append({
                "blocked_pid": s["pid"], "blocking_pid": blocker,
                "wanted_mode": waiting["mode"] if waiting else None,
                "object": _lock_object(waiting) if waiting else None,
                "held_modes": sorted({l["mode"] for l in held}),
                "wait_s": (waiting.get("wait_s") if waiting else None) or s["state_s"],
            })
    return {"sessions": sessions, "locks": locks, "edges": edges}


def _explain_edge(edge: dict[str, Any]) -> str:
    wanted, held, obj = edge["wanted_mode"], edge["held_modes"], edge["object"]
    if not wanted:
        return "waits (lock details unavailable)"
    if obj and obj.startswith("transaction"):
        return f"waits for {obj} to commit or roll back (row-level conflict; {wanted})"
    if held:
        clash = [h for h in held if conflicts(h, wanted)] or held
        return f"wants {wanted} on {obj}; {edge['blocking_pid']} holds {', '.join(clash)} which conflicts"
    return f"wants {wanted} on {obj}; queued behind {edge['blocking_pid']} (an earlier waiter for a conflicting lock)"


def locks_report(ctx, *, cancel: int | None, terminate: int | None, include_own: bool = False) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.own import own_session

    if cancel is not None and terminate is not None:
        raise OpError("give either cancel or terminate, not both", exit_code=2)
    major = ctx.server.major
    with read_only(ctx) as conn:
        snap = lock_snapshot(conn, major)
        standby = conn.execute("select pg_is_in_recovery()").fetchone()[0]
    sessions = {s["pid"]: s for s in snap["sessions"]}
    own = {pid for pid, s in sessions.items() if own_session(s.get("application_name"), s.get("datname"))}
    edges = snap["edges"]
    hidden_edges = 0
    if not include_own:  # a wait between two of DB Sage's own sessions is its business; one involving a user's is not
        kept = [e for e in edges if not (e["blocked_pid"] in own and e["blocking_pid"] in own)]
        hidden_edges = len(edges) - len(kept)
        edges = kept
    blocked_by: dict[int, list[dict[str, Any]]] = {}
    for e in edges:
        blocked_by.setdefault(e["blocking_pid"], []).append(e)
    blocked = {e["blocked_pid"] for e in edges}
    roots = [pid for pid in sessions if pid in blocked_by and pid not in blocked]
    if not roots and blocked_by:  # a cycle (deadlock about to be broken) - show something
        roots = sorted(blocked_by)[:1]
    rows: list[list[Any]] = []
    findings: list[Finding] = []

    def visit(pid: int, depth: int, edge: dict[str, Any] | None, seen: set[int]) -> None:
        s = sessions.get(pid, {})
        prefix = ("   " * (depth - 1) + "└─ ") if depth else ""
        state = s.get("state") or ""
        if edge is None:
            what = f"blocks {len(blocked_by.get(pid, []))} session(s)"
            duration = seconds(s.get("xact_s"))
        else:
            what = _explain_edge(edge)
            duration = seconds(edge["wait_s"])
        rows.append([f"{prefix}{pid}", state, what, duration, s.get("application_name") or "",
                     short(s.get("query"), 100)])
        if pid in seen:
            return
        for child in blocked_by.get(pid, []):
            visit(child["blocked_pid"], depth + 1, child, seen | {pid})

    for root in roots:
        visit(root, 0, None, set())
        s = sessions.get(root, {})
        n = len(blocked_by.get(root, []))
        if (s.get("state") or "").startswith("idle in transaction"):
            findings.append(Finding(
                rule="locks.idle_in_transaction_blocker", severity="error", location=f"pid {root}",
                message=f"pid {root} is idle in transaction for {seconds(s.get('state_s'))} and blocks {n} session(s)",
                detail=short(s.get("query"), 200),
                fix=f"the application forgot to COMMIT/ROLLBACK; cancelling does nothing when idle: "
                    f"*locks --terminate {root} (typed word); set idle_in_transaction_session_timeout"))
        else:
            findings.append(Finding(
                rule="locks.blocking", severity="warning", location=f"pid {root}",
                message=f"pid {root} ({s.get('state') or '?'}, transaction open {seconds(s.get('xact_s'))}) "
                        f"blocks {n} session(s)",
                detail=short(s.get("query"), 200),
                fix=f"wait for it, or *locks --cancel {root} (stops its statement) / --terminate {root}"))
    action_note: list[str] = []
    if cancel is not None or terminate is not None:
        pid = cancel if cancel is not None else terminate
        assert pid is not None
        if pid not in blocked_by:
            raise OpError(f"pid {pid} is not blocking anything right now: nothing was done",
                          "run *locks to see the current blocking sessions", exit_code=2)
        func = "pg_cancel_backend" if cancel is not None else "pg_terminate_backend"
        plan = f"SELECT {func}({pid});  -- {short(sessions[pid].get('query'), 100)}"
        if cancel is not None:
            ctx.confirm(f"Cancel the running statement of pid {pid} (its transaction rolls back if it was running; "
                        "an idle-in-transaction session is not affected)?", plan=plan)
        else:
            ctx.confirm_destructive(f"Terminate pid {pid}: its connection closes and its open transaction is "
                                    "rolled back (uncommitted work is lost).", plan=plan)
        conn = ctx.connect(autocommit=True)
        with conn:
            # lazy: psycopg loads on the first database call
            from psycopg import sql

            ok = conn.execute(sql.SQL("select {}(%s)").format(sql.Identifier(func)), (pid,)).fetchone()[0]
            gone = None
            # a terminated backend stops blocking (its transaction aborts) a moment before it leaves
            # pg_stat_activity: wait (bounded, 5 s) for it to be gone; a cancel is done when it no longer blocks
            for _ in range(50):
                alive = conn.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone()[0]
                still = conn.execute("select count(*) from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
                                     (pid,)).fetchone()[0]
                gone = not alive
                if gone or (cancel is not None and not still):
                    break
                time.sleep(0.1)
        action_note.append(f"{func}({pid}) returned {ok}; " + ("the backend is gone" if gone else
                                                             "the backend is still connected"))
        # The tree read before the action is history now: show the locks as they are after it.
        after = locks_report(ctx, cancel=None, terminate=None, include_own=include_own)
        done = "Cancelled the statement of" if cancel is not None else "Terminated"
        after.summary = f"{done} pid {pid}; now: {after.summary[0].lower()}{after.summary[1:]}"
        after.notes = action_note + [n for n in after.notes if n not in action_note]
        after.facts = {"acted_on_pid": pid, "action": func, "backend_gone": bool(gone), **after.facts}
        after.data["action"] = {"function": func, "pid": pid, "returned": ok, "backend_gone": bool(gone)}
        return after
    n_blocked = len(blocked)
    summary = (f"{n_blocked} session(s) blocked by {len(roots)} blocker(s)" if edges
               else "No blocking: no session waits for a lock held by another")
    status = "warning" if edges else "ok"
    notes = action_note + ([] if edges else ["pg_blocking_pids() found no waits in this instant"])
    if standby:  # each server has its own lock table: the primary's blocking is not visible from here
        notes.append("this is a read-only hot standby: only its own sessions' locks are shown; run *locks on the "
                     "primary for the sessions that write")
    if roots:
        idle = (sessions.get(roots[0], {}).get("state") or "").startswith("idle in transaction")
        # cancelling an idle-in-transaction session does nothing (no statement runs): only terminating helps
        steps = [f"*locks --terminate {roots[0]}"] if idle else [f"*locks --cancel {roots[0]}",
                                                                  f"*locks --terminate {roots[0]}"]
    else:
        steps = ["*monitor"]
    if hidden_edges:
        notes.append(f"{hidden_edges} wait(s) between DB Sage's own sessions (or pg_dump's) left out: --include-own "
                     "shows them")
    return OpResult(operation="db-check-locks", status=status, summary=summary,
                    facts={"blocked_sessions": n_blocked, "blocking_roots": len(roots),
                           "locks_examined": len(snap["locks"])},
                    tables=[Table(title="Blocking tree", columns=["pid", "state", "waiting / holding", "for",
                                                                  "application", "statement"], rows=rows)] if rows
                    else [],
                    findings=findings, notes=notes,
                    next_steps=steps,
                    data={"edges": [{k: e[k] for k in ("blocked_pid", "blocking_pid", "wanted_mode", "held_modes",
                                                       "object", "wait_s")} for e in edges],
                          "roots": roots,
                          "sessions": [{k: s[k] for k in ("pid", "state", "blocked_by", "application_name",
                                                          "query", "xact_s", "wait_event_type", "wait_event")}
                                       for s in snap["sessions"] if include_own or s["pid"] not in own
                                       or s["pid"] in blocked or s["pid"] in blocked_by]})


# ================================================================================================
# vacuum
# ================================================================================================
# pg_class and the statistics functions directly, not pg_stat_user_tables: that view also sums every index's scans
# per table (a join of pg_index and a group by over all of them) that *vacuum does not use; at 20,000 tables that
# join is most of the statement. The tables are pg_stat_user_tables' (same kinds, same schemas left out).
_VACUUM_SQL = """
with stats as (
  select c.oid, n.nspname as schema, c.relname as name, pg_stat_get_live_tuples(c.oid) as n_live_tup,
         pg_stat_get_dead_tuples(c.oid) as n_dead_tup, pg_stat_get_mod_since_analyze(c.oid) as n_mod_since_analyze,
         pg_stat_get_last_vacuum_time(c.oid) as last_vacuum, pg_stat_get_last_autovacuum_time(c.oid) as last_autovacuum,
         pg_stat_get_last_analyze_time(c.oid) as last_analyze,
         pg_stat_get_last_autoanalyze_time(c.oid) as last_autoanalyze,
         pg_stat_get_vacuum_count(c.oid) as vacuum_count, pg_stat_get_autovacuum_count(c.oid) as autovacuum_count,
         greatest(c.reltuples, 0)::float8 as reltuples, c.reltuples < 0 as never_analyzed, c.relpages,
         c.relpages::float8 * current_setting('block_size')::float8 as table_bytes,
         case when c.relkind = 'p' then 0 else age(c.relfrozenxid) end::float8 as xid_age,  -- a partitioned parent
         c.reloptions                                                                -- has no xid (age 2^31-1)
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
   where c.relkind in ('r', 'm', 't', 'p') and c.relnamespace not in (
           select oid from pg_namespace where nspname in ('pg_catalog', 'information_schema') or nspname ~ '^pg_toast')
     {filter}
), widths as (
  select ps.schemaname, ps.tablename, sum(ps.avg_width)::float8 as row_width
    from pg_stats ps
   where ps.tablename = any (array(select name from stats where relpages > 128))  -- bloat matters from 1 MB up
   group by 1, 2
)
select st.*,
       coalesce(o.vac_base, current_setting('autovacuum_vacuum_threshold'))::float8 as vac_base,
       coalesce(o.vac_scale, current_setting('autovacuum_vacuum_scale_factor'))::float8 as vac_scale,
       coalesce(o.an_base, current_setting('autovacuum_analyze_threshold'))::float8 as an_base,
       coalesce(o.an_scale, current_setting('autovacuum_analyze_scale_factor'))::float8 as an_scale,
       coalesce(o.av_enabled, 'true') as av_enabled,
       coalesce(o.fillfactor, '100')::float8 as fillfactor,
       w.row_width
  from stats st
  left join lateral (
    select max(option_value) filter (where option_name = 'autovacuum_vacuum_threshold') as vac_base,
           max(option_value) filter (where option_name = 'autovacuum_vacuum_scale_factor') as vac_scale,
           max(option_value) filter (where option_name = 'autovacuum_analyze_threshold') as an_base,
           max(option_value) filter (where option_name = 'autovacuum_analyze_scale_factor') as an_scale,
           max(option_value) filter (where option_name = 'autovacuum_enabled') as av_enabled,
           max(option_value) filter (where option_name = 'fillfactor') as fillfactor
      from pg_options_to_table(st.reloptions)
     where st.reloptions is not null) o on true
  left join widths w on w.schemaname = st.schema and w.tablename = st.name
"""

_DB_XID_SQL = """
select datname, age(datfrozenxid)::float8 as xid_age, mxid_age(datminmxid)::float8 as mxid_age
  from pg_database
 where datallowconn and datname not like 'sage\\_shadow\\_%' and datname not like 'sage\\_tpl\\_%'
 order by age(datfrozenxid) desc
"""  # DB Sage's shadow and template databases are internal: never listed

_PROGRESS_SQL = """
select p.pid, p.relid::regclass::text as relname, p.phase, p.heap_blks_total, p.heap_blks_scanned,
       p.heap_blks_vacuumed, p.index_vacuum_count, a.query, a.backend_type,
       extract(epoch from now() - a.query_start)::float8 as running_s
  from pg_stat_progress_vacuum p left join pg_stat_activity a on a.pid = p.pid
"""

def _fmt_ts(value: Any) -> str:
    # f-string, not strftime: four timestamps per table add up at 20,000 tables (sage watch rounds)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}" if value else "never"


# Only the tables that can have a finding (the same conditions as the findings below, in SQL): sage watch reads
# 20,000-table schemas every minute, and a table with few dead tuples, a young xid and its statistics has none.
# The settings are read once per statement (a sub-select), not once per table.
_CANDIDATES = """
and (c.reloptions is not null or c.relpages > (select 50 * 1024 * 1024 / current_setting('block_size')::float8)
     or (c.relkind <> 'p' and age(c.relfrozenxid) > (select current_setting('autovacuum_freeze_max_age')::float8))
     or pg_stat_get_dead_tuples(c.oid) >= 1000
     or (c.reltuples < 0 and pg_stat_get_live_tuples(c.oid) > 0)
     or (pg_stat_get_live_tuples(c.oid) >= 1000 and pg_stat_get_last_analyze_time(c.oid) is null
         and pg_stat_get_last_autoanalyze_time(c.oid) is null)) """


def vacuum_report(ctx, *, table: str | None, limit: int, findings_only: bool = False) -> OpResult:
    """`findings_only`: leave out the tables that cannot have a finding (the findings and the counts of tables
    past their threshold stay exact; the table list and the table count do not)."""
    params: list[Any] = []
    filt = _CANDIDATES if findings_only else ""
    if table:
        schema, _, name = table.rpartition(".")
        filt += "and c.relname = %s" + (" and n.nspname = %s" if schema else "")
        params = [name] + ([schema] if schema else [])
    with read_only(ctx) as conn:
        tables = _rows(conn, _VACUUM_SQL.format(filter=filt), params or None)
        dbs = _rows(conn, _DB_XID_SQL)
        progress = _rows(conn, _PROGRESS_SQL)
        settings = dict(conn.execute(
            "select name, setting from pg_settings where name in ('autovacuum', 'autovacuum_freeze_max_age', "
            "'autovacuum_naptime', 'autovacuum_max_workers', 'track_counts')").fetchall())
    if table and not tables:
        raise OpError(f"table {table} not found among user tables", "check the name (schema.table)", exit_code=1)
    freeze_max = float(settings.get("autovacuum_freeze_max_age", 200_000_000))
    findings: list[Finding] = []
    out = []
    for t in tables:
        full = f"{t['schema']}.{t['name']}"
        rt = t["reltuples"]
        vac_threshold = t["vac_base"] + t["vac_scale"] * rt
        an_threshold = t["an_base"] + t["an_scale"] * rt
        dead = float(t["n_dead_tup"] or 0)
        live = float(t["n_live_tup"] or 0)
        vac_pct = 100 * dead / vac_threshold if vac_threshold else 0.0
        an_pct = 100 * float(t["n_mod_since_analyze"] or 0) / an_threshold if an_threshold else 0.0
        dead_frac = dead / (live + dead) if live + dead else 0.0
        bytes_ = t["table_bytes"] or 0.0
        width = t["row_width"]
        if width and rt:
            expected = rt * (width + 28) * 100 / max(t["fillfactor"], 10)
            bloat = max(bytes_ - expected, 0.0) if bytes_ > 8192 * 4 else 0.0
        else:
            bloat = bytes_ * dead_frac
        av_on = str(t["av_enabled"]).lower() in ("true", "on", "1", "yes")
        row = {
            "table": full, "live": live, "dead": dead, "dead_pct": round(100 * dead_frac, 1),
            "vacuum_threshold": round(vac_threshold), "vacuum_pct": round(vac_pct, 1),
            "analyze_threshold": round(an_threshold), "analyze_pct": round(an_pct, 1),
            "last_vacuum": _fmt_ts(t["last_vacuum"]), "last_autovacuum": _fmt_ts(t["last_autovacuum"]),
            "last_analyze": _fmt_ts(t["last_analyze"]), "last_autoanalyze": _fmt_ts(t["last_autoanalyze"]),
            "xid_age": int(t["xid_age"] or 0), "size_bytes": bytes_, "bloat_bytes": round(bloat),
            "autovacuum_enabled": av_on, "system": is_managed_schema(t["schema"]),
        }
        out.append(row)
        if is_managed_schema(t["schema"]):
            continue
        qname = _LazyName(t["schema"], t["name"])  # quoted only for a finding: most of 20,000 tables have none
        if not av_on:
            findings.append(Finding(rule="vacuum.autovacuum_disabled", severity="warning", location=full,
                                    message=f"autovacuum is disabled on {full} ({dead:,.0f} dead tuples)",
                                    fix=f"ALTER TABLE {qname} RESET (autovacuum_enabled); or VACUUM it on a schedule"))
        if dead >= 1000 and vac_pct >= 100:
            findings.append(Finding(
                rule="vacuum.over_threshold", severity="warning", location=full,
                message=f"{full}: {dead:,.0f} dead tuples, {vac_pct:.0f}% of its autovacuum threshold "
                        f"({vac_threshold:,.0f}); last vacuum {row['last_autovacuum'] if t['last_autovacuum'] else row['last_vacuum']}",
                fix=f"VACUUM (ANALYZE) {qname};  -- autovacuum should pick it up; if it keeps lagging lower "
                    "autovacuum_vacuum_scale_factor for this table"))
        elif dead >= 1000 and dead_frac >= 0.2:
            findings.append(Finding(rule="vacuum.dead_tuples", severity="info", location=full,
                                    message=f"{full}: {100 * dead_frac:.0f}% dead tuples ({dead:,.0f}), "
                                            f"{vac_pct:.0f}% of the autovacuum threshold",
                                    fix=f"VACUUM (ANALYZE) {qname};"))
        if t["never_analyzed"] and live > 0 or (live >= 1000 and not (t["last_analyze"] or t["last_autoanalyze"])):
            findings.append(Finding(rule="vacuum.never_analyzed", severity="info", location=full,
                                    message=f"{full} has never been analyzed: the planner guesses its row counts",
                                    fix=f"ANALYZE {qname};"))
        if t["xid_age"] and t["xid_age"] > freeze_max:
            findings.append(Finding(rule="vacuum.xid_age", severity="error" if t["xid_age"] > XID_WRAP_LIMIT / 2
                                    else "warning", location=full,
                                    message=f"{full}: transaction-ID age {t['xid_age']:,.0f} is past "
                                            f"autovacuum_freeze_max_age ({freeze_max:,.0f})",
                                    fix=f"VACUUM (FREEZE, VERBOSE) {qname};"))
        if bloat > 50 * 1024 * 1024 and bytes_ and bloat / bytes_ > 0.5:
            findings.append(Finding(rule="vacuum.bloat", severity="info", location=full,
                                    message=f"{full}: ~{human_bytes(bloat)} of {human_bytes(bytes_)} looks like bloat",
                                    fix="VACUUM reuses the space; to give it back use pg_repack (no long lock) — "
                                        "VACUUM FULL takes an ACCESS EXCLUSIVE lock for its whole run"))
    db_rows = []
    for d in dbs:
        pct_wrap = 100 * d["xid_age"] / XID_WRAP_LIMIT
        db_rows.append([d["datname"], int(d["xid_age"]), f"{pct_wrap:.2f}%", f"{100 * d['xid_age'] / freeze_max:.1f}%",
                        int(d["mxid_age"] or 0)])
        if d["xid_age"] > freeze_max:
            findings.append(Finding(rule="vacuum.database_xid_age", severity="error" if pct_wrap > 50 else "warning",
                                    location=d["datname"],
                                    message=f"database {d['datname']}: xid age {d['xid_age']:,.0f} "
                                            f"({pct_wrap:.1f}% of the wraparound limit)",
                                    fix="find the oldest tables (*vacuum) and VACUUM (FREEZE) them; check for "
                                        "long transactions and abandoned replication slots"))
    prog_rows = []
    for p in progress:
        total = p["heap_blks_total"] or 0
        pct = f"{100 * (p['heap_blks_scanned'] or 0) / total:.0f}%" if total else ""
        prog_rows.append([p["pid"], p["relname"], p["phase"], pct, p["index_vacuum_count"],
                          seconds(p["running_s"]), "autovacuum" if (p["backend_type"] or "").startswith("autovacuum")
                          else "manual"])
    if settings.get("autovacuum", "on") != "on":
        findings.append(Finding(rule="vacuum.autovacuum_off", severity="error", location="server",
                                message="autovacuum is off for the whole server",
                                fix="ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();"))
    user = [r for r in out if not r["system"]] or out
    user.sort(key=lambda r: (r["vacuum_pct"], r["dead"]), reverse=True)
    shown = user[:limit]
    table_rows = [[r["table"], f"{r['live']:,.0f}", f"{r['dead']:,.0f}", f"{r['dead_pct']}%",
                   f"{r['vacuum_threshold']:,}", f"{r['vacuum_pct']}%", f"{r['analyze_pct']}%",
                   r["last_autovacuum"] if r["last_autovacuum"] != "never" else r["last_vacuum"],
                   r["last_autoanalyze"] if r["last_autoanalyze"] != "never" else r["last_analyze"],
                   f"{r['xid_age']:,}", human_bytes(r["bloat_bytes"])] for r in shown]
    oldest = sorted(user, key=lambda r: r["xid_age"], reverse=True)[:5]
    tables_out = [
        Table(title="Tables (closest to autovacuum first)",
              columns=["table", "live", "dead", "dead %", "av threshold", "of threshold", "analyze %",
                       "last vacuum", "last analyze", "xid age", "bloat est."],
              rows=table_rows, truncated=len(user) > limit, total_rows=len(user)),
        Table(title="Transaction-ID age per database", columns=["database", "xid age", "of wraparound",
                                                                 "of freeze_max_age", "multixact age"], rows=db_rows),
        Table(title="Oldest tables (xid age)", columns=["table", "xid age", "of freeze_max_age"],
              rows=[[r["table"], f"{r['xid_age']:,}", f"{100 * r['xid_age'] / freeze_max:.1f}%"] for r in oldest]),
    ]
    if prog_rows:
        tables_out.append(Table(title="Vacuum in progress", columns=["pid", "table", "phase", "scanned", "index passes",
                                                                      "running", "kind"], rows=prog_rows))
    n_over = sum(1 for f in findings if f.rule == "vacuum.over_threshold")
    status = "warning" if any(f.severity in ("warning", "error") for f in findings) else "ok"
    summary = (f"{len(user)} table(s): {n_over} past their autovacuum threshold, "
               f"{sum(1 for r in user if r['dead'] > 0)} with dead tuples; {len(prog_rows)} vacuum(s) running")
    return OpResult(operation="db-vacuum-status", status=status, summary=summary,
                    facts={"tables": len(user), "over_threshold": n_over, "vacuums_running": len(prog_rows),
                           "autovacuum": settings.get("autovacuum"), "autovacuum_freeze_max_age": int(freeze_max),
                           "oldest_database_xid_age": int(dbs[0]["xid_age"]) if dbs else None},
                    tables=tables_out, findings=findings,
                    notes=["bloat is an estimate from pg_stats row widths (pgstattuple gives exact figures)"],
                    next_steps=["*run-sql --write \"VACUUM (ANALYZE) ...\""] if n_over else ["*hotpaths"],
                    data={"tables": out, "databases": dbs and [{"datname": d["datname"], "xid_age": int(d["xid_age"])}
                                                               for d in dbs],
                          "progress": [dict(p) for p in progress]})


class _LazyName:
    """schema.name quoted as quote_ident() does, only when a finding formats it."""

    def __init__(self, schema: str, name: str) -> None:
        self.schema, self.name = schema, name

    def __format__(self, spec: str) -> str:
        return readable(self.schema, self.name)


# ================================================================================================
# monitor
# ================================================================================================
_ACTIVITY_SQL = """
select a.pid, a.datname, a.usename, a.application_name, a.client_addr::text as client, a.backend_type, a.state,
       a.wait_event_type, a.wait_event,
       extract(epoch from now() - a.query_start)::float8 as query_s,
       extract(epoch from now() - a.xact_start)::float8 as xact_s,
       extract(epoch from now() - a.state_change)::float8 as state_s,
       cardinality(pg_blocking_pids(a.pid)) > 0 as blocked,
       left(a.query, 1000) as query
  from pg_stat_activity a
 where a.pid <> pg_backend_pid()
"""


def activity_snapshot(conn) -> dict[str, Any]:
    rows = _rows(conn, _ACTIVITY_SQL)
    max_conn = int(conn.execute("select current_setting('max_connections')").fetchone()[0])
    reserved = int(conn.execute("select current_setting('superuser_reserved_connections')").fetchone()[0])
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.replication import replication_picture

    return {"sessions": rows, "max_connections": max_conn, "reserved": reserved, "taken_at": time.time(),
            "replication": replication_picture(conn)}


def _replication_table(pic) -> tuple[Table, dict[str, Any], list[Finding]]:
    """The replication picture: this standby's lag, or a primary's standbys and slots (bytes and seconds)."""
    st = pic.status
    findings: list[Finding] = []
    if st.standby:
        table = Table(title="Replication (this server is a hot standby)",
                      columns=["upstream", "received", "replayed", "replay behind (bytes)", "last replay (s ago)",
                               "paused"],
                      rows=[[st.upstream, st.receive_lsn, st.replay_lsn, st.replay_lag_bytes, st.replay_delay_s,
                             "yes" if st.paused else ""]])
        if st.paused:
            findings.append(Finding(rule="monitor.replay_paused", severity="warning", location="standby",
                                    message="WAL replay is paused: this standby falls behind",
                                    fix="SELECT pg_wal_replay_resume();"))
        return table, {"role": "standby", "standby": asdict(st)}, findings
    rows = [["standby", s.name, f"{s.client} {s.state}/{s.sync_state}", s.lag_bytes, s.write_lag_s, s.flush_lag_s,
             s.replay_lag_s] for s in pic.standbys]
    rows += [["slot", sl.name, f"{sl.slot_type} {'active' if sl.active else 'INACTIVE'} {sl.wal_status or ''}".strip(),
              sl.retained_bytes, None, None, None] for sl in pic.slots]
    for sl in pic.slots:
        if not sl.active:
            findings.append(Finding(rule="monitor.inactive_slot", severity="warning", location=f"slot {sl.name}",
                                    message=f"replication slot {sl.name} is inactive and retains "
                                            f"{sl.retained_bytes or 0} bytes of WAL",
                                    fix=f"SELECT pg_drop_replication_slot('{sl.name}'); if nothing uses it"))
    table = Table(title="Replication (primary: standbys and slots)",
                  columns=["kind", "name", "state", "behind (bytes)", "write lag (s)", "flush lag (s)", "replay lag (s)"],
                  rows=rows, empty="no standbys and no replication slots")
    return table, {"role": "primary", "standbys": [asdict(s) for s in pic.standbys],
                   "slots": [asdict(sl) for sl in pic.slots]}, findings


def _monitor_result(snap: dict[str, Any], refreshes: int, stopped: bool, include_own: bool = False, *,
                    long_running_s: float = LONG_RUNNING_S, idle_in_tx_s: float = IDLE_IN_TX_S) -> OpResult:
    """The *monitor result for one snapshot; `sage watch` passes its own thresholds."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.own import own_session

    sessions = snap["sessions"]
    every = [s for s in sessions if s["backend_type"] == "client backend"]
    clients = every if include_own else [s for s in every if not own_session(s["application_name"], s["datname"])]
    hidden = len(every) - len(clients)
    max_conn = snap["max_connections"]
    findings: list[Finding] = []
    by_state: dict[str, int] = {}
    by_app: dict[tuple[str, str], int] = {}
    for s in clients:
        state = s["state"] or "unknown"
        by_state[state] = by_state.get(state, 0) + 1
        key = (s["application_name"] or "(none)", s["usename"] or "")
        by_app[key] = by_app.get(key, 0) + 1
    used = len(every) + 1  # + this connection: every connection counts against max_connections
    pct = 100 * used / max_conn if max_conn else 0
    active = sorted([s for s in clients if s["state"] == "active"], key=lambda s: -(s["query_s"] or 0))
    idle_tx = sorted([s for s in clients if (s["state"] or "").startswith("idle in transaction")],
                     key=lambda s: -(s["state_s"] or 0))
    for s in active:
        if (s["query_s"] or 0) >= long_running_s:
            findings.append(Finding(rule="monitor.long_running", severity="warning", location=f"pid {s['pid']}",
                                    message=f"query running for {seconds(s['query_s'])} ({s['application_name'] or '?'})",
                                    detail=short(s["query"], 200),
                                    fix=f"*explain it; stop it with *locks --cancel {s['pid']} if it blocks others"))
    for s in idle_tx:
        if (s["state_s"] or 0) >= idle_in_tx_s:
            findings.append(Finding(rule="monitor.idle_in_transaction", severity="warning", location=f"pid {s['pid']}",
                                    message=f"idle in transaction for {seconds(s['state_s'])} "
                                            f"({s['application_name'] or '?'}): holds its locks and holds back vacuum",
                                    detail=short(s["query"], 200),
                                    fix="fix the application's transaction handling; "
                                        "SET idle_in_transaction_session_timeout = '60s'"))
    if pct >= 80:
        findings.append(Finding(rule="monitor.connections", severity="warning" if pct < 95 else "error",
                                location="server", message=f"{used} of {max_conn} connections in use ({pct:.0f}%)",
                                fix="use a connection pooler (Supavisor / PgBouncer, transaction mode) or close idle "
                                    "connections"))
    waits: dict[str, int] = {}
    for s in clients:
        if s["state"] == "active" and s["wait_event_type"]:
            key = f"{s['wait_event_type']}:{s['wait_event']}"
            waits[key] = waits.get(key, 0) + 1
    tables = [
        Table(title="Connections per state", columns=["state", "connections"],
              rows=[[k, v] for k, v in sorted(by_state.items(), key=lambda kv: -kv[1])],
              empty="no client connections" + (" but DB Sage's own" if hidden else "")),
        Table(title="Connections per application", columns=["application", "user", "connections"],
              rows=[[k[0], k[1], v] for k, v in sorted(by_app.items(), key=lambda kv: -kv[1])],
              empty="no applications connected"),
        Table(title="Active queries (longest first)", columns=["pid", "running", "wait", "blocked", "application",
                                                               "query"],
              rows=[[s["pid"], seconds(s["query_s"]), f"{s['wait_event_type']}:{s['wait_event']}"
                     if s["wait_event_type"] else "", "yes" if s["blocked"] else "", s["application_name"],
                     short(s["query"], 100)] for s in active[:20]],
              truncated=len(active) > 20, total_rows=len(active), empty="no active queries"),
    ]
    if idle_tx:
        tables.append(Table(title="Idle in transaction", columns=["pid", "idle for", "transaction age", "application",
                                                                  "last query"],
                            rows=[[s["pid"], seconds(s["state_s"]), seconds(s["xact_s"]), s["application_name"],
                                   short(s["query"], 100)] for s in idle_tx[:20]]))
    if waits:
        tables.append(Table(title="Wait events (active sessions)", columns=["wait event", "sessions"],
                            rows=[[k, v] for k, v in sorted(waits.items(), key=lambda kv: -kv[1])]))
    repl_facts: dict[str, Any] = {}
    if snap.get("replication") is not None:
        repl_table, repl_facts, repl_findings = _replication_table(snap["replication"])
        tables.append(repl_table)
        findings += repl_findings
    status = "warning" if findings else "ok"
    summary = (f"{used}/{max_conn} connections ({pct:.0f}%): {len(active)} active, {len(idle_tx)} idle in transaction, "
               f"{sum(1 for s in clients if s['blocked'])} waiting on locks")
    if repl_facts.get("role") == "standby":
        summary += "; hot standby"
    elif repl_facts.get("standbys") or repl_facts.get("slots"):
        summary += f"; {len(repl_facts['standbys'])} standby(s), {len(repl_facts['slots'])} slot(s)"
    notes = []
    if hidden:
        notes.append(f"{hidden} session(s) of DB Sage, pg_dump or shadow databases left out (counted in the "
                     "connection total): --include-own shows them")
    if refreshes > 1:
        notes.append(f"{refreshes} refreshes" + (" (stopped with Ctrl-C)" if stopped else "") + "; showing the last")
    return OpResult(operation="db-monitor-queries", status=status, summary=summary,
                    facts={"connections": used, "max_connections": max_conn, "usage_pct": round(pct, 1),
                           "active": len(active), "idle_in_transaction": len(idle_tx),
                           "replication_role": repl_facts.get("role", "unknown")},
                    tables=tables, findings=findings, notes=notes,
                    next_steps=["*locks"] if any(s["blocked"] for s in clients) else ["*hotpaths"],
                    data={"sessions": [{k: v for k, v in s.items()} for s in sessions],
                          "by_state": by_state, "max_connections": max_conn, "replication": repl_facts})


def monitor_report(ctx, *, once: bool, interval: float, count: int, include_own: bool = False) -> OpResult:
    refresh = not once and getattr(ctx, "interactive", False)
    total = count if refresh else 1
    snap: dict[str, Any] | None = None
    done, stopped = 0, False
    try:
        for i in range(total):
            with read_only(ctx) as conn:
                snap = activity_snapshot(conn)
            done += 1
            if refresh:
                interim = _monitor_result(snap, done, False, include_own)
                ctx.say(f"[{time.strftime('%H:%M:%S')}] {interim.summary}"
                        + "".join(f"\n  {f.severity.upper()} {f.message}" for f in interim.findings))
                if i + 1 < total:
                    time.sleep(interval)
    except KeyboardInterrupt:
        stopped = True
        if snap is None:
            raise
    assert snap is not None
    return _monitor_result(snap, done, stopped, include_own)


# ================================================================================================
# hotpaths
# ================================================================================================
_ORDERS = {
    "total": ("total_exec_time", "Top by total time"),
    "mean": ("mean_exec_time", "Top by mean time"),
    "calls": ("calls", "Top by calls"),
    "rows": ("rows", "Top by rows"),
    "cache": ("hit_ratio_asc", "Lowest cache hit ratio"),
}


def _pss_status(conn) -> dict[str, Any]:
    row = conn.execute(
        """select (select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace
                    where e.extname = 'pg_stat_statements'),
                  exists (select 1 from pg_available_extensions where name = 'pg_stat_statements'),
                  current_setting('shared_preload_libraries')""").fetchone()
    return {"schema": row[0], "available": bool(row[1]), "preload": row[2] or ""}


def _enable_instructions(status: dict[str, Any], supabase: bool) -> list[str]:
    steps = []
    if supabase:
        steps.append("Supabase: Dashboard > Database > Extensions > enable pg_stat_statements "
                     "(or run: create extension if not exists pg_stat_statements with schema extensions;)")
    if "pg_stat_statements" not in status["preload"]:
        steps.append("PostgreSQL: add pg_stat_statements to shared_preload_libraries in postgresql.conf "
                     "(ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'), restart the server")
    if not status["schema"]:
        steps.append("then in the database: create extension pg_stat_statements;"
                     + ("" if status["available"] else " (the extension's files are not installed on this server: "
                        "install the postgresql-contrib package)"))
    return steps


def hotpaths_report(ctx, by: str, limit: int, include_own: bool = False) -> OpResult:
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    with read_only(ctx) as conn:
        status = _pss_status(conn)
        supabase = ctx.server.supabase_roles
        if not status["schema"] or "pg_stat_statements" not in status["preload"]:
            steps = _enable_instructions(status, supabase)
            missing = "not installed in this database" if not status["schema"] else \
                "installed but not loaded (shared_preload_libraries)"
            return OpResult(operation="db-analyze-hotpaths", status="warning",
                            summary=f"pg_stat_statements is {missing}: no query statistics to rank",
                            facts={"extension": status["schema"] or "missing",
                                   "shared_preload_libraries": status["preload"] or "(empty)"},
                            findings=[Finding(rule="hotpaths.pg_stat_statements_missing", severity="warning",
                                              message=f"pg_stat_statements is {missing}", fix=steps[0])],
                            notes=steps, next_steps=["*monitor"],
                            data={"enabled": False, "instructions": steps})
        rel = sql.Identifier(status["schema"], "pg_stat_statements")
        query = sql.SQL("""
            select s.queryid::text as queryid, s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows,
                   s.shared_blks_hit, s.shared_blks_read, s.temp_blks_written,
                   case when s.shared_blks_hit + s.shared_blks_read > 0
                        then s.shared_blks_hit::float8 / (s.shared_blks_hit + s.shared_blks_read) end as hit_ratio,
                   100 * s.total_exec_time / nullif(sum(s.total_exec_time) over (), 0) as pct_total
              from {rel} s
             where s.dbid = (select oid from pg_database where datname = current_database())
               and s.query !~* '^\\s*(begin|commit|rollback|set|show|reset|deallocate|discard)\\y'
        """).format(rel=rel)
        every = _rows(conn, query)  # at most pg_stat_statements.max rows; ranked here after leaving out our own
        total = conn.execute(sql.SQL("select count(*), coalesce(sum(total_exec_time), 0) from {rel} "
                                     "where dbid = (select oid from pg_database where datname = current_database())")
                             .format(rel=rel)).fetchone()
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.own import own_statement

    shown = every if include_own else [r for r in every if not own_statement(r["query"])]
    hidden = len(every) - len(shown)
    orders = list(_ORDERS) if by == "all" else [by]
    results: dict[str, list[dict[str, Any]]] = {}
    for key in orders:
        column, _title = _ORDERS[key]
        if key == "cache":
            ranked = sorted((r for r in shown if r["shared_blks_read"] > 0),
                            key=lambda r: (r["hit_ratio"] if r["hit_ratio"] is not None else 2, -r["shared_blks_read"]))
        else:
            ranked = sorted(shown, key=lambda r, c=column: r[c] or 0, reverse=True)
        results[key] = ranked[:limit]
    findings: list[Finding] = []
    tables = []
    seen_ids: set[str] = set()
    for key in orders:
        rows = []
        for r in results[key]:
            step = _next_step(r)
            rows.append([short(r["query"], 90), f"{r['total_exec_time']:,.1f}", f"{r['mean_exec_time']:,.2f}",
                         r["calls"], r["rows"], "" if r["hit_ratio"] is None else f"{100 * r['hit_ratio']:.1f}%",
                         f"{r['pct_total'] or 0:.1f}%", step])
            if r["queryid"] in seen_ids:
                continue
            seen_ids.add(r["queryid"])
            if r["mean_exec_time"] >= 100:
                findings.append(Finding(rule="hotpaths.slow_query", severity="warning",
                                        message=f"mean {r['mean_exec_time']:,.0f} ms over {r['calls']} call(s)",
                                        detail=short(r["query"], 200), fix=step))
            elif r["hit_ratio"] is not None and r["hit_ratio"] < 0.9 and r["shared_blks_read"] > 1000:
                findings.append(Finding(rule="hotpaths.low_cache_hit", severity="info",
                                        message=f"cache hit {100 * r['hit_ratio']:.0f}% "
                                                f"({r['shared_blks_read']:,} blocks read from disk)",
                                        detail=short(r["query"], 200), fix=step))
        tables.append(Table(title=_ORDERS[key][1], columns=["query (normalised)", "total ms", "mean ms", "calls",
                                                            "rows", "cache hit", "% of total", "next"], rows=rows))
    top = results.get("total") or next(iter(results.values()), [])
    summary = (f"{total[0]} distinct statement(s), {total[1] / 1000:,.1f} s total execution time in this database"
               + (f"; top: {short(top[0]['query'], 60)}" if top else ""))
    notes = ["statistics accumulate since the last pg_stat_statements_reset(); "
             "the query text is normalised ($1 for constants)"]
    if hidden:
        notes.append(f"{hidden} statement(s) of DB Sage, pg_dump and other tooling (catalog queries, settings, "
                     "create database, COPY TO STDOUT) left out: --include-own shows them")
    next_steps = [c for c in (_command("explain", top[0]["query"]) if top else None,
                              _command("optimize", top[0]["query"]) if top else None) if c]
    return OpResult(operation="db-analyze-hotpaths", status="warning" if findings else "ok", summary=summary,
                    facts={"extension": status["schema"], "statements": total[0],
                           "total_exec_s": round(float(total[1]) / 1000, 3)},
                    tables=tables, findings=findings, notes=notes, next_steps=next_steps,
                    data={"enabled": True, "own_hidden": hidden,
                          "top": {k: [{c: r[c] for c in ("queryid", "query", "calls", "total_exec_time",
                                                          "mean_exec_time", "rows", "hit_ratio")} for r in v]
                                  for k, v in results.items()}})


def _command(command: str, query: str) -> str | None:
    """`*explain '<the whole query>'`, quoted so that the command line reads back to exactly the query; None
    for text that is not one complete statement (pg_stat_statements can hold a fragment of a multi-statement
    string)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import parse_sql
    from pglast.parser import ParseError

    try:
        kinds = [type(raw.stmt).__name__ for raw in parse_sql(query)]
    except ParseError:
        return None
    if kinds not in (["SelectStmt"], ["InsertStmt"], ["UpdateStmt"], ["DeleteStmt"], ["MergeStmt"]):
        return None  # DDL and utility statements have no plan to explain or index to suggest
    return command_line(command, query)


def _next_step(r: dict[str, Any]) -> str:
    """A runnable command line, or plain advice (never a command cut short)."""
    if r["mean_exec_time"] >= 100:
        return _command("explain", r["query"]) or "slow: run EXPLAIN on it"
    if r["hit_ratio"] is not None and r["hit_ratio"] < 0.9 and r["shared_blks_read"] > 1000:
        return _command("optimize", r["query"]) or "reads from disk: an index or more memory"
    if r["calls"] >= 10_000 and r["mean_exec_time"] < 1:
        return "cache it in the app, or batch the calls (N+1?)"
    if r["temp_blks_written"]:
        return "spills to disk: raise work_mem for it, or add an index"
    return _command("optimize", r["query"]) or ""
