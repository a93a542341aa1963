"""Schema design (knowledge/templates/schema-design-tmpl.yaml shape) -> migration SQL + RLS policies.

Helper module for sage_agent.ops.design.commands (registers no operation).

FK cycles (decision, also in tasks/create-migration-from-design.md):
- a cycle in which at least one foreign key column is nullable is created in two steps: every table
  first (without the foreign keys inside the cycle), then `alter table ... add constraint ... foreign key`;
- a cycle in which every foreign key column is NOT NULL is rejected: no row could ever be inserted first.
Self-references are created inline (they never block creation).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sage_agent.ops.result import OpError
from sage_agent.errors import NotUtf8, read_utf8

_IDENTITY = re.compile(r"\s+generated\s+(always|by\s+default)\s+as\s+identity.*$", re.I | re.S)
_ON_DELETE = {"cascade", "restrict", "set null", "set default", "no action"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Reference(_Strict):
    table: str
    column: str = "id"
    on_delete: str | None = None


class ColumnDesign(_Strict):
    name: str
    type: str
    nullable: bool = True
    default: str | int | float | bool | None = None
    primary_key: bool = False
    references: Reference | None = None


class IndexDesign(_Strict):
    name: str | None = None
    columns: list[str]
    unique: bool = False
    method: str = "btree"
    where: str | None = None
    reason: str | None = None


class RlsDesign(_Strict):
    enabled: bool = True
    owner_column: str | None = None


class CheckDesign(_Strict):
    name: str
    expression: str


class TableDesign(_Strict):
    name: str
    description: str = ""
    columns: list[ColumnDesign]
    indexes: list[IndexDesign] = []
    rls: RlsDesign = RlsDesign()
    checks: list[CheckDesign] = []


class RelationshipDesign(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    type: str | None = None
    on_delete: str | None = None


class SchemaDesign(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    template: dict[str, Any] | None = None
    document: dict[str, Any] | None = None
    schema_: str = Field(default="public", alias="schema")
    conventions: dict[str, Any] | None = None
    tables: list[TableDesign]
    relationships: list[RelationshipDesign] = []
    access: Any = None
    notes: Any = None
    open_questions: Any = None


class DesignError(OpError):
    pass


def load_design(path: Path, label: str | None = None) -> SchemaDesign:
    label = label or str(path)
    if not path.is_file():
        raise DesignError(f"schema design not found: {label}", "the @architect writes docs/architecture/schema-design.yaml "
                          "(template schema-design-tmpl.yaml); pass its path", exit_code=2)
    return parse_design(read_yaml_file(path, label), label)


def read_yaml_file(path: Path, label: str) -> Any:
    """A design or domain YAML file's document; bad YAML or bytes that are not UTF-8 are bad input (exit 2)."""
    try:
        return yaml.safe_load(read_utf8(path))
    except yaml.YAMLError as exc:
        raise DesignError(f"{label} is not valid YAML: {exc}", "fix the YAML syntax", exit_code=2) from None
    except NotUtf8 as exc:
        raise DesignError(f"{label} is not UTF-8 text (byte {exc.start})", "save the file as UTF-8",
                          exit_code=2) from None


def parse_design(doc: Any, label: str) -> SchemaDesign:
    if not isinstance(doc, dict):
        raise DesignError(f"{label}: expected a mapping with `tables:`", "see knowledge/templates/schema-design-tmpl.yaml",
                          exit_code=2)
    try:
        design = SchemaDesign.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            where = _loc(doc, err["loc"])
            problems.append(f"{where}: {'unknown field' if err['type'] == 'extra_forbidden' else err['msg']}")
        raise DesignError(f"{label}: invalid schema design: " + "; ".join(problems),
                          "see the shape in knowledge/templates/schema-design-tmpl.yaml", exit_code=2) from None
    check_design(design, label)
    return design


def _loc(doc: Any, loc: tuple) -> str:
    """tables[1].columns[0].type -> tables.orders.columns.total.type (names where we have them)."""
    parts: list[str] = []
    node = doc
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(str(name) if name else f"[{part}]")
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)


def _split_table(ref: str, schema: str) -> tuple[str, str]:
    schema_name, dot, table = ref.rpartition(".")
    return (schema_name if dot else schema), table


