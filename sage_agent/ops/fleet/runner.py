"""One process, many databases: the same command lines on every target of a fleet, one Session per target.

Reads run on a thread pool (`--parallel N`): the work is mostly waiting on the servers, and one process pays the
interpreter, catalog and registry start-up once for all targets. Anything that is not a read runs one target at a
time in file order, so a confirmation is about one target, and stop-on-failure stops before the next target.
A target that fails (unreachable, bad URL, a failing command) never stops the others unless asked to."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sage_agent.catalog.tasks import TaskSpec
from sage_agent.db.env import Target
from sage_agent.ops.fleet.targets import FleetEntry
from sage_agent.ops.registry import load_operations
from sage_agent.session.answers import AnswerSource, FlagAnswers, MissingInput
from sage_agent.session.machine import (
    EXIT_CONFIRM,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Outcome,
    Session,
)
from sage_agent.session.parse import CommandLineError, bind_values, split_command

# Worst first: the overall exit code of a fleet run is the exit code of the worst target (documented in README).
# interrupted > failed > usage (bad URL, bad input) > not confirmed > drift (4) > ok.
SEVERITY = (EXIT_INTERRUPTED, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIRM, 4, EXIT_OK)


def severity(code: int) -> int:
    """Rank of an exit code (lower is worse); an unknown code counts as failed."""
    return SEVERITY.index(code) if code in SEVERITY else SEVERITY.index(EXIT_FAILED)


@dataclass
class LinePlan:
    """One command line, checked before any target runs: its task, its inputs and what it may do."""

    line: str
    task: TaskSpec
    risk: str
    extra: dict[str, Any]

    @property
    def writes(self) -> bool:
        return self.risk != "read"


@dataclass
class TargetRun:
    """What happened on one target. `status`: ran (every line or up to its first failure), invalid (its URL or
    env could not be used: nothing ran), skipped (not started: stop-on-failure, or interrupted)."""

    entry: FleetEntry
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    status: str = "ran"
    error: str | None = None
    exit_code: int = EXIT_OK
    duration_ms: float = 0.0


def plan_lines(lines: list[str], extra: dict[str, str], project: Path) -> list[LinePlan]:
    """Check every line before anything runs (unknown command, bad or missing input: CommandLineError, exit 2),
    and compute each one's risk from its inputs (`*run-sql --write` is a write)."""
    probe = Session(project=project, target=Target("local", None, "fleet plan", embedded=True),
                    answers=FlagAnswers(), front_door="fleet")
    ops = load_operations()
    parsed_lines = [split_command(line) for line in lines]
    tasks = [probe.resolve(parsed.name) for parsed in parsed_lines]
    for parsed, task in zip(parsed_lines, tasks):
        if task is None:
            raise CommandLineError(probe.unknown_command_message(parsed.name) + " Nothing was run.")
    unknown = sorted(set(extra) - {i.key for task in tasks for i in task.user_inputs()})  # type: ignore[union-attr]
    if unknown:
        raise CommandLineError(f"--set {', '.join(unknown)}: not an input of any of these commands. Nothing was run.")
    plans: list[LinePlan] = []
    for line, parsed, task in zip(lines, parsed_lines, tasks):
        assert task is not None
        op = ops.get(task.id)
        if op is None:
            raise CommandLineError(f"*{task.command} has no operation registered. Nothing was run.")
        keys = {i.key for i in task.user_inputs()}
        mine = dict(extra) if len(lines) == 1 else {k: v for k, v in extra.items() if k in keys}
        values = {**mine, **bind_values(task, parsed)}
        try:
            inputs = probe._elicit(task, dict(values), op.input_model)
        except MissingInput as exc:
            raise CommandLineError(f"{line}: {exc}. Nothing was run.") from None
        except ValueError as exc:  # CommandLineError included
            raise CommandLineError(f"{line}: {exc}. Nothing was run.") from None
        plans.append(LinePlan(line, task, op.risk_for(inputs), mine))
    return plans


