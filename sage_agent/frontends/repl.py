"""The interactive REPL (`sage`): prompt-toolkit input, rich output, one Session behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sage_agent.catalog.persona import load_persona
from sage_agent.catalog.tasks import suggest_commands  # noqa: F401 - *help's tests import it here
from sage_agent.db.env import Target
from sage_agent.frontends.completion import CatalogCache, InputCompleters, LineCompleter
from sage_agent.frontends.render import make_console, progress_printer, render_text
from sage_agent.session.answers import PromptAnswers
from sage_agent.session.machine import Outcome, Session


def greeting() -> str:
    """Activation: greet as the persona, mention *help, then wait."""
    persona = load_persona()
    return (f"{persona.agent.icon} Hello, I'm {persona.agent.name}, your {persona.agent.title}. "
            f"Type *help to see what I can do.")


class CommandCompleter(LineCompleter):
    """Completes *commands and aliases at the start of a line; after one, its flags and per argument what it holds."""

    def __init__(self, names: list[str], inputs: InputCompleters | None = None) -> None:
        # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
        from sage_agent.catalog.tasks import load_tasks

        super().__init__(names, load_tasks, inputs)


class ReplAnswers(PromptAnswers):
    """PromptAnswers that tell the REPL which input is being asked (for its completer)."""

    def __init__(self, repl: "Repl", **kw: Any) -> None:
        super().__init__(**kw)
        self.repl = repl

    def ask(self, spec):
        self.repl.asking = spec
        try:
            return super().ask(spec)
        finally:
            self.repl.asking = None

    def ask_prefilled(self, spec, text):
        self.repl.asking = spec
        try:
            return super().ask_prefilled(spec, text)
        finally:
            self.repl.asking = None


def command_history(path: Path | None):
    """History of typed commands only: prompt answers and confirmation words go through another prompt
    (no history), and a line continued with a trailing backslash is stored once, whole."""
    # lazy: prompt-toolkit loads only for the REPL
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    base = FileHistory if path is not None else InMemoryHistory

    class CommandHistory(base):  # type: ignore[misc, valid-type]
        def store_string(self, string: str) -> None:
            if string.strip() and not string.endswith("\\"):
                super().store_string(string)

        def append_string(self, string: str) -> None:
            if string.strip() and not string.endswith("\\"):
                super().append_string(string)

    if path is None:
        return CommandHistory()
    path.parent.mkdir(parents=True, exist_ok=True)
    return CommandHistory(str(path))


_TOOLBAR_HINT = "  |  *help  *exit"
# What people type out of habit (psql, a shell, vi): the command it means, so `exit` leaves and `help` helps
_BARE_WORDS = {"exit": "*exit", "quit": "*exit", "\\q": "*exit", ":q": "*exit", "help": "*help", "?": "*help",
               "\\?": "*help"}


def toolbar_where(target: Target, room: int) -> str:
    """The target for the toolbar in `room` characters: the redacted URL; on a narrow terminal host:port/database
    (and `embedded` for the project's own server); the `*help *exit` hint beside it is never cut off."""
    # lazy: only for a toolbar too narrow for the whole URL
    from urllib.parse import urlsplit

    url = target.display_url
    try:
        parts = urlsplit(url)
        short = f"{parts.hostname}:{parts.port}{parts.path}" if parts.hostname and parts.port else url
    except ValueError:  # not a URL (a key=value string) or a bad port: shown as it is
        short = url
    if target.embedded and not target.url:
        candidates = ["embedded PostgreSQL (starts on first use)", "embedded (starts on first use)"]
    elif target.embedded:
        candidates = [f"embedded PostgreSQL {url}", f"embedded PostgreSQL {short}", f"embedded {short}"]
    else:
        candidates = [url, short]
    for where in candidates:
        if len(where) <= room:
            return where
    where = candidates[-1]
    return where[:max(room - 1, 1)] + "…"


ANSWER_ROOM = 12  # columns a question's last line leaves for the answer typed after it


def fit_question(message: str, width: int) -> str:
    """A question broken between its words to the terminal's width (the terminal broke it anywhere: `rever|se`,
    `127.0.0.1:|54582`), its last line short enough to leave room for the answer; the trailing space is kept."""
    # lazy: only when a question is asked
    import textwrap

    if width < 2 * ANSWER_ROOM:
        return message
    body = message.rstrip()
    trail = message[len(body):]
    lines: list[str] = []
    for part in body.split("\n"):
        lines += textwrap.wrap(part, width - 1, break_long_words=False, break_on_hyphens=False) or [""]
    room = 2 if body.endswith("[y/N]:") else ANSWER_ROOM  # y or n, or a name, a word, a path
    if len(lines[-1]) + len(trail) > width - 1 - room:
        lines[-1:] = textwrap.wrap(lines[-1], width - 1 - room, break_long_words=False,
                                   break_on_hyphens=False) or [""]
    return "\n".join(lines) + trail


class Repl:
    def __init__(self, project: Path, target: Target, *, input=None, output=None, console=None,
                 history_file: Path | None = None) -> None:
        # lazy: prompt-toolkit loads only for the REPL
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import DummyHistory

        from sage_agent.catalog.tasks import command_index, load_tasks
        from sage_agent.frontends.spinner import Spinner

        self.project = project
        self.target = target
        self.console = console or make_console()
        self.history = command_history(history_file)
        self.catalog = CatalogCache(lambda: self.target.url)  # read on first use, dropped after a change
        self.inputs = InputCompleters(project, self.catalog)
        self.asking = None  # the InputSpec being asked, for its completer
        self.prompt_session = PromptSession(history=self.history, input=input, output=output,
                                            completer=CommandCompleter(list(command_index(load_tasks())),
                                                                       self.inputs),
                                            bottom_toolbar=self.toolbar, complete_while_typing=False)
        # answers and typed words: their own prompt, without history (no Up arrow to an earlier answer)
        self.answer_session = PromptSession(history=DummyHistory(), input=input, output=output,
                                            bottom_toolbar=self.toolbar, complete_while_typing=False)
        self.spinner = Spinner(self._write_raw, enabled=self.console.is_terminal)
        self._progress_line = None  # progress_printer(console), made on the first progress
        self.session = Session(project=project, target=target, front_door="repl",
                               answers=ReplAnswers(self, prompt=self.ask, show=self.show_plan,
                                                   prompt_prefilled=self.ask_prefilled),
                               message_sink=self._message, progress_sink=self._progress)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.agent.repl import agent_reply  # plain language goes to the model when one is configured

        self.free_text: Callable[[str], None] = agent_reply(self) or self.no_model_reply
        self.outcomes: list[Outcome] = []

    def _write_raw(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()

    def _message(self, text: str) -> None:
        with self.spinner.paused():
            self.console.print(text, markup=False, highlight=False)

    # --- prompt-toolkit plumbing -------------------------------------------------------------
    def toolbar(self):
        # lazy: prompt-toolkit loads only for the REPL
        from prompt_toolkit.formatted_text import HTML

        # lazy: prompt-toolkit loads only for the REPL
        from prompt_toolkit.application.current import get_app_or_none

        env = self.target.env
        app = get_app_or_none()
        width = app.output.get_size().columns if app is not None else 80
        style = "bg='ansired' fg='ansiwhite'" if env == "prod" else ""
        label = f"<style {style}> {env.upper()} </style>" if style else f" {env} "
        where = toolbar_where(self.target, width - len(env) - 3 - len(_TOOLBAR_HINT))
        return HTML(f"{label} {where.replace('&', '&amp;').replace('<', '&lt;')}{_TOOLBAR_HINT}")

    def _answer_completer(self):
        """Per question, from its input (choices, names, paths, SQL); a typed confirmation completes nothing."""
        # lazy: prompt-toolkit loads only for the REPL
        from prompt_toolkit.completion import DummyCompleter

        from sage_agent.catalog.tasks import load_tasks

        if self.asking is None:
            return DummyCompleter()
        task = load_tasks().get(self.session.current_task_id or "")
        return self.inputs.for_input(task, self.asking)

    def ask(self, message: str) -> str:
        with self.spinner.paused():
            return self.answer_session.prompt(fit_question(message, self.console.width),
                                              completer=self._answer_completer())

    def ask_prefilled(self, message: str, text: str) -> str:
        with self.spinner.paused():
            return self.answer_session.prompt(fit_question(message, self.console.width), default=text,
                                              completer=self._answer_completer())

    def show_plan(self, plan: str) -> None:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from rich.panel import Panel

        from sage_agent.frontends.render import plan_lines

        if plan:
            with self.spinner.paused():
                self.console.print(Panel(plan_lines(plan, self.console.width), title="plan", expand=False))

    def _progress(self, description: str, done: float, total: float | None, detail: str) -> None:
        if self._progress_line is None:
            self._progress_line = progress_printer(self.console)
        with self.spinner.paused():
            self._progress_line(description, done, total, detail)

    _progress.draws = True  # type: ignore[attr-defined]  (see session.context.Progress.drawn)

    # --- the loop ------------------------------------------------------------------------------
    def read_line(self) -> str:
        """One input; a trailing backslash continues on the next line (multi-line input)."""
        parts = [self.prompt_session.prompt("sage> ")]
        if not parts[-1].endswith("\\"):
            return parts[0].strip()
        while parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1]
            parts.append(self.answer_session.prompt("...   "))
        line = "\n".join(parts).strip()
        self.history.append_string(line)
        return line

    def handle(self, line: str) -> bool:
        """Handle one line; return False when the session should end."""
        if not line:
            return True
        line = _BARE_WORDS.get(line.lower(), line)  # `exit` as in psql or a shell, not a question for the model
        if not line.startswith("*"):
            self.free_text(line)
            return True
        try:
            with self.spinner.running(line.split()[0]):
                outcome = self.session.run_line(line)
        except KeyboardInterrupt:
            self.console.print("interrupted", markup=False)
            return True
        finally:
            if self.session.last_risk not in (None, "read"):  # it may have changed the schema
                self.catalog.invalidate()
        self.outcomes.append(outcome)
        if outcome.result is not None:
            render_text(outcome.result, self.console)
        if outcome.error and (outcome.result is None or outcome.result.status != "cancelled"):
            self.console.print(f"error: {outcome.error}", style="red", markup=False, highlight=False)
        return not outcome.exit_requested

    def no_model_reply(self, text: str) -> None:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.agent.config import load_config, no_model_message

        self.console.print(no_model_message(text, load_config().missing_reason), markup=False, highlight=False)

    def run(self) -> int:
        self.console.print(greeting(), markup=False)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.handoff import offer_pending

        offer_pending(self)
        while True:
            try:
                line = self.read_line()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            if not self.handle(line):
                return 0
