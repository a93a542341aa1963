"""Which schemas belong to the user: one shared list of PostgreSQL- and Supabase-managed schemas.

Used by snapshots, schema comparison and anything else that must leave platform objects alone.
Patterns are fnmatch-style (`pg_*`). Schemas created by an extension are managed too (see callers).
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache

# Schemas Supabase (or an extension it ships) owns; the Supabase CLI leaves the same ones out of `db dump`.
MANAGED_SCHEMAS: tuple[str, ...] = (
    "information_schema", "pg_*",
    "_analytics", "_realtime", "_supavisor", "auth", "extensions", "pgbouncer", "realtime", "storage",
    "supabase_functions", "supabase_migrations",
    "cron", "dbdev", "graphql", "graphql_public", "net", "pgmq", "pgsodium", "pgsodium_masks", "pgtle",
    "repack", "tiger", "tiger_data", "timescaledb_*", "_timescaledb_*", "topology", "vault",
)


@lru_cache(maxsize=4096)  # called once per table by *vacuum and sage watch: 20,000 tables, a handful of schemas
def is_managed_schema(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in MANAGED_SCHEMAS)


def pg_dump_pattern(schema: str) -> str:
    """A pg_dump -n/-N pattern matching exactly this schema name (double quotes make it literal)."""
    return '"' + schema.replace('"', '""') + '"'
