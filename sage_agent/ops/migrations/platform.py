"""Supabase platform extensions a local server may lack: a clear "not available locally" message with what to do,
in place of PostgreSQL's bare "extension ... is not available" (PostgreSQL 18) or "could not open extension
control file" (earlier majors)."""

from __future__ import annotations

import re

_NOT_AVAILABLE = re.compile(r'extension "([^"]+)" is not available'
                            r'|could not open extension control file "[^"]*/([^"/]+)\.control"')

# extension -> (what it is, what to do). Debian package names are for the PostgreSQL major in {major}.
_SUPABASE_ONLY = "it ships only in Supabase's own PostgreSQL image"
_ADVICE: dict[str, tuple[str, str]] = {
    "pg_net": ("Supabase's asynchronous HTTP client (database webhooks, net.http_post)", _SUPABASE_ONLY),
    "pgsodium": ("libsodium encryption (Supabase's older Vault backend)", _SUPABASE_ONLY),
    "supabase_vault": ("Supabase Vault (vault.secrets, vault.create_secret)", _SUPABASE_ONLY),
    "vault": ("Supabase Vault (the extension is named supabase_vault)", _SUPABASE_ONLY),
    "pg_graphql": ("Supabase's GraphQL API (graphql.resolve)", _SUPABASE_ONLY),
    "pg_jsonschema": ("JSON Schema validation", _SUPABASE_ONLY),
    "wrappers": ("Supabase foreign data wrappers", _SUPABASE_ONLY),
    "pgjwt": ("JWT signing in SQL", _SUPABASE_ONLY),
    "index_advisor": ("Supabase's index advisor", _SUPABASE_ONLY),
    "pg_hashids": ("short ids from numbers", _SUPABASE_ONLY),
    "pgmq": ("Supabase Queues", _SUPABASE_ONLY),
    "pg_tle": ("trusted language extensions", _SUPABASE_ONLY),
    "pg_cron": ("job scheduling", "Debian ships it: apt-get install postgresql-{major}-cron (it must also be in "
                                  "shared_preload_libraries)"),
    "http": ("synchronous HTTP (pgsql-http)", "Debian ships it: apt-get install postgresql-{major}-http"),
    "postgis": ("PostGIS", "Debian ships it: apt-get install postgresql-{major}-postgis-3"),
    "pgtap": ("pgTAP tests", "Debian ships it: apt-get install postgresql-{major}-pgtap"),
    "pgaudit": ("audit logging", "Debian ships it: apt-get install postgresql-{major}-pgaudit"),
    "plv8": ("JavaScript functions", _SUPABASE_ONLY),
    "timescaledb": ("TimescaleDB", "TimescaleDB's own packages ship it"),
    "pgcrypto": ("cryptographic functions", "Debian's postgresql-{major} ships it (contrib)"),
    "uuid-ossp": ("UUID generators", "Debian's postgresql-{major} ships it (contrib)"),
    "hypopg": ("hypothetical indexes", "Debian ships it: apt-get install postgresql-{major}-hypopg"),
}


def unavailable_extension(message: str) -> str | None:
    """The extension named by a 'not available' error, if that is what the message is."""
    match = _NOT_AVAILABLE.search(message or "")
    if not match:
        return None
    return match.group(1) or match.group(2)


def explain_unavailable(message: str, server_major: int | None = None) -> str | None:
    """A "not available locally: ..." message for a CREATE EXTENSION the server cannot satisfy, else None."""
    name = unavailable_extension(message)
    if name is None:
        return None
    what, where = _ADVICE.get(name, ("", "install it on the server"))
    where = where.format(major=server_major or "NN")
    about = f" ({what})" if what else ""
    return (f"not available locally: extension {name}{about} is not installed on this PostgreSQL server; {where}. "
            "What to do: apply this migration against a server that has it (a Supabase project or `supabase start`, "
            "with --db-url; SAGE_SHADOW_URL for dry-runs), or keep the statements that need it in a migration "
            f"guarded by `if exists (select 1 from pg_available_extensions where name = '{name}')`")
