"""`sage run "*command ..." ["*another" ...]`: no prompts, exit codes 0/1/2/3/130, optional single JSON document."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from sage_agent.db.embedded import stop_shadow_only_servers
from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.db.redact import redact
from sage_agent.frontends.render import (discard_broken_pipe, make_console, progress_printer, render_markdown,
                                         render_text, to_json)
from sage_agent.ops.result import OpResult
from sage_agent.session.answers import FlagAnswers
from sage_agent.session.machine import EXIT_INTERRUPTED, EXIT_USAGE, Outcome, Session
from sage_agent.session.parse import CommandLineError, split_command


def parse_sets(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise CommandLineError(f"--set expects key=value, got {pair!r}")
        values[key.strip().replace("-", "_")] = value
    return values


def run_headless(lines: str | list[str], *, project: Path, env: str = "local", db_url: str | None = None,
                 sets: list[str] | None = None, yes: bool = False, confirm: list[str] | None = None,
                 output: str = "text", direct_url: str | None = None) -> int:
    """Run one command line, or several in order in one session (one connection setup, one Python start-up).

    Several lines stop at the first that does not succeed; --set, --yes and --confirm apply to each.
    With --json, one line prints its document; several print {"results": [...], "skipped": [...], "exit_code"}."""
    lines = [lines] if isinstance(lines, str) else list(lines)
    _tune_gc()
    err = _Stderr()
    try:
        target = resolve_target(project, env, db_url, direct_url=direct_url)
        for line in lines:
            split_command(line)  # every line is checked before any runs
        extra = parse_sets(sets or [])
    except (ConfigError, CommandLineError) as exc:
        if len(lines) > 1 and isinstance(exc, CommandLineError):
            exc = CommandLineError(f"{exc}; quote each command line: sage run \"*command arg\" \"*other\"")
        return _fail(Outcome(EXIT_USAGE, error=str(exc)), output, err)
    progress = progress_printer(err) if output == "text" and sys.stderr.isatty() else (lambda *a: None)
    session = Session(project=project, target=target, front_door="headless",
                      answers=FlagAnswers(yes=yes, confirm_words=tuple(confirm or ())),
                      progress_sink=progress,
                      message_sink=(lambda t: err.print(t, markup=False, highlight=False)) if output == "text" else (lambda t: None))
    tasks = [session.resolve(split_command(line).name) for line in lines]
    if len(lines) > 1:
        problem = _check_several(session, lines, tasks, extra)
        if problem:
            return _fail(Outcome(EXIT_USAGE, error=problem), output, err)
    outcomes: list[Outcome] = []
    for line, task in zip(lines, tasks):
        if task is not None:
            session.answers.usage = task.usage  # type: ignore[attr-defined]
        mine = extra if len(lines) == 1 or task is None else {
            k: v for k, v in extra.items() if k in {i.key for i in task.user_inputs()}}
        outcomes.append(session.run_line(line, mine))
        if len(lines) > 1 and output == "text":
            _print_outcome(outcomes[-1], output, err, heading=line)
        if outcomes[-1].exit_code != 0:
            break
    code = outcomes[-1].exit_code
    _stop_shadow_servers(project, outcomes[-1], err if output == "text" else None)
    if len(lines) == 1:
        return _print_outcome(outcomes[0], output, err)
    if output == "json":
        doc = {"results": [_json_doc(o) for o in outcomes], "skipped": lines[len(outcomes):], "exit_code": code}
        _write(_dump(doc) + "\n")
    elif output == "markdown":
        for o in outcomes:
            _print_outcome(o, output, err)
    if lines[len(outcomes):]:
        err.print(f"skipped after a failure: {', '.join(lines[len(outcomes):])}", markup=False, highlight=False)
    return code


def _stop_shadow_servers(project: Path, outcome: Outcome, err) -> None:
    """A headless run leaves no server behind that it started only for shadow databases (a remote target's
    *dry-run, diff or proof): stop each one and say so in the report."""
    for server in stop_shadow_only_servers():
        try:
            where = server.base_dir.relative_to(project.resolve())
        except ValueError:
            where = server.base_dir
        note = f"stopped the local server started only for the shadow database ({where}); the next run starts it again"
        if outcome.result is not None:
            outcome.result.notes.append(note)
        elif err is not None:
            err.print(note, markup=False, highlight=False)


class _Stderr:
    """The rich console on stderr, made on first use: a --json run that prints nothing there never imports rich."""

    _console = None

    def __getattr__(self, name: str):
        if self._console is None:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.frontends.render import make_console

            self._console = make_console(stderr=True)
        return getattr(self._console, name)


def _tune_gc() -> None:
    """One run keeps what it builds (an audit: 11,000 findings as dicts and models) until it prints. With the default
    thresholds the collector walks all of it again and again (0.05-0.1 s of a 0.6 s run); collect less often."""
    gc.freeze()  # the modules imported so far are never garbage
    gc.set_threshold(20_000, 20, 100)


def _check_several(session: Session, lines: list[str], tasks: list, extra: dict[str, str]) -> str | None:
    """Before any of several lines runs: every command exists, and every --set key is an input of one of them."""
    for line, task in zip(lines, tasks):
        if task is None:
            return session.unknown_command_message(split_command(line).name) + " Nothing was run."
    known = {i.key for task in tasks for i in task.user_inputs()}
    unknown = sorted(set(extra) - known)
    if unknown:
        return f"--set {', '.join(unknown)}: not an input of any of these commands. Nothing was run."
    return None


def _json_doc(outcome: Outcome) -> dict:
    """One shape for successes and failures (docs/result.schema.json): every OpResult key, plus error and exit_code.
    A failure's "next: ..." hint moves out of `error` into `next_steps`, so scripts read it the same way."""
    error, _, hint = (outcome.error or "").partition("\n  next: ")
    if outcome.result is not None:
        doc = outcome.to_json_obj()
    else:
        # Ctrl-C (exit 130): the person stopped it and it was rolled back, the schema's `cancelled`, not `failed`
        status = "cancelled" if outcome.exit_code == EXIT_INTERRUPTED else "failed" if outcome.exit_code else "ok"
        doc = OpResult(operation=outcome.task_id or "sage", status=status,
                       summary=error.splitlines()[0] if error else "failed",
                       next_steps=[hint.strip()] if hint.strip() else []).model_dump(mode="json")
    if hint.strip() and hint.strip() not in doc["next_steps"]:
        doc["next_steps"] = [*doc["next_steps"], hint.strip()]
    if not error and doc["status"] == "failed":  # an operation that reported its failure in its result
        error = next((f["message"] for f in doc["findings"] if f["severity"] == "error"), doc["summary"])
    doc["error"] = error or None
    doc["exit_code"] = outcome.exit_code
    if outcome.plan:  # the plan a confirmation nobody could give would have confirmed
        doc["data"] = {**doc["data"], "plan": outcome.plan}
    return doc


