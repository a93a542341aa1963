"""Versioned schemas for expand/contract type changes: `*apply --online --versioned` (or `-- sage:online versioned`).

Why: once a column's type changes, PostgreSQL refuses every statement a client prepared earlier that returns it
(`cached plan must not change result type`), whatever the locking; psycopg, pgjdbc and most ORMs prepare. As in
pgroll, the change is split by client instead of by time. `*apply` expands (new column, sync trigger, batched
backfill, indexes, NOT NULL) and then makes a version schema `<schema>_<version>` holding one simple view per
changed table: the table's columns in the order the table will have after the contract (the changed column last),
the new column under the column's name, `security_invoker = true` (RLS and privileges are the caller's), the
table's owner and privileges. Clients built for the new type connect with `search_path = <schema>_<version>,
<schema>`; every other table resolves through the base schema. Clients on the base schema keep the old type: no
swap yet. The sync trigger copies both ways and tells the two kinds of client apart by the session's search_path:
a write from a session whose search_path has the version schema sets the old column from the new one (a value the
old type cannot hold fails that write), any other write sets the new column from the old one. No loop: it is one
BEFORE trigger that only assigns NEW.

`*apply --complete`, once no client of the base schema is left (a deploy): the swap, then in one transaction the
contract and the version schema dropped. A statement a new client prepared through the view is analysed again with
its saved search_path: the view is gone, the name resolves to the base table, whose columns are by then the view's
columns in the view's order and types, so its result type does not change (measured on PostgreSQL 15 and 18,
tests/test_online_versions.py). A view in the table's original order would not survive this for `select *`.
"""

from __future__ import annotations

import re

from psycopg import sql

from sage_agent.ops.online.expand import ident, privileges_body

DIRECTIVE = re.compile(r"^\s*--\s*sage:online\s+versioned\b", re.M | re.I)
KEY = "@version"  # the state row's record of the version schema (state.names)
NAMEDATALEN = 63


def wants_versioned(text: str) -> bool:
    """A `-- sage:online versioned` line asks for a version schema for that file only."""
    return DIRECTIVE.search(text) is not None


def schema_name(base: str, version: str) -> str:
    return f"{base}_{version}"


