"""Proof by impersonation: copy the schema to a shadow database, seed rows for two synthetic users, then act
as anon and as each authenticated user (`set local role`, `request.jwt.claims`) and try select / insert /
update / delete on every exposed table. Every attempt runs in a savepoint that is rolled back; the target
database only ever sees `pg_dump --schema-only`.

Multi-tenant tables: users A and B belong to two different tenants. A table's tenant column is given (by
*policy-apply) or found (a uuid column `tenant_id` that one of its policies names); seeded rows carry their
owner's tenant and each user's JWT carries a `tenant_id` claim (top level and in app_metadata), so a tenant
policy is exercised instead of denying everyone."""

from __future__ import annotations

import json
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from psycopg import errors, sql

from sage_agent.ops.security.lints import SYSTEM_SCHEMAS

USER_A = uuid.UUID("00000000-0000-4000-a000-00000000000a")
USER_B = uuid.UUID("00000000-0000-4000-a000-00000000000b")
TENANT_OF = {USER_A: uuid.UUID("00000000-0000-4000-b000-00000000000a"),
             USER_B: uuid.UUID("00000000-0000-4000-b000-00000000000b")}
TENANT_CLAIM = "tenant_id"
ROWS_PER_USER = 5
OWNER_NAMES = ("user_id", "owner_id", "owner", "created_by", "author_id", "profile_id", "uid", "account_id")


@dataclass
class TableProbe:
    schema: str
    table: str
    owner_column: str | None
    tenant_column: str | None = None
    seeded: bool = False
    seed_error: str | None = None
    # role label ("anon", "user A", "user B") -> action -> result
    access: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class Proof:
    tables: list[TableProbe]
    leaks: list[str]
    notes: list[str]

    def matrix_rows(self) -> list[list[Any]]:
        rows = []
        for t in self.tables:
            for who, acts in t.access.items():
                rows.append([t.qualified, who, acts.get("select", "-"), acts.get("insert_own", "-"),
                             acts.get("insert_other", "-"), acts.get("update_other", "-"),
                             acts.get("delete_other", "-")])
        return rows

    MATRIX_COLUMNS = ["table", "as", "select (rows seen)", "insert own", "insert as other", "update other's",
                      "delete other's"]


@contextmanager
def shadow_copy(admin_url: str, target_url: str, schemas: list[str], server_major: int | None) -> Iterator[str]:
    """A shadow database (Supabase baseline) with the target's schemas (structure and grants, no data)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.shadow import load_sql_file, shadow_database
    from sage_agent.db.tools import run_pg_tool

    with tempfile.TemporaryDirectory(prefix="sage-rls-") as tmp:
        dump = Path(tmp) / "schema.sql"
        args = ["--schema-only", "--no-owner", "--no-comments", "-f", str(dump)]
        for s in schemas:
            args += ["-n", s]
        run_pg_tool("pg_dump", target_url, args, server_major=server_major)
        text = dump.read_text()
        # the baseline already has these schemas; pg_dump -n recreates them
        lines = [ln for ln in text.splitlines() if not (ln.startswith("CREATE SCHEMA ") and ln.rstrip(";").split()[-1].strip('"') in ("public", "auth", "extensions"))]
        lines = [ln for ln in lines if not ln.startswith(("\\restrict", "\\unrestrict"))]
        dump.write_text("\n".join(lines) + "\n")
        with shadow_database(admin_url, "rls") as url:
            load_sql_file(url, dump, server_major)
            yield url


def _owner_column(conn, oid: int) -> str | None:
    cols = conn.execute("""
        select a.attname,
               exists (select 1 from pg_constraint ct where ct.conrelid = a.attrelid and ct.contype = 'f'
                       and ct.confrelid = to_regclass('auth.users') and ct.conkey = array[a.attnum]) as fk_users
        from pg_attribute a
        where a.attrelid = %s and a.attnum > 0 and not a.attisdropped and a.atttypid = 'uuid'::regtype
        order by a.attnum""", (oid,)).fetchall()
    for name, fk in cols:
        if fk:
            return name
    for preferred in OWNER_NAMES:
        for name, _ in cols:
            if name == preferred:
                return name
    return None


def _value_expr(typ: str, typcategory: str, n: int, maxlen: int | None, enum_first: str | None) -> sql.Composable | None:
    if enum_first is not None:
        return sql.Literal(enum_first)
    if typ in ("smallint", "integer", "bigint", "numeric", "real", "double precision") or typcategory == "N":
        return sql.Literal(1000 + n)
    if typ == "uuid":
        return sql.SQL("gen_random_uuid()")
    if typ == "boolean":
        return sql.Literal(False)
    if typcategory == "S":
        text = f"sage{n}"
        return sql.Literal(text[:maxlen] if maxlen else text)
    if typcategory == "D":
        return sql.SQL("now() + make_interval(secs => {})").format(sql.Literal(n))
    if typ in ("json", "jsonb"):
        return sql.Literal("{}")
    if typcategory == "A":
        return sql.Literal("{}")
    if typ == "bytea":
        return sql.Literal(b"x")
    return None


def _tenant_column(conn, oid: int) -> str | None:
    """A uuid column named like the tenant claim that one of the table's policies refers to."""
    row = conn.execute("""
        select a.attname from pg_attribute a
        where a.attrelid = %s and a.attname = %s and a.atttypid = 'uuid'::regtype and not a.attisdropped
          and exists (select 1 from pg_policy p where p.polrelid = a.attrelid
                      and (coalesce(pg_get_expr(p.polqual, p.polrelid), '') || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))
                          like '%%' || a.attname || '%%')""", (oid, TENANT_CLAIM)).fetchone()
    return row[0] if row else None


