"""Who will block a migration, before it runs: the live sessions on the target that hold (or already wait for)
a lock that conflicts with the one a statement takes, and how long each rewrite, scan or validation should take.

A lock request queues behind every granted lock that conflicts with it and behind every earlier waiter for a
conflicting one; while it queues, every later request that conflicts with *it* queues too. So an `ALTER TABLE`
(ACCESS EXCLUSIVE) behind one `idle in transaction` reader stops every query on the table until the reader's
client commits, or until *apply's lock_timeout gives up. The lock each statement takes comes from the linter's
lock table (`sqlkit.lint.locks`), the conflicts from PostgreSQL's matrix (`ops.observe.diagnostics.conflicts`).
DB Sage's own sessions (`ops.observe.own`) are not counted.

Durations: the table's size (pg_table_size for scans and index builds, pg_total_relation_size for rewrites)
divided by a rate measured on the shadow server (`measure_rates`: a throwaway table there is scanned, indexed and
rewritten). *dry-run measures and keeps the rates in `supabase/.sage/scan-rate.json`; *apply reuses them (it runs
nothing on a shadow), else it assumes the linter's conservative 50 MB/s and says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pglast import ast
from pglast.parser import ParseError, normalize

from sage_agent.catalog.tasks import cmd
from sage_agent.db.redact import redact
from sage_agent.ops.artifacts import STATE_DIR, read_state, sage_dir, write_state
from sage_agent.ops.observe.common import seconds, short
from sage_agent.ops.observe.diagnostics import conflicts
from sage_agent.ops.observe.own import own_session
from sage_agent.ops.result import Finding, Table, human_bytes
from sage_agent.sqlkit.lint import helpers as h
from sage_agent.sqlkit.lint.locks import (ACCESS_EXCLUSIVE, EXCLUSIVE, ROW_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE,
                                          SHARE_UPDATE_EXCLUSIVE, STRENGTH, statement_lock)
from sage_agent.sqlkit.lint.sizing import DEFAULT_BYTES_PER_SECOND
from sage_agent.sqlkit.nodes import qualified

RATES_PATH = STATE_DIR / "scan-rate.json"
QUERY_WIDTH = 160
# what a queued request for this lock stops meanwhile (every later request it conflicts with)
_STOPS = {ACCESS_EXCLUSIVE: "every query", EXCLUSIVE: "every write", SHARE_ROW_EXCLUSIVE: "every write",
          SHARE: "every write", SHARE_UPDATE_EXCLUSIVE: "VACUUM, ANALYZE and schema changes",
          ROW_EXCLUSIVE: "index builds and explicit table locks"}
_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


def pg_mode(lock: str) -> str:
    """`SHARE UPDATE EXCLUSIVE` -> `ShareUpdateExclusiveLock` (pg_locks.mode)."""
    return "".join(word.capitalize() for word in lock.split()) + "Lock"


def sql_mode(mode: str) -> str:
    """`ShareUpdateExclusiveLock` -> `SHARE UPDATE EXCLUSIVE`."""
    words, word = [], ""
    for ch in mode.removesuffix("Lock"):
        if ch.isupper() and word:
            words.append(word)
            word = ""
        word += ch
    return " ".join(words + [word]).upper()


@dataclass(frozen=True)
class LockNeed:
    """One table one statement locks: the lock, and whether the statement rewrites or scans that table."""

    where: str  # file:line
    table: str  # schema.name
    lock: str  # SQL name, e.g. ACCESS EXCLUSIVE
    effect: str = ""  # rewrites | scans | builds an index | validates | ""
    waits_for_writers: bool = False  # CREATE INDEX / REINDEX CONCURRENTLY wait for every writer's transaction


def _references(node: Any) -> list[str]:
    """Tables a foreign key of this statement references (they get SHARE ROW EXCLUSIVE too)."""
    cons: list[Any] = [con for _, con in h.added_constraints(node)]
    for _, col in h.added_columns(node):
        cons += h.column_constraints(col)
    if isinstance(node, ast.CreateStmt):
        for elt in node.tableElts or ():
            cons += [elt] if isinstance(elt, ast.Constraint) else \
                h.column_constraints(elt) if isinstance(elt, ast.ColumnDef) else []
    return [qualified(con.pktable) for con in cons if h.contype(con) == "FOREIGN" and con.pktable is not None]


def _effect(node: Any, info) -> str:
    if info.rewrites:
        return "rewrites"
    if not info.scans:
        return ""
    if isinstance(node, (ast.IndexStmt, ast.ReindexStmt)):
        return "builds an index"
    if any(h.subtype(c) == "AT_ValidateConstraint" for c in h.alter_cmds(node)) or \
            any(h.contype(con) == "FOREIGN" for _, con in h.added_constraints(node)):
        return "validates"  # a foreign key's check is an anti-join (measured as such), a CHECK's a scan
    return "scans"


def lock_needs(plan, server_major: int = 18) -> list[LockNeed]:
    """Every (statement, table) of a FilePlan that takes a table lock, from the statement's parse tree."""
    out: list[LockNeed] = []
    for stmt in plan.parsed:
        node = stmt.node
        where = f"{plan.migration.filename}:{stmt.line}"
        if isinstance(node, _DML):
            rel = getattr(node, "relation", None)
            if rel is not None and getattr(rel, "relname", None):
                out.append(LockNeed(where, qualified(rel), ROW_EXCLUSIVE))
            continue
        info = statement_lock(node, server_major)
        tables = [] if isinstance(node, ast.CreateStmt) else [info.table] if info.table else []
        if isinstance(node, (ast.DropStmt, ast.TruncateStmt)):
            tables = _all_relations(node) or tables
        if info.lock:
            concurrent = (isinstance(node, ast.IndexStmt) and bool(node.concurrent)) or \
                (isinstance(node, ast.ReindexStmt) and info.lock == SHARE_UPDATE_EXCLUSIVE)
            out += [LockNeed(where, t, info.lock, _effect(node, info), concurrent) for t in tables]
        out += [LockNeed(where, t, SHARE_ROW_EXCLUSIVE) for t in _references(node) if t not in tables]
    return out


