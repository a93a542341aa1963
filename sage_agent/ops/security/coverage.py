"""RLS coverage per table: RLS enabled/forced, policies per command per role, grants to anon/authenticated."""

from __future__ import annotations

from typing import Any

from sage_agent.ops.security.lints import SYSTEM_SCHEMAS

COMMANDS = ("select", "insert", "update", "delete")


def coverage(conn, schemas: list[str], roles: set[str]) -> list[dict[str, Any]]:
    """One row per table in the schemas. With no anon/authenticated roles, grants are left empty."""
    api_roles = [r for r in ("anon", "authenticated") if r in roles]
    grant_cols = "".join(
        f", has_table_privilege('{role}', c.oid, 'SELECT'), has_table_privilege('{role}', c.oid, 'INSERT'),"
        f" has_table_privilege('{role}', c.oid, 'UPDATE'), has_table_privilege('{role}', c.oid, 'DELETE')"
        for role in api_roles)
    rows = conn.execute(f"""
        select c.oid, n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity{grant_cols}
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any(%s) and n.nspname <> all(%s)
        order by 2, 3""", (schemas, SYSTEM_SCHEMAS)).fetchall()
    policies = conn.execute("""
        select p.polrelid, p.polcmd, p.polpermissive,
               coalesce((select array_agg(case when r = 0 then 'public' else r::regrole::text end) from unnest(p.polroles) r), '{}')
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s)""", (schemas,)).fetchall()
    by_table: dict[int, list] = {}
    for relid, cmd, permissive, proles in policies:
        by_table.setdefault(relid, []).append((cmd, permissive, proles))
    out = []
    for oid, schema, name, rls, forced, *grants in rows:
        entry: dict[str, Any] = {"schema": schema, "table": name, "rls": rls, "forced": forced, "policies": {},
                                 "grants": {}}
        for role in (*api_roles, "public"):
            per_cmd = {}
            for cmd in COMMANDS:
                code = {"select": "r", "insert": "a", "update": "w", "delete": "d"}[cmd]
                per_cmd[cmd] = sum(1 for c, perm, pr in by_table.get(oid, [])
                                   if perm and c in (code, "*") and (role in pr or "public" in pr))
            entry["policies"][role] = per_cmd
        for i, role in enumerate(api_roles):
            granted = grants[4 * i:4 * i + 4]
            entry["grants"][role] = "".join(c[0].upper() if g else "-" for c, g in zip(COMMANDS, granted))
        out.append(entry)
    return out


def coverage_rows(entries: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    roles = [r for r in ("anon", "authenticated") if entries and r in entries[0]["grants"]]
    columns = ["table", "rls", "forced"]
    for role in roles or ["public"]:
        columns.append(f"policies {role} (S/I/U/D)")
    for role in roles:
        columns.append(f"grants {role}")
    rows = []
    for e in entries:
        row = [f"{e['schema']}.{e['table']}", "on" if e["rls"] else "OFF", "yes" if e["forced"] else "no"]
        for role in roles or ["public"]:
            p = e["policies"][role]
            row.append("/".join(str(p[c]) for c in COMMANDS))
        for role in roles:
            row.append(e["grants"][role])
        rows.append(row)
    return columns, rows
