"""Area migrations-snapshots: *snapshot, *rollback, *smoke-test, *seed.

The work lives in helper modules (sage_agent/ops/snapshots/store.py, sage_agent/ops/lifecycle/*); this module
holds the operations the catalog binds to.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table, human_bytes

REVIEW_DIFFERENCES = "Review the differences above before re-applying migrations"


class SnapshotInput(BaseModel):
    name: str | None = None
    mode: str = "schema-only"
    prune: bool = False
    keep: int | None = None


def _prune_result(inputs: SnapshotInput, ctx) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.retention import prune_snapshots

    if inputs.keep is not None and inputs.keep < 0:
        raise OpError(f"keep {inputs.keep}: give 0 (keep all) or more", exit_code=2)
    report = prune_snapshots(ctx.project, inputs.keep)
    age = f", older than {report.max_age_days:g} days" if report.max_age_days else ""
    rule = f"keep the newest {report.keep}" if report.keep else "keep all"
    return OpResult(
        operation="db-snapshot",
        summary=f"Pruned {len(report.removed)} automatic snapshot(s) ({rule}{age}); {report.kept_auto} kept",
        facts={"removed": len(report.removed), "kept_automatic": report.kept_auto, "keep": report.keep,
               "max_age_days": report.max_age_days or "none", "leftovers_removed": len(report.leftovers)},
        tables=[Table(title="Removed", columns=["snapshot"], rows=[[n] for n in report.removed])]
        if report.removed else [],
        notes=["only automatic snapshots (before_*) are pruned; snapshots you named are kept",
               "settings: SAGE_SNAPSHOT_KEEP (default 30), SAGE_SNAPSHOT_MAX_AGE_DAYS (default: no limit)"]
              + ([f"removed unfinished files: {', '.join(report.leftovers)}"] if report.leftovers else []),
        data={"removed": report.removed, "leftovers": report.leftovers},
        next_steps=["*rollback NAME"])


@operation("db-snapshot", risk="read")
def snapshot(inputs: SnapshotInput, ctx) -> OpResult:
    """pg_dump of the user schemas + supabase_migrations to supabase/snapshots/NAME.sql and NAME.json."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import take_snapshot, validate_name

    if inputs.prune:
        return _prune_result(inputs, ctx)
    if inputs.name:
        validate_name(inputs.name, key="name")
    meta = take_snapshot(ctx, inputs.name or None, with_data=inputs.mode == "with-data")
    rel_sql = f"supabase/snapshots/{meta.name}.sql"
    rel_json = f"supabase/snapshots/{meta.name}.json"
    rows = [[t, meta.row_counts.get(t, 0)] for t in meta.tables]
    history_rows = {k: v for k, v in meta.row_counts.items() if k not in meta.tables}
    notes = ["supabase/snapshots/ is git-ignored: snapshots stay on this machine"]
    if not meta.history_included:
        notes.append("no supabase_migrations schema yet: the snapshot holds no migration history")
    if meta.type == "schema-only":
        notes.append("schema-only: *rollback to it runs the reverse schema change and keeps the rows of the tables "
                     "that stay (*apply's own before_<file> snapshots also keep what each file drops); "
                     "*rollback --replace would empty the user tables")
    return OpResult(
        operation="db-snapshot",
        summary=f"Snapshot {meta.name} created ({meta.type}, {len(meta.tables)} "
                f"table{'' if len(meta.tables) == 1 else 's'}, {human_bytes(meta.size_bytes)})",
        facts={"name": meta.name, "type": meta.type, "file": rel_sql, "metadata": rel_json,
               "schemas": ", ".join(meta.schemas) or "-",
               "migration_history": "included" if meta.history_included else "absent",
               "tables": len(meta.tables), "rows": sum(meta.row_counts.get(t, 0) for t in meta.tables),
               "history_rows": sum(history_rows.values()),
               "size_bytes": meta.size_bytes, "sha256": meta.sha256, "server_version": meta.server_version,
               "db_url": meta.db_url},
        tables=[Table(title="Tables", columns=["table", "rows"], rows=rows)] if rows else [],
        notes=notes,
        artifacts=[rel_sql, rel_json],
        next_steps=[f"*rollback {meta.name}", "*dry-run FILE", "*apply"],
        data={"snapshot": meta.to_json()},
    )


