"""Area migrations-apply: *dry-run. The target is only read; the file runs on a shadow database."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table


class DryRunInput(BaseModel):
    file: str


def _resolve_any(project: Path, arg: str):
    """A migration (path, file name, version or name) or any .sql file path."""
    from sage_agent.ops.migrations.applier import resolve_migration
    from sage_agent.ops.migrations.history import MIGRATION_FILE, LocalMigration, list_local

    local, _ = list_local(project)
    try:
        return resolve_migration(project, arg, local)
    except LookupError as exc:
        if "is not in supabase/migrations" not in str(exc):
            raise OpError(str(exc), "*migrations lists the local migration files", exit_code=1) from None
    except FileNotFoundError as exc:
        raise OpError(str(exc), "give a path to a .sql file, or a migration name/version (*migrations lists them)",
                      exit_code=1) from None
    path = next(p for p in (Path(arg), project / arg) if p.is_file()).resolve()
    match = MIGRATION_FILE.match(path.name)
    return LocalMigration(match.group(1) if match else "", match.group(2) if match else path.stem, path)


@operation("db-dry-run", risk="read")
def dry_run(inputs: DryRunInput, ctx) -> OpResult:
    from sage_agent.ops.migrations.applier import prepare_file
    from sage_agent.ops.migrations.shadow_run import (clone_template, dump_target_schema, human_bytes, human_rows,
                                      prepare_template, qualify, table_facts)
    from sage_agent.ops.migrations.history import MigrationFileError, read_applied
    from sage_agent.db.shadow import drop_database, load_sql_file
    from sage_agent.db.tools import PgToolError
    from sage_agent.ops.snapshots.store import schema_exists, user_schemas

    project: Path = ctx.project
    if not (project / "supabase").is_dir():
        raise OpError(f"no supabase/ folder in {project}", "run *bootstrap to create the project layout", exit_code=1)
    mig = _resolve_any(project, inputs.file)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report_path = project / "supabase" / "tests" / f"dry-run-{mig.path.stem}.md"
    server = ctx.server
    findings: list[Finding] = []
    notes: list[str] = []
    try:
        plan = prepare_file(mig, server.major)
    except MigrationFileError as exc:
        finding = Finding(rule="syntax", severity="error", message=exc.message,
                          location=f"{exc.path}:{exc.line}" if exc.line else exc.path)
        return _finish(ctx, mig, report_path, verdict="unsafe", status="failed",
                       summary=f"{mig.filename}: {exc}", findings=[finding], notes=notes, impact=[],
                       changes=None, checks=[], timings=timings, applied_ok=False, error=str(exc))
    timings["parse + lint"] = time.perf_counter() - started

    # --- the target: read only --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    target = ctx.connect(ctx.migration_url, autocommit=True)
    target.execute("set default_transaction_read_only = on")
    schemas = user_schemas(target)
    history = schema_exists(target, "supabase_migrations")
    applied_versions = {r.version for r in read_applied(target)} if history else set()
    impact_tables = []
    for f in plan.findings:
        name = qualify(f.table)
        if name and (f.rewrites or f.scans or f.severity == "error") and name not in impact_tables:
            impact_tables.append(name)
    facts_by_table = table_facts(target, impact_tables)
    # severity follows the real table size: empty / created here -> info, big rewrite or scan -> error
    from sage_agent.sqlkit.lint.sizing import SizePolicy, TableFacts, apply_table_facts

    plan.findings = apply_table_facts(plan.findings, {
        name: TableFacts(rows=int(max(fact[1], 0)), bytes=fact[0])
        for name, fact in facts_by_table.items() if fact is not None}, SizePolicy.from_env())
    for f in plan.findings:
        findings.append(Finding(rule=f.rule, severity=f.severity, message=f.message, location=f"{f.filename}:{f.line}",
                                detail=", ".join(x for x in (f.lock, "rewrites" if f.rewrites else "",
                                                             "scans" if f.scans else "") if x) or None,
                                fix=f.safe_alternative or None))
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
            size, rows = fact
            row = [f"{mig.filename}:{f.line}", name, what, human_rows(rows), human_bytes(size), f.lock or ""]
        seen[key] = row
        impact.append(row)
    timings["target facts"] = time.perf_counter() - t0
    if mig.version and mig.version in applied_versions:
        notes.append(f"{mig.filename} is already applied on the target (the dry-run runs it on the shadow anyway)")

    # --- the shadow: a copy of the target's schema (cached as a template while the schema is unchanged) --------
    admin = ctx.admin_url
    with tempfile.TemporaryDirectory(prefix="sage-dryrun-") as tmp:
        t0 = time.perf_counter()
        shadow_name = None
        try:
            if schemas or history:
                dump = Path(tmp) / "schema.sql"
                dump_target_schema(ctx.migration_url, schemas, history, dump, server.major)
                timings["pg_dump of the target schema"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                _ensure_schemas_loadable(dump)
                template, reused = prepare_template(admin, dump, lambda u: load_sql_file(u, dump, server.major))
                shadow_name, shadow = clone_template(admin, template)
                timings["shadow copy (cached schema)" if reused else "load into the shadow"] = time.perf_counter() - t0
            else:
                shadow_name, shadow = clone_template(admin, "template1")
        except PgToolError as exc:
            if shadow_name:
                drop_database(admin, shadow_name)
            raise OpError(f"could not copy the target's schema into the shadow database: {exc}",
                          "run *env-check (pg_dump/psql versions); roles used by the schema must exist on the "
                          "shadow server", exit_code=1) from None
        try:
            changes, checks, outcome, error = _run_on_shadow(ctx, shadow, schemas, plan, mig, applied_versions,
                                                             findings, timings)
        finally:
            drop_database(admin, shadow_name)
    errors = [f for f in plan.findings if f.severity == "error"]
    warnings = [f for f in plan.findings if f.severity == "warning"]
    failed_checks = [c for c in checks if not c[1]]
    if error:
        verdict, status = "unsafe", "failed"
    elif errors:
        verdict, status = "unsafe", "failed"
    elif warnings or impact or failed_checks:
        verdict, status = "caution", "warning"
    else:
        verdict, status = "safe", "ok"
    timings["total"] = time.perf_counter() - started
    summary = (f"{mig.filename}: {verdict.upper()}" +
               (f" - fails on the shadow at {error}" if error else
                f" - applied to a shadow copy in {outcome.duration_ms / 1000:.2f}s" if outcome else ""))
    return _finish(ctx, mig, report_path, verdict=verdict, status=status, summary=summary, findings=findings,
                   notes=notes, impact=impact, changes=changes if not error else None, checks=checks,
                   timings=timings, applied_ok=error is None, error=error, statements=len(plan.chunks),
                   transactional=plan.transactional)


def _run_on_shadow(ctx, shadow, schemas, plan, mig, applied_versions, findings, timings):
    from sage_agent.ops.migrations.applier import apply_file
    from sage_agent.db.connect import connect
    from sage_agent.ops.migrations.shadow_run import catalog_objects, diff_objects, smoke_checks
    from sage_agent.ops.migrations.history import ensure_history_table

    checks: list = []
    error = None
    changes = None
    conn = connect(shadow, autocommit=True)
    try:
        all_schemas = sorted(set(schemas) | set(_new_schemas(conn)))
        before = catalog_objects(conn, all_schemas)
        ensure_history_table(conn)
        if mig.version and mig.version in applied_versions:
            plan.migration = type(mig)("", mig.name, mig.path)
        t0 = time.perf_counter()
        outcome = apply_file(conn, plan, statement_timeout=f"{ctx.settings.statement_timeout_ms}ms", lock_timeout=None)
        timings["apply on the shadow"] = time.perf_counter() - t0
        plan.migration = mig
        if outcome.status == "success":
            all_schemas = sorted(set(all_schemas) | set(_new_schemas(conn)))
            after = catalog_objects(conn, all_schemas)
            changes = diff_objects(before, after)
            checks = smoke_checks(conn, all_schemas, changes.created)
        else:
            where = f"{mig.filename}:{outcome.line}" if outcome.line else mig.filename
            error = f"{where}: {outcome.error}"
            findings.insert(0, Finding(rule="apply.failed", severity="error", message=outcome.error or "",
                                       location=where))
    finally:
        conn.close()
    return changes, checks, outcome, error


def _new_schemas(conn) -> list[str]:
    from sage_agent.ops.snapshots.store import user_schemas

    return user_schemas(conn)


def _ensure_schemas_loadable(dump: Path) -> None:
    """The shadow already has `public` (from template1): make pg_dump's CREATE SCHEMA public idempotent."""
    text = dump.read_text(encoding="utf-8")
    fixed = text.replace("\nCREATE SCHEMA public;\n", "\nCREATE SCHEMA IF NOT EXISTS public;\n")
    if fixed != text:
        dump.write_text(fixed, encoding="utf-8")


