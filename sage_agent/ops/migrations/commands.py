"""Area migrations-apply: *apply, *migrations, *migration-new, *repair (and *dry-run in migrations_dryrun.py).

The ledger is the Supabase CLI's (sage_agent/ops/migrations/history.py); applying is sage_agent/ops/migrations/applier.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from sage_agent.config import settings
from sage_agent.db.redact import redact_obj
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, NeedsInput, OpError, OpResult, Table

LOG_PATH = Path("supabase") / ".sage" / "migration-log.jsonl"
_NAME = re.compile(r"^[a-z0-9_]{1,100}$")  # a file name: <timestamp>_<name>.sql must stay under 255 bytes



def _require_supabase(project: Path) -> None:
    if not (project / "supabase").is_dir():
        raise OpError(f"no supabase/ folder in {project}", "run *bootstrap to create the project layout "
                      "(or run DB Sage from your project folder)", exit_code=1)


def _local(project: Path):
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import MigrationFileError, list_local

    try:
        return list_local(project)
    except MigrationFileError as exc:
        raise _file_error(exc) from None


def _file_error(exc) -> OpError:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import UnreadableMigration

    return OpError(f"{exc}", "fix the file and run the command again; nothing was changed",
                   exit_code=2 if isinstance(exc, UnreadableMigration) else 1)


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_log(project: Path, entries: list[dict]) -> Path:
    path = project / LOG_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(redact_obj(entry), ensure_ascii=False) + "\n")
    return path


def snapshot_before(project: Path, filename: str) -> str | None:
    """The snapshot *apply took before `filename` last started, from the migration log: a file applied with
    others gets one named after the first (`before_<first>_and_N_more`), and attempts that continued an
    unfinished file took later ones, so the oldest of the file's unbroken run of failed or stopped attempts."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.snapshots.store import snapshot_dir

    path = project / LOG_PATH
    if not path.is_file():
        return None
    found = None
    for line in reversed(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("migration") != filename:
            continue
        if entry.get("status") == "success":
            break
        name = entry.get("snapshot")
        if name and (snapshot_dir(project) / f"{name}.sql").is_file():
            found = name
    return found


def _drift_problems(plan, applied_rows) -> list[str]:
    """Applied versions whose local file no longer says what was applied."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import MigrationFileError, cli_split, read_migration_text, same_statements

    stored = {r.version: r.statements for r in applied_rows}
    drift: list[str] = []
    for mig in plan.applied:
        try:
            text = read_migration_text(mig.path)
            local = [c.text for c in cli_split(text, mig.filename, strict=False)]
        except MigrationFileError as exc:
            drift.append(f"{mig.filename} (unreadable: {exc.message})")
            continue
        if same_statements(stored.get(mig.version), local, text) is False:
            drift.append(mig.filename)
    return drift


# --- *apply ----------------------------------------------------------------------------------------------------
class ApplyInput(BaseModel):
    file: str | None = None
    snapshot: bool = True
    include_all: bool = False
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    online: bool = False  # blocking statements run in their online form (sage_agent/ops/online)
    complete: bool = False  # contract expanded type changes: drop the old columns and sync triggers
    versioned: bool = False  # online type changes get a version schema; the swap waits for --complete (online/versions.py)
    batch_rows: int | None = Field(default=None, ge=1, le=1_000_000)
    batch_pause_ms: int | None = Field(default=None, ge=0, le=600_000)


def _plan_pending(project: Path, conn, inputs: ApplyInput):
    """(pending LocalMigrations, warnings, note) after every ledger check; raises OpError on drift etc."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.applier import resolve_migration
    from sage_agent.ops.migrations.history import find_pending, read_applied

    local, warnings = _local(project)
    rows = read_applied(conn)
    plan = find_pending(local, [r.version for r in rows])
    if plan.missing_local:
        versions = ", ".join(plan.missing_local[:10])
        first = plan.missing_local[0]
        raise OpError(f"the history has {len(plan.missing_local)} version(s) with no local file in "
                      f"supabase/migrations/: {versions}",
                      f"restore the file(s), or mark them reverted: *repair {first} reverted "
                      "(the Supabase CLI refuses the same way)", exit_code=1)
    drift = _drift_problems(plan, rows)
    if drift:
        first = drift[0].split(" ")[0]
        version = first.split("_", 1)[0]
        raise OpError(f"drift: {len(drift)} applied migration(s) changed since they were applied: {', '.join(drift)}",
                      f"put the file back as it was and write a new migration for the change, or accept the file "
                      f"as applied: *repair {version} applied", exit_code=1)
    target = None
    if inputs.file:
        try:
            target = resolve_migration(project, inputs.file, local)
        except (LookupError, FileNotFoundError) as exc:  # no such file, or not one the history tracks: bad input
            raise OpError(str(exc), "*migrations lists the local migration files", exit_code=2) from None
        if target in plan.applied:
            return [], warnings, f"{target.filename} is already applied"
    if plan.out_of_order and not inputs.include_all:
        names = [m.filename for m in plan.out_of_order]
        relevant = names if target is None else [n for n in names if n == target.filename]
        if relevant:
            newest = max(r.version for r in rows)
            raise NeedsInput("include_all", "Apply them anyway (check they do not depend on newer ones)?",
                             reason=f"{len(relevant)} migration(s) are older than the newest applied one ({newest}): "
                                    f"{', '.join(relevant[:10])}", choices=["yes", "no"], default="no",
                             hint="apply them anyway with --include-all (check they do not depend on newer ones), "
                                  "or rename them with a newer timestamp")
    pending = (plan.out_of_order if inputs.include_all else []) + plan.pending
    if target is not None:
        if target not in pending:
            raise OpError(f"{target.filename} is not pending", "*migrations shows its state", exit_code=1)
        earlier = [m for m in pending if m.version < target.version and m not in plan.out_of_order]
        if earlier:
            raise OpError(f"{len(earlier)} earlier migration(s) are pending before {target.filename}: "
                          f"{', '.join(m.filename for m in earlier[:10])}",
                          "apply them first (*apply with no file applies everything in order)", exit_code=1)
        pending = [target]
    return pending, warnings, None


@operation("db-apply-migration", risk="write", raised_by={"complete": "destructive"})
def apply(inputs: ApplyInput, ctx) -> OpResult:
    """Apply pending migrations like `supabase db push`, with lint, snapshot, lock and per-file transactions."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.applier import (
        LockBusy,
        acquire_apply_lock,
        apply_file,
        check_timeout,
        lock_wait_s,
        prepare_file,
        release_apply_lock,
    )
    from sage_agent.ops.migrations.history import MigrationFileError, ensure_history_table

    project: Path = ctx.project
    _require_supabase(project)
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.policy import lint_settings

    lint = lint_settings(project)  # the rules `sage lint` runs here; a bad setting stops before anything runs
    try:
        lock_timeout = check_timeout(inputs.lock_timeout, "lock_timeout") or f"{ctx.settings.lock_timeout_ms}ms"
        statement_timeout = check_timeout(inputs.statement_timeout, "statement_timeout") or \
            f"{ctx.settings.statement_timeout_ms}ms"
    except ValueError as exc:
        raise OpError(str(exc), exit_code=2) from None
    url = ctx.migration_url  # refuses a transaction pooler without a direct URL before anything starts
    conn = ctx.connect(url, autocommit=True)
    ctx.require_primary(conn)
    if inputs.complete:  # the contract step of expand/contract: its own command, typed confirmation
        # lazy: psycopg loads on the first database call
        from sage_agent.ops.online.contract import complete

        return complete(ctx, conn, inputs.file)
    pending, warnings, note = _plan_pending(project, conn, inputs)
    notes = list(warnings)
    if not pending:
        summary = note or "Database is up to date: no pending migrations"
        return OpResult(operation="db-apply-migration", summary=summary, facts={"applied": 0, "pending": 0},
                        notes=notes, next_steps=["*migrations"])
    server_major = ctx.server.major
    plans = []
    for mig in pending:
        try:
            plans.append(prepare_file(mig, server_major, rules=lint.rules))
        except MigrationFileError as exc:
            raise _file_error(exc) from None
    notes += lint.notes(server_major)
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.migrations.policy import UNSAFE_WORD, finding_row, grade_by_size, grade_timeouts, verdict

    # as *dry-run does: the timeouts set here answer the timeout rules; an empty table's rewrite is info, a big
    # one's an error
    grade_timeouts(plans, lock_timeout=lock_timeout, statement_timeout=statement_timeout)
    grade_by_size(conn, plans)
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online import hook as online

    # refuses a statement with no online form
    chosen = online.select(conn, plans, inputs.online, server_major, inputs.versioned)
    notes += chosen.notes
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.blockers import load_rates, survey

    # who holds conflicting locks now (an online file's steps name the holder themselves, with retries)
    ahead = survey(conn, [p for p in plans if p.migration.version not in chosen.plans], lock_timeout=lock_timeout,
                   rates=load_rates(project), server_major=server_major)
    findings = [f for p in plans for f in p.findings]
    errors = [f for f in verdict(findings).blocking if not chosen.covers(f)]
    notes += [f"{p.migration.filename} has no SQL statements (empty or only comments): it is recorded as applied, "
              "as supabase db push does" for p in plans if p.empty]
    # When another operation applies a migration it just wrote (e.g. *policy-apply), that operation has already
    # confirmed the exact SQL with the person; *apply confirms only when it is the command that was run.
    own_command = ctx.task is None or ctx.task.id == "db-apply-migration"
    if not own_command:
        notes.append(f"applied on behalf of *{ctx.task.command}, which confirmed the exact SQL")
    if errors and own_command:
        # A typed word, never --yes: only a person (REPL, MCP elicitation) or `sage run --allow-unsafe` passes it.
        rows = tuple(finding_row(f) for f in errors)
        ctx.confirm(f"The migration lint found {len(errors)} error-level finding(s); applying is unsafe.",
                    plan="\n".join(rows), word=UNSAFE_WORD, reasons=rows)
        notes.append(f"applied despite {len(errors)} error-level lint finding(s): {UNSAFE_WORD} confirmed")
    lines = []
    timeouts = [f"lock_timeout={lock_timeout} statement_timeout={statement_timeout}"]
    bound = ""  # the online swap's lock wait and hold limits (only online files have a swap)
    if chosen.plans:  # the online steps take their locks under their own, shorter timeout, with retries
        from sage_agent.ops.online.executor import options_from  # lazy: only online files need it

        retry = options_from(settings(), inputs.lock_timeout, None, None, None).retry
        timeouts = ([timeouts[0] + " (files that run as written)"] if len(chosen.plans) < len(plans) else []) + [
            f"online steps: lock_timeout={retry.lock_timeout_ms}ms each, retried up to {retry.retries} times "
            "with backoff"]
        bound = (f"waits at most {retry.lock_timeout_ms} ms for it, {retry.retries} retries with backoff, then stops "
                 f"naming the holder (*apply resumes here); holds it at most statement_timeout={statement_timeout}")
    for p in plans:
        if p.migration.version in chosen.plans:
            lines += chosen.plan_lines(p, inputs.batch_rows or ctx_batch_rows(), bound)
            continue
        how = "one transaction" if p.transactional else \
            f"NO transaction (statement by statement: line {', '.join(map(str, p.nontx_lines))})"
        lines.append(f"{p.migration.filename}: {len(p.chunks)} statement(s), {how}")
    plan_text = "\n".join(online.rollback_lines(chosen) + lines + ahead.plan_lines() +
                          [f"snapshot first: {'yes' if inputs.snapshot else 'no'}"] + timeouts)
    if own_command:
        ctx.confirm(f"Apply {len(plans)} migration(s) to {ctx.target.display_url}?", plan=plan_text)

    # One applier at a time; after the wait, the work may have been done by the other one.
    try:
        waited = acquire_apply_lock(conn, lock_wait_s(), on_wait=ctx.say)
    except LockBusy as exc:
        raise OpError(str(exc), "wait for the other *apply to finish, then run *apply again", exit_code=1) from None
    outcomes = []
    snapshot_name = None
    log_entries: list[dict] = []
    try:
        if True:  # re-read the history under the lock: another applier may have done (part of) the work
            pending_now, _, _ = _plan_pending(project, conn, inputs)
            now = {m.version for m in pending_now}
            skipped_by_other = [p.migration.filename for p in plans if p.migration.version not in now]
            plans = [p for p in plans if p.migration.version in now]
            if skipped_by_other:
                notes.append(f"applied meanwhile by another session: {', '.join(skipped_by_other)}")
            if not plans:
                return OpResult(operation="db-apply-migration",
                                summary="Nothing left to apply: another *apply applied these migrations meanwhile",
                                facts={"applied": 0, "waited_s": round(waited, 1)}, notes=notes,
                                next_steps=["*migrations"])
        notes += online.finish_rollbacks(ctx, conn, chosen)  # before the files: one may be the rolled-back file
        if inputs.snapshot:
            snapshot_name = _take_snapshot(ctx, plans)
        ensure_history_table(conn)
        total = sum(len(p.chunks) for p in plans)
        progress = ctx.progress("applying", total)
        for p in plans:
            ctx.say(f"applying {p.migration.filename} ({len(p.chunks)} statement{'' if len(p.chunks) == 1 else 's'})")
            if p.migration.version in chosen.plans:
                outcome = online.run(conn, p, chosen, ctx, inputs, check_timeout(inputs.statement_timeout, "s"))
                progress.advance(len(p.chunks))
            else:
                outcome = apply_file(conn, p, statement_timeout=statement_timeout, lock_timeout=lock_timeout,
                                     on_statement=lambda n: progress.advance(n))
            outcomes.append(outcome)
            log_entries.append({"migration": p.migration.filename, "applied_at": _utc_now(),
                                "status": outcome.status, "snapshot": snapshot_name,
                                "rollback_available": snapshot_name is not None,
                                "version": p.migration.version, "statements": len(p.chunks),
                                "duration_ms": round(outcome.duration_ms, 1), "env": ctx.target.env,
                                "target": ctx.target.display_url, "error": outcome.error, "line": outcome.line,
                                "online": p.migration.version in chosen.plans})
            if outcome.status != "success":
                break
    finally:
        release_apply_lock(conn)
        if log_entries:
            append_log(project, log_entries)
    expanded = [p.migration.filename for p in plans if p.migration.version in chosen.plans
                and any(step.kind in ("swap", "version") for step in chosen.plans[p.migration.version].steps)]
    shown = []  # a finding about a statement that ran in its online form is no longer an error here
    for f in findings:
        if f.severity != "info" and chosen.covers(f):
            f = f.model_copy()
            f.severity = "info"
            f.message += " (ran in its online form: not under this lock)"
        shown.append(f)
    return _apply_result(ctx, plans, outcomes, snapshot_name, notes, shown, online=set(chosen.plans),
                         ahead=ahead, expanded=expanded)


def ctx_batch_rows() -> int:
    return settings().online_batch_rows


def _take_snapshot(ctx, plans) -> str:
    """`before_<file>`: the schema, plus the data of what the files destroy (read from their parse trees)."""
    # lazy: psycopg loads on the first database call; pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.snapshots.store import snapshot_dir, take_snapshot
    from sage_agent.sqlkit.destroys import destroyed_objects

    destroyed = [d for p in plans for d in destroyed_objects(p.parsed)]
    stem = plans[0].migration.stem if len(plans) == 1 else f"{plans[0].migration.stem}_and_{len(plans) - 1}_more"
    base = f"before_{stem}"[:90]
    folder = snapshot_dir(ctx.project)
    if (folder / f"{base}.sql").exists() or (folder / f"{base}.json").exists():
        meta = take_snapshot(ctx, None, prefix=base[:70], keep=destroyed, origin="apply")
    else:
        meta = take_snapshot(ctx, base, keep=destroyed, origin="apply")
    if meta.kept:
        ctx.say(f"snapshot {meta.name} taken (schema + the data of {', '.join(k.table for k in meta.kept)}, "
                f"{meta.kept_rows} rows)")
    else:
        ctx.say(f"snapshot {meta.name} taken (schema only: the files destroy no data)")
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.retention import prune_snapshots

    pruned = prune_snapshots(ctx.project, protect=frozenset({meta.name}))  # SAGE_SNAPSHOT_KEEP / _MAX_AGE_DAYS
    if pruned.removed:
        ctx.say(f"pruned {len(pruned.removed)} old automatic snapshot(s) (SAGE_SNAPSHOT_KEEP={pruned.keep})")
    return meta.name


def next_smoke_version(project: Path) -> str:
    """The smoke-test version to suggest after an *apply: v1.0, then one minor up from the newest report
    (supabase/tests/smoke-test-vX.Y.md), so the hint never names a report that already exists."""
    found = [(int(m[1]), int(m[2])) for p in (project / "supabase" / "tests").glob("smoke-test-v*.md")
             if (m := re.fullmatch(r"smoke-test-v(\d+)\.(\d+)\.md", p.name))]
    if not found:
        return "v1.0"
    major, minor = max(found)
    return f"v{major}.{minor + 1}"


def _apply_result(ctx, plans, outcomes, snapshot_name, notes, findings, online: set[str] = frozenset(),
                  ahead=None, expanded: list[str] = ()) -> OpResult:
    by_file = {o.migration.filename: o for o in outcomes}
    rows = []
    for p in plans:
        o = by_file.get(p.migration.filename)
        status = o.status if o else "not run"
        tx = "online" if p.migration.version in online else ("yes" if p.transactional else "no")
        rows.append([p.migration.filename, len(p.chunks), tx, status, round(o.duration_ms, 1) if o else None])
    table = Table(title="Migrations", columns=["migration", "statements", "transaction", "status", "ms"], rows=rows)
    ok = [o for o in outcomes if o.status == "success"]
    failed = next((o for o in outcomes if o.status != "success"), None)
    lint = [Finding(rule=f.rule, severity=f.severity, message=f.message, location=f"{f.filename}:{f.line}",
                    fix=f.safe_alternative or None) for f in findings]
    facts = {"applied": len(ok), "target": ctx.target.display_url, "snapshot": snapshot_name or "none"}
    data = {"applied": [o.migration.filename for o in ok], "snapshot": snapshot_name,
            "log": str(LOG_PATH), "survey": ahead.data() if ahead else None}
    if failed is None:
        # an expanded type change keeps its old column and sync trigger until the contract: say so, with the way
        expanded = [f for f in expanded if f in by_file and by_file[f].status == "success"]
        if expanded:
            notes = notes + [f"{', '.join(expanded)}: expanded (contract pending): the old column and its sync "
                             "trigger stay until *apply --complete (typed COMPLETE) drops them; until then *rollback "
                             "FILE swaps back in one short transaction"]
        return OpResult(operation="db-apply-migration",
                        summary=f"Applied {len(ok)} migration(s)" + (f"; snapshot {snapshot_name}" if snapshot_name
                                                                      else ""),
                        facts=facts, tables=[table], findings=lint, notes=notes,
                        artifacts=[str(LOG_PATH), *(f"supabase/migrations/{o.migration.filename}" for o in ok)],
                        next_steps=[f"*smoke-test {next_smoke_version(ctx.project)}", "*migrations"]
                        + ([f"*apply --complete {f}" for f in expanded] if expanded else []), data=data)
    where = f"{failed.migration.filename}:{failed.line}" if failed.line else failed.migration.filename
    first_line = (failed.error or "").splitlines()[0] if failed.error else "failed"
    plan = next(p for p in plans if p.migration is failed.migration)
    if plan.migration.version in online:
        state = f"{failed.migration.filename} runs online: {failed.error}"
        if failed.status == "interrupted":
            data.update({"stopped": failed.migration.filename})
            return OpResult(operation="db-apply-migration", status="warning",
                            summary=f"Stopped {failed.migration.filename} at a batch boundary (Ctrl-C)",
                            facts=facts, tables=[table], findings=lint,
                            notes=notes + [state] + ([f"applied before: {', '.join(o.migration.filename for o in ok)}"]
                                                     if ok else []),
                            artifacts=[str(LOG_PATH)], next_steps=["*apply (continues where it stopped)",
                                                                   "*migrations"], data=data, exit_code=130)
    elif plan.transactional:
        state = (f"{failed.migration.filename} was rolled back: the database is unchanged for it and it has no "
                 "history row")
    else:
        done = ", ".join(f"line {n}" for n in failed.applied) or "none"
        state = (f"{failed.migration.filename} runs outside a transaction: statements already applied: {done}; "
                 "it has no history row. Make the remaining statements re-runnable (IF NOT EXISTS) before *apply, "
                 "or finish by hand and *repair it applied")
    notes = notes + [state] + [f"seen before running: {b.where} {b.lock} on {b.table} {b.verdict}"
                               for b in (ahead.blockers if ahead else [])
                               if b.where.startswith(f"{failed.migration.filename}:")]
    if ok:
        notes.append(f"applied and committed before the failure: {', '.join(o.migration.filename for o in ok)}")
    error = Finding(rule="apply.statement_failed", severity="error", message=failed.error or "failed",
                    location=where)
    next_steps = ["fix the file, then *apply", "*dry-run " + failed.migration.filename]
    if plan.migration.version in online:
        next_steps = ["*apply (continues from the first unfinished online step)", "*migrations"]
    elif failed.connection_lost:
        next_steps = ["*apply (run it again)"]
    if snapshot_name:
        next_steps.append(f"*rollback {snapshot_name}")
    data.update({"failed": failed.migration.filename, "line": failed.line, "error": failed.error,
                 "applied_statements": failed.applied, "connection_lost": failed.connection_lost})
    return OpResult(operation="db-apply-migration", status="failed",
                    summary=f"Migration failed at {where}: {first_line}", facts=facts, tables=[table],
                    findings=[error] + lint, notes=notes, artifacts=[str(LOG_PATH)], next_steps=next_steps,
                    data=data)


# --- *migrations -----------------------------------------------------------------------------------------------
class MigrationsInput(BaseModel):
    pass


@operation("db-migrations", risk="read")
def migrations(inputs: MigrationsInput, ctx) -> OpResult:
    """Local files vs applied history (never creates the history table)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import (
        MigrationFileError,
        cli_split,
        find_pending,
        read_applied,
        read_migration_text,
        same_statements,
        version_time,
    )

    project: Path = ctx.project
    local, warnings = _local(project)
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online.hook import in_progress

    with ctx.connect(ctx.target.direct_url or ctx.url, autocommit=True) as conn:  # a read: a pooler is fine
        rows = read_applied(conn)
        online = in_progress(conn)  # files whose online apply has started and not finished
    plan = find_pending(local, [r.version for r in rows])
    stored = {r.version: r for r in rows}
    by_version = {m.version: m for m in local}
    out_of_order = {m.version for m in plan.out_of_order}
    table_rows = []
    counts: dict[str, int] = {}
    for version in sorted(set(by_version) | set(stored)):
        mig, row = by_version.get(version), stored.get(version)
        if mig and row:
            try:
                text = read_migration_text(mig.path)
                same = same_statements(row.statements, [c.text for c in cli_split(text, strict=False)], text)
            except MigrationFileError:
                same = False
            status = "applied" if same is not False else "drift"
            if status == "applied" and online.get(version, "").startswith("expanded"):
                status = online[version]  # applied; the old column waits for *apply --complete
        elif mig and version in online:
            status = online[version]
        elif mig:
            status = "out of order" if version in out_of_order else "pending"
        else:
            status = "missing locally"
        key = "in progress" if status.startswith("in progress") else \
            "expanded (contract pending)" if status.startswith("expanded") else \
            "rollback unfinished" if status.startswith("rollback unfinished") else status
        counts[key] = counts.get(key, 0) + 1
        table_rows.append([version if mig else "", version if row else "", version_time(version),
                           mig.name if mig else (row.name if row else ""), status])
    findings = []
    for version in plan.missing_local:
        findings.append(Finding(rule="history.missing_local", severity="warning",
                                message=f"version {version} is in the history but has no local file",
                                fix=f"*repair {version} reverted, or restore the file"))
    for r in table_rows:
        if r[4] == "drift":
            findings.append(Finding(rule="history.drift", severity="warning",
                                    message=f"{r[0]}_{r[3]}.sql changed since it was applied",
                                    fix=f"restore it, or *repair {r[0]} applied"))
        if r[4] == "out of order":
            findings.append(Finding(rule="history.out_of_order", severity="warning",
                                    message=f"{r[0]}_{r[3]}.sql is older than the newest applied migration",
                                    fix="*apply --include-all"))
    pending = counts.get("pending", 0) + counts.get("out of order", 0) + counts.get("in progress", 0) + \
        counts.get("rollback unfinished", 0)
    summary = (f"{len(local)} local, {len(rows)} applied, {pending} pending"
               + (f", {len(findings)} problem(s)" if findings else ""))
    next_steps = ["*apply"] if pending else []
    if not table_rows:  # nothing anywhere: the way to a first migration, not an empty line
        next_steps = ["*migration-new NAME"] if (ctx.project / "supabase").is_dir() else ["*bootstrap"]
    if counts.get("expanded (contract pending)"):
        next_steps.append("*apply --complete (drops the old columns of expanded type changes)")
    unfinished = [r for r in table_rows if r[4].startswith("rollback unfinished")]
    if unfinished:
        next_steps.append(f"*rollback {unfinished[0][0]}_{unfinished[0][3]}.sql (validates the foreign keys its "
                          "interrupted rollback left NOT VALID)")
    return OpResult(operation="db-migrations", status="warning" if findings else "ok", summary=summary,
                    facts={k: v for k, v in sorted(counts.items())},
                    tables=[Table(title="Migrations", columns=["local", "remote", "time (UTC)", "name", "status"],
                                  rows=table_rows)],
                    findings=findings, notes=warnings, next_steps=next_steps,
                    data={"migrations": [{"local": r[0], "remote": r[1], "time": r[2], "name": r[3],
                                          "status": r[4]} for r in table_rows]})


# --- *migration-new --------------------------------------------------------------------------------------------
class MigrationNewInput(BaseModel):
    name: str
    sql: str | None = None


@operation("db-migration-new", risk="write")
def migration_new(inputs: MigrationNewInput, ctx) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.supabase_cli import find_cli
    from sage_agent.ops.migrations.history import migrations_dir

    name = inputs.name.strip()
    if not _NAME.match(name):
        raise NeedsInput("name", "Migration name", reason=f"invalid migration name {name!r}: use 1-100 lowercase "
                         "letters, digits and underscores only (e.g. add_todos)", hint="e.g. add_todos")
    project: Path = ctx.project
    _require_supabase(project)
    folder = migrations_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in folder.iterdir()}
    cli = find_cli(project)
    method = "files"
    path: Path | None = None
    notes: list[str] = []
    if cli is not None:
        try:
            cli.run(["migration", "new", name, "--workdir", str(project)], cwd=project, timeout=60)
            created = sorted(p for p in folder.iterdir() if p.name not in before and p.name.endswith(f"_{name}.sql"))
            if created:
                path, method = created[-1], f"supabase CLI {cli.version}"
        except Exception as exc:  # noqa: BLE001 - fall back to writing the file ourselves
            notes.append(f"supabase migration new failed ({exc}); wrote the file directly")
    if path is None:
        stamp = datetime.now(timezone.utc)
        while True:
            version = stamp.strftime("%Y%m%d%H%M%S")
            if not any(p.startswith(f"{version}_") for p in before):
                break
            stamp = stamp.fromtimestamp(stamp.timestamp() + 1, timezone.utc)
        path = folder / f"{version}_{name}.sql"
        path.write_text("", encoding="utf-8")
    if inputs.sql:
        path.write_text(_format_sql(inputs.sql), encoding="utf-8")
    rel = path.relative_to(project)
    version = path.name.split("_", 1)[0]
    # a name another file already has no longer names one file (`*dry-run add_todos` would match both): the version
    namesakes = sorted(p for p in before if p.endswith(f"_{name}.sql") and p[:1].isdigit())
    if namesakes:
        notes.append(f"{', '.join(namesakes)} is also named {name}: give this one by its version ({version})")
    return OpResult(operation="db-migration-new", summary=f"Created {rel}",
                    facts={"version": version, "file": str(rel), "method": method,
                           "content": "your SQL" if inputs.sql else "empty: write the migration"},
                    notes=notes, artifacts=[str(rel)],
                    next_steps=[f"*dry-run {version if namesakes else name}", "*apply"],
                    data={"path": str(rel), "version": version})


