"""The user's part of Supabase Storage: the RLS policies on the storage schema's tables.

`storage` is a Supabase-managed schema: its tables, functions, triggers and grants come from the Storage service
and stay out of snapshots and the schema diff, as the Supabase CLI leaves them out of `supabase db dump`. The
policies on its tables are the user's: the Storage service's migrations create none, and they are how a project
says who may read or write files. The CLI carries them too: `supabase db pull` and `supabase migration squash`
append the user's changes in auth and storage, and `supabase db diff --schema storage` diffs them. DB Sage keeps
exactly those policies: snapshots re-create them, `*compare-schemas` plans and proves them. Buckets are rows of
storage.buckets (data): like `supabase db dump` without `--data-only`, schema snapshots leave them out.
"""

from __future__ import annotations

import re

from sage_agent.db.schemas import pg_dump_pattern

SCHEMAS = ("storage",)  # managed schemas whose table policies belong to the user
_HEADER = re.compile(r"^-- Name: (?P<name>.*); Type: (?P<type>[^;]*); Schema: (?P<schema>[^;]*);")

_TABLES = """
select distinct n.nspname, c.relname from pg_policy p join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace where n.nspname = any(%s) order by 1, 2"""

# Drops the policies on storage tables before a snapshot's own are created: a restore then leaves exactly the
# snapshot's. A header like pg_dump's keeps dump inventories (dumpdiff) reading it as one entry.
RESET = """
--
-- Name: policies on storage tables; Type: DB SAGE RESET; Schema: storage; Owner: -
--
-- storage is Supabase's schema and is not in this dump; the RLS policies on its tables are yours: the ones there
-- now are dropped and the snapshot's are created below.
DO $sage_storage_policies$
DECLARE p record;
BEGIN
  FOR p IN SELECT pol.polname, pol.polrelid::regclass::text AS tbl FROM pg_catalog.pg_policy pol
           JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY (ARRAY['storage']) LOOP
    EXECUTE format('DROP POLICY %I ON %s', p.polname, p.tbl);
  END LOOP;
END
$sage_storage_policies$;
"""


def policy_tables(conn) -> list[tuple[str, str]]:
    """(schema, table) of every table in SCHEMAS with at least one policy."""
    return [(r[0], r[1]) for r in conn.execute(_TABLES, (list(SCHEMAS),)).fetchall()]


def has_storage(conn) -> bool:
    return bool(conn.execute("select exists (select 1 from pg_namespace where nspname = any(%s))",
                             (list(SCHEMAS),)).fetchone()[0])


def dump_entries(url: str, tables: list[tuple[str, str]], server_major: int, extra_args: list[str] | None = None
                 ) -> list[str]:
    """pg_dump's own entries (header comment and statement) for the policies on `tables` and their comments,
    in pg_dump's order. pg_dump -t on just those tables: it needs no rights on the rest of the schema."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import run_pg_tool

    if not tables:
        return []
    args = ["--no-password", "--schema-only", "--no-owner", *(extra_args or [])]
    for schema, table in tables:
        args += ["-t", f"{pg_dump_pattern(schema)}.{pg_dump_pattern(table)}"]
    out = run_pg_tool("pg_dump", url, args, server_major=server_major).stdout
    entries: list[str] = []
    current: list[str] | None = None
    for line in out.splitlines():
        match = _HEADER.match(line)
        if match:
            kind, name = match["type"].strip(), match["name"].strip()
            keep = kind == "POLICY" or (kind == "COMMENT" and name.startswith("POLICY "))
            current = [line] if keep else None
            if keep:
                entries.append("")  # filled below
            continue
        if current is not None and line.strip() and not line.startswith("--") and not line.startswith("\\"):
            current.append(line)
            entries[-1] = "\n".join(["--", current[0], "--", "", *current[1:]])
    return [e for e in entries if e]


def statements(entries: list[str]) -> list[str]:
    """The SQL of each entry without comments or the final semicolon (as normalized dumps compare them)."""
    out = []
    for entry in entries:
        body = "\n".join(ln for ln in entry.splitlines() if ln.strip() and not ln.startswith("--"))
        out.append(body.strip().removesuffix(";").strip())
    return out


def section(entries: list[str]) -> str:
    """What a snapshot (or a schema copy) appends: the reset, then the user's policies on storage tables."""
    return RESET + "".join("\n" + e + "\n" for e in entries)
