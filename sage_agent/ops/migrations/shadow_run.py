"""Dry runs: the target's schema (and migration history) in a shadow database, the file applied there,
objects compared before/after, and the real target's table sizes for every statement that rewrites or scans.
The target is only ever read (a read-only session, and pg_dump)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from sage_agent.db.schemas import pg_dump_pattern

_CATALOG = """
with s as (select oid, nspname from pg_namespace where nspname = any(%(schemas)s))
select 'schema', nspname, '' from s
union all
select case c.relkind when 'r' then 'table' when 'p' then 'table' when 'v' then 'view' when 'm' then 'materialized view'
                      when 'S' then 'sequence' when 'i' then 'index' when 'I' then 'index' when 'f' then 'foreign table'
                      else 'relation' end,
       s.nspname || '.' || c.relname,
       {rel_def}
from pg_class c join s on s.oid = c.relnamespace left join pg_index x on x.indexrelid = c.oid
where c.relkind in ('r', 'p', 'v', 'm', 'S', 'i', 'I', 'f') and {rel}
union all
select 'constraint', s.nspname || '.' || t.relname || '.' || con.conname,
       {con_def}
from pg_constraint con join pg_class t on t.oid = con.conrelid join s on s.oid = t.relnamespace where {con}
union all
select case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end,
       s.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       {proc_def}
from pg_proc p join s on s.oid = p.pronamespace where {proc}
union all
select 'policy', s.nspname || '.' || t.relname || '.' || pol.polname,
       {pol_def}
from pg_policy pol join pg_class t on t.oid = pol.polrelid join s on s.oid = t.relnamespace where {pol}
union all
select 'trigger', s.nspname || '.' || t.relname || '.' || tg.tgname, {trg_def}
from pg_trigger tg join pg_class t on t.oid = tg.tgrelid join s on s.oid = t.relnamespace
where not tg.tgisinternal and {trg}
union all
select case ty.typtype when 'e' then 'enum' when 'd' then 'domain' else 'type' end, s.nspname || '.' || ty.typname,
       {typ_def}
from pg_type ty join s on s.oid = ty.typnamespace
where (ty.typtype in ('e', 'd') or (ty.typtype = 'c' and (select relkind from pg_class where oid = ty.typrelid) = 'c'))
  and {typ}
