"""*schema-audit: design and performance findings, each with a fix (SQL where one exists) and a score."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sage_agent.ops.security.lints import SCHEMA_LINTS, SYSTEM_SCHEMAS, run_lints
from sage_agent.sqlkit.idents import quoted

WEIGHTS = {"error": 5, "warning": 2, "info": 1}
_LEVEL = {"ERROR": "error", "WARN": "warning", "INFO": "info"}


@dataclass
class AuditFinding:
    rule: str
    severity: str
    location: str
    message: str
    fix: str | None


def q(*parts: str) -> str:
    """Quoted (dotted) identifier: always double-quoted, quotes doubled (sqlkit.idents)."""
    return quoted(*(str(p) for p in parts))


def _lint_fix(lint: dict[str, Any]) -> str | None:
    m = lint["metadata"]
    table = q(m["schema"], m["name"])
    if lint["name"] == "unindexed_foreign_keys":
        cols = ", ".join(q(c) for c in m.get("columns") or [])
        idx = q(f"{m['name']}_{'_'.join(m.get('columns') or [])}_idx"[:63])
        return f"create index concurrently if not exists {idx} on {table} ({cols});"
    if lint["name"] == "duplicate_index":
        keep, *drop = m["indexes"]
        return "\n".join(f"drop index concurrently if exists {q(m['schema'], d)};  -- keeps {keep}" for d in drop)
    if lint["name"] == "unused_index":
        return (f"-- confirm on every replica and after a full business cycle first\n"
                f"drop index concurrently if exists {q(m['schema'], m['index'])};")
    if lint["name"] == "no_primary_key":
        return f"alter table {table} add column id bigint generated always as identity primary key;"
    if lint["name"] == "table_bloat":
        return f"vacuum (analyze) {table};  -- to reclaim space without ACCESS EXCLUSIVE, use pg_repack"
    return None


def audit(conn, schemas: list[str] | None = None) -> tuple[list[AuditFinding], dict[str, Any]]:
    user_schemas = schemas or [r[0] for r in conn.execute(
        "select nspname from pg_namespace where nspname <> all(%s) and nspname not like 'pg\\_%%'",
        (SYSTEM_SCHEMAS,)).fetchall()]
    findings: list[AuditFinding] = []
    run = run_lints(conn, SCHEMA_LINTS, exposed=user_schemas)
    for lint in run.lints:
        if lint["metadata"]["schema"] not in user_schemas:
            continue
        m = lint["metadata"]
        findings.append(AuditFinding(lint["name"], _LEVEL[lint["level"]], f"{m['schema']}.{m['name']}",
                                     lint["detail"].replace("`", ""), _lint_fix(lint)))
    p = (user_schemas,)
    # int ids near overflow (sequence-backed columns) and int primary keys (prefer bigint)
    for schema, table, column, typ, last, maxv in conn.execute("""
        select n.nspname, c.relname, a.attname, format_type(a.atttypid, null), s.last_value,
               case a.atttypid when 'int2'::regtype then 32767 else 2147483647 end
        from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_sequences s on (s.schemaname || '.' || s.sequencename) =
             pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname)
        where c.relkind in ('r', 'p') and n.nspname = any(%s) and a.attnum > 0 and not a.attisdropped
          and a.atttypid in ('int2'::regtype, 'int4'::regtype)
          and (exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary and a.attnum = any(i.indkey))
               or pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) is not null)
        order by 1, 2, 3""", p).fetchall():
        used = (last or 0) / maxv
        fix = (f"alter table {q(schema, table)} alter column {q(column)} type bigint;  -- rewrites the table "
               f"under ACCESS EXCLUSIVE; on big tables add a bigint column, backfill in batches and swap")
        if used >= 0.5:
            findings.append(AuditFinding("int_id_near_overflow", "error" if used >= 0.75 else "warning",
                                         f"{schema}.{table}.{column}",
                                         f"{typ} id has used {used:.0%} of its range ({last} of {maxv})", fix))
        else:
            findings.append(AuditFinding("prefer_bigint_ids", "info", f"{schema}.{table}.{column}",
                                         f"{typ} id column: prefer bigint (identity) for ids", fix))
    for schema, table, column in conn.execute("""
        select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any(%s) and a.attnum > 0 and not a.attisdropped
          and a.atttypid = 'timestamp'::regtype order by 1, 2, 3""", p).fetchall():
        findings.append(AuditFinding("timestamp_without_time_zone", "warning", f"{schema}.{table}.{column}",
                                     "timestamp without time zone: values lose their zone; use timestamptz",
                                     f"alter table {q(schema, table)} alter column {q(column)} type timestamptz "
                                     f"using {q(column)} at time zone 'UTC';  -- rewrites the table"))
    for schema, table, column, n in conn.execute("""
        select n.nspname, c.relname, a.attname, a.atttypmod - 4 from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any(%s) and a.attnum > 0 and not a.attisdropped
          and a.atttypid = 'varchar'::regtype and a.atttypmod > 4 order by 1, 2, 3""", p).fetchall():
        findings.append(AuditFinding("varchar_n", "info", f"{schema}.{table}.{column}",
                                     f"varchar({n}): use text (with a CHECK on length if the limit is a business rule)",
                                     f"alter table {q(schema, table)} alter column {q(column)} type text;  "
                                     f"-- no rewrite (binary compatible)\n"
                                     f"alter table {q(schema, table)} add constraint "
                                     f"{q((table + '_' + column + '_len')[:63])} check (char_length({q(column)}) <= {n}) not valid;"))
    for schema, table, column, con in conn.execute("""
        select n.nspname, c.relname, a.attname, ct.conname from pg_constraint ct
        join pg_class c on c.oid = ct.conrelid join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum = any(ct.conkey)
        where ct.contype = 'f' and n.nspname = any(%s) and not a.attnotnull order by 1, 2, 3""", p).fetchall():
        findings.append(AuditFinding("nullable_foreign_key", "info", f"{schema}.{table}.{column}",
                                     f"foreign key column ({con}) allows NULL: if every row needs a parent, make it NOT NULL",
                                     f"alter table {q(schema, table)} add constraint {q((column + '_not_null')[:63])} "
                                     f"check ({q(column)} is not null) not valid;\n"
                                     f"alter table {q(schema, table)} validate constraint {q((column + '_not_null')[:63])};\n"
                                     f"alter table {q(schema, table)} alter column {q(column)} set not null;"))
    # naming consistency: snake_case, lower case; tables singular/plural mix
    names = conn.execute("""
        select n.nspname, c.relname, null::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any(%s)
        union all
        select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any(%s) and a.attnum > 0 and not a.attisdropped""",
                         (user_schemas, user_schemas)).fetchall()
    snake = re.compile(r"^[a-z_][a-z0-9_]*$")
    for schema, table, column in names:
        name = column or table
        if not snake.match(name):
            where = f"{schema}.{table}" + (f".{column}" if column else "")
            new = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace(" ", "_").replace("-", "_")
            fix = (f"alter table {q(schema, table)} rename column {q(column)} to {q(new)};" if column
                   else f"alter table {q(schema, table)} rename to {q(new)};")
            findings.append(AuditFinding("naming_not_snake_case", "info", where,
                                         f"{name!r} is not lower snake_case (needs quoting everywhere)", fix + "  -- expand/contract if code uses it"))
    tables = [t for _, t, c in names if c is None]
    plural = [t for t in tables if t.endswith("s")]
    if tables and 0 < len(plural) < len(tables) and min(len(plural), len(tables) - len(plural)) >= max(2, len(tables) // 5):
        findings.append(AuditFinding("naming_mixed_plurality", "info", ", ".join(user_schemas),
                                     f"{len(plural)} table names are plural and {len(tables) - len(plural)} singular: pick one",
                                     None))
    penalty = sum(WEIGHTS[f.severity] for f in findings)
    n_tables = max(1, len(tables))
    score = max(0, round(100 - 100 * penalty / (penalty + 4 * n_tables))) if penalty else 100
    return findings, {"score": score, "tables": len(tables), "schemas": user_schemas}
