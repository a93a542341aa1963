"""The checks of one `sage watch` round, built on the diagnostics DB Sage already has (*locks, *monitor,
*vacuum, the replication picture, *rls-audit and *schema-audit): each turns their data into observations with
a stable key, a value to compare with the last round, and whether it crossed its threshold.

Nothing here queries anything the diagnostics do not: the watch adds thresholds and memory, not SQL.
Sessions of DB Sage itself (any `db-sage*` application, pg_dump, shadow databases) never become an
observation, so a round never reports its own queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sage_agent.db.redact import redact
from sage_agent.ops.observe.common import seconds, short
from sage_agent.ops.result import OpError, human_bytes

CHECK_NAMES = ("locks", "long-queries", "idle-in-tx", "vacuum", "wraparound", "replication", "audits")
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
MAX_OBSERVATIONS = 200  # per check and round: the metric counts all of them, the history keeps the worst 200
XID_WRAP_LIMIT = 2_147_483_648


@dataclass(frozen=True)
class Thresholds:
    """When an observation becomes an alert (from sage_agent.config; see the README's settings table)."""

    lock_wait_s: float = 5.0
    long_query_s: float = 60.0
    idle_in_tx_s: float = 60.0
    vacuum_tables: int = 1
    xid_age_pct: float = 50.0
    replication_lag_bytes: int = 64 * 1024 * 1024
    replication_lag_s: float = 30.0
    audit_severity: str = "error"

    @classmethod
    def from_settings(cls, s) -> "Thresholds":
        return cls(lock_wait_s=s.watch_lock_wait_s, long_query_s=s.watch_long_query_s,
                   idle_in_tx_s=s.watch_idle_in_tx_s, vacuum_tables=s.watch_vacuum_tables,
                   xid_age_pct=s.watch_xid_age_pct, replication_lag_bytes=s.watch_replication_lag_bytes,
                   replication_lag_s=s.watch_replication_lag_s,
                   audit_severity=s.watch_audit_severity if s.watch_audit_severity in SEVERITY_RANK else "error")


@dataclass
class Observation:
    """One thing a check saw. `key` identifies it across rounds (new / worse / resolved); `value` is what
    "worse" compares (seconds, bytes, a count); `grows` says how much bigger counts as worse (durations grow
    by themselves every round, so they must double)."""

    check: str
    key: str
    severity: str
    message: str
    value: float | None = None
    alert: bool = False
    grows: float = 1.0  # worse when value > previous * grows (1.0: any increase)


@dataclass
class CheckResult:
    name: str
    metric: float | None = None      # the one number per round the report charts
    metric_label: str = ""
    observations: list[Observation] = field(default_factory=list)
    error: str | None = None         # the check could not run (the round goes on; this is an alert)
    duration_ms: float = 0.0
    truncated: int = 0               # observations left out beyond MAX_OBSERVATIONS
    fingerprint: str | None = None   # audits: the catalog they looked at
    carried_from: int | None = None  # audits: not rerun (catalog unchanged); these are that round's findings
    reread: tuple[int, int] | None = None  # audits: only (changed, gone) relations read again, the rest kept

    @property
    def alerts(self) -> list[Observation]:
        return [o for o in self.observations if o.alert]

    @property
    def status(self) -> str:
        return "error" if self.error else "alert" if self.alerts else "ok"


class RoundState:
    """What several checks of one round share: one activity snapshot, one *vacuum result, the server major."""

    def __init__(self, ctx, thresholds: Thresholds, *, history=None, target: str = "",
                 audit_every_s: float = 0.0) -> None:
        self.ctx = ctx
        self.thresholds = thresholds
        self.history = history  # the watch history: lets the audits reuse their last run on an unchanged catalog
        self.target = target
        self.audit_every_s = audit_every_s
        self._activity: dict[str, Any] | None = None
        self._vacuum = None

    def activity(self) -> dict[str, Any]:
        """*monitor's snapshot (pg_stat_activity + the replication picture), taken once per round."""
        if self._activity is None:
            # lazy: psycopg loads on the first database call
            from sage_agent.ops.observe.diagnostics import activity_snapshot, read_only

            with read_only(self.ctx, self.ctx.settings.statement_timeout_ms) as conn:
                self._activity = activity_snapshot(conn)
        return self._activity

    def vacuum(self):
        """*vacuum's result (tables against their autovacuum thresholds, xid age per database), once per round."""
        if self._vacuum is None:
            # lazy: psycopg loads on the first database call
            from sage_agent.ops.observe.diagnostics import vacuum_report

            self._vacuum = vacuum_report(self.ctx, table=None, limit=MAX_OBSERVATIONS, findings_only=True)
        return self._vacuum


def _client_sessions(state: RoundState) -> list[dict[str, Any]]:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.own import own_session

    return [s for s in state.activity()["sessions"] if s["backend_type"] == "client backend"
            and not own_session(s["application_name"], s["datname"])]


# ------------------------------------------------------------------------------------------------------------
def check_locks(state: RoundState) -> CheckResult:
    """*locks' blocking tree: one observation per waiting session (how long it has waited, who blocks it)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.observe.diagnostics import lock_snapshot, read_only
    from sage_agent.ops.observe.own import own_session, watch_session

    ctx, limit = state.ctx, state.thresholds.lock_wait_s
    with read_only(ctx, ctx.settings.statement_timeout_ms) as conn:
        snap = lock_snapshot(conn, ctx.server.major)
    sessions = {s["pid"]: s for s in snap["sessions"]}

    def own(pid: int) -> bool:
        s = sessions.get(pid, {})
        return own_session(s.get("application_name"), s.get("datname"))

    def watcher(pid: int) -> bool:
        return watch_session(sessions.get(pid, {}).get("application_name"))

    # a wait between two of DB Sage's sessions is its own business (as *locks); a watch session is never shown
    edges = [e for e in snap["edges"] if not (own(e["blocked_pid"]) and own(e["blocking_pid"]))
             and not watcher(e["blocked_pid"]) and not watcher(e["blocking_pid"])]
    result = CheckResult("locks", metric=float(len({e["blocked_pid"] for e in edges})), metric_label="blocked sessions")
    for e in edges:
        blocker = sessions.get(e["blocking_pid"], {})
        waited = float(e["wait_s"] or 0.0)
        idle = (blocker.get("state") or "").startswith("idle in transaction")
        what = f"on {e['object']}" if e["object"] else ""
        result.observations.append(Observation(
            "locks", f"pid {e['blocked_pid']} blocked by {e['blocking_pid']}",
            "error" if idle and waited >= limit else "warning",
            f"pid {e['blocked_pid']} has waited {seconds(waited)} for {e['wanted_mode'] or 'a lock'} {what} held by "
            f"pid {e['blocking_pid']} ({blocker.get('state') or '?'}"
            f"{', ' + short(blocker['application_name'], 63) if blocker.get('application_name') else ''}): "
            f"{short(blocker.get('query'), 80)}",
            value=waited, alert=waited >= limit, grows=2.0))
    return result


def check_long_queries(state: RoundState) -> CheckResult:
    limit = state.thresholds.long_query_s
    active = [s for s in _client_sessions(state) if s["state"] == "active" and s["query_s"] is not None]
    result = CheckResult("long-queries", metric=max((float(s["query_s"]) for s in active), default=0.0),
                         metric_label="longest running query (s)")
    for s in sorted(active, key=lambda s: -s["query_s"]):
        if s["query_s"] < limit / 2:
            continue  # under half its threshold: not news yet
        result.observations.append(Observation(
            "long-queries", f"pid {s['pid']}: {short(s['query'], 60)}",
            "warning", f"pid {s['pid']} ({short(s['application_name'], 63) or '?'}) has run one query for "
                       f"{seconds(s['query_s'])}: {short(s['query'], 100)}",
            value=float(s["query_s"]), alert=s["query_s"] >= limit, grows=2.0))
    return result


def check_idle_in_tx(state: RoundState) -> CheckResult:
    limit = state.thresholds.idle_in_tx_s
    idle = [s for s in _client_sessions(state) if (s["state"] or "").startswith("idle in transaction")]
    result = CheckResult("idle-in-tx", metric=float(len([s for s in idle if (s["state_s"] or 0) >= limit])),
                         metric_label=f"sessions idle in transaction >= {seconds(limit)}")
    for s in sorted(idle, key=lambda s: -(s["state_s"] or 0)):
        idle_s = float(s["state_s"] or 0.0)
        if idle_s < limit / 2:
            continue
        result.observations.append(Observation(
            "idle-in-tx", f"pid {s['pid']}",
            "warning", f"pid {s['pid']} ({short(s['application_name'], 63) or '?'}, {s['usename'] or '?'}) idle in "
                       f"transaction for {seconds(idle_s)}: holds its locks and holds back vacuum; last query "
                       f"{short(s['query'], 80)}",
            value=idle_s, alert=idle_s >= limit, grows=2.0))
    return result


_WRAP_RULES = ("vacuum.xid_age", "vacuum.database_xid_age")


def check_vacuum(state: RoundState) -> CheckResult:
    """*vacuum's findings except transaction-ID age (the wraparound check's)."""
    report = state.vacuum()
    over = [f for f in report.findings if f.rule == "vacuum.over_threshold"]
    limit = state.thresholds.vacuum_tables
    # the charted number counts what the round reports (never analyzed, autovacuum off... too), so a new finding
    # never sits beside "vacuum 0" in the report
    tables = {f.location for f in report.findings if f.rule not in _WRAP_RULES}
    result = CheckResult("vacuum", metric=float(len(tables)), metric_label="tables with a vacuum finding")
    pct = {t["table"]: t["vacuum_pct"] for t in report.data.get("tables", [])}
    for f in report.findings:
        if f.rule in _WRAP_RULES:
            continue
        value = pct.get(f.location or "") if f.rule in ("vacuum.over_threshold", "vacuum.dead_tuples") else None
        result.observations.append(Observation(
            "vacuum", f"{f.rule} {f.location}", f.severity, f.message, value=value,
            alert=(f.rule == "vacuum.over_threshold" and len(over) >= limit) or f.rule == "vacuum.autovacuum_off",
            grows=1.5))
    return result


def check_wraparound(state: RoundState) -> CheckResult:
    report = state.vacuum()
    dbs = report.data.get("databases") or []
    limit = state.thresholds.xid_age_pct
    top = max((d["xid_age"] for d in dbs), default=0)
    result = CheckResult("wraparound", metric=round(100 * top / XID_WRAP_LIMIT, 3),
                         metric_label="oldest database xid age (% of wraparound)")
    for d in dbs:
        pct = 100 * d["xid_age"] / XID_WRAP_LIMIT
        if pct >= limit:
            result.observations.append(Observation(
                "wraparound", f"database {d['datname']}", "error",
                f"database {d['datname']}: xid age {d['xid_age']:,} is {pct:.1f}% of the wraparound limit "
                f"(alert at {limit:g}%): VACUUM (FREEZE) its oldest tables (*vacuum lists them)",
                value=float(d["xid_age"]), alert=True, grows=1.25))
    for f in report.findings:
        if f.rule == "vacuum.xid_age":
            result.observations.append(Observation("wraparound", f"table {f.location}", f.severity, f.message,
                                                   grows=1.25))
    return result


def check_replication(state: RoundState) -> CheckResult:
    """The replication picture (db/replication.py): a standby's own lag, or a primary's standbys and slots."""
    pic = state.activity()["replication"]
    t = state.thresholds
    result = CheckResult("replication", metric_label="most WAL behind (bytes)")
    st = pic.status
    if st.standby:
        behind = float(st.replay_lag_bytes or 0)
        result.metric = behind
        if st.paused:
            result.observations.append(Observation("replication", "replay paused", "warning",
                                                   "WAL replay is paused on this standby: it falls behind "
                                                   "(SELECT pg_wal_replay_resume();)", alert=True))
        if behind >= t.replication_lag_bytes:
            result.observations.append(Observation(
                "replication", "standby replay", "warning",
                f"this standby has received {human_bytes(behind)} of WAL it has not replayed yet ({st.upstream})",
                value=behind, alert=True, grows=2.0))
        return result
    worst = 0.0
    for s in pic.standbys:
        behind = float(s.lag_bytes or 0)
        lag_s = float(s.replay_lag_s or 0)
        worst = max(worst, behind)
        alert = behind >= t.replication_lag_bytes or lag_s >= t.replication_lag_s
        result.observations.append(Observation(
            "replication", f"standby {s.name} {s.client}", "warning" if alert else "info",
            f"standby {s.name} ({s.client}, {s.state}/{s.sync_state}): {human_bytes(behind)} behind, replay lag "
            f"{seconds(lag_s) or '0s'}", value=behind, alert=alert, grows=2.0))
    for sl in pic.slots:
        retained = float(sl.retained_bytes or 0)
        worst = max(worst, retained) if not sl.active else worst
        if not sl.active:
            result.observations.append(Observation(
                "replication", f"slot {sl.name}", "warning",
                f"replication slot {sl.name} is inactive and retains {human_bytes(retained)} of WAL "
                f"(SELECT pg_drop_replication_slot('{sl.name}'); if nothing uses it)",
                value=retained, alert=retained >= t.replication_lag_bytes, grows=2.0))
    result.metric = worst
    return result


def check_audits(state: RoundState) -> CheckResult:
    """*rls-audit's advisor lints and *schema-audit's findings, one observation per rule (a count and where).

    Two round trips when the catalog is unchanged: the audits' scope, then which catalog rows are new since
    the last run. After DDL, only the relations whose catalog rows changed are read again; the rules that read
    no single relation (and the statistics' part of unused_index) run whole (security/summary.py)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.config import settings
    from sage_agent.ops.security.lints import project_exposed
    from sage_agent.ops.security.summary import changes, scope, summarize, unchanged

    ctx, history = state.ctx, state.history
    store = history.audit_store(state.target) if history is not None else None
    with ctx.connect(autocommit=True) as conn:
        sc = scope(conn, ctx.server.major, project_exposed(ctx))
        meta = store.meta() if store is not None else None
        if meta is not None and meta.get("key") != sc.key:
            meta = None  # schemas, roles, memberships, extensions or pgrst.db_schemas changed: start over
        ch = changes(conn, meta["horizon"] if meta else None)
        if meta is not None and unchanged(meta, ch):
            carried = _unchanged_audit(state, meta["token"])
            if carried is not None:
                return carried
        rules, store, run = summarize(conn, sc, ctx.server.major, store, ch,
                                      connect=lambda: ctx.connect(autocommit=True),
                                      parallel=settings().watch_audit_connections)
    result = audit_result(rules, state.thresholds, (store.meta() or {}).get("token"))
    result.reread = None if run.full else (run.changed, run.gone)
    return result


def audit_result(rules, thresholds: Thresholds, fingerprint: str | None = None) -> CheckResult:
    """The audits check of a round from their per-rule summary (security.summary.RuleCount)."""
    minimum = SEVERITY_RANK[thresholds.audit_severity]
    result = CheckResult("audits", metric=float(sum(r.count for r in rules if r.severity != "info")),
                         metric_label="audit errors + warnings", fingerprint=fingerprint)
    for r in sorted(rules, key=lambda r: (-SEVERITY_RANK[r.severity], r.rule)):
        shown = ", ".join(r.first) + (f" and {r.count - len(r.first)} more" if r.count > len(r.first) else "")
        result.observations.append(Observation(
            "audits", r.rule, r.severity, f"{r.rule}: {r.count} finding(s) ({r.severity}): {shown}",
            value=float(r.count), alert=SEVERITY_RANK[r.severity] >= minimum))
    return result


def _unchanged_audit(state: RoundState, fingerprint: str) -> CheckResult | None:
    """The last audit's findings when the catalog is the same (the last run recorded the cache it made: `fingerprint`)
    and that run is recent enough, else None."""
    if state.history is None or state.audit_every_s <= 0:
        return None
    last = state.history.last_run(state.target, "audits", rerun_only=True)
    if last is None or last["fingerprint"] != fingerprint or time.time() - last["started"] >= state.audit_every_s:
        return None
    observed = state.history.observed(last["round_id"], "audits")
    return CheckResult("audits", metric=last["metric"], metric_label=last["label"] or "", observations=observed,
                       fingerprint=fingerprint, carried_from=last["round_id"],
                       truncated=max(0, (last["observations"] or 0) - len(observed)))


CHECKS: dict[str, Callable[[RoundState], CheckResult]] = {
    "locks": check_locks, "long-queries": check_long_queries, "idle-in-tx": check_idle_in_tx,
    "vacuum": check_vacuum, "wraparound": check_wraparound, "replication": check_replication,
    "audits": check_audits,
}


def parse_checks(text: str | None) -> list[str]:
    """`locks,vacuum` -> the checks in their fixed order; ValueError naming the unknown ones and the choices."""
    if text is None or not text.strip() or text.strip() == "all":
        return list(CHECK_NAMES)
    asked = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in asked if p not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: choose from "
                         f"{', '.join(CHECK_NAMES)} (comma-separated) or all")
    return [c for c in CHECK_NAMES if c in asked]


def run_check(name: str, state: RoundState) -> CheckResult:
    """One check, timed; a failure becomes the check's error (the round goes on with the others)."""
    # lazy: psycopg loads on the first database call
    import psycopg

    started = time.perf_counter()
    try:
        result = CHECKS[name](state)
    except (psycopg.Error, OpError, OSError, ConnectionError) as exc:
        result = CheckResult(name, error=redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a check that breaks must not stop the watch; it is reported
        # lazy: psycopg loads on the first database call
        from sage_agent.db.connect import DbConnectError

        kind = "" if isinstance(exc, DbConnectError) else f"{type(exc).__name__}: "
        result = CheckResult(name, error=redact(kind + str(exc)).splitlines()[0])
    result.observations.sort(key=lambda o: (not o.alert, -SEVERITY_RANK[o.severity], -(o.value or 0)))
    if len(result.observations) > MAX_OBSERVATIONS:
        result.truncated = len(result.observations) - MAX_OBSERVATIONS
        del result.observations[MAX_OBSERVATIONS:]
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result
