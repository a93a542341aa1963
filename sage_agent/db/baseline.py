"""Install the Supabase-compatible baseline (roles, auth schema, extensions schema) into a cluster."""

from __future__ import annotations

from importlib.resources import files

from sage_agent.db.connect import connect
from sage_agent.db.urls import replace_dbname

BASELINE_MARKER = "DB Sage local baseline"


def baseline_sql() -> str:
    return files("sage_agent.db").joinpath("baseline.sql").read_text(encoding="utf-8")


def install_baseline(url: str) -> None:
    """Install into `template1` (so every new database, shadows included, has it) and `postgres`."""
    sql = baseline_sql()
    for dbname in ("template1", "postgres"):
        with connect(replace_dbname(url, dbname), autocommit=True) as conn:
            conn.execute(sql)


def has_baseline(conn) -> bool:
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    return bool(row and row[0] and BASELINE_MARKER in row[0])
