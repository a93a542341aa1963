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


# The Supabase CLI's defaults for [api] when config.toml leaves them out (`supabase init` writes the same).
API_DEFAULT_SCHEMAS: tuple[str, ...] = ("public", "graphql_public")


def api_exposed_schemas(project) -> list[str] | None:
    """The schemas the project's local Data API exposes, as `supabase db advisors` reads them for a local
    database (CLI 3.1: it sets pgrst.db_schemas to these for the lint session): supabase/config.toml [api]
    schemas, trimmed and without repeats; none when [api] enabled = false; public and graphql_public when the
    key is absent. extra_search_path is not part of it. None: no config.toml, or one that does not parse
    (then the database's own pgrst.db_schemas decides, as for a linked project)."""
    # lazy: only the security audits read the project's config
    import tomllib
    from pathlib import Path

    config = Path(project) / "supabase" / "config.toml"
    try:
        api = tomllib.loads(config.read_text(encoding="utf-8")).get("api", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(api, dict):
        return None
    if api.get("enabled", True) is False:
        return []
    schemas = api.get("schemas", list(API_DEFAULT_SCHEMAS))
    if not isinstance(schemas, list):
        return None
    return list(dict.fromkeys(s.strip() for s in schemas if isinstance(s, str) and s.strip()))
