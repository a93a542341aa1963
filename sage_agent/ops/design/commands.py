"""Design and integration tasks: *create-migration-from-design, *model-domain."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from sage_agent.catalog.tasks import InputSpec
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table


class DesignInput(BaseModel):
    design: str = "docs/architecture/schema-design.yaml"
    name: str = "schema"


def _stamp(offset: int = 0) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + offset))


def _rel(project: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.resolve()))
    except ValueError:
        return str(path)


def build_from_design(design, source: str, name: str, ctx, extra_files: dict[str, str] | None = None) -> OpResult:
    """Generate migration + RLS + plan, prove them on a shadow database, then write them (nothing on failure)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.shadow import load_sql_file, shadow_database
    from sage_agent.ops.design.generate import (
        generate_rls,
        generate_sql,
        implementation_plan,
        render_template_file,
        validate_types,
    )

    project: Path = ctx.project
    schema_sql, order = generate_sql(design, source)
    rls_sql, notes = generate_rls(design, render_template_file)
    safe = "".join(ch for ch in name.lower() if ch.isalnum() or ch == "_") or "schema"
    mig = f"supabase/migrations/{_stamp()}_{safe}.sql"
    rls = f"supabase/migrations/{_stamp(1)}_{safe}_rls.sql"
    plan_rel = f"docs/architecture/{safe}-implementation-plan.md"
    files = {**(extra_files or {}), mig: schema_sql + "\n", rls: rls_sql + "\n"}
    for rel in [mig, rls, plan_rel, *(extra_files or {})]:
        if (project / rel).exists() and rel not in (extra_files or {}):
            raise OpError(f"{rel} already exists", "choose another name", exit_code=2)
    progress = ctx.progress("Proving on a shadow database", 3)
    with shadow_database(ctx.admin_url, "design") as shadow_url:
        validate_types(design, shadow_url)
        progress.advance(1, "types known")
        with tempfile.TemporaryDirectory() as tmp:
            for i, (rel, text) in enumerate([(mig, schema_sql), (rls, rls_sql)]):
                path = Path(tmp) / f"{i}.sql"
                path.write_text(text, encoding="utf-8")
                try:
                    load_sql_file(shadow_url, path)
                except Exception as exc:  # noqa: BLE001 - psql's message names the statement
                    raise OpError(f"the generated {Path(rel).name} failed on a shadow database: {exc}",
                                  "fix the design (types, defaults, references) and run again") from None
                progress.advance(1, Path(rel).name)
        # lazy: psycopg loads on the first database call
        import psycopg

        with psycopg.connect(shadow_url) as conn:
            tables = conn.execute(
                "select c.relname, c.relrowsecurity, (select count(*) from pg_policy p where p.polrelid = c.oid) "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind = 'r' and c.relname = any(%s) order by 1",
                (design.schema_, order)).fetchall()
    plan_md = implementation_plan(design, source, [mig, rls, *(extra_files or {})], order, notes)
    files[plan_rel] = plan_md
    stamped = {mig: f"supabase/migrations/<UTC timestamp>_{safe}.sql",
               rls: f"supabase/migrations/<UTC timestamp>_{safe}_rls.sql"}
    plan = "\n".join(f"write {stamped.get(rel, rel)}" for rel in files) + "\n\n" + \
        "\n".join(f"-- {stamped[rel]}\n{files[rel]}" for rel in (mig, rls))
    ctx.confirm(f"Write {len(files)} file(s) (proved on a shadow database)?", plan=plan)
    for rel, text in files.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    findings = [Finding(rule="design.rls", severity="warning" if "OFF" in n or "disabled" in n else "info", message=n)
                for n in notes]
    return OpResult(operation=ctx.task.id if ctx.task else "design", status="ok",
                    summary=f"{len(order)} table(s) from {source}: migration, RLS policies and plan written; "
                            "applied cleanly on a shadow database",
                    facts={"tables": len(order), "schema": design.schema_, "proved_on_shadow": True},
                    tables=[Table(title="Tables (shadow database)", columns=["table", "rls", "policies"],
                                  rows=[[r[0], "on" if r[1] else "off", r[2]] for r in tables])],
                    findings=findings, artifacts=list(files), next_steps=["*snapshot before-design", f"*dry-run {mig}",
                                                                          f"*apply {mig}"],
                    data={"migration": mig, "rls": rls, "plan": plan_rel, "order": order})