REPLACE_WORD = "REPLACE"  # --replace has its own typed word: ROLLBACK alone never drops whole schemas


class RollbackInput(BaseModel):
    snapshot: str
    replace: bool = False


def _safety_name(project, target: str) -> str:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import snapshot_dir

    base = f"before_rollback_to_{target}"[:100]
    folder = snapshot_dir(project)
    if not (folder / f"{base}.sql").exists() and not (folder / f"{base}.json").exists():
        return base
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    name = f"{base[:100 - len(stamp) - 1]}_{stamp}"
    n = 2
    while (folder / f"{name}.sql").exists():
        name = f"{base[:100 - len(stamp) - 4]}_{stamp}_{n}"
        n += 1
    return name


def _check_snapshot(ctx, meta, replace: bool) -> None:
    """Refuse, before anything changes, a snapshot that is damaged, of another project or database, of another
    PostgreSQL major (the reverse diff compares dumps of one major), or newer than the database."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.keep import verify_files
    from sage_agent.ops.snapshots.store import database_id, project_id, sha256_file

    replace_hint = "" if replace else f", or replace the schemas whole with *rollback {meta.name} --replace"
    if sha256_file(meta.sql_path) != meta.sha256:
        raise OpError(f"snapshot {meta.name} is damaged: supabase/snapshots/{meta.sql_path.name} does not match the "
                      "sha256 in its metadata (edited after it was taken); nothing was changed",
                      "use another snapshot; this file cannot be trusted")
    problems = verify_files(meta.sql_path.parent, meta.kept)
    if problems:
        raise OpError(f"snapshot {meta.name} is damaged: its kept data {'; '.join(problems)}; nothing was changed",
                      "use another snapshot; the kept rows cannot be trusted")
    here = project_id(ctx.project)
    if meta.project_id and meta.project_id != here:
        raise OpError(f"snapshot {meta.name} belongs to another project ({meta.project_id}; this project is {here}); "
                      "nothing was changed", "roll back with a snapshot taken in this project (*snapshot lists them)")
    server = ctx.server
    if not replace and meta.server_major and meta.server_major != server.major:
        raise OpError(f"snapshot {meta.name} was taken on PostgreSQL {meta.server_major} ({meta.server_version}); this "
                      f"database runs {server.major} ({server.version}): a reverse schema change cannot be proven "
                      "across majors; nothing was changed",
                      f"take snapshots on this server{replace_hint}")
    with ctx.connect(ctx.migration_url) as conn:
        db_now = database_id(conn)
        history = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
        applied = {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")} \
            if history else set()
        conn.rollback()
    if not replace and meta.database_id and db_now and meta.database_id != db_now:
        raise OpError(f"snapshot {meta.name} was taken of another database ({meta.database_id.split('/')[-1]} on "
                      f"another server or cluster); nothing was changed",
                      f"roll back the database it was taken of{replace_hint}")
    if not replace:
        _refuse_online_states(ctx, meta, applied)
    newer = sorted(set(meta.history_versions or []) - applied)
    if newer and not replace:  # --replace may go forward (e.g. back to a safety snapshot): it replaces whole
        raise OpError(f"snapshot {meta.name} is newer than the database: it has migration(s) {', '.join(newer[:5])} "
                      "applied that this database has not; a rollback only goes back; nothing was changed",
                      f"*apply moves the database forward; *rollback {meta.name} --replace replaces the schemas "
                      "with it whole")


@operation("db-rollback", risk="destructive")
def rollback(inputs: RollbackInput, ctx) -> OpResult:
    """Reverse schema change proven on a shadow copy, kept data restored, typed ROLLBACK; --replace: old mode."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import load_snapshot_meta

    ctx.require_primary(session=True)  # a session URL (never a transaction pooler) on a primary, before anything
    online = _online_change(ctx, inputs.snapshot)
    if online is not None:
        return online
    meta = load_snapshot_meta(ctx.project, inputs.snapshot, key="snapshot")
    _check_snapshot(ctx, meta, inputs.replace)
    if inputs.replace:
        return _rollback_replace(meta, ctx)
    return _rollback_reverse(meta, ctx)


