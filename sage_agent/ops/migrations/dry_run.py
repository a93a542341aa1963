"""Area migrations-apply: *dry-run. The target is only read; the file runs on a shadow database."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from sage_agent.config import settings
from sage_agent.db.redact import redact
from sage_agent.ops.migrations.commands import ApplyInput, _plan_pending
from sage_agent.ops.observe.common import seconds
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table, human_bytes
from sage_agent.session.answers import UNSAFE_WORD

if TYPE_CHECKING:
    from sage_agent.ops.migrations.blockers import Survey


class DryRunInput(BaseModel):
    file: str | None = None
    online: bool = False  # show the online steps *apply --online would run (files with -- sage:online always)


def _resolve_any(project: Path, arg: str):
    """A migration (path, file name, version or name) or any .sql file path."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.applier import resolve_migration
    from sage_agent.ops.migrations.history import MIGRATION_FILE, LocalMigration, MigrationFileError, list_local

    try:
        local, _ = list_local(project)
    except MigrationFileError as exc:
        raise OpError(str(exc), "fix the file names and run the command again; nothing was changed",
                      exit_code=1) from None
    try:
        return resolve_migration(project, arg, local)
    except LookupError as exc:
        if "is not in supabase/migrations" not in str(exc):
            raise OpError(str(exc), "*migrations lists the local migration files", exit_code=2) from None
    except FileNotFoundError as exc:
        raise OpError(str(exc), "give a path to a .sql file, or a migration name/version (*migrations lists them)",
                      exit_code=2) from None
    path = next(p for p in (Path(arg), project / arg) if p.is_file()).resolve()
    match = MIGRATION_FILE.match(path.name)
    return LocalMigration(match.group(1) if match else "", match.group(2) if match else path.stem, path)


@dataclass
class _FileRun:
    """One file of a dry run: what was found before, on the target and on the shadow."""

    mig: Any
    plan: Any = None
    findings: list = field(default_factory=list)  # result Findings
    notes: list = field(default_factory=list)
    impact: list = field(default_factory=list)
    changes: Any = None
    checks: list = field(default_factory=list)
    outcome: Any = None
    error: str | None = None
    skipped: str | None = None  # why it did not run on the shadow (an earlier file failed)
    timings: dict = field(default_factory=dict)
    survey: Survey | None = None  # who holds conflicting locks on the target now; how long the heavy work takes
    online: list | None = None  # rows of the online steps *apply --online would run (None: not asked)
    covered: set = field(default_factory=set)  # lines run in an online form: their lint errors do not block
    online_lines: list = field(default_factory=list)  # not asked: the blocking lines the online form would run


def _lint_findings(plan) -> list[Finding]:
    return [Finding(rule=f.rule, severity=f.severity, message=f.message, location=f"{f.filename}:{f.line}",
                    detail=", ".join(x for x in (f"takes {f.lock}" if f.lock else "",  # a bare lock mode read as
                                                 "rewrites the table" if f.rewrites else  # a line of its own
                                                 "scans the table" if f.scans else "") if x) or None,
                    fix=f.safe_alternative or None) for f in plan.findings]


def _impact(plan, mig, facts_by_table) -> list[list]:
    """One row per statement and table that rewrites, scans or is flagged as an error, with the real size."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.shadow_run import human_rows, qualify
    from sage_agent.ops.result import human_bytes

    impact = []
    seen: dict[tuple[int, str], list] = {}
    for f in plan.findings:
        name = qualify(f.table)
        if not name or not (f.rewrites or f.scans or f.severity == "error"):
            continue
        what = "rewrites" if f.rewrites else "scans" if f.scans else f.rule
        key = (f.line, name)
        if key in seen:
            row = seen[key]
            if row[2] not in ("rewrites",) and what in ("rewrites", "scans"):
                row[2] = what  # the strongest effect of the statement
            continue
        fact = facts_by_table.get(name)
        if fact is None:
            row = [f"{mig.filename}:{f.line}", name, what, "not on the target yet", "", f.lock or ""]
        else:
            row = [f"{mig.filename}:{f.line}", name, what, human_rows(fact.rows, fact.how), human_bytes(fact.bytes),
                   f.lock or ""]
        seen[key] = row
        impact.append(row)
    return impact


def _pending(ctx, project: Path) -> list:
    """The pending files in apply order, after *apply's own ledger checks (drift, missing files, order)."""
    with ctx.connect(ctx.migration_url, autocommit=True) as conn:
        conn.execute("set default_transaction_read_only = on")
        pending, _, _ = _plan_pending(project, conn, ApplyInput())
    return pending


