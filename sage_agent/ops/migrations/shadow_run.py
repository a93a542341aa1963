"""Dry runs: the target's schema (and migration history) in a shadow database, the file applied there,
objects compared before/after, and the real target's table sizes for every statement that rewrites or scans.
The target is only ever read (a read-only session, and pg_dump)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from sage_agent.db.schemas import pg_dump_pattern

_CATALOG = """
with s as (select oid, nspname from pg_namespace where nspname = any(%(schemas)s))
select 'schema', nspname, '' from s
union all
select case c.relkind when 'r' then 'table' when 'p' then 'table' when 'v' then 'view' when 'm' then 'materialized view'
                      when 'S' then 'sequence' when 'i' then 'index' when 'I' then 'index' when 'f' then 'foreign table'
                      else 'relation' end,
       s.nspname || '.' || c.relname,
       case when c.relkind in ('i', 'I') then pg_get_indexdef(c.oid) || coalesce(' valid=' || x.indisvalid::text, '')
            when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid)
            else coalesce((select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                   || case when a.attnotnull then ' not null' else '' end
                                   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' order by a.attnum)
                           from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '')
                 || ' rls=' || c.relrowsecurity::text end
from pg_class c join s on s.oid = c.relnamespace left join pg_index x on x.indexrelid = c.oid
where c.relkind in ('r', 'p', 'v', 'm', 'S', 'i', 'I', 'f')
union all
select 'constraint', s.nspname || '.' || t.relname || '.' || con.conname,
       pg_get_constraintdef(con.oid) || ' validated=' || con.convalidated::text
from pg_constraint con join pg_class t on t.oid = con.conrelid join s on s.oid = t.relnamespace
union all
select case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end,
       s.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       md5(coalesce(p.prosrc, '') || pg_get_function_result(p.oid) || p.provolatile::text || p.prosecdef::text
           || coalesce(array_to_string(p.proconfig, ','), ''))
from pg_proc p join s on s.oid = p.pronamespace
union all
select 'policy', s.nspname || '.' || t.relname || '.' || pol.polname,
       coalesce(pg_get_expr(pol.polqual, pol.polrelid), '') || '|' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '')
       || '|' || pol.polcmd::text || '|' || array_to_string(pol.polroles::regrole[], ',')
from pg_policy pol join pg_class t on t.oid = pol.polrelid join s on s.oid = t.relnamespace
union all
select 'trigger', s.nspname || '.' || t.relname || '.' || tg.tgname, pg_get_triggerdef(tg.oid)
from pg_trigger tg join pg_class t on t.oid = tg.tgrelid join s on s.oid = t.relnamespace where not tg.tgisinternal
union all
select case ty.typtype when 'e' then 'enum' when 'd' then 'domain' else 'type' end, s.nspname || '.' || ty.typname,
       coalesce((select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = ty.oid), '')
       || coalesce(format_type(ty.typbasetype, ty.typtypmod), '')
