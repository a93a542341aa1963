"""Applying migration files: one transaction per file (history row included), the CLI's `RESET ALL`
between files, non-transactional files statement by statement, and errors that name file:line.

The statements sent are the Supabase CLI's own chunks (`history.cli_split`), so DB Sage runs and records
exactly what `supabase db push` would. The PostgreSQL parser (sqlkit) checks syntax, finds the statements
that cannot run inside a transaction, and lints.
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sage_agent.config import settings
from sage_agent.ops.migrations.history import (
    Chunk,
    LocalMigration,
    MigrationFileError,
    cli_split,
    insert_version,
    read_migration_text,
)

APPLY_LOCK_KEY = 7_305_262_733_461_001  # fixed: every DB Sage applier (and only they) take this advisory lock
APPLICATION_NAME = "db-sage:apply"
NO_TRANSACTION_HEADER = "-- pg-delta: transaction=false"  # first line honoured by the Supabase CLI 3.x
_TIMEOUT = re.compile(r"^\s*\d+\s*(ms|s|min|h)?\s*$")
_SKIP_IN_TX = {"BEGIN", "START", "COMMIT", "END"}
# statement node types that may be non-transactional or transaction control (see sqlkit.classify)
_MAYBE_SPECIAL = {"IndexStmt", "DropStmt", "ReindexStmt", "VacuumStmt", "AlterEnumStmt", "AlterTableStmt",
                  "CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt",
                  "TransactionStmt", "ClusterStmt", "RefreshMatViewStmt", "AlterDatabaseStmt",
                  "AlterDatabaseSetStmt", "CreateSubscriptionStmt", "DropSubscriptionStmt", "AlterSubscriptionStmt"}


def check_timeout(value: str | None, what: str) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not _TIMEOUT.match(text):
        raise ValueError(f"{what} {text!r}: use a number with ms, s, min or h (e.g. 5s, 500ms, 2min)")
    return text.replace(" ", "")


@dataclass
class FilePlan:
    """A migration file ready to apply: its chunks, which run outside a transaction, and lint findings."""

    migration: LocalMigration
    text: str
    chunks: list[Chunk]
    transactional: bool = True
    nontx_lines: list[int] = field(default_factory=list)  # lines of statements that cannot run in a transaction
    skip: set[int] = field(default_factory=set)  # chunk indexes of BEGIN/COMMIT (our transaction replaces them)
    findings: list = field(default_factory=list)  # sqlkit LintFinding
    pipeline: bool = True  # False when a CLI chunk holds several statements (simple protocol needed)
    parsed: list = field(default_factory=list)  # sqlkit Statements (pglast parse tree)
    empty: bool = False  # no SQL statement (empty, or only comments): recorded as applied, like the CLI

    @property
    def statements(self) -> list[str]:
        return [c.text for c in self.chunks]

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.severity == "error"]


def prepare_file(migration: LocalMigration, server_major: int = 18, *, lint: bool = True,
                 rules: list | None = None) -> FilePlan:
    """Read, split (as the CLI does), parse (pglast) and lint one file. Raises MigrationFileError. `rules`: the
    project's lint rules (policy.lint_settings); None runs the default ones."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.classify import classify
    from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

    path = migration.path
    text = read_migration_text(path)
    chunks = cli_split(text, path.name)
    try:
        statements = split_sql(text, path.name)
    except SqlSyntaxError as exc:
        raise MigrationFileError(path.name, exc.line, f"syntax error: {exc.message}") from None
    # An empty or comment-only file is recorded as applied with what it holds, as `supabase db push` does
    # (statements '{}' for an empty file, the comment for a comment-only one).
    plan = FilePlan(migration, text, chunks, parsed=statements, empty=not statements)
    starts = [c.offset for c in chunks]

    per_chunk: dict[int, int] = {}
    for stmt in statements:
        idx = max(0, bisect.bisect_right(starts, stmt.start) - 1)
        per_chunk[idx] = per_chunk.get(idx, 0) + 1
        if per_chunk[idx] > 1:
            plan.pipeline = False
        if type(stmt.node).__name__ not in _MAYBE_SPECIAL:
            continue  # ordinary DDL/DML: transactional, not transaction control (classify is the slow path)
        info = classify(stmt, server_major)
        if not info.transactional:
            plan.transactional = False
            plan.nontx_lines.append(stmt.line)
        if info.category == "transaction":
            word = stmt.text.strip().split(None, 1)[0].upper().rstrip(";") if stmt.text.strip() else ""
            if word in _SKIP_IN_TX:
                plan.skip.add(idx)
            elif word in ("ROLLBACK", "ABORT", "PREPARE"):
                raise MigrationFileError(path.name, stmt.line,
                                         f"{word} in a migration file would undo DB Sage's transaction; remove it "
                                         "(each file already runs in one transaction)")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if first_line == NO_TRANSACTION_HEADER:  # the Supabase CLI's own opt-out: run statement by statement
        plan.transactional = False
        plan.nontx_lines = plan.nontx_lines or [1]
    if plan.skip and not plan.transactional:
        plan.skip = set()  # statement by statement: BEGIN/COMMIT run as written
    if lint:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.sqlkit.lint.engine import lint_statements

        try:
            # lazy: pglast (the SQL parser) loads only when SQL is parsed
            import pglast.parser as _pg

            file_comments = [c.str for c in _pg.comments(text)]
        except Exception:  # noqa: BLE001 - only used for file-level squawk-ignore comments
            file_comments = []
        # As *apply runs it (squawk's --assume-in-transaction): inside the one transaction *apply wraps the file
        # in, unless it runs statement by statement (CREATE INDEX CONCURRENTLY, the CLI's header) or has its own
        # BEGIN/COMMIT (then they say where its transaction is, as in `sage lint`). The timeout findings are
        # graded by policy.grade_timeouts with the timeouts *apply will set.
        plan.findings = lint_statements(statements, path.name, server_major, rules,
                                        plan.transactional and not plan.skip, file_comments, source=text)
    return plan


