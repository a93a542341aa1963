"""*apply's migration lock, held around changes other operations make to what migrations change."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sage_agent.ops.migrations.applier import LockBusy, acquire_apply_lock, lock_wait_s, release_apply_lock
from sage_agent.ops.result import OpError


@contextmanager
def migration_lock(ctx, what: str) -> Iterator[None]:
    """Hold *apply's lock for a change made by another process (psql) or connection: *rollback and *seed rewrite what
    migrations change, so they wait for a running *apply (and it for them) instead of interleaving."""
    conn = ctx.connect(ctx.migration_url, autocommit=True)
    try:
        try:
            acquire_apply_lock(conn, lock_wait_s(), on_wait=ctx.say)
        except LockBusy as exc:
            raise OpError(f"{what}: {exc}", f"wait for the other *apply to finish, then run {what} again") from None
        yield
    finally:
        release_apply_lock(conn)
        conn.close()