from pg_type ty join s on s.oid = ty.typnamespace
where ty.typtype in ('e', 'd') or (ty.typtype = 'c' and (select relkind from pg_class where oid = ty.typrelid) = 'c')
"""


def catalog_objects(conn, schemas: list[str]) -> dict[tuple[str, str], str]:
    """(kind, qualified name) -> a digest of its definition, for the given schemas."""
    rows = conn.execute(_CATALOG, {"schemas": schemas}).fetchall()
    return {(k, n): hashlib.md5((d or "").encode()).hexdigest() for k, n, d in rows}


@dataclass
class ObjectChanges:
    created: list[tuple[str, str]] = field(default_factory=list)
    altered: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def rows(self) -> list[list[str]]:
        return ([["created", k, n] for k, n in self.created] + [["altered", k, n] for k, n in self.altered]
                + [["dropped", k, n] for k, n in self.dropped])


def diff_objects(before: dict, after: dict) -> ObjectChanges:
    changes = ObjectChanges()
    for key in sorted(after):
        if key not in before:
            changes.created.append(key)
        elif before[key] != after[key]:
            changes.altered.append(key)
    changes.dropped = sorted(k for k in before if k not in after)
    return changes


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
        checks.append(("new tables in public have row-level security", not no_rls,
                       ", ".join(no_rls) + (" (exposed through the Supabase API without RLS)" if no_rls else "")))
    views = conn.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind = 'v' and n.nspname = any(%s) order by 1, 2 limit 200", (schemas,)).fetchall()
    broken = []
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    for schema, view in views:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("select * from {} limit 0").format(sql.Identifier(schema, view)))
        except Exception as exc:  # noqa: BLE001
            broken.append(f"{schema}.{view}: {str(exc).splitlines()[0]}")
    checks.append(("views still query", not broken, "; ".join(broken[:5])))
    return checks


def human_rows(n: float) -> str:
    if n < 0:
        return "never analyzed"
    if n >= 1_000_000:
        return f"~{n / 1_000_000:.1f}M rows".replace(".0M", "M")
    if n >= 100_001:
        return f"~{n / 1000:.0f}k rows"
    if n >= 10_000:
        return f"~{n / 1000:.0f}k rows"
    return f"~{int(n)} rows"


def table_facts(conn, names: list[str]) -> dict[str, tuple[int, float] | None]:
    """qualified name -> (total bytes, reltuples) on the target; None when the table does not exist there."""
    out: dict[str, tuple[int, float] | None] = {}
    for name in names:
        row = conn.execute(
            "select pg_total_relation_size(c.oid), c.reltuples::float8 from pg_class c where c.oid = to_regclass(%s)",
            (name,)).fetchone()
        if row and row[1] < 0:  # never analyzed: count, but never more than 100k rows
            # lazy: psycopg loads on the first database call
            from psycopg import sql

            schema, _, table = name.partition(".")
            try:
                counted = conn.execute(sql.SQL("select count(*) from (select 1 from {} limit 100001) s").format(
                    sql.Identifier(schema, table))).fetchone()[0]
                row = (row[0], float(counted))
            except Exception:  # noqa: BLE001 - keep "never analyzed"
                pass
        out[name] = (int(row[0]), float(row[1])) if row else None
    return out


def qualify(table: str | None) -> str | None:
    if not table:
        return None
    return table if "." in table else f"public.{table}"


def dump_target_schema(url: str, schemas: list[str], history: bool, out: Path, server_major: int) -> None:
    """pg_dump the user schemas (no data) and the migration history (with data) into a plain SQL file."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import run_pg_tool

    args = ["--no-password", "--format=plain", "--encoding=UTF8", "--no-owner", "-f", str(out)]
    for schema in schemas + (["supabase_migrations"] if history else []):
        args += ["-n", pg_dump_pattern(schema)]
    for schema in schemas:
        args.append(f"--exclude-table-data={pg_dump_pattern(schema)}.*")
    run_pg_tool("pg_dump", url, args, server_major=server_major)


# --- cached schema templates: repeated dry-runs against an unchanged schema skip the reload -----------------
TEMPLATE_PREFIX = "sage_tpl_"
KEEP_TEMPLATES = 3


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


def prepare_template(admin_url: str, dump: Path, loader) -> tuple[str, bool]:
    """The template database holding this dump (loaded once, reused while the schema is unchanged).
    Returns (name, reused). `loader(url)` loads the dump into a fresh database."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import create_database, drop_database

    name = TEMPLATE_PREFIX + dump_digest(dump)
    if _database_exists(admin_url, name):
        return name, True
    building = f"{name}_building_{hashlib.md5(str(time.time()).encode()).hexdigest()[:6]}"
    url = create_database(admin_url, building)
    try:
        loader(url)
        # lazy: psycopg loads on the first database call
        from psycopg import sql

        with connect(admin_url, autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("alter database {} rename to {}").format(sql.Identifier(building),
                                                                              sql.Identifier(name)))
            except Exception:  # noqa: BLE001 - another dry-run built the same template meanwhile
                drop_database(admin_url, building)
    except BaseException:
        drop_database(admin_url, building)
        raise
    _prune_templates(admin_url, keep=name)
    return name, False


def _prune_templates(admin_url: str, keep: str) -> None:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect
    from psycopg import sql

    with connect(admin_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "select datname from pg_database where datname like %s and datname not like %s order by oid desc",
            (TEMPLATE_PREFIX + "%", "%\\_building\\_%")).fetchall()]
        for old in [n for n in names if n != keep][KEEP_TEMPLATES - 1:]:
            try:
                conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(old)))
            except Exception:  # noqa: BLE001 - in use by a concurrent dry-run: next time
                pass


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
