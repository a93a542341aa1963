"""Security and quality: *rls-audit, *policy-apply, *schema-audit, *execute-checklist, *create-doc, *kb."""
# area: security

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table

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
    return Finding(rule=lint["name"], severity=_SEVERITY[lint["level"]], message=lint["detail"].replace("`", ""),
                   location=f"{m['schema']}.{m['name']}", fix=lint["remediation"])


# --- *rls-audit -------------------------------------------------------------------------------------------------
class RlsAuditInput(BaseModel):
    schemas: str | None = None
    verify: bool = False


@operation("db-rls-audit", risk="read")
def rls_audit(inputs: RlsAuditInput, ctx) -> OpResult:
    """Advisor-compatible lints, a coverage matrix and (with --verify) proof by impersonation on a shadow copy."""
    from sage_agent.security.coverage import coverage, coverage_rows
    from sage_agent.security.lints import SECURITY_LINTS, exposed_schemas, roles_present, run_lints

    with ctx.connect(autocommit=True) as conn:
        requested = _split_list(inputs.schemas)
        if requested:
            _check_schemas(conn, requested)
        exposed = requested or exposed_schemas(conn)
        run = run_lints(conn, SECURITY_LINTS, exposed, server_major=ctx.server.major)
        roles = roles_present(conn)
        cov = coverage(conn, exposed, roles)
    columns, rows = coverage_rows(cov)
    findings = [_lint_finding(f) for f in run.lints]
    notes = [f"API-exposed schemas: {', '.join(exposed)}"
             + ("" if requested else " (PostgREST setting pgrst.db_schemas, default public, as the Supabase advisors)")]
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
    findings = _cap(findings, limit, notes, "data.lints")
    summary = (f"{len(run.lints)} advisor findings on {len(cov)} tables in {', '.join(exposed)}"
               + (f"; {len(leaks)} leaks proven by impersonation" if inputs.verify else ""))
    nxt = ["*policy-apply TABLE"] if any(not c["rls"] for c in cov) else []
    if not inputs.verify:
        nxt.append("*rls-audit --verify")
    return OpResult(operation="db-rls-audit", status=status, summary=summary, facts=facts, tables=tables,
                    findings=findings, notes=notes, data=data, next_steps=nxt + ["*schema-audit"])


def _prove_target(ctx, schemas: list[str], notes: list[str], extra_sql: str | None = None, tables=None,
                  tenant_columns: dict[str, str] | None = None):
    from sage_agent.security.impersonate import prove, shadow_copy

    ctx.say("copying the schema to a shadow database for the impersonation proof")
    try:
        with shadow_copy(ctx.admin_url, ctx.url, schemas, ctx.server.major) as shadow:
            if extra_sql:
                import psycopg

                with psycopg.connect(shadow) as conn:
                    conn.execute(extra_sql)
            ctx.say("impersonating anon, user A and user B on the shadow copy")
            return prove(shadow, schemas, tables, tenant_columns)
    except Exception as exc:  # noqa: BLE001 - the audit stands without the proof; say why
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
    owner_column = inputs.owner_column
    uuid_columns = sorted(c for c, t in columns.items() if t == "uuid")
    if owner_column not in columns and ctx.interactive and uuid_columns:
        owner_column = ctx.ask(f"{schema}.{table} has no column {owner_column!r}; owner column",
                               default=uuid_columns[0], choices=uuid_columns, key="owner_column")
        inputs = inputs.model_copy(update={"owner_column": owner_column})
    for label, col in (("owner column", inputs.owner_column), ("tenant column", inputs.tenant_column)):
        if col and col not in columns:
            raise OpError(f"{schema}.{table} has no {label} {col!r}; nothing was written",
                          f"columns: {', '.join(sorted(columns))}; pass --owner-column NAME", exit_code=2)
        if col and columns[col] != "uuid":
            raise OpError(f"{label} {schema}.{table}.{col} is {columns[col]}, not uuid (auth.uid() is a uuid); "
                          "nothing was written", "choose the uuid column that holds the auth.users id", exit_code=2)
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
    from sage_agent.ops.registry import load_operations

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
    from sage_agent.security.schema_audit import audit

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
    return OpResult(operation="schema-audit", status=status,
                    summary=f"score {facts['score']}/100: {len(found)} findings on {facts['tables']} tables",
                    facts={"score": facts["score"], "tables": facts["tables"], "schemas": ", ".join(facts["schemas"])},
                    tables=[table], findings=shown, notes=notes,
                    data={"score": facts["score"], "by_rule": by_rule,
                          "findings": [f.model_dump() for f in findings]},
                    next_steps=["*migration-new", "*rls-audit"])


