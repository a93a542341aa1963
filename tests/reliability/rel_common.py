"""Shared helpers of the reliability suite: database fingerprints, fresh databases, counts for bench/results."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def fingerprint(url: str) -> str:
    """A hash of the schema (relations, columns, constraints, indexes, functions, policies, triggers) and of
    every row of every ordinary table outside the system schemas."""
    import psycopg
    from psycopg import sql

    parts: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        def q(text: str) -> None:
            parts.append(repr(conn.execute(text).fetchall()))

        q("select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema' "
          "order by 1")
        q("select n.nspname, c.relname, c.relkind, c.relrowsecurity from pg_class c join pg_namespace n "
          "on n.oid = c.relnamespace where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' "
          "order by 1, 2")
        q("select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
          "from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
          "where a.attnum > 0 and not a.attisdropped and c.relkind in ('r','v','m','p') "
          "and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' order by 1, 2, 3")
        q("select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint "
          "where connamespace::regnamespace::text not like 'pg\\_%' "
          "and connamespace::regnamespace::text <> 'information_schema' order by 1, 2")
        q("select schemaname, indexname, indexdef from pg_indexes where schemaname not like 'pg\\_%' "
          "and schemaname <> 'information_schema' order by 1, 2")
        q("select p.oid::regprocedure::text, md5(p.prosrc) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
          "where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' order by 1")
        q("select schemaname, tablename, policyname, cmd, qual, with_check from pg_policies order by 1, 2, 3")
        q("select tgrelid::regclass::text, tgname from pg_trigger where not tgisinternal order by 1, 2")
        tables = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'p') and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' "
            "order by 1, 2").fetchall()
        for schema, table in tables:
            # the ledger tables: only their keys (version / path), the rest (statement text, hashes) varies per trial
            value = sql.SQL("t::text") if schema != "supabase_migrations" else sql.SQL("(t).{}::text").format(
                sql.Identifier(conn.execute("select attname from pg_attribute where attrelid = %s::regclass "
                                            "and attnum = 1", (f'"{schema}"."{table}"',)).fetchone()[0]))
            row = conn.execute(sql.SQL("select count(*), md5(coalesce(string_agg({v}, '|' order by {v}), '')) "
                                       "from {s}.{t} t").format(v=value, s=sql.Identifier(schema),
                                                                 t=sql.Identifier(table))).fetchone()
            parts.append(f"{schema}.{table}:{row[0]}:{row[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def history(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0]:
            return []
        return [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations order by 1")]


@contextmanager
def fresh_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new database (the Supabase baseline, or a copy of `template`), dropped afterwards."""
    from sage_agent.db.shadow import create_database, drop_database

    name = f"r_{secrets.token_hex(5)}"
    url = create_database(admin_url, name, template=template or "template1")
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def dbname(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select current_database()").fetchone()[0]


def terminate_others(url: str, name_like: str = "(db-sage|psql|pg_dump|pg_restore)%") -> int:
    """Terminate every DB Sage backend (its own connections and the PostgreSQL tools it runs) on this database.
    Returns the count."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
                            "and pid <> pg_backend_pid() and application_name similar to %s and backend_type = 'client backend'",
                            (name_like,)).fetchall()
    return len(rows)


def leftovers(url: str) -> list[tuple]:
    """Sessions idle in a transaction and advisory/relation locks left by anything but us."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        idle = conn.execute("select pid, application_name, state from pg_stat_activity where datname = current_database() "
                            "and pid <> pg_backend_pid() and state like 'idle in transaction%'").fetchall()
        locks = conn.execute("select l.pid, l.locktype, l.mode from pg_locks l join pg_stat_activity a using (pid) "
                             "where a.datname = current_database() and l.pid <> pg_backend_pid() "
                             "and l.locktype <> 'virtualxid'").fetchall()
    return idle + locks


def project_files(root: Path) -> dict[str, str]:
    out = {}
    if root.exists():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def record(section: str, **counts) -> None:
    """Counts for bench/results/reliability.md (written only when SAGE_RELIABILITY_COUNTS names a file)."""
    path = os.environ.get("SAGE_RELIABILITY_COUNTS")
    if not path:
        return
    p = Path(path)
    doc = json.loads(p.read_text()) if p.exists() else {}
    doc.setdefault(section, {}).update(counts)
    p.write_text(json.dumps(doc, indent=2, sort_keys=True))