"""
_DEFS = {
    "rel_def": """case when c.relkind in ('i', 'I') then pg_get_indexdef(c.oid) || coalesce(' valid=' || x.indisvalid::text, '')
            when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid)
            else coalesce((select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                   || case when a.attnotnull then ' not null' else '' end
                                   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' order by a.attnum)
                           from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '')
                 || ' rls=' || c.relrowsecurity::text end""",
    "con_def": "pg_get_constraintdef(con.oid) || ' validated=' || con.convalidated::text",
    "proc_def": """md5(coalesce(p.prosrc, '') || pg_get_function_result(p.oid) || p.provolatile::text || p.prosecdef::text
           || coalesce(array_to_string(p.proconfig, ','), ''))""",
    "pol_def": """coalesce(pg_get_expr(pol.polqual, pol.polrelid), '') || '|'
       || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '')
       || '|' || pol.polcmd::text || '|' || array_to_string(pol.polroles::regrole[], ',')""",
    "trg_def": "pg_get_triggerdef(tg.oid)",
    "typ_def": """coalesce((select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e
                 where e.enumtypid = ty.oid), '') || coalesce(format_type(ty.typbasetype, ty.typtypmod), '')""",
}
_ALL = {"rel": "true", "con": "true", "proc": "true", "pol": "true", "trg": "true", "typ": "true"}
# The objects named, and the constraints, policies and triggers of the relations named: as one oid list per
# catalog, so each is an index lookup (an OR of the two conditions made them scans of the whole catalog).
_ONLY = {"rel": "c.oid = any(%(rels)s::oid[])",
         "con": "con.oid = any(%(cons)s::oid[] || array(select oid from pg_constraint "
                "where conrelid = any(%(rels)s::oid[])))",
         "proc": "p.oid = any(%(procs)s::oid[])",
         "pol": "pol.oid = any(%(pols)s::oid[] || array(select oid from pg_policy "
                "where polrelid = any(%(rels)s::oid[])))",
         "trg": "tg.oid = any(%(trgs)s::oid[] || array(select oid from pg_trigger "
                "where tgrelid = any(%(rels)s::oid[])))",
         "typ": "ty.oid = any(%(typs)s::oid[])"}

# The objects the current transaction wrote: their catalog rows carry one of its transaction ids as xmin (none
# older than its first), the objects those rows belong to, and one level of objects that depend on them
# (pg_depend): a view, index, constraint, policy or default whose printed definition names a renamed column,
# type, table or schema; and every index of a relation written (a primary key's index depends on its constraint,
# not on the table, yet prints the table's name). Only meaningful where nobody else writes: the cached template.
# Each piece names the catalog it scans: a catalog this transaction inserted, updated or deleted no row of
# (its pg_stat_xact counters, which only ever grow, aborted subtransactions included) holds no such row and is
# not scanned (at 10,000 tables, a full pass costs about a second; a one-line change touches 4 or 5 catalogs).
_WRITTEN_RELS = (
    ("pg_class", "select c.oid from pg_class c, mine where age(c.{col}) <= mine.a"),
    ("pg_attribute", "select a.attrelid from pg_attribute a, mine where age(a.{col}) <= mine.a"),
    ("pg_attrdef", "select d.adrelid from pg_attrdef d, mine where age(d.{col}) <= mine.a"),
    ("pg_index", "select x.indexrelid from pg_index x, mine where age(x.{col}) <= mine.a"),
    ("pg_rewrite", "select r.ev_class from pg_rewrite r, mine where age(r.{col}) <= mine.a"),
    ("pg_sequence", "select q.seqrelid from pg_sequence q, mine where age(q.{col}) <= mine.a"),
    ("pg_inherits", "select i.inhrelid from pg_inherits i, mine where age(i.{col}) <= mine.a"),
    ("pg_partitioned_table", "select pt.partrelid from pg_partitioned_table pt, mine where age(pt.{col}) <= mine.a"),
    ("pg_namespace", "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace, mine "
                     "where age(n.{col}) <= mine.a"),
)
_WRITTEN_OBJS = (
    ("pg_constraint", "select 'pg_constraint'::regclass, oid from pg_constraint, mine where age({col}) <= mine.a"),
    ("pg_proc", "select 'pg_proc'::regclass, oid from pg_proc, mine where age({col}) <= mine.a"),
    ("pg_policy", "select 'pg_policy'::regclass, oid from pg_policy, mine where age({col}) <= mine.a"),
    ("pg_trigger", "select 'pg_trigger'::regclass, oid from pg_trigger, mine where age({col}) <= mine.a"),
    ("pg_type", "select 'pg_type'::regclass, oid from pg_type, mine where age({col}) <= mine.a"),
    ("pg_enum", "select 'pg_type'::regclass, enumtypid from pg_enum, mine where age({col}) <= mine.a"),
    ("pg_namespace", "select 'pg_proc'::regclass, p.oid from pg_proc p join nsps on nsps.oid = p.pronamespace"),
    ("pg_namespace", "select 'pg_type'::regclass, t.oid from pg_type t join nsps on nsps.oid = t.typnamespace"),
)
_WRITTEN = """
with mine as (select age(pg_current_xact_id()::text::xid) as a),
rels(oid) as ({rels}),  -- named: the first query of the union (whichever catalogs were written) names it otherwise
nsps(oid) as ({nsps}),
objs as (
  select 'pg_class'::regclass as classid, oid as objid from rels
  union select 'pg_class'::regclass, x.indexrelid from rels join pg_index x on x.indrelid = rels.oid
  {objs}
),
hit as (
  select classid, objid from objs
  union select d.classid, d.objid from objs o cross join lateral (  -- an index lookup per object (offset 0: a
    select classid, objid from pg_depend d         -- merge join over all of pg_depend costs 0.3 s at 10k tables)
    where d.refclassid = o.classid and d.refobjid = o.objid and {dependents} offset 0) d
)
select h.classid::regclass::text,
       case h.classid when 'pg_rewrite'::regclass then (select ev_class from pg_rewrite where oid = h.objid)
                      when 'pg_attrdef'::regclass then (select adrelid from pg_attrdef where oid = h.objid)
                      else h.objid end
