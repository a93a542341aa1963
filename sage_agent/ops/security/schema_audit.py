"""*schema-audit: design and performance findings, each with a fix (SQL where one exists) and a score."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sage_agent.ops.security.lints import SCHEMA_LINTS, SYSTEM_SCHEMAS, _only, run_lints
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


# The rows each rule of *schema-audit reads, shared with the watch's summary (security/summary.py) so that both
# see the same findings. Parameter: %(schemas)s, the user schemas.
USER_SCHEMAS_SQL = ("select nspname::text from pg_namespace where nspname <> all(%s) and nspname not like 'pg\\_%%' "
                    "order by nspname")

# The columns of the user schemas' tables, read once: every column rule below selects from `cols`. Parameter
# %(only)s: these relations only (None: all; `sage watch` reruns the rules on the relations that changed).
COLUMNS_CTE = f"""cols(s, o, c, relid, attnum, typid, typmod, attnotnull) as materialized (
  select n.nspname::text, c.relname::text, a.attname::text, c.oid, a.attnum, a.atttypid, a.atttypmod, a.attnotnull
  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname = any(%(schemas)s) and a.attnum > 0 and not a.attisdropped
    and {_only('c.oid')})"""

# int2/int4 primary-key or sequence-backed columns (from the catalog), with their sequence. The sequence is
# found the way pg_get_serial_sequence does (an auto or internal dependency of a sequence on the column), joined
# as a set rather than looked up per column.
INT_ID_COLUMNS_SQL = f"""
select x.s, x.o, x.c, format_type(x.typid, null), dep.objid, case x.typid when 'int2'::regtype then 32767 else 2147483647 end,
       x.relid
from cols x
left join (select distinct on (d.refobjid, d.refobjsubid) d.refobjid, d.refobjsubid, d.objid
           from pg_depend d join pg_class sq on sq.oid = d.objid and sq.relkind = 'S'
           where d.refclassid = 'pg_class'::regclass and d.classid = 'pg_class'::regclass and d.objsubid = 0
             and {_only('d.refobjid')}
             and d.refobjsubid > 0 and d.deptype in ('a', 'i')
           order by d.refobjid, d.refobjsubid, d.objid) dep on dep.refobjid = x.relid and dep.refobjsubid = x.attnum
left join (select distinct i.indrelid, k.attnum from pg_index i cross join unnest(i.indkey::int2[]) k(attnum)
           where i.indisprimary and {_only('i.indrelid')}) pk on pk.indrelid = x.relid and pk.attnum = x.attnum
where x.typid in ('int2'::regtype, 'int4'::regtype) and (dep.objid is not null or pk.indrelid is not null)"""

# The data's part: how far each sequence has gone (NULL without the privilege to read it).
SEQUENCE_LAST_SQL = ("case when {seq} is not null and has_sequence_privilege({seq}, 'SELECT,USAGE') "
                     "then pg_sequence_last_value({seq}::regclass) end")

# ... and both: (schema, table, column, type, last value, max)
INT_IDS_SQL = f"""
select i.s, i.o, i.c, i.typ, {SEQUENCE_LAST_SQL.format(seq='i.seq')}, i.maxv
from ({INT_ID_COLUMNS_SQL}) i(s, o, c, typ, seq, maxv, relid)"""

TIMESTAMP_SQL = "select x.s, x.o, x.c, x.relid from cols x where x.typid = 'timestamp'::regtype"

VARCHAR_SQL = ("select x.s, x.o, x.c, x.typmod - 4, x.relid from cols x "
               "where x.typid = 'varchar'::regtype and x.typmod > 4")

NULLABLE_FK_SQL = """
select x.s, x.o, x.c, ct.conname::text, x.relid from pg_constraint ct join cols x on x.relid = ct.conrelid
where ct.contype = 'f' and x.attnum = any(ct.conkey) and not x.attnotnull"""

# relations (column null) and their columns, for the naming rules
RELATION_NAMES_SQL = f"""
select n.nspname::text, c.relname::text, null::text, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any(%(schemas)s) and {_only('c.oid')}"""
NAMES_SQL = f"""{RELATION_NAMES_SQL}
union all
select x.s, x.o, x.c, x.relid from cols x"""


def _with_columns(sql: str) -> str:
    return f"with {COLUMNS_CTE}\n{sql}"


SNAKE_CASE = r"^[a-z_][a-z0-9_]*$"  # the same pattern in Python (fullmatch) and in PostgreSQL (~)
NEAR_OVERFLOW, OVERFLOW_ERROR = 0.5, 0.75  # share of an int id's range used: warning, error


def int_id_rule(last: int | None, maxv: int) -> tuple[str, str, float]:
    """An int id column's rule and severity, and the share of its range its sequence has used."""
    used = (last or 0) / maxv
    if used >= NEAR_OVERFLOW:
        return "int_id_near_overflow", "error" if used >= OVERFLOW_ERROR else "warning", used
    return "prefer_bigint_ids", "info", used