def table_schema(conn, table: str) -> str | None:
    row = conn.execute("select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                       "where c.oid = to_regclass(%s)", (table,)).fetchone()
    return row[0] if row else None


def problems(conn, spec: dict, version: str, server_major: int, unfinished: dict) -> list[str]:
    """Why this type change cannot run versioned (empty: it can), from the database; read before anything runs (a
    USING expression and the file's own view statements are refused by planner.versioned_plan)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online.expand import dependent_views, infos

    out = []
    if server_major < 15:
        out.append("a version schema needs PostgreSQL 15 or later (security_invoker views, so RLS applies to the "
                   "caller)")
    schema = table_schema(conn, spec["table"])
    if schema is not None:
        name = schema_name(schema, version)
        if len(name.encode()) > NAMEDATALEN:
            out.append(f"the version schema name {name} is longer than {NAMEDATALEN} bytes")
        elif conn.execute("select to_regnamespace(%s) is not null", (ident(name),)).fetchone()[0]:
            out.append(f"the schema {name} exists already: drop or rename it, or drop --versioned")
        row = conn.execute("select attnum from pg_attribute where attrelid = to_regclass(%s) and attname = %s "
                           "and not attisdropped", (spec["table"], spec["column"])).fetchone()
        if row is not None and dependent_views(conn, spec["table"], row[0])[0]:
            out.append("a view reads the column: --versioned does not carry views over it yet (their clients would "
                       "see the new type at the swap): drop --versioned")
    for state in unfinished.values():
        if any(i.get("table") == spec["table"] for i in infos(state)):
            out.append(f"the table has another unfinished online change ({state.version}_{state.name}.sql, "
                       f"{state.describe()}): complete or roll it back first")
    return out


def function_sql(info: dict, schemas: list[str]) -> str:
    """The two-way sync trigger: a write from a client of the version schema sets the old column from the new one
    (an insert that left the new column empty takes the old one's default or identity value), any other write
    sets the new column from the old one."""
    c, new = ident(info["column"]), ident(info["new"])
    test = " OR ".join(f"{sql.Literal(s).as_string(None)} = ANY (pg_catalog.current_schemas(false))" for s in schemas)
    return (f"CREATE OR REPLACE FUNCTION {info['func']}() RETURNS trigger LANGUAGE plpgsql AS $sage$ BEGIN "
            f"IF {test} THEN "
            f"IF TG_OP = 'INSERT' AND NEW.{new} IS NULL THEN NEW.{new} := NEW.{c}; ELSE NEW.{c} := NEW.{new}; END IF; "
            f"ELSE NEW.{new} := NEW.{c}; END IF; RETURN NEW; END $sage$")


def _grants(source: str, dest: str) -> str:
    """Give view `dest` exactly the privileges of table `source`."""
    return "DO $sage$ DECLARE g record; BEGIN " + privileges_body(source, dest, "TABLE") + "END $sage$"


def _usage(base: str, schema: str) -> str:
    """USAGE on the version schema for every role that has it on the base schema (nothing else is ever made
    there; the schema goes at --complete)."""
    src, dst = sql.Literal(base).as_string(None), sql.Literal(schema).as_string(None)
    return ("DO $sage$ DECLARE g record; BEGIN FOR g IN SELECT a.grantee FROM pg_namespace n, "
            "aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
            f"WHERE n.oid = {src}::regnamespace AND a.privilege_type = 'USAGE' LOOP "
            f"EXECUTE format('GRANT USAGE ON SCHEMA %s TO %s', {dst}::regnamespace, "
            "CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END); END LOOP; "
            "END $sage$")


def create_sql(conn, infos: list[dict], version: str) -> tuple[list[str], dict]:
    """(statements, record) that make the version schema(s) of one file's type changes, read from the catalog now
    (in the step's transaction): one view per changed table, and the sync triggers made two-way."""
    by_table: dict[str, list[dict]] = {}
    for info in infos:
        by_table.setdefault(info["table"], []).append(info)
    out: list[str] = []
    schemas: list[str] = []
    views: list[str] = []
    for table, changes in by_table.items():
        base, relname, owner = conn.execute(
            "select n.nspname, c.relname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(%s)", (table,)).fetchone()
        schema = schema_name(base, version)
        if schema not in schemas:
            schemas.append(schema)
            out += [f"CREATE SCHEMA {ident(schema)}", _usage(ident(base), ident(schema))]
        old = {i["column"] for i in changes}
        new = {i["new"]: i["column"] for i in changes}
        columns = []
        for (name,) in conn.execute("select attname from pg_attribute where attrelid = to_regclass(%s) "
                                    "and attnum > 0 and not attisdropped order by attnum", (table,)):
            if name in old:
                continue
            columns.append(f"{ident(name)} AS {ident(new[name])}" if name in new else ident(name))
        view = f"{ident(schema)}.{ident(relname)}"
        views.append(view)
        out += [f"CREATE VIEW {view} WITH (security_invoker = true) AS SELECT {', '.join(columns)} "
                f"FROM {ident(base)}.{ident(relname)}",
                f"ALTER VIEW {view} OWNER TO {ident(owner)}",
                _grants(f"{ident(base)}.{ident(relname)}", view)]
    out += [function_sql(info, schemas) for info in infos]
    return out, {"schemas": schemas, "views": views}


def drop_sql(record: dict) -> list[str]:
    """The version schema(s) gone: the views first (a reader locks the view before the table), then each schema
    (RESTRICT: an object someone else put there stops it, and the transaction with it)."""
    return [f"DROP VIEW IF EXISTS {v}" for v in record.get("views", [])] + \
        [f"DROP SCHEMA IF EXISTS {ident(s)}" for s in record.get("schemas", [])]


def client_note(filename: str, schemas: list[str], bases: list[str]) -> str:
    """What the plan tells the person about clients: which must move, and how."""
    path = ", ".join(f"{s}, {b}" for s, b in zip(schemas, bases))
    first = schemas[0] if schemas else "<schema>_<version>"
    return (f"{filename} runs versioned: the type change is visible only through the version schema "
            f"{', '.join(schemas)}. Clients built for the new type connect with search_path {path} (libpq/psycopg "
            f"URL: ?options=-csearch_path%3D{first},{bases[0] if bases else 'public'}; or SET search_path TO "
            f"{path}); clients on {', '.join(bases)} keep the old type. Stop or redeploy every client of the base "
            "schema before *apply --complete (the swap): a statement one of them prepared that returns the column "
            "fails after it; and a statement they prepared with `select *` (or `returning *`) fails already at the "
            "expand, which adds a column (as any ADD COLUMN does): such clients list their columns. --complete "
            f"drops {', '.join(schemas)}; statements prepared through it go on against the table (same columns, same "
            "order, same types)")
