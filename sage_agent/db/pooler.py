"""Is there a transaction pooler between DB Sage and the server, and which URL gives a real session.

Evidence, cheapest first: the connection's cancel key names a pid that is not the server's (a proxy
answers for the server: PgBouncer, Supavisor, pgcat); Supavisor's port 6543 convention (Supabase's
transaction pooler); PgBouncer's admin console (`SHOW DATABASES` / `SHOW CONFIG` on the `pgbouncer`
database) where the user may read it; else `pg_backend_pid()` across transactions of two clients.
Every probe has a bound: a short connect timeout and a cancel timer on each query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sage_agent.db.env import ConfigError
from sage_agent.db.redact import redact
from sage_agent.db.urls import conninfo_params, describe, replace_dbname

SUPAVISOR_TRANSACTION_PORT = "6543"
PROBE_TIMEOUT_S = 5.0
DIRECT_VARIABLE = "SUPABASE_DB_URL_DIRECT"


class SessionRequired(ConfigError):
    """An operation needs a session (advisory lock, SET, pg_dump...) and only a transaction pooler is configured."""


@dataclass(frozen=True)
class Pooling:
    """What stands between DB Sage and the server at one URL."""

    mode: str  # direct | session | transaction | statement
    evidence: str
    pooler: str = ""  # PgBouncer, Supavisor, or "" when unknown

    @property
    def pooled(self) -> bool:
        return self.mode != "direct"

    @property
    def shares_backends(self) -> bool:
        """Another client may get the same backend between two of our transactions."""
        return self.mode in ("transaction", "statement")


_CACHE: dict[str, Pooling] = {}
_LOCK = threading.Lock()


def _bounded(conn: Any, query: str, timeout_s: float = PROBE_TIMEOUT_S) -> list[tuple]:
    """Run a query; cancel it when it has not answered within the bound (a pooler may queue it)."""
    timer = threading.Timer(timeout_s, lambda: conn.cancel_safe(timeout=2))
    timer.start()
    try:
        return conn.execute(query).fetchall()
    finally:
        timer.cancel()


def _admin_mode(url: str, dbname: str) -> str | None:
    """PgBouncer's pool mode for `dbname` from its admin console, or None where it does not answer."""
    # lazy: psycopg loads on the first database call
    import psycopg

    try:
        with psycopg.connect(replace_dbname(url, "pgbouncer"), autocommit=True, connect_timeout=3,
                             prepare_threshold=None) as admin:
            cur = admin.execute("SHOW DATABASES")
            names = [d.name for d in cur.description or []]
            default = None
            for row in cur.fetchall():
                entry = dict(zip(names, row))
                if entry.get("name") == dbname and entry.get("pool_mode"):
                    return str(entry["pool_mode"])
            for row in admin.execute("SHOW CONFIG").fetchall():
                if row[0] == "pool_mode":
                    default = str(row[1])
            return default
    except (psycopg.Error, OSError, IndexError):
        return None


def _pid_mode(url: str) -> str | None:
    """Two clients: A's backend after its transaction, B's next, then A's again. Under transaction pooling
    B gets A's released backend or A gets another one; under session pooling neither happens."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    try:
        with connect(url, autocommit=True, application_name="") as a, \
                connect(url, autocommit=True, application_name="") as b:
            first = _bounded(a, "select pg_backend_pid()")[0][0]
            other = _bounded(b, "select pg_backend_pid()")[0][0]
            again = _bounded(a, "select pg_backend_pid()")[0][0]
    except Exception:  # noqa: BLE001 - a probe: no answer means no evidence
        return None
    if other == first or again != first:
        return "transaction"
    return "session"


def detect(url: str, *, refresh: bool = False) -> Pooling:
    """The pooling at `url` (cached per URL for this process). Raises DbConnectError when it cannot connect."""
    with _LOCK:
        if not refresh and url in _CACHE:
            return _CACHE[url]
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(url, autocommit=True, application_name="") as conn:
        pooled = conn.pooled
    if not pooled:
        found = Pooling("direct", "the server's backend pid matches the connection's cancel key")
    else:
        params = conninfo_params(url)
        port = params.get("port", "5432")
        mode = _admin_mode(url, params.get("dbname", params.get("user", "")))
        if mode:
            found = Pooling(mode, f"PgBouncer's admin console (SHOW DATABASES/CONFIG) says pool_mode={mode}",
                            "PgBouncer")
        elif port == SUPAVISOR_TRANSACTION_PORT:
            found = Pooling("transaction", "port 6543: the Supabase/Supavisor transaction-pooler convention",
                            "Supavisor")
        else:
            mode = _pid_mode(url)
            if mode == "session":
                found = Pooling("session", "a proxy answers (cancel key pid differs); each client keeps its backend "
                                           "across transactions")
            else:
                found = Pooling("transaction", "a proxy answers (cancel key pid differs) and pg_backend_pid() changed "
                                               "between transactions" if mode else
                                "a proxy answers (cancel key pid differs); assuming transaction pooling")
    with _LOCK:
        _CACHE[url] = found
    return found


def session_url(url: str, direct_url: str | None, purpose: str, *, known_direct: bool = False,
                variable: str = DIRECT_VARIABLE) -> str:
    """The URL for work that needs a real session: the direct URL when one is configured, else `url` when no
    transaction pooler stands in front of it; otherwise a clear refusal naming the variable to set."""
    if direct_url:
        return direct_url
    if known_direct:
        return url
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import DbConnectError

    try:
        found = detect(url)
    except DbConnectError as exc:
        if exc.kind != "missing_database":
            raise
        found = detect(replace_dbname(url, "postgres"))  # a database to create (*restore): ask its server
    if not found.shares_backends:
        return url
    where = describe(url)
    raise SessionRequired(
        f"{purpose} needs a database session, but {redact(url)} ({where['host']}:{where['port']}) goes through a "
        f"{found.mode} pooler{' (' + found.pooler + ')' if found.pooler else ''}: {found.evidence}. Nothing was "
        f"changed. {direct_url_hint(variable)} to the direct connection, e.g. Supabase's "
        "db.<project-ref>.supabase.co:5432 (Project Settings > Database > Direct connection)"
    )


def direct_url_hint(variable: str) -> str:
    """How to give the direct (session) URL, for the way the pooled URL was given."""
    if variable == "--direct-url":
        # a REPL has no per-command flag for it: the URL is given when sage starts
        return "Start sage with --direct-url URL (or set SUPABASE_DB_URL_DIRECT with --env dev/staging/prod)"
    if variable.startswith("a "):
        return f"Give {variable}"
    return f"Set {variable} (or pass --direct-url)"