def _format_sql(text: str) -> str:
    """SQL given on one line (`--sql '...; ...'`) gets one statement per line, so reports name useful lines."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import MigrationFileError, cli_split

    if "\n" in text.strip():
        return text.strip() + "\n"
    try:
        chunks = cli_split(text, strict=True)
    except MigrationFileError:
        return text.strip() + "\n"
    return "".join(c.text + ";\n" for c in chunks)


# --- *repair ---------------------------------------------------------------------------------------------------
class RepairInput(BaseModel):
    version: str
    status: str


@operation("db-repair", risk="write")
def repair(inputs: RepairInput, ctx) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.history import (
        MigrationFileError,
        delete_version,
        ensure_history_table,
        read_applied,
        upsert_version,
    )

    version = inputs.version.strip()
    if not re.fullmatch(r"[0-9]+", version):
        raise OpError(f"invalid version {version!r}: a migration version is digits only (e.g. 20240101120000)",
                      exit_code=2)
    project: Path = ctx.project
    local, _ = _local(project)
    mig = next((m for m in local if m.version == version), None)
    conn = ctx.connect(ctx.migration_url, autocommit=True)
    ctx.require_primary(conn)
    before = next((r for r in read_applied(conn) if r.version == version), None)
    if inputs.status == "applied":
        if mig is None:
            known = ", ".join(m.version for m in local[-5:]) or "none"
            raise OpError(f"no local migration file has version {version}",
                          f"local versions (latest): {known}; *migrations lists them", exit_code=1)
        try:
            statements = mig.statements()
        except MigrationFileError as exc:
            raise _file_error(exc) from None
        plan = (f"INSERT INTO supabase_migrations.schema_migrations(version, name, statements)\n"
                f"VALUES ('{version}', '{mig.name}', <{len(statements)} statements from {mig.filename}>)\n"
                "ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, statements = EXCLUDED.statements;")
        ctx.confirm(f"Mark {mig.filename} as applied (without running it) on {ctx.target.display_url}?", plan=plan)
        ensure_history_table(conn)
        with conn.transaction():
            upsert_version(conn, version, mig.name, statements)
        summary = f"Marked {version} as applied" + (" (row updated)" if before else "")
    else:
        if before is None:
            return OpResult(operation="db-repair", summary=f"Version {version} is not in the history: nothing to do",
                            next_steps=["*migrations"])
        plan = f"DELETE FROM supabase_migrations.schema_migrations WHERE version = '{version}';"
        ctx.confirm(f"Mark {version} as reverted (delete its history row; the schema is not changed) on "
                    f"{ctx.target.display_url}?", plan=plan)
        with conn.transaction():
            delete_version(conn, version)
        summary = f"Marked {version} as reverted (history row deleted)"
    after = next((r for r in read_applied(conn) if r.version == version), None)
    describe = lambda r: "absent" if r is None else f"applied ({r.name}, {len(r.statements or [])} statements)"  # noqa
    return OpResult(operation="db-repair", summary=summary,
                    tables=[Table(title="History row", columns=["version", "before", "after"],
                                  rows=[[version, describe(before), describe(after)]])],
                    notes=["The schema itself was not changed."], next_steps=["*migrations"],
                    data={"version": version, "status": inputs.status})
