"""Opening connections with short timeouts, server-side limits, and errors a person can act on.

Works the same directly and through a transaction pooler (PgBouncer, Supavisor): nothing is sent as a
startup `options` parameter (a stock PgBouncer refuses it). Right after connecting, one query tells a
direct connection (the server's pid equals the pid in the connection's cancel key) from a pooled one
(the pooler hands out its own key). A direct connection gets its timeouts and `application_name` as
session settings; a pooled one gets its timeouts with `set_config(..., true)` inside each transaction,
no server-side prepared statements and no session settings, so nothing is left on a backend that
another client will get next.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import psycopg
from psycopg import pq, sql

from sage_agent.db.redact import redact

if TYPE_CHECKING:
    pass

CONNECT_TIMEOUT_S = 5
APPLICATION_NAME = "db-sage"
# Inside a statement DB Sage runs whose tables alone cannot tell it from an application's (it reads a Supabase
# table, or calls monitoring functions): pg_stat_statements keeps the comment, *hotpaths leaves the statement out.
OWN_SQL_MARKER = "/* db-sage */"
IDLE_IN_TX_TIMEOUT = "60s"  # through a pooler: a transaction we leave open never pins a backend for long

# statements PostgreSQL refuses inside a transaction block: run as they are, never wrapped
_NO_TX = re.compile(r"^\s*(vacuum|create\s+database|drop\s+database|alter\s+system|reindex\s+.*concurrently|"
                    r"create\s+(unique\s+)?index\s+concurrently|drop\s+index\s+concurrently|cluster\b|"
                    r"create\s+tablespace|drop\s+tablespace|alter\s+database\s+.*set\s+tablespace|"
                    r"begin|start\s+transaction|commit|rollback|end\b|abort)", re.I | re.S)


class _QuietPipelineExit(logging.Filter):
    """psycopg logs "error ignored terminating <Pipeline>" when a pipeline ends after a failed statement; the
    error itself is already reported (file:line), and with no logging configured Python would print the
    line to stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietPipelineExit())


class DbConnectError(RuntimeError):
    """A connection failure, classified, with the next step to take."""

    def __init__(self, kind: str, message: str, hint: str) -> None:
        super().__init__(f"{message}. {hint}")
        self.kind = kind
        self.message = message
        self.hint = hint


_CLASSES: list[tuple[str, tuple[str, ...], str]] = [
    ("bad_url", ("invalid dsn", "missing \"=\"", "invalid connection option", "invalid uri", "invalid integer value",
                 "invalid port"),
     "Check the URL: postgresql://user:password@host:5432/dbname"),
    ("unknown_host", ("could not translate host name", "name or service not known", "nodename nor servname"),
     "Check the host name in the URL (typo? VPN? for Supabase use the pooler host from the dashboard)"),
    ("refused", ("connection refused",),
     "Nothing listens there: is the server running and the port right? For local work `sage db start` starts the "
     "embedded server"),
    ("timeout", ("timeout expired", "timed out"),
     "The host did not answer in time: check firewall, network and IP allow-lists"),
    ("wrong_password", ("password authentication failed", "no password supplied", "authentication failed"),
     "Check the user and password (Supabase: Project Settings > Database; reset the password if unsure)"),
    ("missing_database", ("does not exist",),
     "The database is not there: check the name at the end of the URL (Supabase uses `postgres`)"),
    ("pooler_parameter", ("unsupported startup parameter",),
     "A connection pooler refused a startup parameter: remove `options=` from the URL (DB Sage sets its "
     "timeouts inside each transaction)"),
    ("ssl", ("ssl",), "Check sslmode (Supabase requires SSL: add ?sslmode=require)"),
]


def classify_error(exc: BaseException) -> DbConnectError:
    text = str(exc).strip()
    low = text.lower()
    for kind, needles, hint in _CLASSES:
        if any(n in low for n in needles):
            first = redact(text.splitlines()[0]) if text else kind
            return DbConnectError(kind, f"cannot connect ({kind.replace('_', ' ')}): {first}", hint)
    return DbConnectError("error", f"cannot connect: {redact(text.splitlines()[0] if text else repr(exc))}",
                          "Check that the server is up and the URL is right (`*env-check` shows what DB Sage "
                          "resolved)")