from hit h
"""
_NONE = "select null::oid where false"
_XACT_WRITES = """
select c.relname::text, pg_stat_get_xact_tuples_inserted(c.oid), pg_stat_get_xact_tuples_updated(c.oid),
       pg_stat_get_xact_tuples_deleted(c.oid), current_setting('track_counts')::bool
from pg_class c where c.relnamespace = 'pg_catalog'::regnamespace and c.relname = any(%s)
"""


def _written_query(conn, deleted: bool) -> str:
    """The _WRITTEN query over the catalogs this transaction wrote rows of (xmin: inserted or updated; xmax:
    updated or deleted); every catalog when the server keeps no counts (track_counts off)."""
    names = sorted({n for n, _ in _WRITTEN_RELS + _WRITTEN_OBJS})
    rows = conn.execute(_XACT_WRITES, (names,)).fetchall()
    if len(rows) == len(names) and all(r[4] for r in rows):
        touched = {r[0] for r in rows if (r[2] + r[3] if deleted else r[1] + r[2]) > 0}
    else:
        touched = set(names)
    col = "xmax" if deleted else "xmin"
    rels = [q.format(col=col) for n, q in _WRITTEN_RELS if n in touched]
    nsps = f"select n.oid from pg_namespace n, mine where age(n.{col}) <= mine.a" if "pg_namespace" in touched \
        else _NONE
    objs = "".join(f"\n  union {q.format(col=col)}" for n, q in _WRITTEN_OBJS if n in touched)
    return _WRITTEN.format(rels="\n  union ".join(rels) or _NONE, nsps=nsps, objs=objs,
                           dependents="false" if deleted else "true")


def catalog_objects(conn, schemas: list[str], only: dict[str, list[int]] | None = None) -> dict[tuple[str, str], str]:
    """(kind, qualified name) -> a digest of its definition, for the given schemas; `only` (written_objects)
    restricts the definitions read to those objects."""
    query = _CATALOG.format(**(_ONLY if only is not None else _ALL), **_DEFS)
    rows = conn.execute(query, {"schemas": schemas, **(only or {})}).fetchall()
    return {(k, n): hashlib.md5((d or "").encode()).hexdigest() for k, n, d in rows}


def written_objects(conn, deleted: bool = False, also: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Oids (by catalog) of the objects the current transaction wrote (row versions it created: xmin) and of
    their direct dependents; with `deleted`, of those whose row versions it deleted or replaced (xmax: seen after
    ROLLBACK TO SAVEPOINT, the state before the file). `also`: oids to add."""
    out: dict[str, list[int]] = {"rels": [], "cons": [], "procs": [], "pols": [], "trgs": [], "typs": []}
    key = {"pg_class": "rels", "pg_rewrite": "rels", "pg_attrdef": "rels", "pg_constraint": "cons",
           "pg_proc": "procs", "pg_policy": "pols", "pg_trigger": "trgs", "pg_type": "typs"}
    for classid, oid in conn.execute(_written_query(conn, deleted)).fetchall():
        if classid in key and oid is not None:
            out[key[classid]].append(int(oid))
    for name, oids in (also or {}).items():
        out[name] = sorted(set(out[name]) | set(oids))
    return out


def rls_check_for(checks: list[tuple[str, bool, str]], created: list[tuple[str, str]]) -> list[tuple[str, bool, str]]:
    """The smoke checks with the row-level security check narrowed to the tables really created (the checks ran
    with every table the file wrote as a candidate, before the dry-run knew which ones are new)."""
    new = {n for k, n in created if k == "table"}
    out = []
    for name, passed, detail in checks:
        if name == RLS_CHECK:
            if not new:
                continue
            missing = [t for t in detail.split(" (exposed")[0].split(", ") if t and t in new]
            passed, detail = not missing, ", ".join(missing) + (f" ({RLS_EXPOSED})" if missing else "")
        out.append((name, passed, detail))
    return out


_PARTITIONS = """
select n.nspname || '.' || c.relname, rn.nspname || '.' || r.relname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_class r on r.oid = pg_partition_root(c.oid) join pg_namespace rn on rn.oid = r.relnamespace
where c.relispartition and n.nspname = any(%(schemas)s) {names}
"""