def run_fleet(entries: list[FleetEntry], plans: list[LinePlan], *, project: Path,
              answers_for: Callable[[FleetEntry], AnswerSource], parallel: int = 1,
              stop_on_failure: bool = False, on_done: Callable[[TargetRun], None] = lambda run: None) -> list[TargetRun]:
    """Run the planned lines on every target; results in the file's order. Writes go one target at a time.
    Ctrl-C cancels the running statements on every target (their transactions roll back); the rest are skipped."""
    # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.catalog.tasks import load_tasks

    load_tasks(), load_operations()  # loaded once, before any thread needs them
    _start_embedded_once(entries, project)
    workers = 1 if any(p.writes for p in plans) else max(1, min(parallel, len(entries)))
    runs = [TargetRun(e) for e in entries]
    stop, interrupted = threading.Event(), threading.Event()
    sessions: dict[int, Session] = {}

    def work(index: int) -> None:
        run = runs[index]
        if stop.is_set():
            run.status, run.skipped = "skipped", [p.line for p in plans]
            if interrupted.is_set():
                run.exit_code, run.error = EXIT_INTERRUPTED, "not started: interrupted; nothing was run on it"
            else:
                run.exit_code = EXIT_FAILED
                run.error = "not started: an earlier target failed (stop on failure); nothing was run on it"
            return
        start = time.monotonic()
        try:
            _run_target(run, plans, project, answers_for, sessions, index, interrupted)
        finally:
            run.duration_ms = round((time.monotonic() - start) * 1000, 1)
        if stop_on_failure and _failed(run):
            stop.set()
        on_done(run)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sage-fleet") as pool:
        pending: set[Future] = {pool.submit(work, i) for i in range(len(runs))}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # a bug in the runner itself surfaces, never a silent hole in the report
        except KeyboardInterrupt:
            interrupted.set()
            stop.set()
            running = dict(sessions)
            for session in running.values():
                if session.last_context is not None:
                    session.last_context.cancel_running()
            for future in pending:
                future.cancel()
            wait(pending)
            for index in running:
                runs[index].exit_code = EXIT_INTERRUPTED
                runs[index].error = ("interrupted: the running statement was cancelled on the server and its "
                                     "transaction rolled back")
            for run in runs:
                if run.status == "ran" and not run.outcomes and not run.error:  # cancelled before it started
                    run.status, run.skipped = "skipped", [p.line for p in plans]
                    run.exit_code, run.error = EXIT_INTERRUPTED, "not started: interrupted; nothing was run on it"
    return runs


def _run_target(run: TargetRun, plans: list[LinePlan], project: Path,
                answers_for: Callable[[FleetEntry], AnswerSource], sessions: dict[int, Session], index: int,
                interrupted: threading.Event) -> None:
    entry = run.entry
    if entry.target is None:
        run.status, run.error, run.exit_code = "invalid", entry.problem, EXIT_USAGE
        run.skipped = [p.line for p in plans]
        return
    session = Session(project=project, target=entry.target, answers=answers_for(entry), front_door="fleet")
    sessions[index] = session
    try:
        for n, plan in enumerate(plans):
            if interrupted.is_set():
                run.skipped = [p.line for p in plans[n:]]
                break
            if hasattr(session.answers, "usage"):
                session.answers.usage = plan.task.usage  # type: ignore[attr-defined]
            outcome = session.run_line(plan.line, plan.extra)
            run.outcomes.append(outcome)
            if outcome.exit_code != EXIT_OK:
                run.skipped = [p.line for p in plans[n + 1:]]
                break
    finally:
        sessions.pop(index, None)
    run.exit_code = run.outcomes[-1].exit_code if run.outcomes else EXIT_OK


def _failed(run: TargetRun) -> bool:
    """A failure that stop-on-failure stops for: anything but success, drift, or a person's own "no"."""
    if run.exit_code in (EXIT_OK, 4):
        return False
    last = run.outcomes[-1] if run.outcomes else None
    declined = last is not None and last.result is not None and last.result.status == "cancelled"
    return not (run.exit_code == EXIT_CONFIRM and declined)


def _start_embedded_once(entries: list[FleetEntry], project: Path) -> None:
    """A target on the project's embedded server gets it started here, once, before the threads."""
    if any(e.target is not None and e.target.embedded for e in entries):
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.embedded import EmbeddedError, project_server

        try:
            url = project_server(project).start().url
        except EmbeddedError:
            return  # each embedded target then fails with the server's own message
        for e in entries:
            if e.target is not None and e.target.embedded:
                e.target.url = url


def worst(runs: list[TargetRun]) -> tuple[int, str | None]:
    """The overall exit code (the worst target's, by SEVERITY) and the first target in file order that has it."""
    if not runs:
        return EXIT_OK, None
    bad = min(runs, key=lambda r: severity(r.exit_code))
    return bad.exit_code, (bad.entry.name if bad.exit_code != EXIT_OK else None)