@dataclass
class FileOutcome:
    migration: LocalMigration
    status: str  # success | failed
    statements: int
    applied: list[int] = field(default_factory=list)  # lines of statements committed (non-transactional files)
    error: str | None = None
    line: int | None = None
    duration_ms: float = 0.0
    connection_lost: bool = False


def _error_text(exc: Exception) -> tuple[str, int | None]:
    """The PostgreSQL message (+detail/hint) and the 1-based position in the statement, if any."""
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0] if str(exc).strip() else \
        type(exc).__name__
    parts = [primary]
    if diag is not None:
        if diag.sqlstate:
            parts[0] = f"{primary} (SQLSTATE {diag.sqlstate})"
        if diag.message_detail:
            parts.append(f"DETAIL: {diag.message_detail}")
        if diag.message_hint:
            parts.append(f"HINT: {diag.message_hint}")
        if diag.context:
            parts.append(f"CONTEXT: {diag.context.strip().splitlines()[0]}")
    pos = None
    if diag is not None and diag.statement_position:
        try:
            pos = int(diag.statement_position)
        except ValueError:
            pos = None
    return "\n".join(parts), pos


def _line_of(chunk: Chunk, pos: int | None) -> int:
    if not pos:  # the statement's first line, after the comments the CLI keeps at the start of its chunk
        # lazy: psycopg loads on the first database call
        from sage_agent.ops.migrations.history import _skip_space_and_comments

        return chunk.line + chunk.text[:_skip_space_and_comments(chunk.text)].count("\n")
    return chunk.line + chunk.text[: max(0, pos - 1)].count("\n")


def _session_settings(statement_timeout: str | None, lock_timeout: str | None) -> list[tuple[str, tuple]]:
    """The CLI's `RESET ALL` before each file, then our server-side limits for this file."""
    steps: list[tuple[str, tuple]] = [("RESET ALL", ()),
                                      ("select set_config('application_name', %s, false)", (APPLICATION_NAME,))]
    if statement_timeout:
        steps.append(("select set_config('statement_timeout', %s, false)", (statement_timeout,)))
    if lock_timeout:
        steps.append(("select set_config('lock_timeout', %s, false)", (lock_timeout,)))
    return steps


def reset_session(conn, statement_timeout: str | None, lock_timeout: str | None) -> None:
    for query, params in _session_settings(statement_timeout, lock_timeout):
        conn.execute(query, params or None)


def _locate_failure(conn, plan: FilePlan):
    """After a pipelined file failed (and was rolled back): run it again statement by statement in a transaction
    that is always rolled back, to find the statement (and line) that fails."""
    # lazy: psycopg loads on the first database call
    import psycopg

    try:
        with conn.transaction(force_rollback=True):
            for i, chunk in enumerate(plan.chunks):
                if i in plan.skip:
                    continue
                try:
                    conn.execute(chunk.text, prepare=False)
                except psycopg.Error as exc:
                    return chunk, exc
    except psycopg.Error:
        return None, None
    return None, None