def check_design(design: SchemaDesign, label: str) -> None:
    names = [t.name for t in design.tables]
    if not names:
        raise DesignError(f"{label}: the design has no tables", "add tables[] entries", exit_code=2)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DesignError(f"{label}: table {', '.join(dupes)} defined twice", "give each table one entry", exit_code=2)
    known = {(design.schema_, t.name): t for t in design.tables}
    for t in design.tables:
        for value in [t.name] + [c.name for c in t.columns]:
            if not _NAME.match(value):
                raise DesignError(f"{label}: bad identifier {value!r} in table {t.name}",
                                  "use letters, digits and underscores", exit_code=2)
        cols = [c.name for c in t.columns]
        if not cols:
            raise DesignError(f"{label}: table {t.name} has no columns", "add columns[]", exit_code=2)
        if len(set(cols)) != len(cols):
            raise DesignError(f"{label}: table {t.name} has a column defined twice", "", exit_code=2)
        for c in t.columns:
            if ";" in c.type or (isinstance(c.default, str) and ";" in c.default):
                raise DesignError(f"{label}: {t.name}.{c.name}: ';' is not allowed in a type or default",
                                  "one expression per field", exit_code=2)
            ref = c.references
            if ref:
                if ref.on_delete and ref.on_delete.lower() not in _ON_DELETE:
                    raise DesignError(f"{label}: {t.name}.{c.name}: on_delete {ref.on_delete!r} is not one of "
                                      f"{', '.join(sorted(_ON_DELETE))}", "", exit_code=2)
                key = _split_table(ref.table, design.schema_)
                if key[0] == design.schema_ and key not in known:
                    raise DesignError(f"{label}: {t.name}.{c.name} references unknown table {ref.table}",
                                      "add the table to the design or qualify it (e.g. auth.users)", exit_code=2)
                if key in known and ref.column not in [x.name for x in known[key].columns]:
                    raise DesignError(f"{label}: {t.name}.{c.name} references unknown column {ref.table}.{ref.column}",
                                      "", exit_code=2)
        for ix in t.indexes:
            missing = [x for x in ix.columns if x not in cols]
            if missing:
                raise DesignError(f"{label}: index on {t.name} names unknown column(s) {', '.join(missing)}", "",
                                  exit_code=2)
        if t.rls.owner_column and t.rls.owner_column not in cols:
            raise DesignError(f"{label}: rls.owner_column {t.rls.owner_column!r} is not a column of {t.name}", "",
                              exit_code=2)
    # relationships[] fill in references the columns did not state
    for rel in design.relationships:
        src_t, _, src_c = rel.from_.partition(".")
        dst, _, dst_c = rel.to.rpartition(".")
        table = next((t for t in design.tables if t.name == src_t), None)
        col = next((c for c in table.columns if c.name == src_c), None) if table else None
        if col is None:
            raise DesignError(f"{label}: relationship from {rel.from_}: no such table column", "", exit_code=2)
        if col.references is None:
            col.references = Reference(table=dst, column=dst_c or "id", on_delete=rel.on_delete)
            check_design_ref = _split_table(dst, design.schema_)
            if check_design_ref[0] == design.schema_ and check_design_ref not in known:
                raise DesignError(f"{label}: relationship {rel.from_} -> {rel.to}: unknown table {dst}", "",
                                  exit_code=2)


def base_type(type_text: str) -> str:
    return _IDENTITY.sub("", type_text).strip()