def _refuse_online_states(ctx, meta, applied: set[str]) -> None:
    """A reverse rollback that would undo an expanded type change would leave its sync trigger, function and state
    row behind: the online change is undone first with `*rollback FILE` (instant, keeps every row)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online import state as st

    with ctx.connect(ctx.migration_url, autocommit=True) as conn:
        states = st.read_all(conn)
    keep = set(meta.history_versions or [])
    in_way = [s for s in states.values() if s.status == "expanded" and s.version in applied and s.version not in keep]
    if in_way:
        names = ", ".join(f"{s.version}_{s.name}.sql ({s.describe()})" for s in in_way)
        raise OpError(f"online change(s) in the way of a rollback to {meta.name}: {names}; nothing was changed",
                      f"undo them first with *rollback {in_way[0].version}_{in_way[0].name}.sql (instant, keeps every row; "
                      f"or *apply --complete to make them final), then *rollback {meta.name}", exit_code=1)


def _online_change(ctx, name: str) -> OpResult | None:
    """`*rollback FILE` of an online migration (expanded, or stopped half way): undone without a snapshot."""
    if name.startswith("before_") or not name[:1].isdigit():
        return None
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.online.contract import find, rollback_online

    conn = ctx.connect(ctx.migration_url, autocommit=True)
    try:
        state = find(conn, name)
        return None if state is None else rollback_online(ctx, state, conn)
    finally:
        conn.close()


def _rollback_reverse(meta, ctx) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.locking import migration_lock
    from sage_agent.ops.snapshots.reverse import execute, plan_reverse, verify
    from sage_agent.ops.snapshots.rollback import log_rollback
    from sage_agent.ops.snapshots.store import take_snapshot

    plan = plan_reverse(ctx, meta)
    if not plan.items:  # the proof found nothing to undo: no typed word, no safety snapshot, no transaction
        return OpResult(
            operation="db-rollback", summary=f"Already at {meta.name}: the schema and migration history equal the "
            "snapshot's; nothing to roll back, nothing was changed",
            facts={"snapshot": meta.name, "taken": meta.created_at, "steps": 0, "rows_kept": plan.rows_kept,
                   "rows_lost": 0},
            next_steps=["*migrations"],
            data={"plan": plan.text(), "problems": [], "mode": "reverse", "rows_kept": plan.rows_kept, "rows_lost": 0,
                  "undone": [], "steps": 0})
    ctx.confirm_destructive(
        f"Roll back {ctx.target.display_url} to snapshot {meta.name} ({meta.created_at}) with the proven reverse "
        f"change ({len(plan.items)} steps, one transaction): {plan.rows_kept} rows kept, {plan.rows_lost} rows lost"
        + (f", values of {', '.join(plan.values_lost)} lost" if plan.values_lost else "")
        + (f"; {len(plan.undone)} migration(s) back to pending" if plan.undone else "") + ".",
        plan=plan.text())
    with migration_lock(ctx, "*rollback"):
        safety = take_snapshot(ctx, _safety_name(ctx.project, meta.name), keep=plan.destroys)
        ctx.say(f"safety snapshot: supabase/snapshots/{safety.name}.sql")
        try:
            execute(ctx, plan)
        except Exception as exc:
            log_rollback(ctx.project, {"snapshot": meta.name, "mode": "reverse", "safety_snapshot": safety.name,
                                       "db_url": ctx.target.display_url, "status": "failed",
                                       "error": str(getattr(exc, "message", exc))[:500], "database_unchanged": True})
            raise
    rows, problems = verify(ctx, plan)
    log_path = log_rollback(ctx.project, {"snapshot": meta.name, "mode": "reverse", "safety_snapshot": safety.name,
                                          "db_url": ctx.target.display_url,
                                          "status": "verified" if not problems else "mismatch", "problems": problems,
                                          "rows_kept": plan.rows_kept, "rows_lost": plan.rows_lost,
                                          "undone": plan.undone})
    findings = [Finding(rule="rollback.verify", severity="error", message=p,
                        fix=f"*rollback {safety.name} --replace puts the state before this rollback back") for p in problems]
    summary = (f"Rolled back to {meta.name}: {plan.rows_kept} rows kept, {plan.rows_lost} rows lost, schema equals the "
               "snapshot's" if not problems else
               f"Rolled back to {meta.name}, but verification found {len(problems)} difference(s)")
    return OpResult(
        operation="db-rollback", status="failed" if problems else "ok", summary=summary,
        facts={"snapshot": meta.name, "mode": "reverse change (proven)", "taken": meta.created_at,
               "safety_snapshot": safety.name, "steps": len(plan.items), "rows_kept": plan.rows_kept,
               "rows_lost": plan.rows_lost, "values_lost": ", ".join(plan.values_lost) or "none",
               "migrations_pending_again": ", ".join(_with_names(ctx.project, plan.undone)) or "none",
               "proof": "pg_dump --schema-only of the shadow copy after the plan equals the snapshot's"},
        tables=[Table(title="Rows per table", columns=["table", "now", "after", "kept", "lost", "how"],
                      rows=[[r.table, "-" if r.now is None else r.now, "-" if r.after is None else r.after, r.kept,
                             r.lost, r.how] for r in plan.rows])]
        + ([Table(title="Verification (expected vs now)", columns=["table", "expected", "now", "check"], rows=rows)]
           if rows else []),
        findings=findings,
        notes=([REVIEW_DIFFERENCES] if problems else [])  # a deliberate, verified rollback went right
        + ([f"migrations pending again: {', '.join(_with_names(ctx.project, plan.undone))} (*apply re-applies them)"]
           if plan.undone else []),
        artifacts=[f"supabase/snapshots/{safety.name}.sql", str(log_path.relative_to(ctx.project))],
        next_steps=["*migrations", "*smoke-test VERSION"],
        data={"plan": plan.text(), "problems": problems, "safety_snapshot": safety.name, "mode": "reverse",
              "rows": [{"table": r.table, "now": r.now, "after": r.after, "kept": r.kept, "lost": r.lost,
                        "how": r.how} for r in plan.rows],
              "rows_kept": plan.rows_kept, "rows_lost": plan.rows_lost, "undone": plan.undone},
    )


def _with_names(project: Path, versions: list[str]) -> list[str]:
    """Versions as the person knows them: the local file's stem (20250101000002_add_tags) where one exists."""
    folder = Path(project) / "supabase" / "migrations"
    out = []
    for version in versions:
        files = sorted(folder.glob(f"{version}_*.sql")) if folder.is_dir() else []
        out.append(files[0].stem if files else version)
    return out