@operation("db-dry-run", risk="read")
def dry_run(inputs: DryRunInput, ctx) -> OpResult:
    """One file, or (no file) every pending file in order on one shadow, each with its own report section."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.applier import prepare_file
    from sage_agent.ops.migrations.history import MigrationFileError, UnreadableMigration, read_applied
    from sage_agent.ops.snapshots.store import schema_exists, user_schemas

    project: Path = ctx.project
    if not (project / "supabase").is_dir():
        raise OpError(f"no supabase/ folder in {project}", "run *bootstrap to create the project layout", exit_code=1)
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.policy import lint_settings

    lint = lint_settings(project)  # the rules `sage lint` runs here; a bad setting stops before anything runs
    chain = not (inputs.file or "").strip()
    migs = _pending(ctx, project) if chain else [_resolve_any(project, inputs.file)]
    if not migs:
        return OpResult(operation="db-dry-run", summary="No pending migrations: nothing to dry-run",
                        facts={"pending": 0}, next_steps=["*migrations", "*migration-new NAME"])
    started = time.perf_counter()
    server = ctx.server
    runs = [_FileRun(m) for m in migs]
    runs[0].notes += lint.notes(server.major)
    for run in runs:
        t0 = time.perf_counter()
        try:
            run.plan = prepare_file(run.mig, server.major, rules=lint.rules)
        except MigrationFileError as exc:
            if isinstance(exc, UnreadableMigration) and not chain:  # the one file given cannot be read: bad input
                raise OpError(str(exc), "save the file as UTF-8 text and dry-run it again", exit_code=2) from None
            run.error = f"{run.mig.filename}: {exc}"
            run.findings = [Finding(rule="syntax", severity="error", message=exc.message,
                                    location=f"{exc.path}:{exc.line}" if exc.line else exc.path)]
            continue
        run.timings["parse + lint"] = time.perf_counter() - t0
        run.findings = _lint_findings(run.plan)
    if not chain and runs[0].error:
        run = runs[0]
        run.timings["total"] = time.perf_counter() - started
        return _finish(ctx, run.mig, _report_path(project, run.mig), verdict="unsafe", status="failed",
                       summary=run.error, findings=run.findings, notes=[], impact=[], changes=None, checks=[],
                       timings=run.timings, applied_ok=False, error=run.error)

    # --- the target: read only --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    target = ctx.connect(ctx.migration_url, autocommit=True)
    target.execute("set default_transaction_read_only = on")
    schemas = user_schemas(target)
    history = schema_exists(target, "supabase_migrations")
    # the catalog fingerprint (a pass over every catalog of the target) and the look-up of a cached template run
    # on a connection of their own beside the reads below (sizes, locks)
    cache_pool = ThreadPoolExecutor(max_workers=1)
    cached = cache_pool.submit(_cached_template, ctx, schemas, history, server.major) if schemas or history else None
    cache_pool.shutdown(wait=False)
    applied_versions = {r.version for r in read_applied(target)} if history else set()
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.policy import grade_by_size, grade_timeouts

    # the same grading as *apply: the timeouts *apply sets answer the timeout rules; severity follows the real
    # table size (empty -> info, big -> error)
    plans = [run.plan for run in runs if run.plan]
    grade_timeouts(plans, lock_timeout=f"{ctx.settings.lock_timeout_ms}ms",
                   statement_timeout=f"{ctx.settings.statement_timeout_ms}ms")
    facts_by_table = grade_by_size(target, plans)
    for run in runs:
        if run.plan:
            run.findings = _lint_findings(run.plan)
            run.impact = _impact(run.plan, run.mig, facts_by_table)
        if run.mig.version and run.mig.version in applied_versions:
            run.notes.append(f"{run.mig.filename} is already applied on the target (the dry-run runs it on the "
                             "shadow anyway)")
    from sage_agent.ops.migrations.blockers import survey, timeout_text  # lazy: pglast costs start-up time

    lock_timeout = timeout_text(ctx.settings.lock_timeout_ms)  # what *apply would use
    for run in runs:
        if run.plan:
            run.survey = survey(target, [run.plan], lock_timeout=lock_timeout, server_major=server.major)
    for run in runs:
        if run.plan:
            _online_steps(target, run, inputs.online, server.major)
            if run.online is None:  # a plain dry-run: would --online take its lint errors off the verdict?
                run.online_lines = _online_would_unblock(target, run, server.major)
    shared: dict[str, float] = {"target facts": time.perf_counter() - t0}

    # --- the shadow: the target's schema, cached as a template while the target's catalog fingerprint holds --
    # every file runs inside a transaction: run them on the template itself, in a transaction rolled back at the
    # end (no copy). A file that cannot run in a transaction (CREATE INDEX CONCURRENTLY, ...) gets a copy.
    in_place = all(run.plan is None or run.plan.transactional for run in runs)
    t0 = time.perf_counter()
    fingerprint, template = cached.result() if cached is not None else (None, None)
    if template:
        shared["cached schema (catalog fingerprint unchanged)"] = time.perf_counter() - t0
    # a big schema with no cached copy: only the closure of what the files can touch is loaded
    closure = _plan_closure(target, runs, schemas, history, shared) if cached is not None and not template \
        else None
    runs[0].timings.update(shared)
    base = [list(run.findings) for run in runs]
    again = None
    if closure is not None:
        _shadow_pass(ctx, runs, schemas, history, applied_versions, in_place, fingerprint, None, closure)
        again = _closure_needs_full(runs)
        if again is None:
            runs[0].notes.append(closure.note)
        else:  # the closure left out something a file reaches: every file again, on the whole schema
            for run, findings in zip(runs, base):
                run.findings, run.changes, run.checks, run.outcome = list(findings), None, [], None
                run.error = run.skipped = None
    if closure is None or again:
        _shadow_pass(ctx, runs, schemas, history, applied_versions, in_place, fingerprint, template, None)
        if again:
            runs[0].notes.append(f"ran again on a full copy of the schema: {again}")
    _measure_rates(ctx, runs)
    if not chain:
        runs[0].timings["total"] = time.perf_counter() - started
    results = [_file_result(ctx, run, write=not chain) for run in runs]
    if not chain:
        return _earlier_pending_hint(ctx, project, runs[0], results[0])
    return _chain_result(ctx, runs, results, time.perf_counter() - started, online=inputs.online)


def _earlier_pending_hint(ctx, project: Path, run: _FileRun, result: OpResult) -> OpResult:
    """A file that failed on the shadow while other pending files come before it may need what they create
    (the shadow holds the target's schema only): say so, and offer the dry-run of the chain."""
    if not run.error or not run.plan:
        return result
    try:
        pending = [m.filename for m in _pending(ctx, project)]
    except OpError:  # a hint only: *apply reports the ledger's own problems
        return result
    if run.mig.filename not in pending:
        return result
    before = pending[:pending.index(run.mig.filename)]
    if not before:
        return result
    names = ", ".join(before[:3]) + (f" and {len(before) - 3} more" if len(before) > 3 else "")
    result.notes.insert(0, f"{len(before)} pending file(s) come before {run.mig.filename} ({names}) and are not "
                           "on the shadow: a dry-run of one file starts from the target's schema. `*dry-run` with no "
                           "file runs every pending file in order on one shadow")
    result.next_steps = ["*dry-run"] + [s for s in result.next_steps if s != "*dry-run"]
    return result


@dataclass
class _ClosurePlan:
    """The closure of a dry-run's files on the target, and the line the report says about it."""

    closure: Any
    key: str = ""
    note: str = ""


def _plan_closure(target, runs: list[_FileRun], schemas: list[str], history: bool, shared: dict):
    """The closure to load, or None for the full load (a small schema, the setting, or a statement whose reach
    cannot be read statically; the report says which)."""
    from sage_agent.ops.migrations import closure as cl  # lazy: only a cold dry-run needs it

    limit = settings().dry_run_closure_min_relations
    if limit < 0 or not schemas:
        return None
    t0 = time.perf_counter()
    total = cl.relation_count(target, schemas)
    if total < limit:
        return None
    names = cl.Names()
    for run in runs:
        if run.plan is None:
            return None
        found = cl.file_names(run.plan.parsed)
        if isinstance(found, str):
            runs[0].notes.append(f"the whole schema was loaded into the shadow: {run.mig.filename} {found}")
            return None
        for part in ("rels", "types", "procs", "strings"):
            getattr(names, part).update(getattr(found, part))
    plan = _ClosurePlan(cl.compute(target, names, schemas, history, total))
    shared["closure of the file (target catalogs)"] = time.perf_counter() - t0
    return plan


def _closure_needs_full(runs: list[_FileRun]) -> str | None:
    from sage_agent.ops.migrations.closure import needs_full  # lazy: only a cold dry-run needs it

    return needs_full(runs)


def _shadow_pass(ctx, runs: list[_FileRun], schemas: list[str], history: bool, applied_versions: set,
                 in_place: bool, fingerprint: str | None, template: str | None, closure: _ClosurePlan | None) -> None:
    """Every file on one shadow: the cached template (in place), or a new one (the whole schema, or with
    `closure` only the closure's objects), or a copy of it for files that cannot run in a transaction."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import drop_database
    from sage_agent.db.tools import PgToolError
    from sage_agent.ops.migrations.history import ensure_history_table
    from sage_agent.ops.migrations.shadow_run import build_template, clone_template, find_template, template_session

    admin = ctx.admin_url
    server = ctx.server
    timings = runs[0].timings
    shadow_name = None
    t0 = time.perf_counter()
    try:
        if closure is not None:
            from sage_agent.ops.migrations import closure as cl  # lazy: only a cold dry-run needs it

            key = cl.closure_key(fingerprint, closure.closure)
            template = find_template(admin, key)
            cover = None if template else cl.covering_template(admin, ctx.project, fingerprint, closure.closure)
            if template:
                timings["cached closure (catalog fingerprint and closure unchanged)"] = time.perf_counter() - t0
                closure.note = (f"the shadow holds the closure of the file ({len(closure.closure.relations)} of "
                                f"{closure.closure.total_relations} relations, cached)")
            elif cover:
                template = cover[0]
                timings["cached closure (catalog fingerprint unchanged, a closure that covers this one)"] = \
                    time.perf_counter() - t0
                closure.note = (f"the shadow holds the closure of the file ({len(closure.closure.relations)} of "
                                f"{closure.closure.total_relations} relations, cached: a closure of {cover[1]} "
                                "relations made for another file that holds all of them)")
            else:
                template, chosen, total, whole = cl.build_template(
                    admin, ctx.migration_url, schemas, history, server.major, key, closure.closure,
                    settings().shadow_template_mb * 2**20)
                how = (f"{chosen} of {total} archive entries of the whole schema's dump: {whole}" if whole else
                       f"{chosen} archive entries from pg_dump -t of {len(closure.closure.tables)} relations and "
                       "a dump of the rest without relations")
                timings["pg_dump -Fc | closure into the shadow" if whole else
                        "pg_dump -t closure | restore into the shadow"] = time.perf_counter() - t0
                closure.note = (f"the shadow holds the closure of the file: {len(closure.closure.relations)} of "
                                f"{closure.closure.total_relations} relations loaded with all their parts "
                                f"({how}), the rest of the schema left out")
                cl.remember_cover(ctx.project, template, fingerprint, closure.closure)
        elif fingerprint is not None and not template:
            template, same_dump = build_template(admin, ctx.migration_url, schemas, history, server.major,
                                                 fingerprint, settings().shadow_template_mb * 2**20)
            timings["cached schema (same dump)" if same_dump else "pg_dump | load into the shadow"] = \
                time.perf_counter() - t0
        if not (template and in_place):
            t0 = time.perf_counter()
            shadow_name, shadow_url = clone_template(admin, template or "template1")
            timings["shadow copy"] = time.perf_counter() - t0
    except PgToolError as exc:
        if "max_locks_per_transaction" in str(exc):  # one transaction loads every table
            raise OpError(f"could not copy the target's schema into the shadow database: {exc}",
                          "the schema has more tables than the shadow server can lock in one transaction: on the "
                          "shadow server run ALTER SYSTEM SET max_locks_per_transaction = 1024, restart it, and "
                          "dry-run again", exit_code=1) from None
        raise OpError(f"could not copy the target's schema into the shadow database: {exc}",
                      "run *env-check (pg_dump/psql versions); roles used by the schema must exist on the "
                      "shadow server", exit_code=1) from None
    try:
        with ExitStack() as stack:
            if shadow_name:
                conn = stack.enter_context(connect(shadow_url, autocommit=True))
            else:
                conn = stack.enter_context(template_session(admin, template))
            ensure_history_table(conn)  # (a savepoint on the template: there it exists already)
            failed_before = None
            for i, run in enumerate(runs):  # in order on one shadow: a file sees what the earlier ones created
                if failed_before:
                    run.skipped = f"not run on the shadow: {failed_before} failed before it (it may depend on it)"
                    continue
                if run.plan is None:
                    failed_before = run.mig.filename
                    continue
                run.changes, run.checks, run.outcome, run.error = _run_on_shadow(
                    ctx, conn, schemas, run.plan, run.mig, applied_versions, run.findings, run.timings,
                    in_place=not shadow_name, more=i < len(runs) - 1)
                if run.error:
                    failed_before = run.mig.filename
    finally:
        if shadow_name:
            drop_database(admin, shadow_name)


def _cached_template(ctx, schemas: list[str], history: bool, server_major: int) -> tuple[str, str | None]:
    """(the target's catalog fingerprint, the cached template labelled with it or None), on a read-only
    connection of its own."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.shadow_run import find_template, schema_fingerprint

    with ctx.connect(ctx.migration_url, autocommit=True) as conn:
        conn.execute("set default_transaction_read_only = on")
        fingerprint = schema_fingerprint(conn, schemas, history, server_major)
    return fingerprint, find_template(ctx.admin_url, fingerprint)


def _online_steps(target, run: _FileRun, asked: bool, server_major: int) -> None:
    """The steps `*apply --online` would run for this file, each with its lock (or why it has no online form)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.config import settings
    from sage_agent.ops.online.expand import column_problems, earlier_uses, plan_notes
    from sage_agent.ops.online.planner import NoOnlineForm, plan_online, wants_online

    if not (asked or wants_online(run.plan.text)) or run.plan.empty:
        return
    where = run.mig.filename
    try:
        plan = plan_online(run.plan, server_major)
    except NoOnlineForm as exc:
        run.online = []
        run.findings.append(Finding(rule="online.no_form", severity="error", location=f"{where}:{exc.line}",
                                    message=f"*apply --online refuses this file: {exc.reason}"))
        return
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online import state as online_state
    from sage_agent.ops.online import versions

    versioned = any(step.kind == "version" for step in plan.steps)
    unfinished = online_state.read_all(target) if versioned else {}
    for step in plan.steps:
        problems = column_problems(target, step.expand["table"], step.expand["column"], step.expand["newtype"]) + \
            earlier_uses(run.plan, step.expand, step.line) if step.kind == "expand" else []
        if versioned and step.kind == "expand" and not problems:
            problems = versions.problems(target, step.expand, run.mig.version, server_major, unfinished)
        said: list[str] = []
        if step.kind == "expand" and not problems:  # one read of the column and its views for both
            said, problems = plan_notes(target, run.plan, step.expand, step.line)
            said = [n for n in said if not (versioned and n.startswith("prepared statements:"))]
        if problems:
            run.findings.append(Finding(
                rule="online.no_form", severity="error", location=f"{where}:{step.line}",
                message=f"*apply --online refuses the type change of {step.expand['name']}."
                        f"{step.expand['column']}: {'; '.join(problems)}"))
        else:
            run.notes += said
    if versioned:
        bases = list(dict.fromkeys(versions.table_schema(target, s.expand["table"]) or "public" for s in plan.steps
                                   if s.kind == "expand"))
        run.notes.append(versions.client_note(where, [versions.schema_name(b, run.mig.version) for b in bases],
                                              bases))
    batch = settings().online_batch_rows
    run.covered = set(plan.rewritten)  # as *apply --online: these statements' lint errors no longer block
    run.online = [[n, step.line, step.kind, step.lock(server_major), step.show(batch).split("; lock: ")[0]]
                  for n, step in enumerate(plan.steps, 1)]
    run.notes.append(f"online: {len(plan.steps)} step(s), each its own transaction or CONCURRENTLY; the history "
                     "row is written with the last one" + ("; a column type change ends `expanded (contract "
                                                          "pending)` until *apply --complete"
                                                          if any(s.kind in ("swap", "version") for s in plan.steps)
                                                          else ""))


def _online_would_unblock(target, run: _FileRun, server_major: int) -> list[int]:
    """The lines of a plain dry-run's error-level lint findings when the online planner accepts the file and runs
    every one of those statements in its online form (`*dry-run FILE --online` would not be UNSAFE for them);
    else []. The same planning as `--online`, on a scratch run: nothing of it is shown."""
    errors = [f for f in run.plan.findings if f.severity == "error"]
    if not errors:
        return []
    probe = _FileRun(run.mig, plan=run.plan)
    _online_steps(target, probe, True, server_major)
    if not probe.online or any(f.rule == "online.no_form" for f in probe.findings):
        return []
    lines = sorted({f.statement_line or f.line for f in errors})
    return lines if all(line in probe.covered for line in lines) else []


def _measure_rates(ctx, runs: list[_FileRun]) -> None:
    """Only when a statement rewrites, scans or indexes a non-empty table of the target (a rough guide: the
    shadow server's disk and cache are not the target's). On a scratch database of its own: the shadow may be
    the cached template, which must stay as loaded."""
    # lazy: psycopg loads on the first database call; pglast (the SQL parser) loads only when SQL is parsed
    import psycopg

    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import drop_database
    from sage_agent.ops.migrations.blockers import measure_rates, save_rates  # lazy: start-up time
    from sage_agent.ops.migrations.shadow_run import clone_template

    surveys = [run.survey for run in runs if run.survey and run.survey.estimates]
    if not surveys:
        return
    t0 = time.perf_counter()
    name = None
    try:
        name, url = clone_template(ctx.admin_url, "template1", label="rates")
        with connect(url, autocommit=True) as conn:
            rates = measure_rates(conn)
    except psycopg.Error as exc:
        runs[0].notes.append(f"could not measure the scan rate on the shadow ({exc}); durations: "
                             f"{surveys[0].rates.source}")
        return
    finally:
        if name:
            drop_database(ctx.admin_url, name)
    save_rates(ctx.project, rates)
    for s in surveys:
        s.set_rates(rates)
    runs[0].timings["scan rate on the shadow"] = time.perf_counter() - t0


def _report_path(project: Path, mig) -> Path:
    return project / "supabase" / "tests" / f"dry-run-{mig.path.stem}.md"


def _file_result(ctx, run: _FileRun, *, write: bool = True) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.policy import verdict as policy

    lint = [f for f in (run.plan.findings if run.plan else [])
            if (f.statement_line or f.line) not in run.covered]  # the same findings block as in *apply --online
    lint += [f for f in run.findings if f.rule == "online.no_form"]  # *apply --online refuses these
    online_ok = [f for f in (run.plan.findings if run.plan else [])
                 if f.severity == "error" and (f.statement_line or f.line) in run.covered]
    if online_ok:
        run.notes.append(f"{len(online_ok)} error-level lint finding(s) on line(s) "
                         f"{', '.join(str(n) for n in sorted({f.line for f in online_ok}))} do not block: those "
                         "statements run in their online form (as in *apply --online)")
    failed_checks = [c for c in run.checks if not c[1]]
    blocked = bool(run.survey and run.survey.blockers)
    v = policy(lint, failed=run.error or (run.skipped and "skipped") or None, impact=bool(run.impact) or blocked,
               failed_checks=bool(failed_checks))
    if run.skipped:
        summary = f"{run.mig.filename}: NOT RUN - {run.skipped.split(': ', 1)[1]}"
    elif run.error:
        summary = f"{run.mig.filename}: {v.level.upper()} - " + \
            (f"fails on the shadow at {run.error}" if run.plan else run.error.split(": ", 1)[1])
    else:
        summary = f"{run.mig.filename}: {v.level.upper()}" + \
            (f" - applied to a shadow copy in {run.outcome.duration_ms / 1000:.2f}s" if run.outcome else "")
    notes = run.notes + ([run.skipped] if run.skipped else [])
    return _finish(ctx, run.mig, _report_path(ctx.project, run.mig), verdict=v.level, status=v.status,
                   summary=summary, findings=run.findings, notes=notes, impact=run.impact,
                   changes=run.changes if not run.error else None, checks=run.checks, timings=run.timings,
                   applied_ok=run.error is None and not run.skipped, error=run.error,
                   statements=len(run.plan.chunks) if run.plan else 0,
                   transactional=run.plan.transactional if run.plan else True, write=write, survey=run.survey,
                   online=run.online, online_lines=run.online_lines,
                   # *apply --online refuses a statement with no online form whatever the typed word
                   blocking=0 if any(f.rule == "online.no_form" for f in v.blocking) else len(v.blocking))


def _chain_result(ctx, runs: list[_FileRun], results: list[OpResult], total_s: float, *,
                  online: bool = False) -> OpResult:
    """Every pending file on one shadow: one report with a section per file, the worst verdict overall."""
    order = {"safe": 0, "caution": 1, "unsafe": 2}
    verdicts = [r.data["verdict"] for r in results]
    overall = max(verdicts, key=order.get)
    status = {"safe": "ok", "caution": "warning", "unsafe": "failed"}[overall]
    path = ctx.project / "supabase" / "tests" / "dry-run-pending.md"
    lines = [f"# Dry Run Report - {len(runs)} pending migration(s)", "",
             f"- Target: {ctx.target.display_url} ({ctx.target.env}) - only read; the files ran in order on one "
             "shadow copy", f"- Verdict: **{overall.upper()}**", ""]
    lines += [f"- {r.summary}" for r in results] + [""]
    for r in results:
        body = (r.markdown or "").splitlines()
        lines += ["#" + line if line.startswith("#") else line for line in body] + [""]
    markdown = redact("\n".join(lines))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")
    rel = str(path.relative_to(ctx.project))
    # the detail says `line N`, not the file's name again, and another file by its version (its row starts with
    # it): at 60 columns a whole name in the narrow detail column wrapped mid-name ('20240102000000_a' 'dd_tags.sql')
    def detail(run, r) -> str:
        text = (r.summary.split(" - ", 1)[1] if " - " in r.summary else "").replace(f"{run.mig.filename}:", "line ")
        for other in runs:
            text = text.replace(other.mig.filename, other.mig.version)
        return text

    rows = [[run.mig.filename, r.data["verdict"], detail(run, r)] for run, r in zip(runs, results)]
    tables = [Table(title="Pending migrations (in order, one shadow)", columns=["migration", "verdict", "detail"],
                    rows=rows)]
    tables += [t for r in results for t in r.tables if t.title == "Impact on the target"]
    tables += [t for r in results for t in r.tables if t.title in SURVEY_TABLES]
    findings = [f for r in results for f in r.findings]
    summary = f"{len(runs)} pending migration(s): {overall.upper()} (" + \
        ", ".join(f"{run.mig.filename} {v}" for run, v in zip(runs, verdicts)) + ")"
    first_bad = next((run.mig.filename for run, v in zip(runs, verdicts) if v == "unsafe"), None)
    how = "*apply --online" if online else "*apply"  # as each file's own next step says
    return OpResult(operation="db-dry-run", status=status, summary=summary,
                    facts={"verdict": overall, "files": len(runs), "report": rel, "total": f"{total_s:.2f}s"},
                    tables=tables, findings=findings, notes=[n for r in results for n in r.notes],
                    artifacts=[rel], markdown=markdown,
                    next_steps=[how] if first_bad is None else _chain_unsafe_steps(runs, results, how),
                    data={"verdict": overall, "report": rel,
                          "files": [{"file": run.mig.filename, **r.data} for run, r in zip(runs, results)]})


def _chain_unsafe_steps(runs: list[_FileRun], results: list[OpResult], how: str = "*apply") -> list[str]:
    """An UNSAFE chain: fix the first unsafe file; when no file fails and only error-level lint findings stop
    it, *apply past them with the typed word (as *apply asks), never the same dry-run again."""
    bad = [(run, r) for run, r in zip(runs, results) if r.data["verdict"] == "unsafe"]
    steps = [f"fix {bad[0][0].mig.filename} per the findings above, then *dry-run"]
    if all(r.data.get("online_form") for _, r in bad):  # each unsafe file's errors have an online form
        steps.append("*dry-run --online")
    n = sum(r.data.get("blocking", 0) for _, r in bad)
    if n and all(r.data.get("blocking") and not r.data.get("error") for _, r in bad):
        steps.append(f"{how} past the {n} error-level lint finding(s): type {UNSAFE_WORD} when it asks "
                     f"(headless: sage run \"{how}\" --yes --allow-unsafe)")
    return steps


def _run_on_shadow(ctx, conn, schemas, plan, mig, applied_versions, findings, timings, *, in_place: bool = False,
                   more: bool = False):
    """One file on the shadow connection. On a copy: the catalog is read in full before and after. In place (the
    template, inside a transaction rolled back at the end): the file runs in a savepoint; the definitions of just
    the objects it wrote (new row versions, and their direct dependents) are read after it; then the savepoint
    is rolled back and the same objects, and those whose rows it deleted, are read as they were before it.
    Re-applied when another file follows."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.applier import apply_file
    from sage_agent.ops.migrations.shadow_run import (catalog_objects, deleted_catalog_rows, diff_objects,
                                                      owner_of, partition_parents, rls_check_for, smoke_checks,
                                                      written_objects)

    checks: list = []
    error = None
    changes = None
    all_schemas = sorted(set(schemas) | set(_new_schemas(conn)))
    t0 = time.perf_counter()
    before = None if in_place else catalog_objects(conn, all_schemas)
    timings["catalog before"] = time.perf_counter() - t0
    if mig.version and mig.version in applied_versions:
        plan.migration = type(mig)("", mig.name, mig.path)
    if in_place:
        conn.execute("savepoint sage_dry_run_file")
    t0 = time.perf_counter()
    statement_timeout = f"{ctx.settings.statement_timeout_ms}ms"
    outcome = apply_file(conn, plan, statement_timeout=statement_timeout, lock_timeout=None)
    timings["apply on the shadow"] = time.perf_counter() - t0
    if outcome.status == "success":
        t0 = time.perf_counter()
        all_schemas = sorted(set(all_schemas) | set(_new_schemas(conn)))
        if in_place:
            written = written_objects(conn)
            after = catalog_objects(conn, all_schemas, only=written)
            # a file that deleted no catalog row: only the owners of what it wrote can group (see DROP_CATALOGS)
            partitions = partition_parents(conn, all_schemas, None if deleted_catalog_rows(conn)
                                           else {owner_of(k, n) for k, n in after})
            checks = smoke_checks(conn, all_schemas, [k for k in after if k[0] == "table"])  # narrowed below
            conn.execute("rollback to savepoint sage_dry_run_file")  # the state before the file
            before = catalog_objects(conn, all_schemas, only=written_objects(conn, deleted=True, also=written))
            changes = diff_objects(before, after, partitions=partitions)
            checks = rls_check_for(checks, changes.created)
            if more:  # the next file sees this one's changes
                again = apply_file(conn, plan, statement_timeout=statement_timeout, lock_timeout=None)
                if again.status != "success":
                    outcome = again
        else:
            partitions = partition_parents(conn, all_schemas)
            after = catalog_objects(conn, all_schemas)
            changes = diff_objects(before, after, partitions=partitions)
            checks = smoke_checks(conn, all_schemas, changes.created)
        timings["catalog after + smoke checks"] = time.perf_counter() - t0
    plan.migration = mig
    if in_place:
        conn.execute("release savepoint sage_dry_run_file")
    if outcome.status != "success":
        changes = None
        where = f"{mig.filename}:{outcome.line}" if outcome.line else mig.filename
        error = f"{where}: {outcome.error}"
        findings.insert(0, Finding(rule="apply.failed", severity="error", message=outcome.error or "",
                                   location=where))
    return changes, checks, outcome, error


def _new_schemas(conn) -> list[str]:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import user_schemas

    return user_schemas(conn)


def unsafe_next_steps(filename: str, how: str, *, error: str | None, blocking: int,
                      online: bool = False) -> list[str]:
    """What moves the person on from an UNSAFE verdict (never the same dry-run again as it is): a file that fails
    is fixed; error-level lint findings are fixed, run in their online form when the online planner takes them
    (`online`: `*dry-run FILE --online` shows it), or applied past with the typed word UNSAFE, as *apply asks
    (`sage run ... --allow-unsafe` headless: the one verdict policy, migrations/policy.py)."""
    fix = f"fix {filename} per the findings above, then *dry-run {filename}"
    if error or not blocking:
        return [fix]
    return [fix] + ([f"*dry-run {filename} --online"] if online else []) + [
        f"{how} past the {blocking} error-level lint finding(s): type {UNSAFE_WORD} when it asks "
        f"(headless: sage run \"{how}\" --yes --allow-unsafe)"]


def _finish(ctx, mig, report_path: Path, *, verdict, status, summary, findings, notes, impact, changes, checks,
            timings, applied_ok, error, statements=0, transactional=True, write=True,
            survey: Survey | None = None, online: list | None = None, blocking: int = 0,
            online_lines: list | None = None) -> OpResult:
    # UNSAFE by lint errors only, and the online planner runs each of those statements in an online form
    online_hint = bool(verdict == "unsafe" and online_lines and blocking and not error)
    if online_hint:
        notes = notes + [f"the statement(s) on line(s) {', '.join(map(str, online_lines))} have an online form "
                         f"(*apply --online: short locks, batches): `*dry-run {mig.filename} --online` shows its "
                         "steps and verdict"]
    tables = []
    if online:
        tables.append(Table(title="Online steps (*apply --online)", columns=["step", "line", "kind", "lock", "runs"],
                            rows=online))
    if impact:
        tables.append(Table(title="Impact on the target", columns=["where", "table", "effect", "rows", "size", "lock"],
                            rows=impact))
    tables += survey.tables() if survey else []
    if changes is not None:
        tables.append(Table(title="Object changes (shadow)", columns=["change", "kind", "object"],
                            rows=changes.rows()))
    if checks:
        tables.append(Table(title="Smoke checks (shadow)", columns=["check", "result", "detail"],
                            rows=[[c, "pass" if ok else "FAIL", d] for c, ok, d in checks]))
    lines = [f"# Dry Run Report - {mig.filename}", "",
             f"- Target: {ctx.target.display_url} ({ctx.target.env}) - only read; the file ran on a shadow copy",
             f"- Verdict: **{verdict.upper()}**", f"- Statements: {statements}"
             + ("" if transactional else " (runs outside a transaction)"), ""]
    lines += ["## Analysis", ""]
    if error:
        lines.append(f"- ❌ {error}")
    else:
        lines.append("- ✅ Syntax valid")
    if findings:
        for f in findings:
            if f.rule == "apply.failed":
                continue
            lines.append(f"- {'❌' if f.severity == 'error' else '⚠️' if f.severity == 'warning' else 'ℹ️'} "
                         f"{f.rule} ({f.location}): {f.message}" + (f" [{f.detail}]" if f.detail else "")
                         + (f" -> {f.fix}" if f.fix else ""))
    else:
        lines.append("- ✅ No lint findings")
    lines += ["", "## Impact on the target", ""]
    if impact:
        for row in impact:
            lines.append(f"- {row[2]} {row[1]}, {row[3]}" + (f", {row[4]}" if row[4] else "")
                         + (f", {row[5]}" if row[5] else "") + f" ({row[0]})")
    else:
        lines.append("- No statement rewrites or scans an existing table")
    if survey is not None:
        lines += ["", "## Who will block you (target, now)", ""] + _survey_lines(survey)
    if online:
        lines += ["", "## Online steps (`*apply --online`)", ""]
        lines += [f"{n}. line {line} {text} (lock: {lock})" for n, line, _, lock, text in online]
    if changes is not None:
        lines += ["", "## Object changes", ""]
        lines += [f"- {c} {k} {n}" for c, k, n in changes.rows()] or ["- none"]
    if checks:
        lines += ["", "## Smoke checks (shadow)", ""]
        lines += [f"- {'✅' if ok else '❌'} {c}" + (f": {d}" if d else "") for c, ok, d in checks]
    lines += ["", "## Timing", ""] + [f"- {k}: {v:.2f}s" for k, v in timings.items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    how = f"*apply {mig.filename}" + (" --online" if online else "")
    rec = {"safe": f"✅ Safe to apply: `{how}`",
           "caution": f"⚠️ Review the findings above, then `{how}`",
           "unsafe": "❌ Do not apply as written: fix the problems above and dry-run again"
                     + (f"; `*dry-run {mig.filename} --online` shows its online form" if online_hint else "")
                     + (f" (or `{how}` past the error-level lint findings, typing {UNSAFE_WORD}: "
                        f"`sage run \"{how}\" --yes --allow-unsafe` headless)" if blocking and not error else "")
           }[verdict]
    lines += ["", "## Recommendation", "", f"- {rec}", ""]
    markdown = redact("\n".join(lines))
    if write:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(markdown, encoding="utf-8")
    rel = str(report_path.relative_to(ctx.project)) if report_path.is_relative_to(ctx.project) else str(report_path)
    facts = {"verdict": verdict, "statements": statements, "report": rel}
    if "apply on the shadow" in timings:
        facts["shadow apply"] = f"{timings['apply on the shadow']:.2f}s"
    facts["total"] = f"{timings.get('total', 0):.2f}s"
    findings = findings + (survey.findings() if survey else [])
    return OpResult(operation="db-dry-run", status=status, summary=summary, facts=facts, tables=tables,
                    findings=findings, notes=notes, artifacts=[rel], markdown=markdown,
                    next_steps=[how] if verdict != "unsafe" else unsafe_next_steps(mig.filename, how, error=error,
                                                                                    blocking=blocking,
                                                                                    online=online_hint),
                    data={"verdict": verdict, "impact": impact, "report": rel, "error": error, "blocking": blocking,
                          "online_form": online_hint,
                          "changes": changes.rows() if changes is not None else [],
                          "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks],
                          "timings": {k: round(v, 3) for k, v in timings.items()},
                          "survey": survey.data() if survey else None,
                          "online_steps": [dict(zip(("step", "line", "kind", "lock", "runs"), r)) for r in online]
                          if online is not None else None})


SURVEY_TABLES = ("Sessions in the way (target, now)", "Estimated durations")  # blockers.Survey.tables()


def _survey_lines(survey: Survey) -> list[str]:
    existing = sorted({n.table for n in survey.needs})
    if not existing:
        return ["- The file locks no table"]
    lines = [f"- {b.where} {b.lock} on {b.table}: {b.verdict}. pid {b.pid}: {b.state or '?'}, transaction open "
             f"{seconds(b.xact_s) or '?'}" + (f", {b.application}" if b.application else "") + f": `{b.query}`"
             for b in survey.blockers]
    if not survey.blockers:
        lines.append(f"- No live session holds or waits for a lock that conflicts with the locks this file takes "
                     f"(on {', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''})")
    if survey.hidden_own:
        lines.append(f"- {survey.hidden_own} DB Sage session(s) with conflicting locks left out")
    for e in survey.estimates:
        lines.append(f"- {e.where} {e.effect} {e.table} ({human_bytes(e.bytes)}): about {seconds(e.seconds)} "
                     f"under {e.lock}")
    if survey.estimates:
        lines.append(f"- Durations: {survey.rates.source}")
    return lines