# --- *execute-checklist -----------------------------------------------------------------------------------------
class ChecklistInput(BaseModel):
    name: str
    answers: str | None = None
    ask: bool = True


_STATUSES = ("pass", "fail", "partial", "n/a")


@operation("execute-checklist", risk="read")
def execute_checklist(inputs: ChecklistInput, ctx) -> OpResult:
    from sage_agent.catalog.checklists import list_checklists, parse_checklist
    from sage_agent.security.checks import CheckEnv, run_check
    from sage_agent.session.answers import MissingInput

    available = list_checklists()
    key = inputs.name.removesuffix(".md").removesuffix("-checklist")
    if key not in available:
        raise OpError(f"unknown checklist {inputs.name!r}", f"available: {', '.join(sorted(available))}", exit_code=2)
    checklist = parse_checklist(available[key])
    ids = {i.id for i in checklist.items}
    given: dict[str, str] = {}
    for part in re.split(r"[,;\n]", inputs.answers or ""):
        if not part.strip():
            continue
        item, _, status = part.partition("=")
        item, status = item.strip(), status.strip().lower()
        if item not in ids:
            raise OpError(f"answers: no item {item!r} in {key} (ids look like 1.1, 2.3)", exit_code=2)
        if status not in _STATUSES:
            raise OpError(f"answers: {item}={status!r}: use one of {', '.join(_STATUSES)}", exit_code=2)
        given[item] = status
    results: dict[str, tuple[str, str, str]] = {}  # id -> (status, how, evidence)
    auto = [i for i in checklist.items if i.check]
    with ctx.connect(autocommit=True) as conn:
        env = CheckEnv(conn, ctx.project, ctx.server.major)
        progress = ctx.progress(f"checklist {key}: automatic checks", len(auto))
        for item in auto:
            status, evidence = run_check(item.check, env)
            results[item.id] = (status, f"auto: {item.check}", evidence)
            progress.advance(1, item.check)
    interactive = inputs.ask and ctx.interactive and ctx.ask_fn is not None
    for item in checklist.items:
        if item.id in results:
            continue
        if item.id in given:
            results[item.id] = (given[item.id], "answer", "")
            continue
        if interactive:
            try:
                raw = ctx.ask(f"[{item.id}] {item.text} (pass/fail/partial/n/a, empty = skip)", default="",
                              key=f"item_{item.id.replace('.', '_')}").strip().lower()
            except MissingInput:
                raw = ""
            if raw in ("p", "y", "yes"):
                raw = "pass"
            if raw in ("f", "no"):
                raw = "fail"
            if raw in _STATUSES:
                results[item.id] = (raw, "answer", "")
                continue
        results[item.id] = ("not answered", "manual", "")
    rows, section_rows, lines = [], [], []
    total_score = total_n = 0.0
    stamp = datetime.now(timezone.utc)
    lines += [f"# {checklist.title}", "", f"Checklist `{key}` run by DB Sage on {stamp:%Y-%m-%d %H:%M} UTC "
              f"against {ctx.target.display_url}.", ""]
    for section in checklist.sections:
        score = n = 0.0
        lines += [f"## {section.title}", ""]
        for item in section.items:
            status, how, evidence = results[item.id]
            rows.append([item.id, section.title, item.text, status, how, evidence])
            if status in ("pass", "fail", "partial"):
                n += 1
                score += {"pass": 1, "partial": 0.5, "fail": 0}[status]
            mark = {"pass": "x", "partial": "~", "fail": " "}.get(status, " ")
            lines.append(f"- [{mark}] {item.id} {item.text} — **{status}**" + (f" ({how}: {evidence})" if evidence else
                                                                                  f" ({how})" if how != "manual" else ""))
        rate = f"{100 * score / n:.0f}%" if n else "-"
        section_rows.append([section.title, len(section.items), int(n), rate])
        lines += ["", f"Pass rate: {rate} of {int(n)} decided items", ""]
        total_score += score
        total_n += n
    overall = f"{100 * total_score / total_n:.0f}%" if total_n else "-"
    counts = {s: sum(1 for r in results.values() if r[0] == s) for s in (*_STATUSES, "not answered")}
    lines += ["## Summary", "", f"Overall pass rate: {overall} of {int(total_n)} decided items; "
              + ", ".join(f"{v} {k}" for k, v in counts.items() if v), ""]
    report = "\n".join(lines)
    out_dir = ctx.project / "supabase" / "tests"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"checklist-{key}-{stamp:%Y%m%d%H%M%S}.md"
    path.write_text(report)
    status = "warning" if counts["fail"] or counts["partial"] else "ok"
    notes = []
    if counts["not answered"]:
        notes.append(f"{counts['not answered']} manual items not answered; answer them interactively or with "
                     "--answers \"2.1=pass,2.2=n/a\"")
    return OpResult(operation="execute-checklist", status=status,
                    summary=f"{checklist.title}: overall pass rate {overall} ({counts['fail']} failed, "
                            f"{counts['not answered']} not answered); report {path.relative_to(ctx.project)}",
                    facts={"overall": overall, **counts},
                    tables=[Table(title="Pass rate per section", columns=["section", "items", "decided", "pass rate"],
                                  rows=section_rows),
                            Table(title="Items", columns=["id", "section", "item", "status", "how", "evidence"], rows=rows)],
                    notes=notes, artifacts=[str(path)], markdown=report,
                    data={"checklist": key, "overall": overall, "sections": section_rows,
                          "items": {r[0]: {"status": r[3], "how": r[4], "evidence": r[5]} for r in rows}})


