"""Batched backfills: an UPDATE of a whole table run as many short transactions over primary-key ranges.

Why ranges of the primary key: each batch touches a bounded set of rows (its row locks last one short
transaction), the next batch starts where the last committed one ended (kept in the online state row in the
batch's own transaction, so a kill loses at most the batch under way and repeats nothing), and rows inserted
meanwhile get the column's default anyway.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from psycopg import sql

from sage_agent.ops.online import state as st
from sage_agent.ops.online.locks import RetryPolicy, with_lock_retries


class BackfillError(Exception):
    pass


@dataclass(frozen=True)
class BatchPolicy:
    rows: int = 5000
    pause_ms: int = 0


def primary_key(conn, table: str) -> tuple[str, str]:
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_index i join pg_attribute a "
        "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = to_regclass(%s) and i.indisprimary",
        (table,)).fetchall()
    if len(rows) != 1:
        why = "has no primary key" if not rows else f"has a primary key of {len(rows)} columns"
        raise BackfillError(f"a batched backfill of {table} walks its primary key, and {table} {why}: add a "
                            "single-column primary key first, or run this UPDATE in a file without --online")
    return rows[0][0], rows[0][1]


class StopFlag:
    """Ctrl-C during a backfill: finish the batch under way, then stop (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.stop = False

    def __call__(self) -> bool:
        return self.stop


@contextmanager
def stop_at_batch_boundary(say: Callable[[str], None]) -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag.stop:
            raise KeyboardInterrupt
        flag.stop = True
        say("stopping after the batch under way (Ctrl-C again to interrupt now)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt_eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_backfill(conn, step, state: st.OnlineState, index: int, *, retry: RetryPolicy, batch: BatchPolicy,
                 statement_timeout: str, say: Callable[[str], None], progress, should_stop: Callable[[], bool]) -> bool:
    """Run (or continue) one backfill step. True when every range is done; False when stopped by Ctrl-C."""
    spec = step.backfill
    table = spec["table"]
    pk, pktype = primary_key(conn, table)
    qpk = sql.Identifier(pk).as_string(conn)
    ref = (sql.Identifier(spec["alias"]).as_string(conn) + "." + qpk) if spec.get("alias") else qpk
    cur = state.current if state.current.get("step") == index else {}
    if not cur:
        total, upto = conn.execute(f"select count(*), max({qpk})::text from {table}").fetchone()
        cur = {"step": index, "last": None, "rows_done": 0, "rows_total": total, "updated": 0, "upto": upto}
        state.current = cur
        st.save(conn, state)
    else:
        if "upto" not in cur:  # a state row written before the bound was kept
            cur["upto"] = conn.execute(f"select max({qpk})::text from {table}").fetchone()[0]
        say(f"backfill of {table} continues after {pk} = {cur['last']} ({cur['rows_done']} of {cur['rows_total']} "
            "rows done)")
    # The rows to backfill are those present when it started (the key's maximum then): rows inserted later get
    # their value from the new column's default or the sync trigger, as after the plain statement. Without the
    # bound a steady stream of inserts keeps the backfill chasing new keys and it never ends.
    upto_sql = None if cur["upto"] is None else f"{sql.Literal(cur['upto']).as_string(conn)}::{pktype}"
    started, done_here = time.perf_counter(), 0
    bar = progress(f"backfill {table}", cur["rows_total"])
    alias = f" AS {sql.Identifier(spec['alias']).as_string(conn)}" if spec.get("alias") else ""
    next_note = 10

    def one_batch() -> tuple[str | None, int, int]:
        with conn.transaction():
            conn.execute("select set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                         (f"{retry.lock_timeout_ms}ms", statement_timeout))
            if upto_sql is None:  # the table was empty when the backfill started
                return None, 0, 0
            after = f" where {qpk} <= {upto_sql}" if cur["last"] is None else \
                f" where {qpk} > {sql.Literal(cur['last']).as_string(conn)}::{pktype} and {qpk} <= {upto_sql}"
            hi, n = conn.execute(f"select max(k)::text, count(*) from (select {qpk} as k from {table}{after} "
                                 f"order by {qpk} limit {int(batch.rows)}) s").fetchone()
            if hi is None:
                return None, 0, 0
            cond = [f"{ref} <= {sql.Literal(hi).as_string(conn)}::{pktype}"]
            if cur["last"] is not None:
                cond.insert(0, f"{ref} > {sql.Literal(cur['last']).as_string(conn)}::{pktype}")
            if spec.get("where"):
                cond.append(f"({spec['where']})")
            if spec.get("only_null"):
                cond.append(f"{spec['only_null']} IS NULL")
            updated = conn.execute(f"UPDATE {table}{alias} SET {spec['set']} WHERE " + " AND ".join(cond)).rowcount
            cur.update(last=hi, rows_done=cur["rows_done"] + n, updated=cur.get("updated", 0) + max(updated, 0))
            state.current = cur
            st.save(conn, state)
            return hi, n, updated

    while True:
        hi, n, _ = with_lock_retries(conn, one_batch, retry, table=table, what=f"backfill of {table}", say=say)
        if hi is None:
            break
        done_here += n
        elapsed = max(time.perf_counter() - started, 1e-6)
        rate = done_here / elapsed
        left = max(cur["rows_total"] - cur["rows_done"], 0)
        bar.update(cur["rows_done"], f"{rate:,.0f} rows/s, ETA {_fmt_eta(left / rate) if rate else '?'}")
        pct = 100 * cur["rows_done"] / max(cur["rows_total"], 1)
        if pct >= next_note and pct < 100 and not bar.drawn:  # the drawn bar already says it
            say(f"backfill {table}: {pct:.0f}% ({cur['rows_done']:,} of {cur['rows_total']:,} rows, {rate:,.0f} "
                f"rows/s, ETA {_fmt_eta(left / rate) if rate else '?'})")
            next_note = (round(pct) // 10 + 1) * 10  # after the shown (rounded) value: 40% is not followed by 41%
        if should_stop():
            return False
        if batch.pause_ms:
            time.sleep(batch.pause_ms / 1000)
    return True
