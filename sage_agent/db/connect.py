"""Opening connections with short timeouts, server-side limits, and errors a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sage_agent.db.redact import redact

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 5
APPLICATION_NAME = "db-sage"


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
                          "Run `*env-check` for a full diagnosis")


def connect(url: str, *, autocommit: bool = False, statement_timeout_ms: int | None = None,
            lock_timeout_ms: int | None = None, application_name: str = APPLICATION_NAME,
            connect_timeout: int = CONNECT_TIMEOUT_S) -> "psycopg.Connection":
    """Connect with a short connect timeout; optional session-level server-side timeouts."""
    import psycopg

    options = []
    if statement_timeout_ms is not None:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if lock_timeout_ms is not None:
        options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
    kwargs: dict[str, object] = {"connect_timeout": connect_timeout, "application_name": application_name}
    if options:
        kwargs["options"] = " ".join(options)
    try:
        return psycopg.connect(url, autocommit=autocommit, **kwargs)
    except (psycopg.Error, ValueError) as exc:
        raise classify_error(exc) from None