# --- *create-doc ------------------------------------------------------------------------------------------------
class CreateDocInput(BaseModel):
    template: str
    vars: str | None = None
    output: str | None = None


def parse_vars(text: str | None) -> dict[str, str]:
    """`key=value;key=value` (or one per line); values may contain commas."""
    out: dict[str, str] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise OpError(f"vars: {part.strip()!r} is not key=value", "e.g. --vars \"table=todos;owner_column=user_id\"",
                          exit_code=2)
        out[key.strip()] = value.strip()
    return out


@operation("create-doc", risk="read")
def create_doc(inputs: CreateDocInput, ctx) -> OpResult:
    from sage_agent.catalog.templates import TemplateError, load_template, render_spec
    from sage_agent.security.docmodels import validate_document

    try:
        spec = load_template(inputs.template)
    except TemplateError as exc:
        raise OpError(str(exc), exit_code=2) from None
    values = parse_vars(inputs.vars)
    unknown = sorted(set(values) - {v.name for v in spec.variables})
    if unknown:
        raise OpError(f"template {spec.name} has no variable(s) {', '.join(unknown)}; nothing was written",
                      "variables: " + ", ".join(f"{v.name}{'*' if v.required else ''}" for v in spec.variables),
                      exit_code=2)
    for var in spec.variables:
        if var.required and not values.get(var.name):
            values[var.name] = ctx.ask(f"{var.description} ({var.name})", key=var.name)
    try:
        text = render_spec(spec, values)
    except TemplateError as exc:
        raise OpError(f"{exc}; nothing was written", exit_code=2) from None
    if spec.kind == "sql":
        from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

        try:
            statements = split_sql(text, f"{spec.name}.sql")
        except SqlSyntaxError as exc:
            raise OpError(f"the rendered SQL does not parse: {exc}; nothing was written") from None
        check = f"SQL parses: {len(statements)} statements"
    else:
        try:
            validate_document(spec.name, text)
        except ValueError as exc:
            raise OpError(f"{exc}; nothing was written") from None
        check = f"YAML valid against the {spec.name} model"
    name = inputs.output or spec.name
    if "/" in name or name.startswith("."):
        raise OpError(f"output {name!r}: give a file name, not a path", exit_code=2)
    path = ctx.project / "docs" / "db" / f"{name}.{spec.kind}"
    if path.exists():
        if path.read_text() == text:
            return OpResult(operation="create-doc", summary=f"{path.relative_to(ctx.project)} is already up to date",
                            artifacts=[str(path)], data={"path": str(path)})
        ctx.confirm(f"Replace the existing {path.relative_to(ctx.project)}?", plan=text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return OpResult(operation="create-doc", summary=f"wrote {path.relative_to(ctx.project)} from {spec.name} ({check})",
                    facts={"template": spec.name, "file": str(path.relative_to(ctx.project)), "validated": check},
                    artifacts=[str(path)], markdown=f"```{spec.kind}\n{text}\n```",
                    data={"path": str(path), "variables": values},
                    next_steps=["*migration-new", "*dry-run"] if spec.kind == "sql" else [])


# --- *kb --------------------------------------------------------------------------------------------------------
class KbInput(BaseModel):
    topic: str | None = None


def _kb_sections() -> list[tuple[str, str, str]]:
    from sage_agent.catalog.paths import knowledge_dir

    out = []
    for path in sorted((knowledge_dir() / "data").glob("*.md")):
        heading, buf = None, []
        for line in path.read_text().splitlines():
            if line.startswith("## "):
                if heading:
                    out.append((path.stem, heading, "\n".join(buf).strip()))
                heading, buf = line[3:].strip(), []
            elif heading:
                buf.append(line)
        if heading:
            out.append((path.stem, heading, "\n".join(buf).strip()))
    return out


@operation("kb", risk="read")
def kb(inputs: KbInput, ctx) -> OpResult:
    sections = _kb_sections()
    guides = sorted({g for g, _, _ in sections})
    if not inputs.topic:
        rows = [[g, h] for g, h, _ in sections]
        return OpResult(operation="kb", summary=f"{len(sections)} topics in {len(guides)} guides",
                        tables=[Table(title="Knowledge base", columns=["guide", "topic"], rows=rows)],
                        data={"topics": rows}, next_steps=["*kb TOPIC"])
    words = [w.lower() for w in re.findall(r"[\w.-]+", inputs.topic)]
    topic = inputs.topic.lower().strip()
    exact = [s for s in sections if topic in s[1].lower() or topic == s[0]]
    if not exact:
        scored = []
        for s in sections:
            hay = f"{s[1]}\n{s[2]}".lower()
            if all(w in hay for w in words):
                scored.append((sum(hay.count(w) for w in words) + 10 * sum(w in s[1].lower() for w in words), s))
        exact = [s for _, s in sorted(scored, key=lambda x: -x[0])]
    if not exact:
        return OpResult(operation="kb", status="warning", summary=f"nothing in the knowledge base matches {inputs.topic!r}",
                        notes=[f"guides: {', '.join(guides)}"], next_steps=["*kb"])
    shown = exact[:5]
    md = "\n\n".join(f"## {h}\n_{g}_\n\n{body}" for g, h, body in shown)
    rows = [[g, h] for g, h, _ in exact]
    return OpResult(operation="kb", summary=f"{len(exact)} sections match {inputs.topic!r}" +
                    (f" (showing {len(shown)})" if len(exact) > len(shown) else ""),
                    tables=[Table(title="Matches", columns=["guide", "topic"], rows=rows)], markdown=md,
                    notes=[f"{g} / {h}:\n{body}" for g, h, body in shown], data={"matches": rows})