@operation("create-migration-from-design", risk="write")
def create_migration_from_design(inputs: DesignInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.design.generate import load_design

    path = Path(inputs.design)
    path = path if path.is_absolute() else ctx.project / path
    design = load_design(path, inputs.design)
    return build_from_design(design, inputs.design, inputs.name, ctx)


# --- *model-domain ------------------------------------------------------------------------------
class ModelDomainInput(BaseModel):
    project_name: str = "app"
    spec: str | None = None
    name: str = "domain"


_ID_TYPES = {"uuid": ("uuid", "gen_random_uuid()"), "bigint": ("bigint generated always as identity", None)}


def spec_to_tables(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A domain spec (entities, attributes, keys, relationships, ownership, tenancy) -> schema-design tables."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.design.generate import DesignError

    if not isinstance(spec, dict) or not isinstance(spec.get("entities"), list) or not spec["entities"]:
        raise DesignError("domain spec: expected `entities:` with at least one entity",
                          "see tasks/domain-modeling.md for the spec shape", exit_code=2)
    allowed = {"project", "entities", "tenancy"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise DesignError(f"domain spec: unknown field(s) {', '.join(unknown)}", f"allowed: {', '.join(sorted(allowed))}",
                          exit_code=2)
    tenancy = spec.get("tenancy") or {}
    tables = []
    for ent in spec["entities"]:
        if not isinstance(ent, dict) or not ent.get("name"):
            raise DesignError("domain spec: every entity needs a name", "", exit_code=2)
        bad = sorted(set(ent) - {"name", "description", "key", "owner", "attributes", "relationships", "tenant"})
        if bad:
            raise DesignError(f"domain spec: entity {ent['name']}: unknown field(s) {', '.join(bad)}", "", exit_code=2)
        key = str(ent.get("key", "uuid"))
        if key not in _ID_TYPES:
            raise DesignError(f"entity {ent['name']}: key must be uuid or bigint (got {key!r})", "", exit_code=2)
        ktype, kdefault = _ID_TYPES[key]
        cols: list[dict[str, Any]] = [{"name": "id", "type": ktype, "nullable": False, "default": kdefault,
                                       "primary_key": True, "references": None}]
        owner = ent.get("owner")
        if owner:
            cols.append({"name": owner, "type": "uuid", "nullable": False, "default": "auth.uid()", "primary_key": False,
                         "references": {"table": "auth.users", "column": "id", "on_delete": "cascade"}})
        if tenancy and ent.get("tenant", True) and ent["name"] != tenancy.get("table"):
            cols.append({"name": tenancy.get("column", "tenant_id"), "type": "uuid", "nullable": False, "default": None,
                         "primary_key": False,
                         "references": {"table": tenancy["table"], "column": "id", "on_delete": "cascade"}
                         if tenancy.get("table") else None})
        for attr in ent.get("attributes", []) or []:
            if isinstance(attr, str):
                aname, _, atype = attr.partition(":")
                attr = {"name": aname.strip().rstrip("!"), "type": atype.strip() or "text",
                        "required": aname.strip().endswith("!")}
            cols.append({"name": attr["name"], "type": attr.get("type", "text"),
                         "nullable": not attr.get("required", False), "default": attr.get("default"),
                         "primary_key": False, "references": None})
        for rel in ent.get("relationships", []) or []:
            cols.append({"name": rel.get("column") or f"{rel['to'].rstrip('s')}_id", "type": rel.get("type", "uuid"),
                         "nullable": not rel.get("required", True), "default": None, "primary_key": False,
                         "references": {"table": rel["to"], "column": "id", "on_delete": rel.get("on_delete", "restrict")}})
        cols += [{"name": "created_at", "type": "timestamptz", "nullable": False, "default": "now()",
                  "primary_key": False, "references": None}]
        tables.append({"name": ent["name"], "description": ent.get("description", ""), "columns": cols,
                       "indexes": [], "rls": {"enabled": True, "owner_column": owner or None}})
    return tables


def _ask(ctx, label: str) -> str:
    """One free-form question; blank is a valid answer (no '(default )' noise in the prompt)."""
    return ctx.ask_fn(InputSpec(key="value", label=label, kind="text", required=False, line=0)) or ""


def elicit_spec(ctx) -> dict[str, Any]:
    """REPL: one question at a time."""
    entities = []
    tenancy_table = _ask(ctx, "Tenancy: table that owns tenants (e.g. organizations), blank for none").strip()
    tenancy = {"table": tenancy_table, "column": "tenant_id"} if tenancy_table else None
    while True:
        name = _ask(ctx, "Entity name (plural, snake_case; blank to finish)").strip()
        if not name:
            break
        attrs = _ask(ctx, f"{name}: attributes as name:type, comma separated (name! = required)").strip()
        key = _ask(ctx, f"{name}: key type (uuid/bigint, default uuid)").strip() or "uuid"
        owner = _ask(ctx, f"{name}: owner column referencing auth.users (e.g. user_id; blank for none)").strip()
        rels = _ask(ctx, f"{name}: references as column->table, comma separated (blank for none)").strip()
        ent: dict[str, Any] = {"name": name, "key": key,
                               "attributes": [a.strip() for a in attrs.split(",") if a.strip()]}
        if owner:
            ent["owner"] = owner
        if rels:
            ent["relationships"] = [{"column": r.split("->")[0].strip(), "to": r.split("->")[1].strip()}
                                    for r in rels.split(",") if "->" in r]
        entities.append(ent)
    spec: dict[str, Any] = {"entities": entities}
    if tenancy:
        spec["tenancy"] = tenancy
    return spec


@operation("domain-modeling", risk="write")
def model_domain(inputs: ModelDomainInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.design.generate import DesignError, parse_design, read_yaml_file, render_template_file

    if inputs.spec:
        path = Path(inputs.spec)
        path = path if path.is_absolute() else ctx.project / path
        if not path.is_file():
            raise OpError(f"domain spec not found: {inputs.spec}", "pass a YAML file with entities:", exit_code=2)
        spec = read_yaml_file(path, inputs.spec)
    elif ctx.interactive and ctx.ask_fn:
        spec = elicit_spec(ctx)
    else:
        raise OpError("headless *model-domain needs a spec file", "pass spec=FILE (see tasks/domain-modeling.md)",
                      exit_code=2)
    tables = spec_to_tables(spec)
    rendered = render_template_file("schema-design-tmpl.yaml", {
        "project": spec.get("project") or inputs.project_name, "tables": tables, "author": "db-sage *model-domain"})
    doc_rel = "docs/architecture/schema-design.yaml"
    if (ctx.project / doc_rel).exists():
        raise OpError(f"{doc_rel} already exists", "move it away or run *create-migration-from-design on it",
                      exit_code=2)
    design = parse_design(yaml.safe_load(rendered), doc_rel)
    if not design.tables:
        raise DesignError("no entities", "", exit_code=2)
    return build_from_design(design, doc_rel, inputs.name, ctx, extra_files={doc_rel: rendered})