def _dump(doc: dict) -> str:
    return to_json(doc, pretty=sys.stdout.isatty())  # compact when piped: the C encoder, fast on big audits


def _write(text: str) -> None:
    """stdout, for a reader that may stop early (`| head`): the exit code stays the command's."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        discard_broken_pipe(sys.stdout)


def _print_outcome(outcome: Outcome, output: str, err, heading: str | None = None) -> int:
    if outcome.result is None:
        return _fail(outcome, output, err)
    if output == "json":
        _write(_dump(_json_doc(outcome)) + "\n")
    elif output == "markdown":
        _write(render_markdown(outcome.result))
    else:
        console = make_console()
        if heading:
            console.print(f"$ sage run {heading!r}", markup=False, highlight=False)
        render_text(outcome.result, console)
        if outcome.error and outcome.result.status != "cancelled":
            err.print(f"error: {outcome.error}", markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code


def _fail(outcome: Outcome, output: str, err) -> int:
    if output == "json":
        _write(_dump(_json_doc(outcome)) + "\n")
    else:
        if outcome.plan:  # what the confirmation would have confirmed, then the one-line error that says so
            err.print("\n".join(f"  {line}" for line in outcome.plan.splitlines()), markup=False, highlight=False,
                      soft_wrap=True)
        err.print(f"error: {redact(outcome.error or 'failed')}", markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code