def partition_parents(conn, schemas: list[str], names: set[str] | None = None) -> dict[str, str]:
    """partition (table or index) -> the partitioned table (index) at the root of its tree; with `names`, only
    for those relations (15,000 partitions cost half a second)."""
    query = _PARTITIONS.format(names="and n.nspname || '.' || c.relname = any(%(names)s)" if names is not None else "")
    return dict(conn.execute(query, {"schemas": schemas, "names": sorted(names or ())}).fetchall())


def owner_of(kind: str, name: str) -> str:
    """The relation a change is grouped by: a table or index itself, else the table it belongs to."""
    return name if kind in ("table", "index") else ".".join(name.split(".")[:2])


# The catalogs a dropped object (one in the `before` read and not in `after`) may have lost its row from. When the
# transaction deleted no row of them, every object "dropped" was renamed (or its table or schema was): its owner
# is either the owner of an object read after the file, or exists no more, so the partitions of the owners of the
# `after` objects group exactly as all of them would.
DROP_CATALOGS = ("pg_namespace", "pg_class", "pg_constraint", "pg_proc", "pg_policy", "pg_trigger", "pg_type")


def deleted_catalog_rows(conn) -> bool:
    """Whether this transaction deleted a row of any DROP_CATALOGS catalog (True when the server keeps no
    counts)."""
    rows = conn.execute(_XACT_WRITES, (list(DROP_CATALOGS),)).fetchall()
    return len(rows) != len(DROP_CATALOGS) or not all(r[4] for r in rows) or any(r[3] > 0 for r in rows)


@dataclass
class ObjectChanges:
    created: list[tuple[str, str]] = field(default_factory=list)
    altered: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    partitions: dict[str, str] = field(default_factory=dict)  # partition -> its root (for grouping)

    def _root(self, kind: str, name: str) -> str | None:
        """The root partitioned table/index when the object is, or belongs to, a partition."""
        return self.partitions.get(owner_of(kind, name))

    def rows(self) -> list[list[str]]:
        """One row per object, except that what happens to the partitions of a partitioned table is one row
        (on the partitioned table's own row when it changed the same way): 10,000 partitions stay readable."""
        out: list[list[str]] = []
        groups: dict[tuple[str, str, str], int] = {}
        for change, items in (("created", self.created), ("altered", self.altered), ("dropped", self.dropped)):
            for kind, name in items:
                root = self._root(kind, name)
                if root:
                    groups[(change, kind, root)] = groups.get((change, kind, root), 0) + 1
                else:
                    out.append([change, kind, name])
        where = {(r[0], r[1], r[2]): r for r in out}
        for (change, kind, root), n in groups.items():
            parts = f"{n} partition{'s' if n > 1 else ''}"
            own = where.get((change, kind, root))
            if own is not None:
                own[2] = f"{root} (and {parts})" if kind == "table" else f"{root} (and {n} more on its partitions)"
            else:
                out.append([change, kind, f"{parts} of {root}" if kind == "table" else f"on {parts} of {root}"])
        return out


def diff_objects(before: dict, after: dict, partitions: dict[str, str] | None = None) -> ObjectChanges:
    changes = ObjectChanges(partitions=partitions or {})
    for key in sorted(after):
        if key not in before:
            changes.created.append(key)
        elif before[key] != after[key]:
            changes.altered.append(key)
    changes.dropped = sorted(k for k in before if k not in after)
    return changes


RLS_CHECK = "new tables in public have row-level security"
RLS_EXPOSED = "exposed through the Supabase API without RLS"


