"""A small pool of connections for a long-lived front door (`sage mcp`): read calls reuse a connection instead of
paying a new connection and its authentication each time.

A pooled connection looks like any other (`SageConnection`); closing it gives it back. It goes back only clean:
idle (an open transaction is rolled back first), in autocommit as it was made, and not broken. After a call that
failed, the front door empties the pool (`discard_idle()`), so the next call starts on a fresh connection.
Only read operations get pooled connections (the session decides): their transactions end with the call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import psycopg
from psycopg import pq

from sage_agent.db.connect import SageConnection, connect

MAX_IDLE = 4  # per URL and settings: a few read calls in flight at once, not a server's worth of backends


class PooledConnection(SageConnection):
    """A connection that returns to its pool on close() (also at the end of `with conn:`)."""

    _sage_pool: "ConnectionPool | None" = None  # set while lent out
    _sage_idle: bool = False  # back in the pool: a stale handle closing it again does nothing
    _sage_key: tuple = ()
    _sage_discard: bool = False

    def close(self) -> None:
        pool = self._sage_pool
        if pool is not None:
            self._sage_pool = None
            if not self._sage_discard and not self.closed and pool.give_back(self):
                return
        elif self._sage_idle:
            return
        super().close()


class ConnectionPool:
    """Idle connections keyed by (url, autocommit, statement timeout, lock timeout); thread-safe."""

    def __init__(self, max_idle: int = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._idle: dict[tuple, list[PooledConnection]] = {}
        self._lock = threading.Lock()
        self._info: dict[str, Any] = {}
        self.opened = 0  # connections made (for tests and benchmarks: reuse shows as a small number)

    def acquire(self, url: str, *, autocommit: bool, statement_timeout_ms: int | None,
                lock_timeout_ms: int | None) -> PooledConnection:
        key = (url, autocommit, statement_timeout_ms, lock_timeout_ms)
        with self._lock:
            idle = self._idle.get(key) or []
            conn = idle.pop() if idle else None
        if conn is None:
            conn = connect(url, autocommit=autocommit, statement_timeout_ms=statement_timeout_ms,
                           lock_timeout_ms=lock_timeout_ms, connection_class=PooledConnection)
            self.opened += 1
        conn._sage_pool, conn._sage_key, conn._sage_discard, conn._sage_idle = self, key, False, False
        return conn

    def give_back(self, conn: PooledConnection) -> bool:
        """Keep `conn` for the next call when it is clean; False: the caller closes it."""
        try:
            status = conn.info.transaction_status
            if status == pq.TransactionStatus.UNKNOWN or conn.broken:
                return False
            if status != pq.TransactionStatus.IDLE:
                conn.rollback()
            if conn.autocommit != conn._sage_key[1]:
                conn.autocommit = conn._sage_key[1]
        except psycopg.Error:
            return False
        with self._lock:
            idle = self._idle.setdefault(conn._sage_key, [])
            if len(idle) >= self.max_idle:
                return False
            conn._sage_idle = True
            idle.append(conn)
        return True

    def discard_idle(self) -> None:
        """After a call that failed: close every idle connection and forget the server facts, so the next call
        starts on a fresh connection (a broken or confused session never serves a second call)."""
        self.close()
        self._info.clear()

    def server_info(self, url: str, compute: Callable[[], Any]) -> Any:
        """The server's facts (version, major, ...) once per URL for the life of the pool."""
        if url not in self._info:
            self._info[url] = compute()
        return self._info[url]

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn._sage_pool, conn._sage_idle = None, False
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing at shutdown is best effort
                pass
