"""Taking a lock without queueing everyone behind you: a short lock_timeout, then exponential backoff with a
bound, naming the session that held the lock each time.

Why short and retried: a DDL statement waiting for ACCESS EXCLUSIVE sits in the lock queue, and every later
query on the table queues behind it. Giving up after about a second and trying again later keeps the
longest wait of other sessions near the lock timeout, instead of the length of someone's open transaction.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    lock_timeout_ms: int = 1000
    retries: int = 8
    backoff_ms: int = 250
    backoff_max_ms: int = 10_000

    def delay_s(self, attempt: int) -> float:
        """Exponential from backoff_ms, capped, with jitter so two retrying appliers do not collide."""
        base = min(self.backoff_max_ms, self.backoff_ms * (2 ** (attempt - 1)))
        return base * random.uniform(0.5, 1.0) / 1000


class LockGaveUp(Exception):
    """Every attempt timed out waiting for a lock; the message names who held it."""


def lock_holders(conn, table: str | None, limit: int = 3) -> list[str]:
    """The sessions holding a lock on `table` (else the oldest open transactions: what CONCURRENTLY waits for)."""
    query = ("select a.pid, coalesce(a.state, '?'), coalesce(nullif(a.application_name, ''), 'unknown client'), "
             "round(extract(epoch from now() - coalesce(a.xact_start, a.query_start))::numeric, 1), "
             "left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120), string_agg(distinct l.mode, ',') "
             "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
             "where l.granted and l.locktype = 'relation' and l.relation = to_regclass(%s) "
             "and a.pid <> pg_backend_pid() group by 1, 2, 3, 4, 5 order by 4 desc nulls last limit %s")
    rows = []
    try:
        if table:
            rows = conn.execute(query, (table, limit)).fetchall()
        if not rows:
            rows = conn.execute(
                "select a.pid, coalesce(a.state, '?'), coalesce(nullif(a.application_name, ''), 'unknown client'), "
                "round(extract(epoch from now() - a.xact_start)::numeric, 1), "
                "left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120), 'open transaction' "
                "from pg_stat_activity a where a.xact_start is not null and a.pid <> pg_backend_pid() "
                "and a.datname = current_database() and a.backend_type = 'client backend' "
                "order by a.xact_start limit %s", (limit,)).fetchall()
    except Exception:  # noqa: BLE001 - naming the holder must never hide the real outcome
        return []
    return [f"pid {pid} ({state} for {age}s, {app}, {mode}: {query})" for pid, state, app, age, query, mode in rows]


def with_lock_retries(conn, fn: Callable[[], T], policy: RetryPolicy, *, table: str | None, what: str,
                      say: Callable[[str], None], cleanup: Callable[[], None] = lambda: None) -> T:
    """Run `fn` (which sets lock_timeout itself); on a lock timeout or deadlock, name the holder, wait, retry."""
    # lazy: psycopg loads on the first database call
    import psycopg.errors as pe

    attempt = 0
    while True:
        try:
            return fn()
        except (pe.LockNotAvailable, pe.DeadlockDetected) as exc:
            attempt += 1
            holders = lock_holders(conn, table) if not conn.broken else []
            held = "; ".join(holders) or "a session that has finished meanwhile"
            cause = "deadlock" if isinstance(exc, pe.DeadlockDetected) else \
                f"lock not granted within {policy.lock_timeout_ms} ms"
            cleanup()
            if attempt > policy.retries:
                raise LockGaveUp(f"{what}: {cause} on {attempt} attempts; held by {held}") from None
            delay = policy.delay_s(attempt)
            say(f"{what}: {cause}, held by {held}; retry {attempt} of {policy.retries} in {delay:.1f}s")
            time.sleep(delay)
