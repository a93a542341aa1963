"""The watch history: one SQLite file (.sage/watch.sqlite, stdlib sqlite3) with every round, each check's
metric, and what each check observed, so the next round (in this process or after a restart) can say what
is new, worse or resolved. Bounded: the last SAGE_WATCH_KEEP_ROUNDS rounds per target are kept."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sage_agent.db.redact import redact
from sage_agent.ops.watch.checks import SEVERITY_RANK, CheckResult, Observation

FILE_NAME = "watch.sqlite"
SCHEMA = """
create table if not exists rounds (
  id integer primary key autoincrement, target text not null, started real not null, duration_ms real,
  checks text not null, alerts integer not null default 0, new integer not null default 0,
  worse integer not null default 0, resolved integer not null default 0, webhook text);
create index if not exists rounds_target on rounds (target, id);
create table if not exists metrics (
  round_id integer not null references rounds (id) on delete cascade, check_name text not null, status text not null,
  value real, label text, observations integer not null, alerts integer not null, duration_ms real, error text,
  fingerprint text, carried_from integer,
  primary key (round_id, check_name));
create table if not exists observations (
  round_id integer not null references rounds (id) on delete cascade, check_name text not null, key text not null,
  severity text not null, value real, alert integer not null, message text not null, grows real not null,
  change text not null);