def apply_file(conn, plan: FilePlan, *, statement_timeout: str | None, lock_timeout: str | None,
               on_statement: Callable[[int], None] = lambda n: None) -> FileOutcome:
    """Apply one file on an autocommit connection. Transactional files: all statements and the history row
    commit together or not at all, sent as one pipeline (one round trip, like the CLI's batch). Others:
    statement by statement, then the history row."""
    # lazy: psycopg loads on the first database call
    import psycopg

    mig = plan.migration
    started = time.perf_counter()
    outcome = FileOutcome(mig, "success", len(plan.chunks))
    current: Chunk | None = None
    try:
        if plan.transactional and not plan.pipeline:
            reset_session(conn, statement_timeout, lock_timeout)
            with conn.transaction():
                for i, chunk in enumerate(plan.chunks):
                    if i in plan.skip:
                        continue
                    current = chunk
                    conn.execute(chunk.text, prepare=False)
                    on_statement(1)
                current = None
                if mig.version:
                    insert_version(conn, mig.version, mig.name, plan.statements)
        elif plan.transactional:
            try:
                with conn.pipeline():
                    reset_session(conn, statement_timeout, lock_timeout)
                    with conn.transaction():
                        for i, chunk in enumerate(plan.chunks):
                            if i not in plan.skip:
                                conn.execute(chunk.text, prepare=False)
                        if mig.version:
                            insert_version(conn, mig.version, mig.name, plan.statements)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise
                chunk, located = _locate_failure(conn, plan)
                if chunk is None:
                    current = None
                    raise exc
                current = chunk
                raise located from None
            on_statement(len(plan.chunks))
        else:
            reset_session(conn, statement_timeout, lock_timeout)
            for chunk in plan.chunks:
                current = chunk
                conn.execute(chunk.text, prepare=False)
                outcome.applied.append(chunk.line)
                on_statement(1)
            current = None
            if mig.version:
                with conn.transaction():
                    insert_version(conn, mig.version, mig.name, plan.statements)
    except psycopg.Error as exc:
        message, pos = _error_text(exc)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.migrations.platform import explain_unavailable

        explained = explain_unavailable(message, None if conn.closed else conn.info.server_version // 10000)
        if explained:
            message = f"{explained}\nPostgreSQL said: {message}"
        outcome.status = "failed"
        outcome.connection_lost = bool(conn.closed or conn.broken) or isinstance(exc, psycopg.OperationalError) and \
            "terminat" in str(exc).lower()
        if current is not None:
            outcome.line = _line_of(current, pos)
        elif not plan.transactional or outcome.connection_lost:
            outcome.line = None
        else:
            message = f"the file failed and was rolled back: {message}"
        if outcome.connection_lost:
            message = (f"the connection to the server was lost while applying ({message.splitlines()[0]}); the server "
                       "rolled back this file's transaction" if plan.transactional else
                       f"the connection to the server was lost ({message.splitlines()[0]})")
        outcome.error = message
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


# --- the advisory lock: one applier at a time -----------------------------------------------------------------
class LockBusy(RuntimeError):
    pass


def lock_holder(conn) -> str | None:
    row = conn.execute(
        "select a.pid, a.application_name, a.client_addr::text from pg_locks l join pg_stat_activity a using (pid) "
        "where l.locktype = 'advisory' and l.granted and l.classid = (%s::bigint >> 32)::oid "
        "and l.objid = (%s::bigint & 4294967295)::oid and l.objsubid = 1 and a.pid <> pg_backend_pid() limit 1",
        (APPLY_LOCK_KEY, APPLY_LOCK_KEY)).fetchone()
    if not row:
        return None
    return f"pid {row[0]} ({row[1] or 'unknown client'})"


def acquire_apply_lock(conn, wait_s: float, on_wait: Callable[[str], None] = lambda s: None) -> float:
    """Session-level advisory lock; waits at most `wait_s` seconds (server-side lock_timeout). Returns seconds waited."""
    # lazy: psycopg loads on the first database call
    import psycopg

    if conn.execute("select pg_try_advisory_lock(%s)", (APPLY_LOCK_KEY,)).fetchone()[0]:
        return 0.0
    holder = lock_holder(conn) or "another session"
    on_wait(f"another *apply holds the migration lock ({holder}); waiting up to {wait_s:.0f}s")
    started = time.perf_counter()
    conn.execute("select set_config('lock_timeout', %s, false)", (f"{int(wait_s * 1000)}ms",))
    try:
        conn.execute("select pg_advisory_lock(%s)", (APPLY_LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        raise LockBusy(f"another *apply is still running after {wait_s:.0f}s ({holder})") from None
    finally:
        if not conn.broken:
            conn.execute("RESET lock_timeout")
    return time.perf_counter() - started


def release_apply_lock(conn) -> None:
    try:
        if not conn.closed and not conn.broken:
            conn.execute("select pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
    except Exception:  # noqa: BLE001 - the lock dies with the session anyway
        pass


def lock_wait_s() -> float:
    """How long to wait for another applier (SAGE_APPLY_LOCK_WAIT_S, default 300 s)."""
    return settings().apply_lock_wait_s


def resolve_migration(project: Path, arg: str, local: list[LocalMigration]) -> LocalMigration:
    """A file argument: a path, a file name, a version, or a (unique) name such as `add_todos`."""
    text = arg.strip()
    candidates = [Path(text), project / text, project / "supabase" / "migrations" / text,
                  project / "supabase" / "migrations" / f"{text}.sql"]
    for cand in candidates:
        try:
            if cand.is_file():
                resolved = cand.resolve()
                for mig in local:
                    if mig.path.resolve() == resolved:
                        return mig
                raise LookupError(f"{arg} is not in supabase/migrations/ under a <timestamp>_name.sql name; "
                                  "the history tracks files there only (create one with *migration-new)")
        except OSError:
            continue
    by_version = [m for m in local if m.version == text]
    if by_version:
        return by_version[0]
    matches = [m for m in local if m.name == text or m.stem == text or m.filename == text]
    if not matches:
        matches = [m for m in local if text in m.filename]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LookupError(f"{arg!r} matches {len(matches)} migrations ({', '.join(m.filename for m in matches[:5])}); "
                          "give the full file name or version")
    raise FileNotFoundError(f"no migration file matches {arg!r}")