def order_tables(design: SchemaDesign) -> tuple[list[TableDesign], set[tuple[str, str]]]:
    """Creation order plus the (table, column) foreign keys to add afterwards (cycles). Rejects impossible cycles."""
    tables = {t.name: t for t in design.tables}
    edges: dict[str, list[tuple[str, ColumnDesign]]] = {n: [] for n in tables}
    for t in design.tables:
        for c in t.columns:
            if c.references:
                schema, target = _split_table(c.references.table, design.schema_)
                if schema == design.schema_ and target in tables and target != t.name:
                    edges[t.name].append((target, c))
    # strongly connected components (Tarjan)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _ in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for name in tables:
        if name not in index:
            visit(name)
    deferred: set[tuple[str, str]] = set()
    for comp in comps:
        if len(comp) < 2:
            continue
        members = set(comp)
        inner = [(src, c) for src in comp for dst, c in edges[src] if dst in members]
        if all(not c.nullable or c.primary_key for _, c in inner):
            cycle = " -> ".join(sorted(members))
            cols = ", ".join(f"{s}.{c.name}" for s, c in inner)
            raise DesignError(f"foreign key cycle between {cycle} through NOT NULL columns ({cols}): no row could "
                              "ever be inserted first", "make one of these columns nullable (it is then added after "
                              "both tables exist) or remove one reference", exit_code=2)
        deferred.update((src, c.name) for src, c in inner)
    # topological order ignoring deferred edges; Tarjan emits components dependencies-first
    order = [tables[n] for comp in comps for n in sorted(comp, key=list(tables).index)]
    return order, deferred


def _fk_clause(ref: Reference, schema: str, sql) -> Any:
    rschema, rtable = _split_table(ref.table, schema)
    clause = sql.SQL("references {}.{} ({})").format(sql.Identifier(rschema), sql.Identifier(rtable),
                                                     sql.Identifier(ref.column))
    if ref.on_delete:
        clause = sql.SQL("{} on delete {}").format(clause, sql.SQL(ref.on_delete.lower()))
    return clause


def _default_sql(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def generate_sql(design: SchemaDesign, source: str) -> tuple[str, list[str]]:
    """The schema migration (tables, foreign keys, indexes, comments) and the list of table names in order."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    schema = design.schema_
    order, deferred = order_tables(design)
    out: list[str] = [f"-- Generated by DB Sage from {source}", "-- Tables in dependency order; "
                      "foreign keys inside a cycle are added after the tables exist.",
                      "set lock_timeout = '5s';",
                      "set statement_timeout = '60s';", ""]
    if schema != "public":
        out.append(sql.SQL("create schema if not exists {};").format(sql.Identifier(schema)).as_string(None))
    later: list[str] = []
    indexes: list[str] = []
    for t in order:
        qname = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(t.name))
        lines = []
        pk = [c.name for c in t.columns if c.primary_key]
        for c in t.columns:
            parts = [sql.Identifier(c.name).as_string(None), c.type]
            if c.default is not None:
                parts.append(f"default {_default_sql(c.default)}")
            if not c.nullable and not (c.primary_key and len(pk) == 1):
                parts.append("not null")
            if c.primary_key and len(pk) == 1:
                parts.append("primary key")
            if c.references and (t.name, c.name) not in deferred:
                parts.append(_fk_clause(c.references, schema, sql).as_string(None))
            lines.append("  " + " ".join(parts))
        if len(pk) > 1:
            lines.append("  " + sql.SQL("primary key ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, pk))).as_string(None))
        for chk in t.checks:
            lines.append("  " + sql.SQL("constraint {} check ").format(sql.Identifier(chk.name)).as_string(None)
                         + f"({chk.expression})")
        out.append(f"create table {qname.as_string(None)} (\n" + ",\n".join(lines) + "\n);")
        if t.description:
            out.append(sql.SQL("comment on table {} is {};").format(qname, sql.Literal(t.description)).as_string(None))
        covered = {tuple(ix.columns[:1]) for ix in t.indexes} | ({(pk[0],)} if pk else set())
        for ix in t.indexes:
            name = ix.name or f"{t.name}_{'_'.join(ix.columns)}_idx"
            stmt = sql.SQL("create {}index {} on {} using {} ({})").format(
                sql.SQL("unique " if ix.unique else ""), sql.Identifier(name), qname, sql.SQL(ix.method.lower()),
                sql.SQL(", ").join(map(sql.Identifier, ix.columns))).as_string(None)
            indexes.append(stmt + (f" where {ix.where}" if ix.where else "") + ";")
        for c in t.columns:
            if c.references and (c.name,) not in covered:
                indexes.append(sql.SQL("create index {} on {} using btree ({});").format(
                    sql.Identifier(f"{t.name}_{c.name}_idx"), qname, sql.Identifier(c.name)).as_string(None))
                covered.add((c.name,))
            if c.references and (t.name, c.name) in deferred:
                later.append(sql.SQL("alter table {} add constraint {} foreign key ({}) {};").format(
                    qname, sql.Identifier(f"{t.name}_{c.name}_fkey"), sql.Identifier(c.name),
                    _fk_clause(c.references, schema, sql)).as_string(None))
        out.append("")
    if later:
        out += ["-- Foreign keys inside a reference cycle (added once every table exists)", *later, ""]
    if indexes:
        out += ["-- Indexes (every foreign key column gets one)", *indexes, ""]
    return "\n".join(out), [t.name for t in order]


def generate_rls(design: SchemaDesign, render) -> tuple[str, list[str]]:
    """RLS per table: the kiss template (owner-only) when owner_column is set; RLS on with no policy otherwise."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    parts = ["-- Row level security generated by DB Sage (template rls-kiss-policy)", "set lock_timeout = '5s';",
             "set statement_timeout = '60s';", ""]
    notes: list[str] = []
    for t in design.tables:
        qname = sql.SQL("{}.{}").format(sql.Identifier(design.schema_), sql.Identifier(t.name)).as_string(None)
        if not t.rls.enabled:
            notes.append(f"{t.name}: RLS disabled in the design (exposed through the API without row checks)")
            continue
        if t.rls.owner_column:
            body = render("rls-kiss-policy-tmpl.sql",
                          {"schema": design.schema_, "table": t.name, "owner_column": t.rls.owner_column})
            parts.append(f"-- {t.name}: owner-only access through {t.rls.owner_column}")
            parts.append("\n".join(line for line in body.splitlines() if not line.startswith("-- var:")).strip())
        else:
            parts.append(f"-- {t.name}: RLS on, no owner column in the design: nobody but the service role sees rows")
            parts.append(f"alter table {qname} enable row level security;")
            notes.append(f"{t.name}: RLS enabled without a policy (no owner_column); add policies with *policy-apply")
        parts.append("")
    return "\n".join(parts), notes


