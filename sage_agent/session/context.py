"""What an operation gets: the target database, the project, and the session to ask and confirm through."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sage_agent.catalog.tasks import InputSpec
from sage_agent.config import settings
from sage_agent.db.embedded import project_server, started_for_shadow, used_as_target
from sage_agent.db.env import Target
from sage_agent.db.redact import redact
from sage_agent.session.answers import ConfirmRequest, Declined, MissingInput

if TYPE_CHECKING:
    import psycopg

    from sage_agent.catalog.tasks import TaskSpec
    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.info import ServerInfo


EMBEDDED_MAJOR = "embedded-major"  # the key of the local server's major warning (the REPL says it at start-up)


@dataclass
class Settings:
    """The limits of one session (from sage_agent.config at creation; a test may pass its own)."""

    statement_timeout_ms: int = field(default_factory=lambda: settings().statement_timeout_ms)
    lock_timeout_ms: int = field(default_factory=lambda: settings().lock_timeout_ms)
    row_limit: int = field(default_factory=lambda: settings().row_limit)


class Progress:
    """A progress handle; front doors decide how (or whether) to draw it."""

    def __init__(self, description: str, total: float | None, sink: Callable[[str, float, float | None, str], None]):
        self.description = description
        self.total = total
        self.done = 0.0
        self._sink = sink
        # a front door that shows progress marks its sink `draws`; work that also writes news lines (a
        # backfill's every 10%) leaves them out then, so a person does not read each step twice
        self.drawn = bool(getattr(sink, "draws", False))

    def advance(self, amount: float = 1, detail: str = "") -> None:
        self.done += amount
        self._sink(self.description, self.done, self.total, detail)

    def update(self, done: float, detail: str = "") -> None:
        self.done = done
        self._sink(self.description, self.done, self.total, detail)


@dataclass
class OpContext:
    project: Path
    target: Target
    task: "TaskSpec | None"
    confirm_fn: Callable[[ConfirmRequest], bool]
    progress_sink: Callable[[str, float, float | None, str], None] = lambda *a: None
    message_sink: Callable[[str], None] = lambda text: None
    settings: Settings = field(default_factory=Settings)
    interactive: bool = False  # a person at a prompt (REPL), not a headless run
    ask_fn: "Callable[[Any], str] | None" = None  # the session's AnswerSource.ask (InputSpec -> str)
    _connections: list[Any] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. which PostgreSQL major was tested on; the session
    # appends them to the operation's report
    once: dict[str, str] = field(default_factory=dict)  # notice -> its key: a session says it once, not on each
    # command (the key, not the text: the text may change once the first command has made the local cluster)
    _admin_url: str | None = None
    pool: Any = None  # a ConnectionPool (sage mcp) for read calls: connections reused across calls

    # --- databases ---------------------------------------------------------------------------
    @cached_property
    def embedded(self) -> "EmbeddedServer":
        return project_server(self.project)

    def notice(self, text: str | None, *, once: str | None = None) -> None:
        """`once` (a key): a session (a REPL, one `sage run`) says it at its first command that needs it, not again."""
        if text and text not in self.notices:
            self.notices.append(text)
        if text and once:
            self.once[text] = once

    def _embedded_major_notice(self) -> None:
        """The local server runs another major than the project wants: said where it matters, where pg_dump, psql
        or a shadow database tests on that server (not by *locks or *vacuum), once per session."""
        self.notice(self.embedded.major_warning, once=EMBEDDED_MAJOR)

    def _start_embedded(self, *, for_shadow: bool = False) -> str:
        was_running = self.embedded.is_running()
        self.embedded.start()
        if not for_shadow:
            used_as_target(self.embedded)
        elif not was_running:
            started_for_shadow(self.embedded)  # a headless run stops it at the end
        return self.embedded.url()

    @property
    def url(self) -> str:
        """The target's URL (starting the embedded server when the target is embedded)."""
        if self.target.embedded:
            self.target.url = self._start_embedded()
        assert self.target.url is not None
        return self.target.url

    @property
    def migration_url(self) -> str:
        """A URL with a real session (advisory locks, SET, pg_dump/psql): the direct URL where one is configured,
        else the target's when no transaction pooler stands in front of it. Raises SessionRequired (naming
        the variable to set) before anything starts otherwise."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.pooler import session_url

        command = f"*{self.task.command}" if self.task else "this command"
        if self.target.embedded:
            self._embedded_major_notice()
        return session_url(self.url, self.target.direct_url, command, known_direct=self.target.embedded,
                           variable=self.target.direct_variable)

    def pooling(self, url: str | None = None):
        """What stands between DB Sage and the server at `url` (default: the target's URL)."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.pooler import Pooling, detect

        if self.target.embedded and url is None:
            return Pooling("direct", "the embedded server")
        return detect(url or self.url)

    def require_primary(self, conn: "psycopg.Connection | None" = None, *, session: bool = False) -> None:
        """Refuse a write on a hot standby before anything starts (no snapshot, no lock, no file).
        Uses `conn` when given (it must be idle or in autocommit), else a short connection (direct where configured;
        the pooler answers this one as well as the server). `session=True`: also refuse a transaction pooler without
        a direct URL, for operations that need one."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.replication import StandbyWrite, is_standby

        if conn is not None:
            standby = is_standby(conn)
        else:
            url = self.migration_url if session else self.target.direct_url or self.url
            with self.connect(url, autocommit=True) as own:
                standby = is_standby(own)
        if standby:
            command = f"*{self.task.command}" if self.task else "this command"
            raise StandbyWrite(command, self.target.display_url)

    @property
    def admin_url(self) -> str:
        """The server that hosts shadow databases: SAGE_SHADOW_URL, else a local server of the target's major
        (the project's server, or a second one under .sage/ when binaries of that major are installed), else
        the project's server with a notice naming both majors."""
        if self._admin_url is None:
            self._admin_url = self._choose_admin_url()
        return self._admin_url

    def _target_major(self) -> int | None:
        if self.target.embedded:
            return None
        try:
            return self.server.major
        except Exception:  # noqa: BLE001 - an unreachable target fails in the operation itself, with its message
            return None

    def _choose_admin_url(self) -> str:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.majors import install_hint, server_bin_dirs

        override = settings().shadow_url
        target_major = self._target_major()
        if override:
            if target_major is not None:
                # lazy: psycopg loads on the first database call
                from sage_agent.db.connect import connect

                try:
                    with connect(override, autocommit=True) as conn:
                        shadow_major = conn.info.server_version // 10000
                except Exception:  # noqa: BLE001 - the shadow step reports a dead SAGE_SHADOW_URL itself
                    shadow_major = target_major
                if shadow_major != target_major:
                    self.notice(f"tested on PostgreSQL {shadow_major} (SAGE_SHADOW_URL); the target runs "
                                f"PostgreSQL {target_major}: point SAGE_SHADOW_URL at a {target_major} server")
            return override
        if target_major is None or self.embedded.bin_major == target_major:
            url = self._start_embedded(for_shadow=not self.target.embedded)
            self._embedded_major_notice()
            return url
        if target_major in server_bin_dirs():
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.db.embedded import shadow_server, started_for_shadow

            server = shadow_server(self.project, target_major)
            if not server.is_running():
                started_for_shadow(server)
            server.start()
            return server.url()
        url = self._start_embedded(for_shadow=True)
        self.notice(f"tested on PostgreSQL {self.embedded.bin_major} (the local server): the target runs PostgreSQL "
                    f"{target_major}, which is not installed here; {install_hint(target_major)} to test on "
                    f"{target_major}")
        return url

    def connect(self, url: str | None = None, *, autocommit: bool = False, timeouts: bool = True) -> "psycopg.Connection":
        """A connection with server-side statement and lock timeouts, cancelled on Ctrl-C."""
        # lazy: psycopg loads on the first database call
        from sage_agent.db.connect import connect

        statement_timeout_ms = self.settings.statement_timeout_ms if timeouts else None
        lock_timeout_ms = self.settings.lock_timeout_ms if timeouts else None
        if self.pool is not None:
            conn = self.pool.acquire(url or self.url, autocommit=autocommit, statement_timeout_ms=statement_timeout_ms,
                                     lock_timeout_ms=lock_timeout_ms)
        else:
            conn = connect(url or self.url, autocommit=autocommit, statement_timeout_ms=statement_timeout_ms,
                           lock_timeout_ms=lock_timeout_ms)
        if all(c is not conn for c in self._connections):
            self._connections.append(conn)
        return conn

    @cached_property
    def server(self) -> "ServerInfo":
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.info import server_info

        def ask() -> "ServerInfo":
            with self.connect() as conn:
                return server_info(conn)

        return self.pool.server_info(self.url, ask) if self.pool is not None else ask()

    @property
    def connections_opened(self) -> int:
        """How many connections this command opened (closed ones too, until close_all)."""
        return len(self._connections)

    def cancel_running(self) -> int:
        """Send a cancel request for every open connection (Ctrl-C): the server stops the statement."""
        cancelled = 0
        for conn in self._connections:
            try:
                if not conn.closed:
                    conn.cancel_safe(timeout=3)
                    cancelled += 1
            except Exception:  # noqa: BLE001 - best effort while interrupting
                pass
        return cancelled

    def close_all(self) -> None:
        for conn in self._connections:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        self._connections.clear()

    # --- talking to the person -----------------------------------------------------------------
    def confirm(self, prompt: str, *, plan: str = "", word: str | None = None, reasons: tuple[str, ...] = ()) -> None:
        """Ask for a yes/no (or a typed word). Raises Declined when refused: the caller has changed nothing yet.
        `reasons` are listed when nobody can be asked (headless), e.g. every lint finding that stopped *apply."""
        if not self.confirm_fn(ConfirmRequest(prompt=prompt, plan=plan, word=word, reasons=tuple(reasons))):
            # the prompt's own closing mark goes: "...uncommitted work is lost)." must not end in ".."
            raise Declined(f"not confirmed: {prompt.rstrip().rstrip('?.!:').rstrip()}. Nothing was changed.")

    def ask(self, label: str, default: str | None = None, choices: list[str] | None = None, *,
            key: str = "value") -> str:
        """Ask the person for a value the task file cannot declare (e.g. a template's variables).
        Headless runs raise MissingInput (exit 2) unless a default is given."""
        spec = InputSpec(key=key, label=label, kind="choice" if choices else "text", required=default is None,
                         default=default, choices=list(choices or []), line=0)
        if self.ask_fn is None:
            if default is not None:
                return default
            raise MissingInput(spec)
        for _ in range(3):  # an invalid answer is asked again
            try:
                raw = self.ask_fn(spec).strip()
            except MissingInput:
                if default is not None:
                    return default
                raise
            if not raw and default is not None:
                return default
            if not choices or raw in choices:
                return raw
            self.message_sink(f"{key}: choose one of {', '.join(choices)} (got {raw!r})")
        raise MissingInput(spec, f"choose one of {', '.join(choices or [])}")

    def confirm_destructive(self, prompt: str, *, plan: str = "") -> None:
        """A typed confirmation with the task's own word (e.g. ROLLBACK), from the task file."""
        word = self.task.confirm_word if self.task else None
        if not word:
            raise RuntimeError(f"task {self.task.id if self.task else '?'} declares no typed confirmation word")
        self.confirm(prompt, plan=plan, word=word)

    def progress(self, description: str, total: float | None = None) -> Progress:
        return Progress(description, total, self.progress_sink)

    def say(self, text: str) -> None:
        """A line of news while working (shown in the REPL, kept out of --json output)."""
        self.message_sink(redact(text))

    @contextmanager
    def transaction(self, url: str | None = None) -> Iterator["psycopg.Connection"]:
        with self.connect(url) as conn:
            with conn.transaction():
                yield conn