def mixed_plurality(tables: int, plural: int) -> bool:
    """Enough plural and enough singular table names to call the naming inconsistent."""
    return bool(tables) and 0 < plural < tables and min(plural, tables - plural) >= max(2, tables // 5)


def user_schemas_of(conn) -> list[str]:
    return [r[0] for r in conn.execute(USER_SCHEMAS_SQL, (SYSTEM_SCHEMAS,)).fetchall()]


def audit(conn, schemas: list[str] | None = None) -> tuple[list[AuditFinding], dict[str, Any]]:
    user_schemas = schemas or user_schemas_of(conn)
    findings: list[AuditFinding] = []
    run = run_lints(conn, SCHEMA_LINTS, exposed=user_schemas)
    for lint in run.lints:
        if lint["metadata"]["schema"] not in user_schemas:
            continue
        m = lint["metadata"]
        findings.append(AuditFinding(lint["name"], _LEVEL[lint["level"]], f"{m['schema']}.{m['name']}",
                                     lint["detail"].replace("`", ""), _lint_fix(lint)))
    p = {"schemas": user_schemas, "only": None, "lo": None, "hi": None}
    # int ids near overflow (sequence-backed columns) and int primary keys (prefer bigint)
    for schema, table, column, typ, last, maxv in conn.execute(_with_columns(INT_IDS_SQL) + " order by 1, 2, 3", p).fetchall():
        rule, severity, used = int_id_rule(last, maxv)
        fix = (f"alter table {q(schema, table)} alter column {q(column)} type bigint;  -- rewrites the table "
               f"under ACCESS EXCLUSIVE; on big tables add a bigint column, backfill in batches and swap")
        if rule == "int_id_near_overflow":
            findings.append(AuditFinding(rule, severity, f"{schema}.{table}.{column}",
                                         f"{typ} id has used {used:.0%} of its range ({last} of {maxv})", fix))
        else:
            findings.append(AuditFinding(rule, severity, f"{schema}.{table}.{column}",
                                         f"{typ} id column: prefer bigint (identity) for ids", fix))
    for schema, table, column, _ in conn.execute(_with_columns(TIMESTAMP_SQL) + " order by 1, 2, 3", p).fetchall():
        findings.append(AuditFinding("timestamp_without_time_zone", "warning", f"{schema}.{table}.{column}",
                                     "timestamp without time zone: values lose their zone; use timestamptz",
                                     f"alter table {q(schema, table)} alter column {q(column)} type timestamptz "
                                     f"using {q(column)} at time zone 'UTC';  -- rewrites the table"))
    for schema, table, column, n, _ in conn.execute(_with_columns(VARCHAR_SQL) + " order by 1, 2, 3", p).fetchall():
        findings.append(AuditFinding("varchar_n", "info", f"{schema}.{table}.{column}",
                                     f"varchar({n}): use text (with a CHECK on length if the limit is a business rule)",
                                     f"alter table {q(schema, table)} alter column {q(column)} type text;  "
                                     f"-- no rewrite (binary compatible)\n"
                                     f"alter table {q(schema, table)} add constraint "
                                     f"{q((table + '_' + column + '_len')[:63])} check (char_length({q(column)}) <= {n}) not valid;"))
    for schema, table, column, con, _ in conn.execute(_with_columns(NULLABLE_FK_SQL) + " order by 1, 2, 3", p).fetchall():
        findings.append(AuditFinding("nullable_foreign_key", "info", f"{schema}.{table}.{column}",
                                     f"foreign key column ({con}) allows NULL: if every row needs a parent, make it NOT NULL",
                                     f"alter table {q(schema, table)} add constraint {q((column + '_not_null')[:63])} "
                                     f"check ({q(column)} is not null) not valid;\n"
                                     f"alter table {q(schema, table)} validate constraint {q((column + '_not_null')[:63])};\n"
                                     f"alter table {q(schema, table)} alter column {q(column)} set not null;"))
    # naming consistency: snake_case, lower case; tables singular/plural mix
    names = conn.execute(_with_columns(NAMES_SQL), p).fetchall()
    snake = re.compile(SNAKE_CASE)
    for schema, table, column, _ in names:
        name = column or table
        if not snake.fullmatch(name):
            where = f"{schema}.{table}" + (f".{column}" if column else "")
            new = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace(" ", "_").replace("-", "_")
            fix = (f"alter table {q(schema, table)} rename column {q(column)} to {q(new)};" if column
                   else f"alter table {q(schema, table)} rename to {q(new)};")
            findings.append(AuditFinding("naming_not_snake_case", "info", where,
                                         f"{name!r} is not lower snake_case (needs quoting everywhere)", fix + "  -- expand/contract if code uses it"))
    tables = [t for _, t, c, _ in names if c is None]
    plural = [t for t in tables if t.endswith("s")]
    if mixed_plurality(len(tables), len(plural)):
        findings.append(AuditFinding("naming_mixed_plurality", "info", ", ".join(user_schemas),
                                     f"{len(plural)} table names are plural and {len(tables) - len(plural)} singular: pick one",
                                     None))
    penalty = sum(WEIGHTS[f.severity] for f in findings)
    n_tables = max(1, len(tables))
    score = max(0, round(100 - 100 * penalty / (penalty + 4 * n_tables))) if penalty else 100
    return findings, {"score": score, "tables": len(tables), "schemas": user_schemas}
