"""Shadow databases: scratch databases on the embedded server for dry-runs, diffs and proofs."""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from psycopg import sql

from sage_agent.db.connect import connect
from sage_agent.db.urls import replace_dbname

SHADOW_PREFIX = "sage_shadow_"


def create_database(admin_url: str, name: str, template: str = "template1") -> str:
    """A new database; from template1 it always carries the Supabase baseline, whatever server it is on."""
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template)))
    url = replace_dbname(admin_url, name)
    if template == "template1":
        with_baseline(admin_url, url, name)
    return url


def with_baseline(admin_url: str, url: str, name: str) -> None:
    """Install the baseline into a new database whose template lacked it (dropping the database on failure)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.baseline import ensure_baseline

    try:
        ensure_baseline(url)
    except BaseException:
        drop_database(admin_url, name)
        raise


def drop_database(admin_url: str, name: str) -> None:
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@contextmanager
def shadow_database(admin_url: str, label: str = "db") -> Iterator[str]:
    """A fresh database (with the Supabase baseline, from template1), dropped afterwards whatever happens."""
    safe = "".join(ch for ch in label.lower() if ch.isalnum() or ch == "_")[:20] or "db"
    name = f"{SHADOW_PREFIX}{safe}_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def load_sql_file(url: str, path: Path, server_major: int | None = None, *, single_transaction: bool = True) -> None:
    """Load a SQL file (e.g. a pg_dump script with psql meta-commands) with psql, stopping at the first error."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import run_pg_tool

    args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path)]
    if single_transaction:
        args.insert(0, "--single-transaction")
    run_pg_tool("psql", url, args, server_major=server_major)


def drop_stale_shadows(admin_url: str) -> int:
    """Drop shadow databases left behind by a killed process."""
    with connect(admin_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "select datname from pg_database where datname like %s", (SHADOW_PREFIX + "%",)).fetchall()]
    for name in names:
        drop_database(admin_url, name)
    return len(names)