def _all_relations(node: Any) -> list[str]:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.nodes import names, qualified_from_names

    if isinstance(node, ast.TruncateStmt):
        return [qualified(r) for r in node.relations or ()]
    if node.removeType.name in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX",
                                "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE"):
        return [qualified_from_names(names(o)) for o in node.objects or () if isinstance(o, (tuple, list))]
    return []


# --- measuring rates on the shadow -----------------------------------------------------------------------------
@dataclass
class Rates:
    """Bytes per second for a sequential scan, an index build and a table rewrite."""

    scan: float = DEFAULT_BYTES_PER_SECOND
    index: float = DEFAULT_BYTES_PER_SECOND
    rewrite: float = DEFAULT_BYTES_PER_SECOND
    validate: float = DEFAULT_BYTES_PER_SECOND
    source: str = "assumed 50 MB/s (run *dry-run to measure the rate on the shadow)"

    def for_effect(self, effect: str) -> float:
        return {"rewrites": self.rewrite, "builds an index": self.index,
                "validates": self.validate}.get(effect, self.scan)


SAMPLE_ROWS = 50_000


def _timed(conn, statement: str) -> float:
    t0 = time.perf_counter()
    conn.execute(statement)
    return max(time.perf_counter() - t0, 1e-4)


def measure_rates(conn, rows: int = SAMPLE_ROWS) -> Rates:
    """Scan, validate a foreign key on, index and rewrite a throwaway table of `rows` rows (~5 MB) on a shadow
    database (autocommit). A rough guide: the shadow's disk and cache are not the target's."""
    conn.execute("create table sage_scan_rate_ref (id int primary key)")
    conn.execute("insert into sage_scan_rate_ref select generate_series(0, 999)")
    conn.execute("create table sage_scan_rate as select g as id, g %% 1000 as ref, "
                 "md5(g::text) || md5((g + 1)::text) as pad from generate_series(1, %s) g", (rows,))
    try:
        conn.execute("vacuum analyze sage_scan_rate")  # hint bits set now, not during the timed scan
        heap = conn.execute("select pg_table_size('sage_scan_rate')").fetchone()[0]
        # the faster of two: the first may pay for a cold cache
        scan = min(_timed(conn, "select count(*) from sage_scan_rate where pad <> ''") for _ in range(2))
        conn.execute("alter table sage_scan_rate add constraint sage_scan_rate_fk foreign key (ref) "
                     "references sage_scan_rate_ref not valid")
        validate = _timed(conn, "alter table sage_scan_rate validate constraint sage_scan_rate_fk")
        conn.execute("set maintenance_work_mem = '1MB'")  # sorts on disk, as a big table's build does
        index = _timed(conn, "create index sage_scan_rate_pad on sage_scan_rate (pad)")  # text sorts slower than int
        conn.execute("reset maintenance_work_mem")
        total = conn.execute("select pg_total_relation_size('sage_scan_rate')").fetchone()[0]
        rewrite = _timed(conn, "alter table sage_scan_rate alter column id type bigint")
    finally:
        conn.execute("drop table if exists sage_scan_rate")
        conn.execute("drop table if exists sage_scan_rate_ref")
    return Rates(scan=heap / scan, index=heap / index, rewrite=total / rewrite, validate=heap / validate,
                 source=f"rates measured on the shadow server ({human_bytes(heap)} table)")