def _rollback_replace(meta, ctx) -> OpResult:
    """The whole-schema replacement (--replace): drop the schemas and replay the snapshot."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.rollback import (
        RestoreFailed,
        build_plan,
        log_rollback,
        restore,
        state_fingerprint,
        verify,
    )
    from sage_agent.ops.snapshots.store import take_snapshot

    plan = build_plan(ctx, meta)
    lost_objects = len(plan.diff["added"])
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.snapshots.dumpdiff import describe as _describe
    lost_names = [_describe(k) for k in plan.diff["added"]]
    lost_hint = (f" ({', '.join(lost_names[:5])}{', ...' if len(lost_names) > 5 else ''})" if lost_names else "")
    ctx.confirm(
        f"REPLACE schemas {', '.join(plan.drop_schemas)} of {ctx.target.display_url} with snapshot {meta.name} "
        f"({meta.type}, {meta.created_at}): {lost_objects} objects added since{lost_hint}, "
        f"{len(plan.diff['changed'])} changed objects and {plan.rows_lost} rows will be lost.",
        plan=plan.text(), word=REPLACE_WORD)
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.locking import migration_lock

    with migration_lock(ctx, "*rollback"):
        safety = take_snapshot(ctx, _safety_name(ctx.project, meta.name), with_data=True)
        ctx.say(f"safety snapshot: supabase/snapshots/{safety.name}.sql")
        try:
            restore(ctx, plan)
            failure = None
        except RestoreFailed as exc:
            failure = exc
    base_entry = {"snapshot": meta.name, "type": meta.type, "safety_snapshot": safety.name,
                  "db_url": ctx.target.display_url, "schemas_dropped": plan.drop_schemas}
    if failure is not None:
        exc = failure
        try:
            tables_after, counts_after = state_fingerprint(ctx)
            unchanged = counts_after == plan.current_counts
            check = ("checked: tables and row counts are as before" if unchanged
                     else "WARNING: tables or row counts differ from before; inspect the database")
        except Exception as check_exc:  # noqa: BLE001 - the server may be down
            unchanged = None
            check = f"could not re-check the database ({type(check_exc).__name__})"
        log_rollback(ctx.project, {**base_entry, "status": "failed", "error": str(exc)[:500],
                                   "database_unchanged": unchanged})
        raise OpError(
            f"rollback to {meta.name} failed and its transaction was rolled back: the database is unchanged "
            f"({check}). Cause: {exc}",
            f"fix the cause and run *rollback {meta.name} again (the safety snapshot {safety.name} is kept)") from None
    rows, problems = verify(ctx, plan)
    status = "failed" if problems else "ok"
    log_path = log_rollback(ctx.project, {**base_entry, "status": "verified" if not problems else "mismatch",
                                          "problems": problems, "objects_lost": lost_objects,
                                          "rows_lost": plan.rows_lost})
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.snapshots.dumpdiff import describe
    findings = []
    for p in problems:
        findings.append(Finding(rule="rollback.verify", severity="error", message=p,
                                fix=f"restore the safety snapshot with *rollback {safety.name}"))
    summary = (f"Rolled back to {meta.name}: {len(meta.tables)} tables, counts verified" if not problems
               else f"Rolled back to {meta.name}, but verification found {len(problems)} difference(s)")
    return OpResult(
        operation="db-rollback", status=status, summary=summary,
        facts={"snapshot": meta.name, "mode": "replace", "type": meta.type, "taken": meta.created_at,
               "safety_snapshot": safety.name, "schemas_replaced": ", ".join(plan.drop_schemas),
               "objects_lost": lost_objects, "objects_reverted": len(plan.diff["changed"]),
               "objects_restored": len(plan.diff["removed"]), "rows_lost": plan.rows_lost,
               "migration_history": "restored" if meta.history_included else "removed (absent in the snapshot)"},
        tables=[Table(title="Verification (expected from the snapshot vs now)",
                      columns=["table", "expected", "now", "check"], rows=rows)]
        + ([Table(title="Objects lost (added since the snapshot)", columns=["object"],
                  rows=[[describe(k)] for k in plan.diff["added"]])] if plan.diff["added"] else []),
        findings=findings,
        notes=([REVIEW_DIFFERENCES] if problems else [])
        + [f"recreated outside the snapshot's schemas: {', '.join(plan.recreate_desc)}" if plan.recreate_desc
           else "no dependent objects outside the snapshot's schemas"],
        artifacts=[f"supabase/snapshots/{safety.name}.sql", str(log_path.relative_to(ctx.project))],
        next_steps=["*smoke-test VERSION", "*migrations"],
        data={"plan": plan.text(), "problems": problems, "safety_snapshot": safety.name},
    )


class SmokeTestInput(BaseModel):
    version: str
    suite: str = "standard"


@operation("db-smoke-test", risk="read")
def smoke_test(inputs: SmokeTestInput, ctx) -> OpResult:
    """Run the suite's checks, save supabase/tests/smoke-test-VERSION.md; a failing check -> status failed."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.smoke import ICONS, overall, report_markdown, run_smoke_checks
    from sage_agent.ops.snapshots.store import validate_name

    version = validate_name(inputs.version, "version")
    started = time.perf_counter()
    with ctx.connect(autocommit=True) as conn:
        checks = run_smoke_checks(conn, inputs.suite)
    seconds = time.perf_counter() - started
    status = overall(checks)
    markdown = report_markdown(version, inputs.suite, ctx.target.env, ctx.target.display_url, checks, seconds)
    folder = ctx.project / "supabase" / "tests"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"smoke-test-{version}.md"
    path.write_text(markdown, encoding="utf-8")
    rel = f"supabase/tests/smoke-test-{version}.md"
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    findings = [Finding(rule=f"smoke.{c.name.replace(' ', '_')}", severity="error" if c.status == "fail" else "warning",
                        message=c.detail, location=", ".join(c.items[:5]) or None)
                for c in failed + warned]
    passed = sum(1 for c in checks if c.status == "pass")
    summary = {"ok": f"Smoke test {version} PASSED ({passed}/{len(checks)} checks, {inputs.suite})",
               "warning": f"Smoke test {version} passed with {len(warned)} warning(s) ({inputs.suite})",
               "failed": f"Smoke test {version} FAILED: {len(failed)} of {len(checks)} checks failed "
                         f"({', '.join(c.name for c in failed)})"}[status]
    return OpResult(
        operation="db-smoke-test", status=status, summary=summary,
        facts={"version": version, "suite": inputs.suite, "environment": ctx.target.env, "checks": len(checks),
               "passed": passed, "warnings": len(warned), "failed": len(failed),
               "seconds": round(seconds, 2), "report": rel},
        tables=[Table(title="Checks", columns=["", "check", "suite", "detail"],
                      rows=[[ICONS.get(c.status, c.status), c.name, c.suite, c.detail] for c in checks])],
        findings=findings, artifacts=[rel], markdown=markdown,
        next_steps=(["fix the failing checks, then *smoke-test " + version] if failed
                    else [f"*snapshot after_{version}"]),
        data={"checks": [{"name": c.name, "status": c.status, "suite": c.suite, "detail": c.detail,
                          "items": c.items} for c in checks]},
    )


