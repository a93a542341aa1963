"""What *apply asks of the online package: which files run online, the plan lines it confirms, running one.

A file runs online when `*apply --online` was given, when it says `-- sage:online`, or when an earlier online
run of it is unfinished (a half-done file can only be continued the way it was started). A `*rollback FILE` that
stopped before validating the foreign keys it put back NOT VALID is finished by *apply first (its plan says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sage_agent.config import settings
from sage_agent.ops.online.planner import NoOnlineForm, OnlinePlan, plan_online, wants_online
from sage_agent.ops.result import OpError


@dataclass
class OnlineSelection:
    plans: dict[str, OnlinePlan] = field(default_factory=dict)  # version -> plan
    resumed: dict[str, object] = field(default_factory=dict)  # version -> OnlineState
    rollbacks: list = field(default_factory=list)  # OnlineState rows `rolling_back`: validations to finish first
    notes: list[str] = field(default_factory=list)
    file_notes: dict[str, list[str]] = field(default_factory=dict)  # version -> what its plan warns about
    _covered: set[tuple[str, int]] = field(default_factory=set)

    def covers(self, finding) -> bool:
        """A lint finding about a statement the online form rewrote no longer blocks *apply."""
        return (finding.filename, finding.statement_line or finding.line) in self._covered

    def plan_lines(self, file_plan, batch_rows: int, bound: str = "") -> list[str]:
        plan = self.plans[file_plan.migration.version]
        state = self.resumed.get(file_plan.migration.version)
        lines = [f"{file_plan.migration.filename}: ONLINE, {len(plan.steps)} step(s), each its own transaction or "
                 "CONCURRENTLY (the history row is written after the last)"]
        for n, step in enumerate(plan.steps, 1):
            mark = "done " if state is not None and n <= state.done else ""
            lines.append(f"  {n}. {mark}line {step.line} {step.show(batch_rows, bound)}")
        if state is not None:
            lines.append(f"  continuing: {state.describe()}")
        lines += [f"  note: {note}" for note in self.file_notes.get(file_plan.migration.version, [])]
        return lines


def select(conn, file_plans: list, online: bool, server_major: int, versioned: bool = False) -> OnlineSelection:
    """Plan every file that runs online; a statement with no online form stops *apply before anything runs.
    `versioned`: type changes get a version schema and wait for --complete to swap (versions.py); a file started
    that way continues that way."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online import state as st

    sel = OnlineSelection()
    unfinished = st.read_all(conn)
    sel.rollbacks = [s for s in unfinished.values() if s.status == "rolling_back"]
    unfinished = {v: s for v, s in unfinished.items() if s.status != "rolling_back"}
    for fp in file_plans:
        version = fp.migration.version
        asked = online or versioned or wants_online(fp.text) or version in unfinished
        if not asked or fp.empty:
            continue
        started = unfinished.get(version)
        with_version = versioned if started is None else any(s["kind"] == "version" for s in started.steps)
        try:
            plan = plan_online(fp, server_major, with_version)
        except NoOnlineForm as exc:
            raise OpError(f"{fp.migration.filename}:{exc.line}: no online form for `{' '.join(exc.statement.split())[:120]}`"
                          f": {exc.reason}",
                          "nothing was changed; split the statement out, or apply this file without --online "
                          "(and without -- sage:online)", exit_code=1) from None
        if version not in unfinished:
            sel.file_notes[version] = []
            _check_expand(conn, fp, plan, sel.file_notes[version], server_major, unfinished)
            sel.notes += sel.file_notes[version]
        sel.plans[version] = plan
        sel._covered |= {(fp.migration.filename, line) for line in plan.rewritten}
        if version in unfinished:
            # lazy: psycopg loads on the first database call
            from sage_agent.ops.online.executor import resumable

            sel.plans[version] = resumable(unfinished[version], fp, plan) or plan  # the steps it continues with
            sel.resumed[version] = unfinished[version]
            if not online and not wants_online(fp.text):
                sel.notes.append(f"{fp.migration.filename} continues online: an earlier online apply of it is "
                                 f"unfinished ({unfinished[version].describe()})")
    return sel


def _check_expand(conn, fp, plan: OnlinePlan, notes: list[str], server_major: int, unfinished: dict) -> None:
    """A column type change whose column has what the expand/contract cannot carry over: refused up front."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online import versions
    from sage_agent.ops.online.expand import column_problems, earlier_uses, plan_notes

    versioned = any(step.kind == "version" for step in plan.steps)

    for step in plan.steps:
        if step.kind != "expand":
            continue
        problems = column_problems(conn, step.expand["table"], step.expand["column"], step.expand["newtype"]) + \
            earlier_uses(fp, step.expand, step.line)
        if versioned and not problems:
            problems = versions.problems(conn, step.expand, fp.migration.version, server_major, unfinished)
        if not problems:
            said, problems = plan_notes(conn, fp, step.expand, step.line)
            notes += [n for n in said if not (versioned and n.startswith("prepared statements:"))]
        if problems:
            raise OpError(f"{fp.migration.filename}:{step.line}: no faithful online form for the type change of "
                          f"{step.expand['name']}.{step.expand['column']}: {'; '.join(problems)}",
                          "nothing was changed; apply this file without --online (and without -- sage:online) in a "
                          "quiet window, or change what is listed first (a statement of this file that uses the "
                          "column goes after the type change, or in a later file)", exit_code=1)
    if versioned:
        bases = list(dict.fromkeys(versions.table_schema(conn, s.expand["table"]) or "public" for s in plan.steps
                                   if s.kind == "expand"))
        notes.append(versions.client_note(fp.migration.filename,
                                          [versions.schema_name(b, fp.migration.version) for b in bases], bases))


def rollback_lines(sel: OnlineSelection) -> list[str]:
    """The plan lines of the unfinished rollbacks *apply finishes before the files."""
    return [f"first, the unfinished *rollback of {s.version}_{s.name}.sql: {text}"
            for s in sel.rollbacks for text in s.current.get("validate", [])]


def finish_rollbacks(ctx, conn, sel: OnlineSelection) -> list[str]:
    """Validate what unfinished rollbacks left NOT VALID (under *apply's lock, after its confirmation)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online import state as st
    from sage_agent.ops.online.contract import finish_rollback

    done = []
    for state in sel.rollbacks:
        now = st.read(conn, state.version)  # re-read under the lock: a *rollback may have finished it meanwhile
        if now is not None and now.status == "rolling_back":
            ran = finish_rollback(ctx, conn, now)
            done.append(f"finished the rollback of {now.version}_{now.name}.sql: {len(ran)} foreign key(s) validated")
    return done


def run(conn, file_plan, sel: OnlineSelection, ctx, inputs, statement_timeout: str | None):
    """Apply one online file; returns the applier's FileOutcome (status success | failed | interrupted)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online.executor import options_from, run_online

    opts = options_from(settings(), inputs.lock_timeout, statement_timeout, inputs.batch_rows,
                        inputs.batch_pause_ms)
    return run_online(conn, file_plan, sel.plans[file_plan.migration.version], opts, say=ctx.say,
                      progress=ctx.progress)


def in_progress(conn) -> dict[str, str]:
    """version -> `in progress (backfill 62%)`, for *migrations (never creates anything)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online import state as st

    return {v: s.describe() for v, s in st.read_all(conn).items()}