def _columns(conn, oid: int) -> list[tuple]:
    return conn.execute("""
        select a.attname, format_type(a.atttypid, null), t.typcategory,
               case when a.atttypmod > 4 and t.typcategory = 'S' then a.atttypmod - 4 end,
               (select e.enumlabel from pg_enum e where e.enumtypid = a.atttypid order by e.enumsortorder limit 1),
               a.attnotnull, a.atthasdef or a.attidentity <> '' or a.attgenerated <> ''
        from pg_attribute a join pg_type t on t.oid = a.atttypid
        where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum""", (oid,)).fetchall()


def _insert_stmt(probe: TableProbe, cols: list[tuple], owner: uuid.UUID | None, n: int) -> sql.Composable:
    """An INSERT of one generated row (NOT NULL columns without defaults get a value by type)."""
    names, values = [], []
    for name, typ, cat, maxlen, enum_first, notnull, hasdef in cols:
        if name == probe.owner_column and owner is not None:
            names.append(sql.Identifier(name))
            values.append(sql.Literal(str(owner)))
        elif name == probe.tenant_column and owner in TENANT_OF:
            names.append(sql.Identifier(name))
            values.append(sql.Literal(str(TENANT_OF[owner])))
        elif notnull and not hasdef:
            expr = _value_expr(typ, cat, n, maxlen, enum_first)
            if expr is None:
                raise ValueError(f"cannot generate a value for {name} ({typ})")
            names.append(sql.Identifier(name))
            values.append(expr)
    target = sql.SQL("{}.{}").format(sql.Identifier(probe.schema), sql.Identifier(probe.table))
    if not names:
        return sql.SQL("insert into {} default values").format(target)
    return sql.SQL("insert into {} ({}) values ({})").format(target, sql.SQL(", ").join(names),
                                                            sql.SQL(", ").join(values))


def _seed(conn, probe: TableProbe, cols: list[tuple], start: int) -> None:
    n = start
    for user in (USER_A, USER_B):
        for _ in range(ROWS_PER_USER):
            n += 1
            conn.execute(_insert_stmt(probe, cols, user, n))