def smoke_checks(conn, schemas: list[str], created: list[tuple[str, str]]) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) on the shadow after the migration."""
    checks: list[tuple[str, bool, str]] = []
    checks.append(("database answers (select 1)", conn.execute("select 1").fetchone()[0] == 1, ""))
    bad = conn.execute(
        "select n.nspname || '.' || c.relname from pg_index x join pg_class c on c.oid = x.indexrelid "
        "join pg_namespace n on n.oid = c.relnamespace where not x.indisvalid and n.nspname = any(%s)",
        (schemas,)).fetchall()
    checks.append(("no invalid indexes", not bad, ", ".join(r[0] for r in bad)))
    notvalid = conn.execute(
        "select n.nspname || '.' || t.relname || '.' || con.conname from pg_constraint con "
        "join pg_class t on t.oid = con.conrelid join pg_namespace n on n.oid = t.relnamespace "
        "where not con.convalidated and n.nspname = any(%s)", (schemas,)).fetchall()
    checks.append(("no NOT VALID constraints left", not notvalid,
                   ", ".join(r[0] for r in notvalid) + (" (VALIDATE CONSTRAINT them next)" if notvalid else "")))
    new_tables = [n for k, n in created if k == "table"]
    no_rls = []
    for name in new_tables:
        schema = name.split(".", 1)[0]
        if schema != "public":
            continue
        row = conn.execute("select relrowsecurity from pg_class where oid = to_regclass(%s)", (name,)).fetchone()
        if row and not row[0]:
            no_rls.append(name)
    if new_tables:
        checks.append((RLS_CHECK, not no_rls, ", ".join(no_rls) + (f" ({RLS_EXPOSED})" if no_rls else "")))
    views = conn.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind = 'v' and n.nspname = any(%s) order by 1, 2 limit 200", (schemas,)).fetchall()
    broken = []
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    queries = [sql.SQL("select * from {} limit 0").format(sql.Identifier(schema, view)) for schema, view in views]
    try:  # all in one round trip; only when one fails, one at a time to name each that fails
        if queries:
            with conn.transaction():
                conn.execute(sql.SQL("; ").join(queries))
    except Exception:  # noqa: BLE001
        for (schema, view), query in zip(views, queries):
            try:
                with conn.transaction():
                    conn.execute(query)
            except Exception as exc:  # noqa: BLE001
                broken.append(f"{schema}.{view}: {str(exc).splitlines()[0]}")
    checks.append(("views still query", not broken, "; ".join(broken[:5])))
    return checks


class TableSize(NamedTuple):
    """A table's size on the target. `how` says where the row figure comes from: "counted" (exact), "stats"
    (the planner's statistics scaled to the table's current size, as the planner does) or "guess" (never
    analyzed and too big to count: the planner's estimate from the table's size)."""

    bytes: int
    rows: float
    how: str = "stats"


COUNT_CAP = 1_000_000  # tables with no usable statistics are counted up to this many rows


def human_rows(n: float, how: str = "stats") -> str:
    if how == "counted":
        return f"{int(n):,} rows"
    if n >= 1_000_000:
        text = f"~{n / 1_000_000:.1f}M rows".replace(".0M", "M")
    elif n >= 10_000:
        text = f"~{n / 1000:.0f}k rows"
    else:
        text = f"~{int(n)} rows"
    return text + (" (never analyzed: estimated from its size)" if how == "guess" else "")


_SIZE_SQL = """
select coalesce(sum(pg_total_relation_size(p.relid)), 0)::int8,
       coalesce(sum(pg_relation_size(p.relid)), 0)::int8 / current_setting('block_size')::int8,
       coalesce(sum(greatest(k.reltuples, 0)), 0)::float8, coalesce(sum(k.relpages), 0)::int8,
       bool_or(k.reltuples < 0 or (k.reltuples = 0 and pg_relation_size(p.relid) > 0)), c.relkind::text
  from pg_class c
  cross join lateral (select relid from pg_partition_tree(c.oid) where isleaf
                      union select c.oid where c.relkind not in ('p', 'I')) p
  join pg_class k on k.oid = p.relid
 where c.oid = to_regclass(%s)
 group by c.relkind"""


def table_facts(conn, names: list[str]) -> dict[str, TableSize | None]:
    """qualified name -> its size on the target; None when the table does not exist there.
    A partitioned table counts its partitions. Statistics are scaled to the table's current pages, as the
    planner does; a table that was never analyzed (or analyzed while empty and loaded since) has none, so its
    rows are counted, up to COUNT_CAP (the planner's estimate beyond): a fresh 300k-row load is not "~100k"."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    out: dict[str, TableSize | None] = {}
    for name in names:
        row = conn.execute(_SIZE_SQL, (name,)).fetchone()
        if row is None:
            exists = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]
            out[name] = TableSize(0, 0.0, "counted") if exists else None  # a partitioned table with no partitions
            continue
        total, pages, reltuples, relpages, unanalyzed, _kind = row
        if pages == 0:
            out[name] = TableSize(int(total), 0.0, "counted")
        elif not unanalyzed and relpages > 0:
            out[name] = TableSize(int(total), reltuples / relpages * pages, "stats")
        else:
            schema, _, table = name.partition(".")
            target = sql.Identifier(schema, table)
            try:
                counted = conn.execute(sql.SQL("select count(*) from (select from {} limit %s) s").format(target),
                                       (COUNT_CAP + 1,)).fetchone()[0]
                if counted <= COUNT_CAP:
                    out[name] = TableSize(int(total), float(counted), "counted")
                    continue
                plan = conn.execute(sql.SQL("explain (format json) select from {}").format(target)).fetchone()[0]
                out[name] = TableSize(int(total), max(float(plan[0]["Plan"]["Plan Rows"]), counted), "guess")
            except Exception:  # noqa: BLE001 - no read privilege or a timeout: the size still grades it
                out[name] = TableSize(int(total), reltuples, "guess")
    return out