create index if not exists observations_round on observations (round_id, check_name);
create table if not exists audit_state (target text primary key, meta text not null, data blob not null);  -- before 2
"""


def history_path(project: Path) -> Path:
    return Path(project) / ".sage" / FILE_NAME


@dataclass
class Change:
    """How one observation compares with the last round that ran its check."""

    kind: str  # new | worse | same | resolved
    observation: Observation
    previous_value: float | None = None


class History:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection per target of a fleet watch, each used by one worker thread at a time
        self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        self.db.execute("pragma foreign_keys = on")
        if self.db.execute("pragma journal_mode").fetchone()[0] != "wal":
            self.db.execute("pragma journal_mode = wal")  # a report can read while a watch writes
        self.db.executescript(SCHEMA)
        self._stores: dict[str, Any] = {}  # target -> security.summary.AuditStore

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- comparing ----------------------------------------------------------------------------------------------
    def last_run(self, target: str, check: str, *, rerun_only: bool = False) -> dict[str, Any] | None:
        """The last round of `target` in which `check` ran without failing: its id, time, metric, fingerprint.
        `rerun_only`: leave out rounds that carried an earlier run's findings forward."""
        row = self.db.execute(
            "select m.round_id, r.started, m.value, m.label, m.fingerprint, m.duration_ms, m.observations "
            "from metrics m join rounds r on r.id = m.round_id where r.target = ? and m.check_name = ? "
            "and m.status <> 'error'" + (" and m.carried_from is null" if rerun_only else "") +
            " order by m.round_id desc limit 1", (target, check)).fetchone()
        if row is None:
            return None
        return {"round_id": row[0], "started": row[1], "metric": row[2], "label": row[3], "fingerprint": row[4],
                "duration_ms": row[5], "observations": row[6]}

    def observed(self, round_id: int, check: str) -> list[Observation]:
        return [Observation(check, r[0], r[1], r[4], value=r[2], alert=bool(r[3]), grows=r[5])
                for r in self.db.execute("select key, severity, value, alert, message, grows from observations "
                                         "where round_id = ? and check_name = ?", (round_id, check))]

    def previous(self, target: str, check: str) -> dict[str, Observation]:
        """What `check` observed in the last round of `target` that ran it (empty when it never ran)."""
        last = self.last_run(target, check)
        return {} if last is None else {o.key: o for o in self.observed(last["round_id"], check)}

    def last_status(self, target: str, check: str) -> str | None:
        """ok / alert / error of `check` in the last round of `target` that ran it."""
        row = self.db.execute("select m.status from metrics m join rounds r on r.id = m.round_id "
                              "where r.target = ? and m.check_name = ? order by m.round_id desc limit 1",
                              (target, check)).fetchone()
        return row[0] if row else None

    def compare(self, target: str, result: CheckResult) -> list[Change]:
        """new / worse / same for each observation; resolved for what the last round saw and this one does not.
        A check that failed this round resolves nothing (it could not look)."""
        if result.error:
            return []
        before = self.previous(target, result.name)
        changes = []
        for obs in result.observations:
            old = before.get(redact(obs.key))  # stored redacted (a long query's key is its text)
            if old is None:
                changes.append(Change("new", obs))
            elif _worse(old, obs):
                changes.append(Change("worse", obs, old.value))
            else:
                changes.append(Change("same", obs, old.value))
        seen = {redact(o.key) for o in result.observations}
        if not result.truncated:  # with observations left out, a missing one may only have dropped off the list
            changes += [Change("resolved", old) for key, old in before.items() if key not in seen]
        return changes

    # --- writing ------------------------------------------------------------------------------------------------
    def record(self, target: str, started: float, duration_ms: float, results: list[CheckResult],
               changes: dict[str, list[Change]], webhook: str | None, keep: int) -> int:
        """Every text is stored redacted (a query a session ran may carry a connection string or a password): the
        file holds no secret, not only what is shown of it."""
        counts = {k: sum(1 for cs in changes.values() for c in cs if c.kind == k) for k in ("new", "worse", "resolved")}
        alerts = sum(len(r.alerts) + (1 if r.error else 0) for r in results)
        with self.db:
            self.db.execute("begin immediate")
            cur = self.db.execute(
                "insert into rounds (target, started, duration_ms, checks, alerts, new, worse, resolved, webhook) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (target, started, duration_ms, ",".join(r.name for r in results), alerts, counts["new"],
                 counts["worse"], counts["resolved"], redact(webhook)))
            round_id = int(cur.lastrowid)
            self.db.executemany(
                "insert into metrics values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(round_id, r.name, r.status, r.metric, redact(r.metric_label), len(r.observations) + r.truncated,
                  len(r.alerts), round(r.duration_ms, 2), redact(r.error), r.fingerprint, r.carried_from)
                 for r in results])
            kinds = {(c.observation.check, c.observation.key): c.kind for cs in changes.values() for c in cs}
            self.db.executemany(
                "insert into observations values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(round_id, o.check, redact(o.key), o.severity, o.value, int(o.alert), redact(o.message), o.grows,
                  kinds.get((o.check, o.key), "new")) for r in results for o in r.observations])
            if keep > 0:
                self.db.execute("delete from rounds where target = ? and id <= coalesce((select id from rounds "
                                "where target = ? order by id desc limit 1 offset ?), -1)", (target, target, keep))
            self.db.execute("commit")
        return round_id

    # --- the audits' per-relation findings (security/summary.AuditStore: SQLite rows in this file), so that a round
    # after DDL reads only what changed and rewrites only those rows ------------------------------------------------
    def audit_store(self, target: str):
        if target not in self._stores:
            # lazy: the audits' module loads only for the audits check
            from sage_agent.ops.security.summary import AuditStore

            self.db.execute("delete from audit_state where target = ?", (target,))  # the JSON cache of earlier versions
            self._stores[target] = AuditStore(self.db, target)
        return self._stores[target]

    def flush(self) -> None:
        """Nothing left to write: the audits' store writes its rows in the round that reads them."""

    # --- reading ------------------------------------------------------------------------------------------------
    def targets(self) -> list[str]:
        return [r[0] for r in self.db.execute("select target from rounds group by target order by max(id) desc")]

    def rounds(self, target: str, limit: int = 50) -> list[dict[str, Any]]:
        """The last `limit` rounds of `target`, oldest first, each with its metrics per check."""
        rows = self.db.execute("select id, started, duration_ms, checks, alerts, new, worse, resolved, webhook "
                               "from rounds where target = ? order by id desc limit ?", (target, limit)).fetchall()
        rounds = [{"id": r[0], "started": r[1], "duration_ms": r[2], "checks": r[3].split(",") if r[3] else [],
                   "alerts": r[4], "new": r[5], "worse": r[6], "resolved": r[7],
                   "webhook": json.loads(r[8]) if r[8] else None, "metrics": {}} for r in reversed(rows)]
        if rounds:
            by_id = {r["id"]: r for r in rounds}
            for m in self.db.execute("select round_id, check_name, status, value, label, observations, alerts, "
                                     "duration_ms, error from metrics where round_id >= ? and round_id in "
                                     "(select id from rounds where target = ?)", (rounds[0]["id"], target)):
                by_id[m[0]]["metrics"][m[1]] = {"status": m[2], "value": m[3], "label": m[4], "observations": m[5],
                                                "alerts": m[6], "duration_ms": m[7], "error": m[8]}
        return rounds

    def count(self, target: str) -> int:
        return int(self.db.execute("select count(*) from rounds where target = ?", (target,)).fetchone()[0])

    def observations(self, round_id: int) -> list[dict[str, Any]]:
        return [{"check": r[0], "key": r[1], "severity": r[2], "value": r[3], "alert": bool(r[4]), "message": r[5],
                 "change": r[6]} for r in self.db.execute(
                    "select check_name, key, severity, value, alert, message, change from observations "
                    "where round_id = ? order by alert desc, check_name, key", (round_id,))]


def _worse(old: Observation, new: Observation) -> bool:
    if SEVERITY_RANK.get(new.severity, 0) > SEVERITY_RANK.get(old.severity, 0):
        return True
    if new.alert and not old.alert:
        return True
    if new.value is not None and old.value is not None:
        return new.value > old.value * new.grows if old.value > 0 else new.value > 0
    return False
