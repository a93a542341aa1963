"""`sage run "*command ..."`: one command, no prompts, exit codes 0/1/2/3, optional single JSON document."""

from __future__ import annotations

import sys
from pathlib import Path

from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.session.answers import FlagAnswers
from sage_agent.session.machine import EXIT_USAGE, Outcome, Session
from sage_agent.session.parse import CommandLineError, split_command


def parse_sets(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise CommandLineError(f"--set expects key=value, got {pair!r}")
        values[key.strip().replace("-", "_")] = value
    return values


def run_headless(line: str, *, project: Path, env: str = "local", db_url: str | None = None,
                 sets: list[str] | None = None, yes: bool = False, confirm: list[str] | None = None,
                 output: str = "text") -> int:
    from sage_agent.frontends.render import make_console, render_markdown, render_text, to_json

    err = make_console(stderr=True)
    try:
        target = resolve_target(project, env, db_url)
        parsed = split_command(line)
        extra = parse_sets(sets or [])
    except (ConfigError, CommandLineError) as exc:
        return _fail(Outcome(EXIT_USAGE, error=str(exc)), output, err)
    progress = _progress_printer(err) if output == "text" and err.is_terminal else (lambda *a: None)
    session = Session(project=project, target=target, answers=FlagAnswers(yes=yes, confirm_words=tuple(confirm or ())),
                      progress_sink=progress,
                      message_sink=(lambda t: err.print(t, markup=False, highlight=False)) if output == "text" else (lambda t: None))
    task = session.resolve(parsed.name)
    if task is not None:
        session.answers.usage = task.usage  # type: ignore[attr-defined]
    outcome = session.run_line(line, extra)
    if outcome.result is None:
        return _fail(outcome, output, err)
    if output == "json":
        doc = outcome.to_json_obj()
        doc["exit_code"] = outcome.exit_code
        if outcome.error:
            doc["error"] = outcome.error
        sys.stdout.write(to_json(doc) + "\n")
    elif output == "markdown":
        sys.stdout.write(render_markdown(outcome.result))
    else:
        render_text(outcome.result, make_console())
        if outcome.error and outcome.result.status != "cancelled":
            err.print(f"error: {outcome.error}", markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code


def _fail(outcome: Outcome, output: str, err) -> int:
    from sage_agent.db.redact import redact
    from sage_agent.frontends.render import to_json

    if output == "json":
        doc = outcome.to_json_obj()
        doc["exit_code"] = outcome.exit_code
        sys.stdout.write(to_json(doc) + "\n")
    else:
        err.print(f"error: {redact(outcome.error or 'failed')}", markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code


def _progress_printer(console):
    state: dict[str, float] = {}

    def sink(description: str, done: float, total: float | None, detail: str) -> None:
        last = state.get(description, -1.0)
        if total and done < total and done - last < total / 20:
            return
        state[description] = done
        pct = f" {100 * done / total:5.1f}%" if total else ""
        console.print(f"  {description}{pct} {detail}", markup=False, highlight=False)

    return sink