class SageCursor(psycopg.Cursor):
    """On a pooled connection, every transaction this cursor starts gets the connection's timeouts first."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> "SageCursor":  # type: ignore[override]
        conn = self.connection
        if isinstance(conn, SageConnection) and conn.pooled and conn.tx_settings \
                and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            if not conn.autocommit:
                conn.set_local()  # opens the transaction the statement then runs in
            elif not _NO_TX.match(_text(query, conn)):
                with conn.transaction():
                    return super().execute(query, params, **kwargs)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # type: ignore[override]
        conn = self.connection
        if isinstance(conn, SageConnection) and conn.pooled and conn.tx_settings \
                and conn.info.transaction_status == pq.TransactionStatus.IDLE and not conn.autocommit:
            conn.set_local()
        super().executemany(query, params_seq, **kwargs)

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        conn = self.connection
        if isinstance(conn, SageConnection) and conn.pooled and conn.tx_settings \
                and conn.info.transaction_status == pq.TransactionStatus.IDLE and not conn.autocommit:
            conn.set_local()
        with super().copy(statement, params, **kwargs) as cp:
            yield cp


def _text(query: Any, conn: psycopg.Connection) -> str:
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    if isinstance(query, sql.Composable):
        return query.as_string(conn)
    return str(query)


class SageConnection(psycopg.Connection):
    """A psycopg connection that knows whether a pooler stands between it and the server."""

    pooled: bool = False
    tx_settings: dict[str, str] = {}

    def set_local(self) -> None:
        """This transaction's timeouts (`set_config(..., true)`: they end with the transaction)."""
        if not self.tx_settings:
            return
        names = list(self.tx_settings)
        query = "select " + ", ".join("set_config(%s, %s, true)" for _ in names)
        params: list[str] = []
        for name in names:
            params += [name, self.tx_settings[name]]
        psycopg.Cursor(self).execute(query, params, prepare=False)

    @contextmanager
    def transaction(self, savepoint_name: str | None = None,  # type: ignore[override]
                    force_rollback: bool = False) -> Iterator[psycopg.Transaction]:
        starting = self.pooled and self.info.transaction_status == pq.TransactionStatus.IDLE
        with super().transaction(savepoint_name, force_rollback) as tx:
            if starting:
                self.set_local()
            yield tx


def connect(url: str, *, autocommit: bool = False, statement_timeout_ms: int | None = None,
            lock_timeout_ms: int | None = None, application_name: str = APPLICATION_NAME,
            connect_timeout: int = CONNECT_TIMEOUT_S,
            connection_class: type[SageConnection] | None = None) -> SageConnection:
    """Connect with a short connect timeout; server-side timeouts for the session (direct) or for each
    transaction (through a pooler). `conn.pooled` says which."""
    settings: dict[str, str] = {}
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = f"{int(statement_timeout_ms)}ms"
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = f"{int(lock_timeout_ms)}ms"
    try:
        conn = (connection_class or SageConnection).connect(url, autocommit=True, connect_timeout=connect_timeout,
                                                            cursor_factory=SageCursor)
    except (psycopg.Error, ValueError) as exc:
        raise classify_error(exc) from None
    try:
        session = {**settings, "application_name": application_name} if application_name else dict(settings)
        sets = ", ".join("case when direct then set_config(%s, %s, false) end" for _ in session)
        params: list[Any] = [conn.info.backend_pid]
        for name, value in session.items():
            params += [name, value]
        query = "select direct from (select pg_backend_pid() = %s as direct) d" + (f", lateral (select {sets}) s"
                                                                                  if sets else "")
        row = psycopg.Cursor(conn).execute(query, params, prepare=False).fetchone()
        conn.pooled = not bool(row and row[0])
    except psycopg.Error as exc:
        conn.close()
        raise classify_error(exc) from None
    if conn.pooled:
        conn.prepare_threshold = None  # psycopg's _pg3_N statements would outlive us on a shared backend
        conn.tx_settings = {**settings, "idle_in_transaction_session_timeout": IDLE_IN_TX_TIMEOUT}
    conn.autocommit = autocommit
    return conn