def qualify(table: str | None) -> str | None:
    if not table:
        return None
    return table if "." in table else f"public.{table}"


def dump_args(schemas: list[str], history: bool) -> list[str]:
    """pg_dump arguments for the user schemas (no data) and the migration history (with data), plain SQL."""
    args = ["--no-password", "--format=plain", "--encoding=UTF8", "--no-owner"]
    for schema in schemas + (["supabase_migrations"] if history else []):
        args += ["-n", pg_dump_pattern(schema)]
    for schema in schemas:
        args.append(f"--exclude-table-data={pg_dump_pattern(schema)}.*")
    return args


def dump_target_schema(url: str, schemas: list[str], history: bool, out: Path, server_major: int) -> None:
    """pg_dump the user schemas (no data) and the migration history (with data) into a plain SQL file."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import run_pg_tool

    run_pg_tool("pg_dump", url, dump_args(schemas, history) + ["-f", str(out)], server_major=server_major)


# --- cached schema templates: repeated dry-runs against an unchanged schema skip the dump and the load -------
# A template is a database on the shadow server holding one dump of a target's schema, named after the dump's
# digest and labelled (COMMENT ON DATABASE) with the target's catalog fingerprint and when it was last used.
# While the target's fingerprint is unchanged, a dry-run finds the template by its label and skips pg_dump.
TEMPLATE_PREFIX = "sage_tpl_"
KEEP_TEMPLATES = 3
_LABEL = re.compile(r"^sage dry-run template; fingerprint=(\w+); used=(\d+)$")
FINGERPRINT_VERSION = "1"

# Every per-database catalog the session may read. Any DDL inserts, deletes or updates rows in at least one of
# them, and every inserted or updated row carries the new transaction id as its xmin: (row count, sum of xmin)
# per catalog changes with every DDL statement. VACUUM and ANALYZE update pg_class in place (xmin unchanged) and
# pg_statistic is left out, so statistics and autovacuum never invalidate the cache.
# (The privilege check runs on the few catalog rows only: left in the same WHERE, the planner may call it for
# every row of pg_class, 0.4 s at 10,000 tables.)
_CATALOGS = """
select relname from (
  select c.oid, c.relname from pg_class c
  where c.relnamespace = 'pg_catalog'::regnamespace and c.relkind = 'r' and not c.relisshared
    and c.relname not in ('pg_statistic', 'pg_statistic_ext_data', 'pg_largeobject')
  offset 0) s