class SeedInput(BaseModel):
    file: str | None = None
    mode: str = "append-only"
    snapshot: bool = True


@operation("db-seed", risk="destructive")
def seed(inputs: SeedInput, ctx) -> OpResult:
    """Parse, plan, confirm, snapshot, then every seed statement + the seed_files rows in ONE transaction."""
    # lazy: psycopg loads on the first database call
    import psycopg
    from psycopg import sql

    from sage_agent.ops.snapshots.seed import (
        CREATE_SEED_TABLE,
        UPSERT_SEED_FILE,
        error_line,
        parse_seed_files,
        resolve_seed_files,
        resolve_tables,
        truncate_closure,
        write_targets,
    )
    from sage_agent.ops.snapshots.store import count_rows, take_snapshot

    truncate = inputs.mode == "truncate-first"
    paths, notes = resolve_seed_files(ctx.project, inputs.file)
    ctx.require_primary(session=True)  # a session URL (never a transaction pooler) on a primary, before anything
    server = ctx.server
    files = parse_seed_files(ctx.project, paths, server.major)
    n_statements = sum(len(f.statements) for f in files)
    if n_statements == 0:
        raise OpError(f"nothing to load: {', '.join(f.rel for f in files)} has no SQL statements",
                      "add INSERT or COPY statements to the seed file", exit_code=2)
    targets: list[str] = []
    for f in files:
        for stmt in f.statements:
            targets += [t for t in write_targets(stmt) if t not in targets]
    with ctx.connect(ctx.migration_url) as conn:
        tables, unknown = resolve_tables(conn, targets)
        emptied = truncate_closure(conn, tables) if truncate else []
        previous = {}
        if conn.execute("select to_regclass('supabase_migrations.seed_files') is not null").fetchone()[0]:
            previous = dict(conn.execute("select path, hash from supabase_migrations.seed_files").fetchall())
        conn.rollback()
    names = [f"{s}.{t}" for s, t in tables]
    plan = [f"Load {len(files)} seed file(s), {n_statements} statements, in ONE transaction into "
            f"{ctx.target.display_url}:"]
    plan += [f"  {f.rel} ({len(f.statements)} statements, sha256 {f.hash[:12]})" for f in files]
    plan.append(f"Tables written: {', '.join(names) or '-'}"
                + (f" (not existing yet: {', '.join(unknown)})" if unknown else ""))
    if truncate:
        extra = [f"{s}.{t}" for s, t in emptied if (s, t) not in tables]
        plan.append("First: TRUNCATE " + ", ".join(f"{s}.{t}" for s, t in emptied) + " RESTART IDENTITY;")
        if extra:
            plan.append(f"  (also emptied because they reference those tables: {', '.join(extra)})")
    for f in files:
        if previous.get(f.rel) == f.hash:
            notes.append(f"{f.rel} was seeded before with the same content (same hash)")
    plan.append("Then: record the seed hashes in supabase_migrations.seed_files")
    plan_text = "\n".join(plan)
    if truncate:
        ctx.confirm_destructive(f"Empty {len(emptied)} table(s) and load the seed into {ctx.target.display_url}.",
                                plan=plan_text)
    else:
        ctx.confirm(f"Load the seed into {ctx.target.display_url}?", plan=plan_text)

    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.locking import migration_lock

    with migration_lock(ctx, "*seed"):  # not in the middle of an *apply
        snapshot_name = None
        if inputs.snapshot:
            stem = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in files[0].path.stem)[:40] or "seed"
            snapshot_name = take_snapshot(ctx, None, with_data=True, prefix=f"before_seed_{stem}").name
            # lazy: psycopg loads on the first database call
            from sage_agent.ops.snapshots.retention import prune_snapshots

            prune_snapshots(ctx.project, protect=frozenset({snapshot_name}))
            ctx.say(f"snapshot: supabase/snapshots/{snapshot_name}.sql")

        conn = ctx.connect(ctx.migration_url)
        current = None
        try:
            with conn.transaction():
                before = count_rows(conn, emptied or tables) if (emptied or tables) else {}
                if truncate and emptied:
                    conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                        sql.SQL(", ").join(sql.Identifier(s, t) for s, t in emptied)))
                progress = ctx.progress("seeding", n_statements)
                for f in files:
                    for stmt in f.statements:
                        current = (f, stmt)
                        if stmt.copy_data is not None:
                            with conn.cursor().copy(stmt.text) as copy:
                                copy.write(stmt.copy_data)
                        else:
                            conn.execute(stmt.text)
                        progress.advance(1, f"{f.rel}:{stmt.line}")
                current = None
                final, _ = resolve_tables(conn, targets)
                after_tables = list(dict.fromkeys((emptied or []) + final))
                after = count_rows(conn, after_tables)
                conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
                conn.execute(CREATE_SEED_TABLE)
                for f in files:
                    conn.execute(UPSERT_SEED_FILE, (f.rel, f.hash))
        except psycopg.Error as exc:
            message = (exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc)).strip()
            if current is not None:
                f, stmt = current
                where = f"{f.rel}:{error_line(stmt, exc)}"
                raise OpError(f"seed failed at {where}: {message}. The transaction was rolled back: the database is "
                              "unchanged", f"fix {where} and run *seed again") from None
            raise OpError(f"seed failed: {message}. The transaction was rolled back: the database is unchanged",
                          "check the tables and permissions") from None
        finally:
            conn.close()
    rows = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        rows.append([key, "-" if b is None else b, "-" if a is None else a, (a or 0) - (b or 0)])
    added = sum(max(0, r[3]) for r in rows)
    for f in files:
        notes += f.skipped
    return OpResult(
        operation="db-seed",
        summary=f"Seed loaded: {len(files)} file(s), {n_statements} statements, {added} rows added"
                + (" after truncating" if truncate else ""),
        facts={"files": ", ".join(f.rel for f in files), "mode": inputs.mode, "statements": n_statements,
               "rows_added": added, "snapshot": snapshot_name or "skipped",
               "seed_hashes": ", ".join(f"{f.rel}={f.hash[:12]}" for f in files)},
        tables=[Table(title="Rows per table", columns=["table", "before", "after", "change"], rows=rows)],
        notes=notes,
        artifacts=[f"supabase/snapshots/{snapshot_name}.sql"] if snapshot_name else [],
        next_steps=["*smoke-test VERSION"] + ([f"*rollback {snapshot_name}"] if snapshot_name else []),
        data={"rows": {r[0]: {"before": r[1], "after": r[2]} for r in rows}, "snapshot": snapshot_name,
              "files": [{"path": f.rel, "hash": f.hash} for f in files]},
    )
