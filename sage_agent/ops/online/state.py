"""Where an online migration is up to: DB Sage's own table next to the Supabase CLI's ledger.

`supabase_migrations.sage_online` has one row per file whose online sequence has started and not finished,
and one per applied file whose column type change is expanded and not yet contracted (status `expanded`:
what `*apply --complete` and `*rollback FILE` need). The CLI's `schema_migrations` row is written only when
the last step is done (in the same transaction that deletes this row or marks it expanded), so `supabase migration list` never shows a half-done file as applied, and a second
`*apply` reads here which step to continue from (and, in a backfill, the last primary key done).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TABLE = "supabase_migrations.sage_online"
CREATE = [
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        version text PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        steps jsonb NOT NULL,
        done integer NOT NULL DEFAULT 0,
        current jsonb NOT NULL DEFAULT '{{}}',
        names jsonb NOT NULL DEFAULT '{{}}',
        status text NOT NULL DEFAULT 'running',
        detail text,
        started_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now())""",
]


@dataclass
class OnlineState:
    version: str
    name: str
    checksum: str
    steps: list[dict]
    done: int = 0
    current: dict[str, Any] = field(default_factory=dict)  # the step under way: index started, backfill keys
    names: dict[str, str] = field(default_factory=dict)  # constraint names found when added NOT VALID
    # running | failed | interrupted | expanded (applied; old columns kept until --complete) | rolling_back (a
    # *rollback FILE swapped back and stopped before validating the foreign keys it put back NOT VALID: their
    # VALIDATE statements wait in current["validate"]; *rollback FILE or *apply runs them)
    status: str = "running"
    detail: str | None = None

    def describe(self) -> str:
        """`in progress (backfill 62%)` / `in progress (step 3 of 5: validate)` / `expanded (contract pending)`,
        for *migrations."""
        if self.status == "expanded":
            version = self.names.get("@version")
            if isinstance(version, dict):  # versions.py: the swap waits for --complete too
                return (f"expanded (contract pending; version schema {', '.join(version.get('schemas', []))}: "
                        "clients of the new type set search_path to it; *apply --complete swaps)")
            return "expanded (contract pending)"
        if self.status == "rolling_back":
            left = len(self.current.get("validate", []))
            return (f"rollback unfinished ({left} foreign key(s) still NOT VALID: *rollback {self.version}_{self.name}"
                    ".sql or *apply validates them)")
        total = len(self.steps)
        kind = self.steps[self.done]["kind"] if self.done < total else "finish"
        if kind == "backfill" and self.current.get("step") == self.done and self.current.get("rows_total"):
            pct = min(99, int(100 * self.current.get("rows_done", 0) / max(1, self.current["rows_total"])))
            what = f"backfill {pct}%"
        else:
            what = f"step {self.done + 1} of {total}: {kind}"
        if self.status == "interrupted":
            what += ", stopped"
        elif self.status == "failed":
            what += ", failed"
        return f"in progress ({what})"


def exists(conn) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (TABLE,)).fetchone()[0]


def ensure(conn) -> None:
    if exists(conn):
        return
    with conn.transaction():
        conn.execute("select set_config('lock_timeout', '4s', true)")
        for ddl in CREATE:
            conn.execute(ddl)


def read_all(conn) -> dict[str, OnlineState]:
    """Every unfinished online file, by version ({} when none ever ran)."""
    if not exists(conn):
        return {}
    rows = conn.execute(f"select version, name, checksum, steps, done, current, names, status, detail "
                        f"from {TABLE} order by version").fetchall()
    return {r[0]: OnlineState(*r) for r in rows}


def read(conn, version: str) -> OnlineState | None:
    return read_all(conn).get(version)


def start(conn, state: OnlineState) -> None:
    conn.execute(f"insert into {TABLE} (version, name, checksum, steps) values (%s, %s, %s, %s) "
                 "on conflict (version) do nothing",
                 (state.version, state.name, state.checksum, json.dumps(state.steps)))


def save(conn, state: OnlineState) -> None:
    """Write where the file is up to; inside the step's own transaction when it has one."""
    conn.execute(f"update {TABLE} set done = %s, current = %s, names = %s, status = %s, detail = %s, "
                 "updated_at = now() where version = %s",
                 (state.done, json.dumps(state.current), json.dumps(state.names), state.status, state.detail,
                  state.version))


def upgrade(conn, state: OnlineState) -> None:
    """A row an earlier build wrote, given this build's checksum (of the file) and steps (every field)."""
    conn.execute(f"update {TABLE} set checksum = %s, steps = %s, updated_at = now() where version = %s",
                 (state.checksum, json.dumps(state.steps), state.version))


def finish(conn, version: str) -> None:
    conn.execute(f"delete from {TABLE} where version = %s", (version,))