where has_table_privilege(s.oid, 'select')
order by 1"""


def schema_fingerprint(conn, schemas: list[str], history: bool, dump_major: int) -> str:
    """A digest that changes whenever the dump of these schemas could: (rows, sum of xmin) of every catalog,
    the roles (names appear in GRANTs and policies), the migration history's rows (dumped with data), the server
    version, the database and the dump's parameters. Taken BEFORE pg_dump, so a change racing the dump only
    ever makes the next run miss the cache, never hit a stale template."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    catalogs = [r[0] for r in conn.execute(_CATALOGS).fetchall()]
    parts = [sql.SQL("select {}::text, count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text "
                     "from {}").format(sql.Literal(name), sql.Identifier("pg_catalog", name)) for name in catalogs]
    parts.append(sql.SQL("select 'roles', count(*)::text || ':' || "
                         "md5(coalesce(string_agg(oid::text || '=' || rolname, ',' order by oid), '')) from pg_roles"))
    parts.append(sql.SQL("select 'server', current_setting('server_version_num') || ':' || current_database() "
                         "|| ':' || current_user"))
    if history:
        tables = [r[0] for r in conn.execute(
            "select c.relname from pg_class c where c.relnamespace = 'supabase_migrations'::regnamespace "
            "and c.relkind = 'r' order by 1").fetchall()]
        parts += [sql.SQL("select {}, md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) "
                          "from {} t").format(sql.Literal("history." + t), sql.Identifier("supabase_migrations", t))
                  for t in tables]
    rows = conn.execute(sql.SQL(" union all ").join(parts)).fetchall()
    digest = hashlib.sha256(f"v{FINGERPRINT_VERSION}|{sorted(schemas)}|{history}|{dump_major}".encode())
    for name, value in sorted(rows):
        digest.update(f"|{name}={value}".encode())
    return digest.hexdigest()[:32]


def dump_digest(path: Path) -> str:
    """A digest of a pg_dump script, ignoring psql's per-dump random `\\restrict` keys."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for line in fh:
            if not line.startswith((b"\\restrict", b"\\unrestrict")):
                digest.update(line)
    return digest.hexdigest()[:20]


def _database_exists(admin_url: str, name: str) -> bool:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(admin_url, autocommit=True) as conn:
        return bool(conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone())


def _label(conn, name: str, fingerprint: str) -> None:
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    conn.execute(sql.SQL("comment on database {} is {}").format(
        sql.Identifier(name), sql.Literal(f"sage dry-run template; fingerprint={fingerprint}; used={int(time.time())}")))


def templates(admin_url: str, sizes: bool = True, conn=None) -> list[tuple[str, str | None, int, int]]:
    """(name, fingerprint, last used (epoch s), bytes) of the cached templates on the shadow server,
    least recently used first. Without `sizes` the bytes are 0: pg_database_size reads the directory of every
    template (tens of thousands of files for a big schema), which finding one by its label does not need."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    if conn is None:
        with connect(admin_url, autocommit=True) as own:
            return templates(admin_url, sizes, own)
    size = "pg_database_size(d.oid)" if sizes else "0"
    rows = conn.execute(
        "select d.datname, shobj_description(d.oid, 'pg_database'), " + size + " from pg_database d "
        "where d.datname like %s and d.datname not like %s",
        (TEMPLATE_PREFIX.replace("_", "\\_") + "%", "%\\_building\\_%")).fetchall()
    out = []
    for name, comment, nbytes in rows:
        match = _LABEL.match(comment or "")
        out.append((name, match.group(1) if match else None, int(match.group(2)) if match else 0, int(nbytes or 0)))
    return sorted(out, key=lambda t: (t[2], t[0]))


def find_template(admin_url: str, fingerprint: str) -> str | None:
    """The template labelled with this fingerprint (its last use recorded), or None."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(admin_url, autocommit=True) as conn:
        match = next((t[0] for t in templates(admin_url, sizes=False, conn=conn) if t[1] == fingerprint), None)
        if match:
            _label(conn, match, fingerprint)
    return match


def _shadow_line(line: bytes) -> bytes:
    """The shadow already has `public` (from template1): make pg_dump's CREATE SCHEMA public idempotent."""
    return b"CREATE SCHEMA IF NOT EXISTS public;\n" if line == b"CREATE SCHEMA public;\n" else line


def build_template(admin_url: str, target_url: str, schemas: list[str], history: bool, dump_major: int,
                   fingerprint: str, budget_bytes: int) -> tuple[str, bool]:
    """pg_dump of the target streamed into a new database (`pg_dump | psql --single-transaction`), kept as the
    template `sage_tpl_<digest of the dump>` labelled with the fingerprint. Returns (name, reused): reused when a
    template of the same dump already existed (its label is updated). Then the cache is held to its budget."""
    # lazy: the database layers load on the first database call
    from sage_agent.db.shadow import create_database, drop_database
    from sage_agent.db.tools import pipe_dump

    digest = hashlib.sha256()

    def on_line(line: bytes) -> bytes:
        if not line.startswith((b"\\restrict", b"\\unrestrict")):
            digest.update(line)
        return _shadow_line(line)

    building = f"{TEMPLATE_PREFIX}building_{secrets.token_hex(4)}"
    url = create_database(admin_url, building)
    try:
        pipe_dump(target_url, dump_args(schemas, history), url,
                  ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"], dump_major=dump_major,
                  load_major=dump_major, on_line=on_line)
        name = TEMPLATE_PREFIX + digest.hexdigest()[:20]
        reused = publish_template(admin_url, url, building, name, fingerprint)
    except BaseException:
        drop_database(admin_url, building)
        raise
    evict_templates(admin_url, keep=name, budget_bytes=budget_bytes)
    return name, reused