def save_rates(project: Path, rates: Rates) -> None:
    sage_dir(project)
    write_state(project / RATES_PATH,
                {**asdict(rates), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def load_rates(project: Path) -> Rates:
    """The rates the last *dry-run measured, else the assumed default."""
    raw = read_state(project / RATES_PATH)
    try:
        return Rates(scan=float(raw["scan"]), index=float(raw["index"]), rewrite=float(raw["rewrite"]),
                     validate=float(raw.get("validate", raw["index"])),
                     source=f"{raw['source']} by *dry-run at {raw.get('measured_at', '?')}")
    except (ValueError, KeyError, TypeError, AttributeError):  # none yet, or not what *dry-run writes
        return Rates()


# --- the target: sizes and the sessions in the way -------------------------------------------------------------
_TABLES_SQL = """
select t.name, c.oid::int8 as oid, pg_table_size(c.oid) as heap, pg_total_relation_size(c.oid) as total,
       c.reltuples::float8 as rows
  from unnest(%s::text[], %s::text[], %s::text[]) as t(name, nsp, rel)
  join pg_namespace n on n.nspname = t.nsp
  join pg_class c on c.relnamespace = n.oid and c.relname = t.rel
"""

_HOLDERS_SQL = """
select l.relation::int8 as oid, l.pid, l.mode, l.granted, a.state, a.application_name, a.datname, a.usename,
       a.backend_type, a.wait_event_type,
       extract(epoch from now() - a.xact_start)::float8 as xact_s,
       extract(epoch from now() - a.state_change)::float8 as state_s,
       extract(epoch from now() - a.query_start)::float8 as query_s,
       left(a.query, 4000) as query
  from pg_locks l
  join pg_stat_activity a on a.pid = l.pid
 where l.locktype = 'relation'
   and l.database = (select oid from pg_database where datname = current_database())
   and l.relation = any(%s::oid[])
   and l.pid <> pg_backend_pid()
 order by a.xact_start nulls last, l.pid
"""


def timeout_text(ms: int) -> str:
    """5000 -> 5s, 1500 -> 1500ms (as *apply's lock_timeout would be written)."""
    return f"{ms // 1000}s" if ms and ms % 1000 == 0 else f"{ms}ms"


def redact_query(text: str | None) -> str:
    """A session's statement as it may be shown: literals replaced by $n (pglast's normalize), secrets
    redacted, cut to one line."""
    raw = text or ""
    try:
        raw = normalize(raw)
    except ParseError:
        pass  # truncated by track_activity_query_size, or not SQL: shown cut, still redacted
    return short(redact(raw), QUERY_WIDTH)


@dataclass
class Blocker:
    """A session holding (or queued ahead for) a lock that conflicts with what a statement needs."""

    where: str
    table: str
    lock: str  # what the statement needs
    pid: int
    mode: str  # what the session holds / waits for (SQL name)
    granted: bool
    state: str
    xact_s: float | None
    state_s: float | None
    application: str
    query: str
    kind: str  # queue (our request queues behind it) | waits (concurrent build waits for its transaction)
    verdict: str = ""


@dataclass
class Estimate:
    where: str
    table: str
    effect: str
    lock: str
    rows: int
    bytes: int
    seconds: float


@dataclass
class Survey:
    """What *dry-run and *apply show before running: the locks, who is in the way, how long the heavy work takes."""

    needs: list[LockNeed] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)
    estimates: list[Estimate] = field(default_factory=list)
    rates: Rates = field(default_factory=Rates)
    lock_timeout: str = ""
    hidden_own: int = 0  # DB Sage's own sessions holding conflicting locks, not counted

    def set_rates(self, rates: Rates) -> None:
        """Estimates follow the rates (*dry-run measures them on the shadow after reading the target)."""
        self.rates = rates
        for e in self.estimates:
            e.seconds = e.bytes / rates.for_effect(e.effect)

    def plan_lines(self) -> list[str]:
        """Lines for *apply's confirmation plan."""
        lines = [f"{b.where} {b.lock} on {b.table}: {b.verdict}" for b in self.blockers]
        lines += [f"{e.where} {e.effect} {e.table} ({human_bytes(e.bytes)}): about {seconds(e.seconds)} under "
                  f"{e.lock}" for e in self.estimates]
        if self.estimates:
            lines.append(f"durations: {self.rates.source}")
        return lines

    def tables(self) -> list[Table]:
        out = []
        if self.blockers:
            out.append(Table(title="Sessions in the way (target, now)",
                             columns=["where", "table", "needs", "pid", "holds", "state", "open for", "query",
                                      "verdict"],
                             rows=[[b.where, b.table, b.lock, b.pid, ("" if b.granted else "waits for ") + b.mode,
                                    b.state, seconds(b.xact_s), b.query, b.verdict] for b in self.blockers]))
        if self.estimates:
            out.append(Table(title="Estimated durations",
                             columns=["where", "table", "effect", "size", "lock", "estimate"],
                             rows=[[e.where, e.table, e.effect, human_bytes(e.bytes), e.lock, seconds(e.seconds)]
                                   for e in self.estimates]))
        return out

    def findings(self) -> list[Finding]:
        return [Finding(rule="locks.would_queue" if b.kind == "queue" else "locks.would_wait",
                        severity="warning", location=b.where, message=f"{b.lock} on {b.table}: {b.verdict}",
                        detail=b.query or None,
                        fix=f"let pid {b.pid} finish (or {cmd('db-check-locks')} --terminate {b.pid} after checking "
                            "what it is), then run again")
                for b in self.blockers]

    def data(self) -> dict[str, Any]:
        return {"locks": [asdict(n) for n in self.needs],
                "blockers": [asdict(b) for b in self.blockers],
                "estimates": [asdict(e) for e in self.estimates],
                "rates": {"scan_bytes_per_s": round(self.rates.scan), "index_bytes_per_s": round(self.rates.index),
                          "rewrite_bytes_per_s": round(self.rates.rewrite),
                          "validate_bytes_per_s": round(self.rates.validate), "source": self.rates.source},
                "lock_timeout": self.lock_timeout, "own_sessions_left_out": self.hidden_own}


def _verdict(b: Blocker, lock_timeout: str) -> str:
    who = f"pid {b.pid}"
    if b.kind == "waits":
        return (f"would wait for {who}'s transaction to end (it holds {b.mode} on {b.table}: it writes there); "
                "other queries on the table are not blocked meanwhile")
    stops = _STOPS.get(b.lock, "conflicting queries")
    timeout = lock_timeout if lock_timeout not in ("", "0", "0ms", "0s") else ""
    idle = b.state.startswith("idle in transaction")
    if idle and timeout:
        return (f"would queue behind {who} for at least {timeout} and block {stops} on {b.table} meanwhile "
                f"({who} is idle in transaction: it lets go only when its client commits or rolls back; "
                f"after lock_timeout={timeout} the statement fails)")
    if idle:
        return (f"would queue behind {who} until its client commits or rolls back (idle in transaction for "
                f"{seconds(b.state_s)}) and block {stops} on {b.table} meanwhile")
    ahead = "" if b.granted else f" (itself waiting for {b.mode})"
    bound = f"for up to {timeout}" if timeout else "with no bound (no lock_timeout)"
    return (f"would queue behind {who}{ahead} {bound} until its transaction (open {seconds(b.xact_s)}) ends, "
            f"and block {stops} on {b.table} meanwhile")


def survey(conn, plans: list, *, lock_timeout: str, rates: Rates | None = None,
           server_major: int = 18) -> Survey:
    """Read the target (nothing is changed): sizes of the tables `plans` lock, and the sessions in the way."""
    needs = [n for p in plans for n in lock_needs(p, server_major)]
    result = Survey(needs=needs, rates=rates or Rates(), lock_timeout=lock_timeout)
    names = sorted({n.table for n in needs})
    if not names:
        return result
    parts = [n.partition(".") for n in names]
    tables = {r[0]: r for r in conn.execute(_TABLES_SQL, (names, [p[0] for p in parts], [p[2] for p in parts]))}
    by_oid = {r[1]: r[0] for r in tables.values()}
    for n in needs:
        fact = tables.get(n.table)
        if fact is None or not n.effect:
            continue
        size = fact[3] if n.effect == "rewrites" else fact[2]
        if fact[4] == 0 or size <= 8192:
            continue  # empty (or one page): nothing worth estimating
        result.estimates.append(Estimate(n.where, n.table, n.effect, n.lock, max(int(fact[4]), 0), int(size),
                                         size / result.rates.for_effect(n.effect)))
    if not by_oid:
        return result
    rows = conn.execute(_HOLDERS_SQL, (list(by_oid),)).fetchall()
    own: set[int] = set()
    for n in needs:
        for (oid, pid, mode, granted, state, app, datname, _user, _backend, _wait, xact_s, state_s, _query_s,
             query) in rows:
            if by_oid.get(oid) != n.table:
                continue
            clash = conflicts(mode, pg_mode(n.lock))
            kind = "queue" if clash else "waits" if (n.waits_for_writers and granted and
                                                      conflicts(mode, pg_mode(SHARE))) else ""
            if not kind:
                continue
            if own_session(app, datname):
                own.add(pid)
                continue
            b = Blocker(n.where, n.table, n.lock, pid, sql_mode(mode), bool(granted), state or "", xact_s, state_s,
                        app or "", redact_query(query), kind)
            b.verdict = _verdict(b, lock_timeout)
            key = (n.where, n.table, pid)
            same = next((i for i, x in enumerate(result.blockers) if (x.where, x.table, x.pid) == key), None)
            if same is None:
                result.blockers.append(b)
            elif STRENGTH[b.mode] > STRENGTH[result.blockers[same].mode]:
                result.blockers[same] = b  # the strongest lock the session holds there
    result.hidden_own = len(own)
    return result
