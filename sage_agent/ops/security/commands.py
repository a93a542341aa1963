"""Security and quality: *rls-audit, *policy-apply, *schema-audit."""
# area: security

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, NeedsInput, OpError, OpResult, Table
from sage_agent.ops.security.report import write_report

_SEVERITY = {"ERROR": "error", "WARN": "warning", "INFO": "info"}


def _split_list(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _check_schemas(conn, schemas: list[str]) -> None:
    existing = [r[0] for r in conn.execute(
        "select nspname from pg_namespace where nspname not like 'pg\\_%%' and nspname <> 'information_schema' "
        "order by 1").fetchall()]
    unknown = [s for s in schemas if s not in existing]
    if unknown:
        raise OpError(f"unknown schema{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                      f"schemas in this database: {', '.join(existing)}", exit_code=2)


def _lint_finding(lint: dict[str, Any]) -> Finding:
    m = lint["metadata"]
    message = lint["detail"].replace("\\`", "").replace("`", "")  # some splinter details escape backticks
    return Finding(rule=lint["name"], severity=_SEVERITY[lint["level"]], message=message,
                   location=f"{m['schema']}.{m['name']}", fix=lint["remediation"])


# --- *rls-audit -------------------------------------------------------------------------------------------------
class RlsAuditInput(BaseModel):
    schemas: str | None = None
    verify: bool = False


@operation("db-rls-audit", risk="read")
def rls_audit(inputs: RlsAuditInput, ctx) -> OpResult:
    """Advisor-compatible lints, a coverage matrix and (with --verify) proof by impersonation on a shadow copy."""
    # lazy: tests replace roles_present on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.ops.security.coverage import coverage, coverage_rows
    from sage_agent.ops.security.lints import (
        SECURITY_LINTS,
        exposed_schemas,
        project_exposed,
        roles_present,
        run_lints,
    )

    configured = project_exposed(ctx)
    with ctx.connect(autocommit=True) as conn:
        requested = _split_list(inputs.schemas)
        if requested:
            _check_schemas(conn, requested)
        exposed = requested or (configured if configured is not None else exposed_schemas(conn))
        run = run_lints(conn, SECURITY_LINTS, exposed, server_major=ctx.server.major)
        roles = roles_present(conn)
        cov = coverage(conn, exposed, roles)
    columns, rows = coverage_rows(cov)
    findings = [_lint_finding(f) for f in run.lints]
    if requested:
        source = ""
    elif configured is not None:
        source = (" (supabase/config.toml [api] schemas, as `supabase db advisors` reads them for a local project)"
                  if configured else "")
    else:
        source = " (PostgREST setting pgrst.db_schemas, default public, as the Supabase advisors)"
    shown = ", ".join(exposed) or ("none ([api] enabled = false in supabase/config.toml)" if configured is not None
                                   else "none (pgrst.db_schemas is set and empty)")
    notes = [f"API-exposed schemas: {shown}{source}"]
    notes += [f"skipped {name}: {reason}" for name, reason in sorted(run.skipped.items())]
    limit = ctx.settings.row_limit
    tables = [Table(title="RLS coverage (permissive policies per command; grants S/I/U/D)", columns=columns,
                    rows=rows[:limit], truncated=len(rows) > limit, total_rows=len(rows))]
    data: dict[str, Any] = {"lints": run.lints, "skipped": run.skipped, "exposed_schemas": exposed, "coverage": cov}
    facts: dict[str, Any] = {"tables": len(cov), "without RLS": sum(1 for c in cov if not c["rls"]),
                             "errors": sum(1 for f in findings if f.severity == "error"),
                             "warnings": sum(1 for f in findings if f.severity == "warning")}
    leaks: list[str] = []
    if inputs.verify:
        proof = _prove_target(ctx, exposed, notes)
        if proof is not None:
            leaks = proof.leaks
            tables.append(Table(title="Access proven by impersonation (shadow copy; rows out of 10, 5 per user)",
                                columns=proof.MATRIX_COLUMNS, rows=proof.matrix_rows()))
            notes += proof.notes
            findings += [Finding(rule="rls_leak", severity="error", message=leak) for leak in leaks]
            data["proof"] = {"leaks": leaks, "matrix": proof.matrix_rows()}
            facts["leaks"] = len(leaks)
    status = "warning" if any(f.severity in ("error", "warning") for f in findings) else "ok"
    every = list(findings)
    findings = _cap(findings, limit, notes, "data.lints")
    summary = (f"{len(run.lints)} advisor findings on {len(cov)} tables in {', '.join(exposed) or 'no exposed schema'}"
               + (f"; {len(leaks)} leaks proven by impersonation" if inputs.verify else ""))
    nxt = ["*policy-apply TABLE"] if any(not c["rls"] for c in cov) else []
    if not inputs.verify:
        nxt.append("*rls-audit --verify")
    result = OpResult(operation="db-rls-audit", status=status, summary=summary, facts=facts, tables=tables,
                      findings=findings, notes=notes, data=data, next_steps=nxt + ["*schema-audit"])
    return _with_report(ctx, result, "rls-audit", "RLS audit", every)


def _with_report(ctx, result: OpResult, name: str, title: str, findings: list[Finding]) -> OpResult:
    """The audit's report file (every finding, not only those shown), recorded as its artifact so that `*handoff`
    carries it; an unwritable project only loses the file, never the audit."""
    try:
        rel = write_report(ctx, result, name, title, findings)
    except OSError as exc:
        result.notes.append(f"report not written: {exc}")
        return result
    result.artifacts.append(rel)
    result.facts["report"] = rel
    return result


def _prove_target(ctx, schemas: list[str], notes: list[str], extra_sql: str | None = None, tables=None,
                  tenant_columns: dict[str, str] | None = None):
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.security.impersonate import prove, shadow_copy

    ctx.say("copying the schema to a shadow database for the impersonation proof")
    try:
        with shadow_copy(ctx.admin_url, ctx.url, schemas, ctx.server.major) as shadow:
            if extra_sql:
                # lazy: psycopg loads on the first database call
                import psycopg

                with psycopg.connect(shadow) as conn:
                    conn.execute(extra_sql)
            ctx.say("impersonating anon, user A and user B on the shadow copy")
            return prove(shadow, schemas, tables, tenant_columns)
    except Exception as exc:  # noqa: BLE001 - the audit stands without the proof; say why
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.redact import redact

        if extra_sql is not None:
            raise
        notes.append(f"impersonation proof not run: {redact(str(exc)).splitlines()[0]}")
        return None


def _cap(findings: list[Finding], limit: int, notes: list[str], where: str) -> list[Finding]:
    """Show the most severe `limit` findings; the full list stays in the JSON data."""
    if len(findings) <= limit:
        return findings
    order = {"error": 0, "warning": 1, "info": 2}
    shown = sorted(findings, key=lambda f: order[f.severity])[:limit]
    notes.append(f"showing {limit} of {len(findings)} findings (most severe first); all of them are in --json {where}")
    return shown


# --- *policy-apply ----------------------------------------------------------------------------------------------
import warnings as _warnings  # noqa: E402

from sage_agent.ops.registry import load_operations

_warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)


class PolicyApplyInput(BaseModel):
    table: str
    mode: str = "kiss"
    schema: str = "public"
    owner_column: str = "user_id"
    tenant_column: str | None = None
    roles: str = "authenticated"
    commands: str = "select,insert,update,delete"


@operation("db-policy-apply", risk="write")
def policy_apply(inputs: PolicyApplyInput, ctx) -> OpResult:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.catalog.templates import TemplateError, render_template
    from sage_agent.sqlkit.lint import lint_sql
    from sage_agent.sqlkit.split import SqlSyntaxError

    schema, table = inputs.schema, inputs.table
    if "." in table and inputs.schema == "public":
        schema, table = table.split(".", 1)
    commands = [c.lower() for c in _split_list(inputs.commands)]
    bad = [c for c in commands if c not in ("select", "insert", "update", "delete")]
    if bad or not commands:
        raise OpError(f"unknown command(s) {', '.join(bad) or '(none)'}", "use select, insert, update, delete",
                      exit_code=2)
    roles = _split_list(inputs.roles)
    with ctx.connect(autocommit=True) as conn:
        ctx.require_primary(conn)
        _check_schemas(conn, [schema])
        oid = conn.execute("select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                           "where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')",
                           (schema, table)).fetchone()
        if oid is None:
            names = [r[0] for r in conn.execute(
                "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind in ('r', 'p') order by 1", (schema,)).fetchall()]
            shown = f"{schema}.{table}" if f"{schema}.{table}".isprintable() else repr(f"{schema}.{table}")
            raise OpError(f"table {shown} does not exist; nothing was written",
                          f"tables in {schema}: {', '.join(names) or '(none)'}", exit_code=2)
        columns = dict(conn.execute("select attname, format_type(atttypid, null) from pg_attribute "
                                    "where attrelid = %s and attnum > 0 and not attisdropped", (oid[0],)).fetchall())
        missing_roles = [r for r in roles if not conn.execute("select 1 from pg_roles where rolname = %s", (r,)).fetchone()]
    if missing_roles:
        raise OpError(f"unknown role(s): {', '.join(missing_roles)}; nothing was written",
                      "create the Supabase roles (the embedded baseline has anon and authenticated)", exit_code=2)
    uuid_columns = sorted(c for c, t in columns.items() if t == "uuid")
    for key, label, col in (("owner_column", "owner column", inputs.owner_column),
                            ("tenant_column", "tenant column", inputs.tenant_column)):
        if not col or (col in columns and columns[col] == "uuid"):
            continue
        why = (f"{schema}.{table} has no {label} {col!r}" if col not in columns else
               f"{label} {schema}.{table}.{col} is {columns[col]}, not uuid (auth.uid() is a uuid)")
        flag = "--" + key.replace("_", "-")
        if uuid_columns:  # the person picks one of the table's uuid columns
            raise NeedsInput(key, f"{label.capitalize()} of {schema}.{table} (a uuid column)",
                             reason=f"{why}; nothing was written", choices=uuid_columns, default=uuid_columns[0],
                             hint=f"uuid columns: {', '.join(uuid_columns)}; pass {flag} NAME")
        raise OpError(f"{why}; nothing was written",
                      f"{schema}.{table} has no uuid column: add one that holds the auth.users id "
                      f"(columns: {', '.join(sorted(columns))})", exit_code=2)
    if inputs.mode == "kiss":
        template = "rls-kiss-policy"
        variables = {"schema": schema, "table": table, "owner_column": inputs.owner_column}
    else:
        template = "rls-granular-policy"
        variables = {"schema": schema, "table": table, "owner_column": inputs.owner_column,
                     "tenant_column": inputs.tenant_column or "", "roles": ",".join(roles),
                     "commands": ",".join(commands)}
    try:
        rendered = render_template(template, variables)
    except TemplateError as exc:
        raise OpError(str(exc), exit_code=2) from None
    # bounded waits for the ALTER TABLE / CREATE POLICY locks (the file runs as one transaction)
    rendered = "set lock_timeout = '5s';\nset statement_timeout = '60s';\n" + rendered
    try:
        lint = lint_sql(rendered, f"rls_{table}.sql", server_major=ctx.server.major, assume_in_transaction=True)
    except SqlSyntaxError as exc:
        raise OpError(f"the rendered policy SQL does not parse: {exc}") from None
    findings = [Finding(rule=f.rule, severity=f.severity, message=f.message, location=f"line {f.line}",
                        fix=f.safe_alternative or None) for f in lint]
    notes: list[str] = []
    ctx.say(f"rendered {template} for {schema}.{table}; proving it on a shadow copy")
    try:
        proof = _prove_target(ctx, [schema], notes, extra_sql=rendered, tables=[table],
                              tenant_columns={f"{schema}.{table}": inputs.tenant_column} if inputs.tenant_column
                              and inputs.mode != "kiss" else None)
    except Exception as exc:  # noqa: BLE001
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.redact import redact

        raise OpError(f"the policy SQL failed on the shadow copy: {redact(str(exc)).splitlines()[0]}; nothing was written",
                      "fix the table or the inputs and run *policy-apply again") from None
    matrix = Table(title=f"Access on the shadow copy after the policy ({schema}.{table})",
                   columns=proof.MATRIX_COLUMNS, rows=proof.matrix_rows())
    if proof.leaks:
        return OpResult(operation="db-policy-apply", status="failed",
                        summary="the policy still leaks on the shadow copy; nothing was written",
                        tables=[matrix], findings=findings + [Finding(rule="rls_leak", severity="error", message=x)
                                                              for x in proof.leaks],
                        notes=notes + proof.notes, data={"sql": rendered, "leaks": proof.leaks})
    errors = [f for f in lint if f.severity == "error"]
    if errors:
        return OpResult(operation="db-policy-apply", status="failed",
                        summary="lint errors in the rendered SQL; nothing was written", findings=findings,
                        data={"sql": rendered})
    migrations = ctx.project / "supabase" / "migrations"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    while list(migrations.glob(f"{stamp}_*.sql")):
        stamp = str(int(stamp) + 1)
    name = re.sub(r"[^a-z0-9_]+", "_", f"rls_{table}".lower())
    path = migrations / f"{stamp}_{name}.sql"
    header = (f"-- DB Sage *policy-apply: {template} on {schema}.{table} (owner column {inputs.owner_column})\n"
              f"-- Proven on a shadow copy: no cross-user access for anon, user A or user B.\n")
    content = header + rendered.lstrip("\n")
    ctx.confirm(f"Write {path.relative_to(ctx.project)} and apply it to {ctx.target.display_url}?", plan=content)
    migrations.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    applied_by, version = _apply_migration(ctx, path, stamp)
    return OpResult(operation="db-policy-apply", status="warning" if findings else "ok",
                    summary=f"RLS ({inputs.mode}) on {schema}.{table}: proven on a shadow copy, written to "
                            f"{path.relative_to(ctx.project)} and applied (version {version})",
                    facts={"template": template, "file": str(path.relative_to(ctx.project)), "version": version,
                           "applied by": applied_by},
                    tables=[matrix], findings=findings, notes=notes + proof.notes, artifacts=[str(path)],
                    data={"sql": content, "version": version, "matrix": proof.matrix_rows()},
                    next_steps=["*rls-audit --verify"])


def _apply_migration(ctx, path: Path, version: str) -> tuple[str, str]:
    """Apply the file just written through *apply (lint, snapshot, lock, one transaction with its history row).
    The caller has already confirmed the exact SQL with the person."""
    op = load_operations()["db-apply-migration"]
    try:
        result = op.run(op.input_model(file=str(path)), ctx)
    except OpError as exc:
        raise OpError(f"*apply stopped: {exc.message}",
                      f"{path.name} is written but not applied; fix the cause and run *apply") from None
    if result.status == "failed":
        raise OpError(f"*apply failed: {result.summary}", f"the file {path.name} is written but not applied")
    return "*apply", version


# --- *schema-audit ----------------------------------------------------------------------------------------------
class SchemaAuditInput(BaseModel):
    schemas: str | None = None


@operation("schema-audit", risk="read")
def schema_audit(inputs: SchemaAuditInput, ctx) -> OpResult:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.security.schema_audit import audit

    with ctx.connect(autocommit=True) as conn:
        requested = _split_list(inputs.schemas)
        if requested:
            _check_schemas(conn, requested)
        found, facts = audit(conn, requested or None)
    findings = [Finding(rule=f.rule, severity=f.severity, message=f.message, location=f.location, fix=f.fix)
                for f in found]
    notes: list[str] = []
    shown = _cap(findings, ctx.settings.row_limit, notes, "data.findings")
    by_rule: dict[str, int] = {}
    for f in found:
        by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    table = Table(title="Findings by rule", columns=["rule", "count"], rows=sorted(by_rule.items()))
    status = "warning" if any(f.severity in ("error", "warning") for f in found) else "ok"
    result = OpResult(operation="schema-audit", status=status,
                      summary=f"score {facts['score']}/100: {len(found)} findings on {facts['tables']} tables",
                      facts={"score": facts["score"], "tables": facts["tables"], "schemas": ", ".join(facts["schemas"])},
                      tables=[table], findings=shown, notes=notes,
                      data={"score": facts["score"], "by_rule": by_rule,
                            "findings": [f.model_dump() for f in findings]},
                      next_steps=["*migration-new", "*rls-audit"])
    return _with_report(ctx, result, "schema-audit", "Schema audit", findings)