def publish_template(admin_url: str, url: str, building: str, name: str, label: str) -> bool:
    """Give the loaded database `building` (at `url`) the ledger every dry-run needs and publish it as the
    template `name` labelled `label`. Returns True when another dry-run had published the same template meanwhile
    (then `building` is dropped and theirs is used)."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import drop_database
    from sage_agent.ops.migrations.history import ensure_history_table

    with connect(url, autocommit=True) as conn:  # every dry-run needs the ledger: once, here
        ensure_history_table(conn)
    with connect(admin_url, autocommit=True) as conn:
        reused = bool(conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone())
        if not reused:
            try:
                conn.execute(sql.SQL("alter database {} rename to {}").format(sql.Identifier(building),
                                                                              sql.Identifier(name)))
            except Exception:  # noqa: BLE001 - another dry-run built the same template meanwhile
                reused = True
        _label(conn, name, label)
    if reused:
        drop_database(admin_url, building)
    return reused


def evict_templates(admin_url: str, keep: str, budget_bytes: int) -> list[str]:
    """Least recently used templates dropped until at most KEEP_TEMPLATES remain and their total size is within
    the budget (SAGE_SHADOW_TEMPLATE_MB). `keep` (the one just used) always stays, even over the budget; a
    template in use by a running dry-run is skipped (dropped next time). Returns the dropped names."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.connect import connect

    rows = templates(admin_url)
    total = sum(t[3] for t in rows)
    count = len(rows)
    dropped = []
    with connect(admin_url, autocommit=True) as conn:
        for name, _fp, _used, size in rows:  # least recently used first
            if count <= KEEP_TEMPLATES and total <= budget_bytes:
                break
            if name == keep:
                continue
            try:
                conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
            except Exception:  # noqa: BLE001 - in use by a concurrent dry-run: next time
                continue
            dropped.append(name)
            total -= size
            count -= 1
    return dropped


@contextmanager
def template_session(admin_url: str, template: str) -> Iterator:
    """A connection to the template itself, inside a transaction that is always rolled back: the dry-run's
    files run in savepoints within it, so the cached schema is the shadow and is never changed (no copy).
    Dry-runs on the same template take turns (a transaction-level advisory lock, bounded by the statement
    timeout). Only for files that run inside a transaction."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect
    from sage_agent.db.urls import replace_dbname

    conn = connect(replace_dbname(admin_url, template), autocommit=True)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("select pg_advisory_xact_lock(hashtext('db-sage dry-run template'))")
            yield conn
    finally:
        conn.close()


def clone_template(admin_url: str, template: str, label: str = "dryrun") -> tuple[str, str]:
    """A fresh shadow database copied from the template (retries while another clone holds it)."""
    # lazy: psycopg loads on the first database call
    import secrets

    import psycopg

    from psycopg import sql

    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import SHADOW_PREFIX
    from sage_agent.db.urls import replace_dbname

    name = f"{SHADOW_PREFIX}{label}_{secrets.token_hex(4)}"
    # FILE_COPY (PG15+) copies the template's files in one go: much faster than the WAL_LOG default for a
    # schema with thousands of small relations.
    with connect(admin_url, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        query = sql.SQL("create database {} template {}" + (" strategy file_copy" if major >= 15 else "")).format(
            sql.Identifier(name), sql.Identifier(template))
        for attempt in range(40):
            try:
                conn.execute(query)
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 39:
                    raise
                time.sleep(0.1 + 0.05 * attempt)
    url = replace_dbname(admin_url, name)
    if template == "template1":
        # lazy: psycopg loads on the first database call
        from sage_agent.db.shadow import with_baseline

        with_baseline(admin_url, url, name)
    return name, url