def _finish(ctx, mig, report_path: Path, *, verdict, status, summary, findings, notes, impact, changes, checks,
            timings, applied_ok, error, statements=0, transactional=True) -> OpResult:
    from sage_agent.db.redact import redact

    tables = []
    if impact:
        tables.append(Table(title="Impact on the target", columns=["where", "table", "effect", "rows", "size", "lock"],
                            rows=impact))
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
    if changes is not None:
        lines += ["", "## Object changes", ""]
        lines += [f"- {c} {k} {n}" for c, k, n in changes.rows()] or ["- none"]
    if checks:
        lines += ["", "## Smoke checks (shadow)", ""]
        lines += [f"- {'✅' if ok else '❌'} {c}" + (f": {d}" if d else "") for c, ok, d in checks]
    lines += ["", "## Timing", ""] + [f"- {k}: {v:.2f}s" for k, v in timings.items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    rec = {"safe": f"✅ Safe to apply: `*apply {mig.filename}`",
           "caution": f"⚠️ Review the findings above, then `*apply {mig.filename}`",
           "unsafe": "❌ Do not apply as written: fix the problems above and dry-run again"}[verdict]
    lines += ["", "## Recommendation", "", f"- {rec}", ""]
    markdown = redact("\n".join(lines))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(markdown, encoding="utf-8")
    rel = str(report_path.relative_to(ctx.project)) if report_path.is_relative_to(ctx.project) else str(report_path)
    facts = {"verdict": verdict, "statements": statements, "report": rel}
    if "apply on the shadow" in timings:
        facts["shadow apply"] = f"{timings['apply on the shadow']:.2f}s"
    facts["total"] = f"{timings.get('total', 0):.2f}s"
    return OpResult(operation="db-dry-run", status=status, summary=summary, facts=facts, tables=tables,
                    findings=findings, notes=notes, artifacts=[rel], markdown=markdown,
                    next_steps=[f"*apply {mig.filename}"] if verdict != "unsafe" else [f"*dry-run {mig.filename}"],
                    data={"verdict": verdict, "impact": impact, "report": rel, "error": error,
                          "changes": changes.rows() if changes is not None else [],
                          "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks],
                          "timings": {k: round(v, 3) for k, v in timings.items()}})