def validate_types(design: SchemaDesign, url: str) -> None:
    """Every column type must be a type the server knows (to_regtype), checked before anything is written."""
    # lazy: psycopg loads on the first database call
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for t in design.tables:
            for c in t.columns:
                typ = base_type(c.type)
                try:
                    row = conn.execute("select to_regtype(%s)", (typ,)).fetchone()
                except psycopg.Error:
                    row = (None,)
                if row[0] is None:
                    raise DesignError(f"{t.name}.{c.name}: unknown type {typ!r}",
                                      "use a PostgreSQL type (text, bigint, uuid, timestamptz, numeric(12,2), jsonb...)",
                                      exit_code=2)


def implementation_plan(design: SchemaDesign, source: str, files: list[str], order: list[str], notes: list[str]) -> str:
    lines = [f"# Implementation plan: {(design.document or {}).get('title', 'Schema design')}", "",
             f"Source design: `{source}`", "", "## Files", *[f"- `{f}`" for f in files], "",
             "## Order of work", "1. `*snapshot before-design` (baseline to roll back to)",
             "2. `*dry-run` each migration (proved already on a shadow database by DB Sage)",
             "3. `*apply` the migrations in file order", "4. `*rls-audit` and `*smoke-test`", "",
             "## Tables (creation order)"]
    for name in order:
        t = next(x for x in design.tables if x.name == name)
        owner = f"owner column `{t.rls.owner_column}`" if t.rls.owner_column else "no owner column"
        lines.append(f"- `{design.schema_}.{name}` - {t.description or 'no description'} "
                     f"({len(t.columns)} columns; RLS {'on' if t.rls.enabled else 'OFF'}, {owner})")
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    lines += ["", "## Rollback", "Restore the `before-design` snapshot with `*rollback before-design`, or drop the new "
              "tables in reverse creation order: " + ", ".join(reversed(order)) + "."]
    return "\n".join(lines) + "\n"


# --- templates ----------------------------------------------------------------------------------------
def render_template_file(filename: str, variables: dict[str, Any]) -> str:
    """Render knowledge/templates/<filename> with the catalog's renderer (the one *create-doc uses)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.catalog.templates import render_template

    return render_template(filename, variables)