def _claims(user: uuid.UUID | None) -> str:
    if user is None:
        return json.dumps({"role": "anon"})
    tenant = str(TENANT_OF[user])
    return json.dumps({"sub": str(user), "role": "authenticated", "aud": "authenticated",
                       "email": f"{'a' if user == USER_A else 'b'}@sage.test", TENANT_CLAIM: tenant,
                       "app_metadata": {TENANT_CLAIM: tenant}, "user_metadata": {}})


def _attempt(conn, stmt: sql.Composable, params: tuple = ()) -> tuple[str, int]:
    """Run one statement in a savepoint and roll it back: ("ok", rowcount) or ("denied"/"error: ..", 0)."""
    try:
        with conn.transaction():
            cur = conn.execute(stmt, params)
            count = cur.rowcount
            if cur.description is not None:
                count = cur.fetchone()[0]
            raise _Rollback(count)
    except _Rollback as rb:
        return "ok", rb.count
    except errors.InsufficientPrivilege:
        return "denied", 0
    except errors.Error as exc:
        return f"error: {type(exc).__name__}", 0


class _Rollback(Exception):
    def __init__(self, count: int) -> None:
        self.count = count


def prove(url: str, schemas: list[str], tables: list[str] | None = None,
          tenant_columns: dict[str, str] | None = None) -> Proof:
    """Seed and impersonate on the (shadow) database at `url`. Never call this on the target.
    `tenant_columns` ("schema.table" -> column) names tenant columns; others are found (see the module doc)."""
    # lazy: psycopg loads on the first database call
    import psycopg

    notes: list[str] = []
    leaks: list[str] = []
    probes: list[TableProbe] = []
    with psycopg.connect(url, autocommit=True) as conn:
        roles = {r[0] for r in conn.execute("select rolname from pg_roles where rolname in ('anon','authenticated')")}
        if roles != {"anon", "authenticated"} or conn.execute("select to_regclass('auth.users')").fetchone()[0] is None:
            return Proof([], [], ["impersonation skipped: no anon/authenticated roles or auth.users on this server"])
        conn.execute("insert into auth.users (id, email, role, aud) values (%s, 'a@sage.test', 'authenticated', 'authenticated'), "
                     "(%s, 'b@sage.test', 'authenticated', 'authenticated') on conflict do nothing", (USER_A, USER_B))
        rels = conn.execute("""
            select c.oid, n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname = any(%s) and n.nspname <> all(%s) order by 2, 3""",
                            (schemas, SYSTEM_SCHEMAS)).fetchall()
        wanted = set(tables or [])
        probe_cols: dict[str, tuple[list[tuple], int]] = {}
        conn.execute("set session_replication_role = replica")  # no FK or user triggers while seeding a scratch copy
        for i, (oid, schema, name) in enumerate(rels):
            if wanted and name not in wanted and f"{schema}.{name}" not in wanted:
                continue
            tenant = (tenant_columns or {}).get(f"{schema}.{name}") or _tenant_column(conn, oid)
            probe = TableProbe(schema, name, _owner_column(conn, oid), tenant)
            cols = _columns(conn, oid)
            probe_cols[probe.qualified] = (cols, i * 100 + 50)
            try:
                with conn.transaction():
                    _seed(conn, probe, cols, i * 100)
                probe.seeded = True
            except (errors.Error, ValueError) as exc:
                probe.seed_error = str(exc).splitlines()[0]
                notes.append(f"{probe.qualified}: could not generate rows ({probe.seed_error}); access shown without data")
            probes.append(probe)
        conn.execute("reset session_replication_role")
        total = 2 * ROWS_PER_USER
        for probe in probes:
            t = sql.SQL("{}.{}").format(sql.Identifier(probe.schema), sql.Identifier(probe.table))
            oc = sql.Identifier(probe.owner_column) if probe.owner_column else None
            for who, user, other in (("anon", None, USER_A), ("user A", USER_A, USER_B), ("user B", USER_B, USER_A)):
                acts: dict[str, Any] = {}
                with conn.transaction():
                    conn.execute(sql.SQL("set local role {}").format(sql.Identifier("anon" if user is None else "authenticated")))
                    conn.execute("select set_config('request.jwt.claims', %s, true)", (_claims(user),))
                    status, seen = _attempt(conn, sql.SQL("select count(*) from {}").format(t))
                    acts["select"] = seen if status == "ok" else status
                    other_seen = 0
                    if oc is not None and status == "ok":
                        _, other_seen = _attempt(conn, sql.SQL("select count(*) from {} where {} = %s").format(t, oc), (other,))
                    cols, n0 = probe_cols[probe.qualified]
                    for key, owner in (("insert_own", user), ("insert_other", other)):
                        if owner is None:
                            owner = other  # anon tries to plant a row for user A
                        if oc is None and key == "insert_other":
                            continue
                        try:
                            stmt = _insert_stmt(probe, cols, owner, n0 + (1 if key == "insert_own" else 2))
                        except ValueError:
                            acts[key] = "not tried"
                            continue
                        st, _ = _attempt(conn, stmt)
                        acts[key] = "allowed" if st == "ok" else ("denied" if st == "denied" or "Check" in st else st)
                    if oc is not None:
                        st, upd = _attempt(conn, sql.SQL("update {} set {} = {} where {} = %s").format(t, oc, oc, oc), (other,))
                        acts["update_other"] = upd if st == "ok" else st
                        st, dele = _attempt(conn, sql.SQL("delete from {} where {} = %s").format(t, oc), (other,))
                        acts["delete_other"] = dele if st == "ok" else st
                    else:
                        first = sql.Identifier(cols[0][0]) if cols else None
                        if first is not None:
                            st, upd = _attempt(conn, sql.SQL("update {} set {} = {}").format(t, first, first))
                            acts["update_other"] = upd if st == "ok" else st
                        st, dele = _attempt(conn, sql.SQL("delete from {}").format(t))
                        acts["delete_other"] = dele if st == "ok" else st
                    conn.execute("reset role")
                probe.access[who] = acts
                if not probe.seeded:
                    continue
                other_label = "user B" if who == "user A" else "user A"
                if user is None:
                    if isinstance(acts["select"], int) and acts["select"] > 0:
                        leaks.append(f"anon can read {acts['select']} of {total} rows in {probe.qualified}")
                    if isinstance(acts.get("delete_other"), int) and acts["delete_other"] > 0:
                        leaks.append(f"anon can delete {acts['delete_other']} rows in {probe.qualified}")
                    if isinstance(acts.get("update_other"), int) and acts["update_other"] > 0:
                        leaks.append(f"anon can update {acts['update_other']} rows in {probe.qualified}")
                    if acts.get("insert_own") == "allowed" or acts.get("insert_other") == "allowed":
                        leaks.append(f"anon can insert rows into {probe.qualified}")
                    continue
                if oc is None:
                    continue
                if other_seen:
                    leaks.append(f"authenticated {who} can read {other_seen} of {other_label}'s rows in {probe.qualified}")
                if isinstance(acts.get("update_other"), int) and acts["update_other"] > 0:
                    leaks.append(f"authenticated {who} can update {acts['update_other']} of {other_label}'s rows in {probe.qualified}")
                if isinstance(acts.get("delete_other"), int) and acts["delete_other"] > 0:
                    leaks.append(f"authenticated {who} can delete {acts['delete_other']} of {other_label}'s rows in {probe.qualified}")
                if acts.get("insert_other") == "allowed":
                    leaks.append(f"authenticated {who} can insert rows owned by {other_label} into {probe.qualified}")
        for probe in probes:
            if probe.tenant_column:
                notes.append(f"{probe.qualified}: tenant column {probe.tenant_column}; users A and B are in two "
                             f"tenants (JWT claim {TENANT_CLAIM}), so reading the other's rows crosses tenants")
            if probe.owner_column is None:
                notes.append(f"{probe.qualified}: no owner column (uuid referencing auth.users or named like user_id); "
                             "cross-user checks not possible, only anon access was judged")
    return Proof(probes, leaks, notes)
