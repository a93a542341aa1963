"""Expand/contract for a column type change (`ALTER COLUMN c TYPE t [USING e]`) without a table rewrite under
ACCESS EXCLUSIVE.

The sequence (each step recorded in sage_online, so a kill at any point is resumable or undoable):
1. expand: `c_sage_new` of the new type and a BEFORE INSERT OR UPDATE trigger that sets it from `c` (through
   the USING expression) on every write, in one short transaction;
2. backfill: `c_sage_new = <USING or c>` in primary-key batches (backfill.py);
3. indexes: every plain index on `c` built again on `c_sage_new` CONCURRENTLY under a temporary name;
4. constraints on the new column, each added NOT VALID and validated in its own transaction: `c_sage_new IS NOT
   NULL` when `c` is NOT NULL, and a copy of every CHECK that uses `c` (one that was NOT VALID stays so);
5. swap, one short transaction: `c` becomes `c_sage_old`, `c_sage_new` becomes `c` (default, NOT NULL, indexes,
   CHECK names and comment move with the name), and the trigger now keeps `c_sage_old` current from the new `c`.
A single-column primary key on `c` (the common `id int -> bigint`) moves too: its unique index is built on
`c_sage_new` CONCURRENTLY in step 3 (and a unique copy on `c` itself, so a rollback can put the key back with no
scan); the swap drops the foreign keys that reference `c` (from other tables, or from another column of the table
itself: a parent id) and the old key, adds `PRIMARY KEY USING INDEX` under the key's own name on the new column,
and adds each foreign key again NOT VALID (validated right after the swap, each in its own transaction).
Referencing columns keep their type (an int column may reference a bigint key). A serial's sequence follows its
default: the swap moves `OWNED BY` to the new column. An identity moves in the swap's transaction: a sequence of
the same options (a bound that was the old type's own becomes the new type's, as ALTER SEQUENCE ... AS does),
privileges and comment is made for the new column and set to the old one's value (no other session takes a value
meanwhile: they wait for the table's lock), then the old identity is dropped and the new sequence takes its name.
The old CHECK constraints stay on `c_sage_old` (renamed `<name>_sage_old`) until the contract, so a rollback
only renames them back. Views over `c` (and views over those) are dropped at the start of the swap (before the
table: the order a reader locks them in) and made again at its end from their definitions, which name the column
and so read the new one, with their options, owner, privileges and comments; the rollback does the same. Which
views: read from the catalog inside the swap's (or the rollback's) own transaction (run_swap), so a view made after
the change started moves too; a file's own DROP VIEW / CREATE VIEW statements around the type change run there as
the file gives them (planner.move_view_statements), and the rollback makes those views again as they were before.
The file's history row is written after the last step (the swap is the moment the change is visible); the
state row stays as `expanded (contract pending)`. `*apply --complete` drops `c_sage_old` and the trigger;
until then `*rollback FILE` swaps back in one short transaction, keeping every row written meanwhile.

What cannot be carried over faithfully is refused before anything runs (column_problems): constraints other
than NOT NULL, CHECK and a single-column non-deferrable primary key on the column, foreign keys from it, a
foreign key to it from the column itself or that is not through the primary key, rules, policies, triggers,
generated columns or statistics that use it, a materialized view over it or anything but a view that depends on
a view over it, an identity whose new type is not an integer type, a sequence owned
by it that is not its default, column privileges, a statistics target or attribute options, a CLUSTER / REPLICA
IDENTITY index on it, partitions and inheritance.
The column moves to the end of the table (as with every expand/contract tool): `select *` lists it last.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pglast import ast, parse_sql
from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
from pglast.visitors import Visitor
from psycopg import sql

NAMEDATALEN = 63


def ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def temp_name(base: str, suffix: str) -> str:
    """`<base>_<suffix>`, or a hashed name when that would pass PostgreSQL's 63 bytes."""
    name = f"{base}_{suffix}"
    if len(name.encode()) <= NAMEDATALEN:
        return name
    return f"sage_{suffix}_{hashlib.sha1(base.encode()).hexdigest()[:16]}"


def free_name(conn, schema: str, base: str, suffix: str, column: str) -> str:
    """`<base>_<suffix>`, tagged with the column when an earlier change on the table already took that name."""
    name = temp_name(base, suffix)
    taken = conn.execute("select to_regclass(%s) is not null", (f"{ident(schema)}.{ident(name)}",)).fetchone()[0]
    return temp_name(base, f"{suffix}_{hashlib.sha1(column.encode()).hexdigest()[:6]}") if taken else name


def names_for(relname: str, column: str) -> dict[str, str]:
    """The fixed names of one expand/contract: the same on every run, so a resumed run finds its own objects."""
    tag = hashlib.sha1(f"{relname}.{column}".encode()).hexdigest()[:12]
    return {"new": temp_name(column, "sage_new"), "old": temp_name(column, "sage_old"),
            "trigger": f"zz_sage_sync_{tag}",  # BEFORE triggers fire by name: after the table's own ones
            "func": f"supabase_migrations.sage_sync_{tag}", "chk": temp_name(f"{relname}_{column}", "sage_nn")}


class _Columns(Visitor):
    """Point column references at another column (index definitions) or at NEW (trigger expressions)."""

    def __init__(self, column: str | None, to: str | None, prefix_new: bool = False):
        super().__init__()
        self.column, self.to, self.prefix_new = column, to, prefix_new

    def visit_ColumnRef(self, parent, node):  # noqa: ARG002
        last = node.fields[-1]
        if not isinstance(last, ast.String):
            return
        name = self.to if self.column is not None and last.sval == self.column else last.sval
        node.fields = (ast.String(sval="new"), ast.String(sval=name)) if self.prefix_new else \
            (*node.fields[:-1], ast.String(sval=name))

    def visit_IndexElem(self, parent, node):  # noqa: ARG002
        if self.column is not None and node.name == self.column:
            node.name = self.to


def trigger_expression(using: str | None, column: str) -> str:
    """The USING expression (or the column itself) over NEW, for the sync trigger."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.online.planner import deparse

    if not using:
        return f"NEW.{ident(column)}"
    stmt = parse_sql(f"SELECT {using}")[0].stmt
    _Columns(None, None, prefix_new=True)(stmt)
    return deparse(stmt.targetList[0].val)


def index_on_new(definition: str, column: str, new: str, tmp: str) -> str:
    """`pg_get_indexdef` of an index on the column, built again on the new column CONCURRENTLY as `tmp`."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.online.planner import deparse

    stmt = parse_sql(definition)[0].stmt
    _Columns(column, new)(stmt)
    stmt.idxname, stmt.concurrent = tmp, True
    return deparse(stmt)


# statements that can give a column what the swap cannot carry over (column_problems reads them from the database)
# (a view is made again by the swap, a CHECK copied: those the expand step finds and carries over)
_USES = {"AlterTableStmt": "ALTER TABLE", "CreateTrigStmt": "CREATE TRIGGER", "CreatePolicyStmt": "CREATE POLICY",
         "AlterPolicyStmt": "ALTER POLICY", "CreateTableAsStmt": "CREATE MATERIALIZED VIEW", "RuleStmt": "CREATE RULE",
         "CreateStatsStmt": "CREATE STATISTICS", "GrantStmt": "GRANT"}
_ALTER_USES = {"AT_AddConstraint", "AT_SetStatistics", "AT_SetOptions", "AT_AddIdentity", "AT_SetIdentity",
               "AT_ClusterOn", "AT_ReplicaIdentity", "AT_AddColumn", "AT_SetExpression", "AT_CookedColumnDefault"}


def _carried(cmd) -> bool:
    """A constraint the swap carries over when the expand step finds it (NOT NULL, CHECK, the primary key)."""
    con = cmd.def_ if isinstance(cmd.def_, ast.Constraint) else None
    return con is not None and ConstrType(con.contype).name in ("CONSTR_NOTNULL", "CONSTR_CHECK", "CONSTR_PRIMARY")


def earlier_uses(file_plan, spec: dict, line: int) -> list[str]:
    """The file's own statements before the type change at `line` that use its column in a way the swap cannot
    carry over (a materialized view, a policy, a trigger, a UNIQUE constraint...). column_problems reads the database before anything
    runs, so it cannot see them; the expand step would refuse them after the earlier steps were committed."""
    column, relname = spec["column"], spec["relname"]

    def mentions(name: str, text: str) -> bool:
        if name == name.lower() and re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
            return re.search(rf'(?<![\w$"]){re.escape(name)}(?![\w$"])', text, re.I) is not None or \
                f'"{name}"' in text
        return f'"{name}"' in text

    out = []
    for stmt in file_plan.parsed:
        kind = type(stmt.node).__name__
        if stmt.line >= line or kind not in _USES:
            continue
        if kind == "AlterTableStmt":
            rel = stmt.node.relation
            if f"{rel.schemaname or 'public'}.{rel.relname}" != spec["name"]:
                continue
            cmds = [c for c in (stmt.node.cmds or ()) if getattr(c, "subtype", None) is not None
                    and AlterTableType(c.subtype).name in _ALTER_USES and not _carried(c)]
            if not cmds:
                continue
        elif not mentions(relname, stmt.text):
            continue
        if mentions(column, stmt.text):
            out.append(f"line {stmt.line} of this file ({_USES[kind]}) uses it before the type change, and the "
                       "online form carries over only what is in the database when it starts")
    return out


def column_problems(conn, table: str, column: str, newtype: str | None = None) -> list[str]:
    """What a plain ALTER TYPE would carry over and this online form cannot (empty: it can)."""
    row = conn.execute(
        "select a.attnum, a.attidentity, a.attgenerated, a.attacl is not null, c.relkind, "
        "exists (select 1 from pg_inherits i where i.inhrelid = c.oid or i.inhparent = c.oid), "
        "coalesce(a.attstattarget, -1) <> -1 or exists (select 1 from unnest(a.attoptions) o "
        "        where o like 'n\\_distinct%%'), "
        "exists (select 1 from pg_index x where x.indrelid = c.oid and (x.indisclustered or x.indisreplident) "
        "        and a.attnum = any(x.indkey)) "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "where a.attrelid = to_regclass(%s) and a.attname = %s and not a.attisdropped", (table, column)).fetchone()
    if row is None:
        return [f"{table} has no column {column}"]
    attnum, identity, generated, acl, relkind, inherits, options, special_index = row
    out = []
    if options:
        out.append("it has a statistics target or attribute options (SET STATISTICS / SET (n_distinct ...))")
    if special_index:
        out.append("an index on it is the table's CLUSTER or REPLICA IDENTITY index")
    if identity and newtype is not None and _integer_type(conn, newtype) is None:
        out.append(f"it is an identity column and {newtype} is not smallint, integer or bigint")
    if generated:
        out.append("it is a generated column")
    if acl:
        out.append("it has column privileges (GRANT ... (column))")
    if relkind != "r" or inherits:
        out.append("the table is partitioned, a partition or part of an inheritance tree")
    pk = conn.execute("select count(*) from pg_index where indrelid = to_regclass(%s) and indisprimary "
                      "and indnatts = 1", (table,)).fetchone()[0]
    if not pk:
        out.append("the table has no single-column primary key to backfill by")
    movable = set()  # what the swap moves to the new column: its primary key, foreign keys through it, a serial
    key = primary_key_on(conn, table, attnum)
    if key is not None:
        if key["deferrable"]:
            out.append(f"PRIMARY KEY {key['name']} on it is DEFERRABLE")
        else:
            movable.add(f"p {key['name']}")
        for fk in conn.execute(
                "select conname, conrelid = confrelid and %s = any(conkey), conindid = %s and confkey = array[%s]::int2[] "
                "from pg_constraint where contype = 'f' and confrelid = to_regclass(%s) and %s = any(confkey)",
                (attnum, key["index_oid"], attnum, table, attnum)).fetchall():
            if not fk[1] and fk[2]:  # a key of this table referencing it from another column moves too
                movable.add(f"f {fk[0]}")
    seq = serial_sequence(conn, table, column)
    if seq:
        movable.add(f"S {seq}")
    movable |= {f"c {c['name']}" for c in check_constraints(conn, table, attnum) if c["copyable"]}
    views, view_problems = dependent_views(conn, table, attnum)
    out += view_problems
    if not view_problems:  # dropped and made again in the swap's transaction
        movable |= {v["label"] for v in views}
    movable |= {f"c {r[0]}" for r in conn.execute(  # the old copy an earlier change kept: it stays on the old columns
        "select c.conname from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid "
        "and a.attnum = any(c.conkey) where c.conrelid = to_regclass(%s) and c.contype = 'c' "
        "and a.attname like '%%sage_old%%'", (table,))}
    deps = conn.execute(
        "select d.classid::regclass::text, "
        "  case when d.classid = 'pg_constraint'::regclass then (select contype::text || ' ' || conname "
        "       from pg_constraint where oid = d.objid) "
        "  when d.classid = 'pg_class'::regclass then (select relkind::text || ' ' || oid::regclass::text "
        "       from pg_class where oid = d.objid) "
        "  when d.classid = 'pg_attrdef'::regclass then (select adnum::text from pg_attrdef where oid = d.objid) "
        "  when d.classid = 'pg_rewrite'::regclass then (select n.nspname || '.' || c.relname from pg_rewrite r "
        "       join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace "
        "       where r.oid = d.objid) "
        "  when d.classid = 'pg_trigger'::regclass then (select tgname from pg_trigger where oid = d.objid) "
        "  when d.classid = 'pg_policy'::regclass then (select polname from pg_policy where oid = d.objid) "
        "  else d.objid::text end "
        "from pg_depend d where d.refclassid = 'pg_class'::regclass and d.refobjid = to_regclass(%s) "
        "and d.refobjsubid = %s and d.deptype in ('n', 'a')", (table, attnum)).fetchall()
    for cls, what in deps:
        what = what or ""
        if what in movable:
            continue
        if cls == "pg_constraint" and what.startswith("n "):
            continue  # PostgreSQL 18's NOT NULL constraint: carried over
        if cls == "pg_class" and what.startswith("i "):
            continue  # a plain index: built again on the new column
        if cls == "pg_attrdef" and what == str(attnum):
            continue  # its own default: carried over
        label = {"pg_constraint": "constraint", "pg_class": "relation", "pg_rewrite": "view or rule on",
                 "pg_trigger": "trigger", "pg_policy": "policy", "pg_attrdef": "generated column number",
                 "pg_statistic_ext": "extended statistics object"}.get(cls, cls)
        text = what.split(" ", 1)[-1] if cls in ("pg_constraint", "pg_class") else what
        kind = {"u": "UNIQUE constraint", "p": "PRIMARY KEY", "f": "foreign key", "c": "CHECK constraint",
                "x": "exclusion constraint"}.get(what[:1], label) if cls == "pg_constraint" else \
            ("owned sequence" if what.startswith("S ") else label)
        out.append(f"{kind} {text} uses it")
    fks_in = conn.execute("select conname, conrelid::regclass::text, conrelid = confrelid from pg_constraint "
                          "where contype = 'f' and confrelid = to_regclass(%s) and %s = any(confkey)",
                          (table, attnum)).fetchall()
    out += [f"foreign key {name} on {rel} references it" + (" (from the table itself)" if itself else "")
            for name, rel, itself in fks_in if f"f {name}" not in movable]
    return sorted(set(out))


INTEGER_BOUNDS = {"smallint": (-2 ** 15, 2 ** 15 - 1), "integer": (-2 ** 31, 2 ** 31 - 1),
                  "bigint": (-2 ** 63, 2 ** 63 - 1)}


def _integer_type(conn, typename: str) -> str | None:
    """`smallint`, `integer` or `bigint` when the type is one of them (an identity column's only types)."""
    try:
        with conn.transaction():
            name = conn.execute("select format_type(%s::regtype, null)", (typename,)).fetchone()[0]
    except Exception:  # noqa: BLE001 - not a type name PostgreSQL knows: not an integer type either
        return None
    return name if name in INTEGER_BOUNDS else None


def identity_of(conn, table: str, column: str) -> dict | None:
    """An identity column's kind and its sequence's options (what ADD GENERATED needs to make it again)."""
    row = conn.execute(
        "select a.attidentity, n.nspname, c.relname, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, "
        "s.seqmin, s.seqmax, s.seqcache, s.seqcycle from pg_attribute a join pg_depend d "
        "on d.refclassid = 'pg_class'::regclass and d.refobjid = a.attrelid and d.refobjsubid = a.attnum "
        "and d.classid = 'pg_class'::regclass and d.deptype = 'i' join pg_sequence s on s.seqrelid = d.objid "
        "join pg_class c on c.oid = s.seqrelid join pg_namespace n on n.oid = c.relnamespace "
        "where a.attrelid = to_regclass(%s) and a.attname = %s and a.attidentity <> ''", (table, column)).fetchone()
    if row is None:
        return None
    kind, schema, name, typ, start, inc, lo, hi, cache, cycle = row
    return {"always": kind == "a", "schema": schema, "name": name, "type": typ,
            "options": {"start": start, "increment": inc, "min": lo, "max": hi, "cache": cache, "cycle": cycle}}


def _identity_options(identity: dict, newtype: str) -> dict:
    """The sequence's options after the plain ALTER TYPE: a bound that was the old type's own becomes the new
    type's (PostgreSQL's ALTER SEQUENCE ... AS rule); one the user chose stays."""
    old, new = INTEGER_BOUNDS[identity["type"]], INTEGER_BOUNDS[newtype]
    opts = dict(identity["options"])
    if opts["max"] == old[1]:
        opts["max"] = new[1]
    if opts["min"] == old[0]:
        opts["min"] = new[0]
    return opts


def check_constraints(conn, table: str, attnum: int) -> list[dict]:
    """The CHECK constraints that use the column (not the old copy of an earlier change's), with what it takes to
    build each again on the new column. `copyable`: PostgreSQL's parser of this version reads its definition."""
    out = []
    for name, definition, valid, comment in conn.execute(
            "select c.conname, pg_get_constraintdef(c.oid), c.convalidated, obj_description(c.oid, 'pg_constraint') "
            "from pg_constraint c where c.conrelid = to_regclass(%s) and c.contype = 'c' and %s = any(c.conkey) "
            "and not exists (select 1 from pg_attribute a where a.attrelid = c.conrelid and a.attnum = any(c.conkey) "
            "and a.attname like '%%sage_old%%') order by 1", (table, attnum)).fetchall():
        try:
            parse_sql(f"ALTER TABLE t ADD CONSTRAINT c {definition}")
            copyable = True
        except Exception:  # noqa: BLE001 - a definition this parser cannot read stays refused
            copyable = False
        out.append({"name": name, "def": definition, "valid": valid, "comment": comment, "copyable": copyable})
    if out:  # names free on the table: an earlier change of another column may have kept `<name>_sage_old`
        taken = {r[0] for r in conn.execute("select conname from pg_constraint where conrelid = to_regclass(%s)",
                                            (table,))}
        column = conn.execute("select attname from pg_attribute where attrelid = to_regclass(%s) and attnum = %s",
                              (table, attnum)).fetchone()[0]
        tag = hashlib.sha1(column.encode()).hexdigest()[:6]

        def free(name: str, suffix: str) -> str:
            plain = temp_name(name, suffix)
            return plain if plain not in taken else temp_name(name, f"{suffix}_{tag}")

        for c in out:
            c["tmp"], c["old"] = free(c["name"], "sage_new"), free(c["name"], "sage_old")
    return out


def check_on_new(info: dict, check: dict) -> str:
    """`ALTER TABLE ... ADD CONSTRAINT <tmp> CHECK (...) NOT VALID` of a CHECK, on the new column."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.online.planner import deparse

    stmt = parse_sql(f"ALTER TABLE {info['table']} ADD CONSTRAINT {ident(check['tmp'])} {check['def']}")[0].stmt
    _Columns(info["column"], info["new"])(stmt)
    con = stmt.cmds[0].def_
    con.skip_validation, con.initially_valid = True, False
    return deparse(stmt)


def dependent_views(conn, table: str, attnum: int) -> tuple[list[dict], list[str]]:
    """(the views that use the column, and every view over those, in creation order; why they cannot be dropped and
    made again in the swap). Each view's definition is read with an empty search_path, so it names every object
    with its schema and means the same whatever path the swap runs with."""
    direct = [r[0] for r in conn.execute(
        "select distinct r.ev_class from pg_depend d join pg_rewrite r on r.oid = d.objid "
        "where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass "
        "and d.refobjid = to_regclass(%s) and d.refobjsubid = %s and r.ev_class <> d.refobjid", (table, attnum))]
    built_on: dict[int, list[int]] = {}  # view -> the views built on it (one catalog read per view)
    queue = list(direct)
    while queue:
        oid = queue.pop()
        if oid in built_on:
            continue
        built_on[oid] = [child for (child,) in conn.execute(
            "select distinct r.ev_class from pg_depend d join pg_rewrite r on r.oid = d.objid "
            "where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass "
            "and d.refobjid = %s and r.ev_class <> %s", (oid, oid))]
        queue += built_on[oid]
    uses: dict[int, set[int]] = {oid: set() for oid in built_on}  # view -> the views of the set it is built on
    for oid, children in built_on.items():
        for child in children:
            uses[child].add(oid)
    if not uses:
        return [], []
    problems: list[str] = []
    return _records(conn, uses, problems), problems


def views_named(conn, labels: list[str]) -> list[dict]:
    """The views of these names (`schema.view`) as the catalog has them now, in the order they are built on each
    other: what a file's own DROP VIEW statements drop in a swap, kept so that *rollback FILE makes them again as
    they were, whatever the file made of them (a view that no longer reads the column, or never did)."""
    oids = [r[0] for r in conn.execute(
        "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname || '.' || c.relname = any(%s) and c.relkind = 'v'", (list(labels),))]
    uses = {oid: {r[0] for r in conn.execute(
        "select distinct d.refobjid from pg_depend d join pg_rewrite r on r.oid = d.objid "
        "where d.classid = 'pg_rewrite'::regclass and r.ev_class = %s and d.refclassid = 'pg_class'::regclass "
        "and d.refobjid = any(%s) and d.refobjid <> %s", (oid, oids, oid))} for oid in oids}
    return _records(conn, uses, []) if uses else []


def _records(conn, uses: dict[int, set[int]], problems: list[str]) -> list[dict]:
    """The record of each view (`uses`: view -> the views of the set it is built on), in dependency order."""
    order: list[int] = []
    while len(order) < len(uses):  # views before the views built on them
        ready = sorted(v for v, on in uses.items() if v not in order and on <= set(order))
        order += ready or sorted(v for v in uses if v not in order)[:1]
    path = conn.execute("select current_setting('search_path')").fetchone()[0]
    views: list[dict] = []
    with conn.transaction():  # a transaction of its own (or a savepoint) for the local search_path
        try:
            conn.execute("select set_config('search_path', '', true)")
            for oid in order:
                views.append(_view(conn, oid, set(uses), problems))
        finally:
            conn.execute("select set_config('search_path', %s, true)", (path,))
    label = {oid: v["label"] for oid, v in zip(order, views)}
    for oid, v in zip(order, views):  # what it is built on: the order a swap back makes views again in
        v["on"] = sorted(label[o] for o in uses[oid])
    return views


def _view(conn, oid: int, group: set[int], problems: list[str]) -> dict:
    """What it takes to make one view again: definition, options, owner, privileges, comments."""
    name, label, kind, definition, owner, options, comment = conn.execute(
        "select %s::regclass::text, n.nspname || '.' || c.relname, c.relkind, "
        "case when c.relkind = 'v' then pg_get_viewdef(c.oid) end, pg_get_userbyid(c.relowner), c.reloptions, "
        "obj_description(c.oid, 'pg_class') from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.oid = %s", (oid, oid)).fetchone()
    if kind != "v":
        problems.append(f"materialized view {name} uses it (it would have to be filled again)")
    others = [r[0] for r in conn.execute(
        "select pg_describe_object(d.classid, d.objid, d.objsubid) from pg_depend d "
        "where d.deptype in ('n', 'a') and ((d.refclassid = 'pg_class'::regclass and d.refobjid = %s) "
        "  or (d.refclassid = 'pg_type'::regclass and d.refobjid = (select reltype from pg_class where oid = %s))) "
        "and not (d.classid = 'pg_rewrite'::regclass and (select ev_class from pg_rewrite where oid = d.objid) "
        "  = any(%s::oid[]) and (select rulename from pg_rewrite where oid = d.objid) = '_RETURN')",
        (oid, oid, sorted(group)))]
    others += [f"rule {r[0]}" for r in conn.execute(
        "select rulename from pg_rewrite where ev_class = %s and rulename <> '_RETURN'", (oid,))]
    problems += [f"{what} depends on the view {name} over it" for what in others]
    grants = conn.execute(
        "select case when a.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(a.grantee)) end, "
        "a.privilege_type, a.is_grantable from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
        "where c.oid = %s order by 1, 2", (oid,)).fetchall()
    columns = conn.execute(
        "select quote_ident(a.attname), case when g.grantee = 0 then 'PUBLIC' else "
        "quote_ident(pg_get_userbyid(g.grantee)) end, g.privilege_type, g.is_grantable "
        "from pg_attribute a, aclexplode(a.attacl) g where a.attrelid = %s and a.attnum > 0 order by a.attnum, 2, 3",
        (oid,)).fetchall()
    comments = conn.execute("select quote_ident(attname), col_description(attrelid, attnum) from pg_attribute "
                            "where attrelid = %s and attnum > 0 and col_description(attrelid, attnum) is not null "
                            "order by attnum", (oid,)).fetchall()
    return {"name": name, "label": label, "definition": (definition or "").strip().removesuffix(";"), "owner": owner,
            "options": list(options or []), "comment": comment, "grants": [list(g) for g in grants],
            "column_grants": [list(g) for g in columns], "column_comments": [list(c) for c in comments]}


def drop_views_sql(views: list[dict]) -> list[str]:
    """The views over the column, dropped (the ones built on others first); the swap makes them again. A view
    marked `gone` (a swap back: one the file dropped and made again so that it no longer reads the column) is
    dropped after them, as the file left it, in one statement (whatever those views are built on now)."""
    gone = [v["name"] for v in views if v.get("gone")]
    return [f"DROP VIEW {v['name']}" for v in reversed(views) if not v.get("gone")] + \
        ([f"DROP VIEW IF EXISTS {', '.join(gone)}"] if gone else [])


def create_views_sql(views: list[dict]) -> list[str]:
    """Each view made again from its definition (which names the column, so it now reads the column of that name),
    with its options, owner, privileges (the default ones a new view gets revoked first) and comments."""
    out = []
    for v in views:
        name = v["name"]
        out.append(f"CREATE VIEW {name} AS {v['definition']}")
        if v["options"]:
            out.append(f"ALTER VIEW {name} SET ({', '.join(v['options'])})")
        out.append(f"ALTER VIEW {name} OWNER TO {ident(v['owner'])}")
        lit = sql.Literal(name).as_string(None)
        out.append("DO $sage$ DECLARE g record; BEGIN FOR g IN SELECT a.privilege_type AS p, a.grantee FROM pg_class c, "
                   "aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a WHERE c.oid = "
                   f"{lit}::regclass LOOP EXECUTE format('REVOKE %s ON TABLE %s FROM %s', g.p, {lit}::regclass, "
                   "CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END); "
                   "END LOOP; END $sage$")
        out += [f"GRANT {priv} ON TABLE {name} TO {role}{' WITH GRANT OPTION' if grantable else ''}"
                for role, priv, grantable in v["grants"]]
        out += [f"GRANT {priv} ({col}) ON TABLE {name} TO {role}{' WITH GRANT OPTION' if grantable else ''}"
                for col, role, priv, grantable in v["column_grants"]]
        if v["comment"] is not None:
            out.append(f"COMMENT ON VIEW {name} IS {sql.Literal(v['comment']).as_string(None)}")
        out += [f"COMMENT ON COLUMN {name}.{col} IS {sql.Literal(text).as_string(None)}"
                for col, text in v["column_comments"]]
    return out


def primary_key_on(conn, table: str, attnum: int) -> dict | None:
    """The table's primary key when it is on this one column alone."""
    row = conn.execute("select con.conname, con.condeferrable, con.conindid, n.nspname, pg_get_indexdef(con.conindid) "
                       "from pg_constraint con join pg_class ic on ic.oid = con.conindid "
                       "join pg_namespace n on n.oid = ic.relnamespace where con.conrelid = to_regclass(%s) "
                       "and con.contype = 'p' and con.conkey = array[%s]::int2[]", (table, attnum)).fetchone()
    if row is None:
        return None
    return {"name": row[0], "deferrable": row[1], "index_oid": row[2], "schema": row[3], "definition": row[4]}


def serial_sequence(conn, table: str, column: str) -> str | None:
    """The sequence a serial column owns and takes its default from (identity columns are not serials)."""
    row = conn.execute(
        "select s.oid::regclass::text from pg_depend d join pg_class s on s.oid = d.objid and s.relkind = 'S' "
        "join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid "
        "join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum "
        "where d.classid = 'pg_class'::regclass and d.refobjid = to_regclass(%s) and a.attname = %s "
        "and d.deptype = 'a' and a.attidentity = '' "
        "and pg_get_expr(ad.adbin, ad.adrelid) = format('nextval(%%L::regclass)', s.oid::regclass::text)",
        (table, column)).fetchone()
    return row[0] if row else None


def referencing_fks(conn, table: str, attnum: int) -> list[dict]:
    """The foreign keys that reference the column, from other tables or from another column of its own (a parent
    id): the swap re-creates them on the new one."""
    rows = conn.execute(
        "select c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid), c.convalidated, "
        "  (select string_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ') "
        "   from pg_attribute a where a.attrelid = c.conrelid and a.attnum = any(c.conkey)) "
        "from pg_constraint c where c.contype = 'f' and c.confrelid = to_regclass(%s) and %s = any(c.confkey) "
        "and not (c.conrelid = c.confrelid and %s = any(c.conkey)) order by 2, 1", (table, attnum, attnum)).fetchall()
    return [{"name": name, "table": rel, "def": definition.removesuffix(" NOT VALID"), "valid": valid,
             "columns": cols} for name, rel, definition, valid, cols in rows]


def prepared_warning(table: str, column: str, oldtype: str, newtype: str) -> str:
    """Clients that prepared a statement returning the column fail once its type changes (PostgreSQL keeps the
    prepared result type): the same with a plain ALTER, so the plan says who is affected and what to do."""
    return (f"prepared statements: when {table}.{column} becomes {newtype} (at the swap; {oldtype} again at a "
            f"*rollback), every client statement prepared earlier that returns {column} fails with `cached plan must "
            "not change result type`, on each execution until the client prepares it again (a plain ALTER does the "
            "same). psycopg prepares a query after 5 executions: connect those clients with prepare_threshold=None "
            "during the change, or reconnect them (or run DEALLOCATE ALL) right after it. Statements that do not "
            f"return {column}, and clients that do not prepare, are not affected")


def plan_notes(conn, file_plan, spec: dict, line: int) -> tuple[list[str], list[str]]:
    """(notes, problems) of the type change at `line` for the plan, from one read of the column and its views: what
    the swap changes besides the column and who it breaks; and the views over it that the file drops before the
    change in a way the swap cannot take over (they would be gone through the whole backfill: refused)."""
    row = conn.execute("select attnum, format_type(atttypid, atttypmod), attrelid::regclass::text from pg_attribute "
                       "where attrelid = to_regclass(%s) and attname = %s and not attisdropped",
                       (spec["table"], spec["column"])).fetchone()
    if row is None:
        return [], []
    views = dependent_views(conn, spec["table"], row[0])[0]
    notes = column_notes(conn, spec["table"], spec["column"], spec["newtype"], row, views)
    moved = spec.get("moved")
    if moved:
        notes.append(f"{spec['name']}.{spec['column']}: the file's own view statements (lines "
                     f"{', '.join(map(str, moved['lines']))}: {', '.join(moved['views'])} dropped and made again) "
                     "run in the swap's transaction instead of before and after the change, so the view is never "
                     "gone while the backfill runs")
    return notes, views_dropped_first(file_plan, spec, line, views)


def column_notes(conn, table: str, column: str, newtype: str, row: tuple, views: list[dict]) -> list[str]:
    """What the swap changes besides the column, and who it breaks: said in the plan before confirmation (`row`:
    the column's attnum, type and table; `views`: the views over it, read once by plan_notes)."""
    attnum = row[0]
    out = [prepared_warning(row[2], column, row[1], newtype)]
    out += [f"{table}.{column}: CHECK {c['name']} is built again on the new column NOT VALID before the swap"
            + (" and validated in its own transaction" if c["valid"] else " (it stays NOT VALID; PostgreSQL checks "
               "every row the backfill updates against it, so a row that breaks it stops the backfill)")
            + "; it takes its name at the swap" for c in check_constraints(conn, table, attnum)]
    if views:
        out.append(f"{table}.{column}: the view(s) {', '.join(v['name'] for v in views)} are dropped and made again in "
                   "the swap's transaction (in dependency order, with their options, owner, privileges and comments; "
                   "the ones the file makes again itself, as the file says), so they read the new "
                   f"{newtype} column")
    identity = identity_of(conn, table, column)
    if identity is not None:
        out.append(f"{table}.{column}: the identity moves to the new column at the swap with a sequence of the same "
                   f"options and privileges, named {identity['name']} and continuing from the old one's value in the "
                   "same transaction (no id is handed out twice)")
    key = primary_key_on(conn, table, attnum)
    if key is None:
        return out
    out.append(f"{table}.{column}: the primary key {key['name']} moves to the new {newtype} column at the swap "
               "(PRIMARY KEY USING INDEX on a unique index built CONCURRENTLY beforehand)")
    for fk in referencing_fks(conn, table, attnum):
        out.append(f"foreign key {fk['name']} on {fk['table']} ({fk['columns']}) is re-created NOT VALID against "
                   f"the new {column} at the swap and validated right after; {fk['table']} keeps its column type "
                   f"(a referencing column may have another integer type than the key it references)")
    seq = serial_sequence(conn, table, column)
    if seq:
        out.append(f"the sequence {seq} follows the default: OWNED BY the new {column} from the swap on")
    return out


def views_dropped_first(file_plan, spec: dict, line: int, views: list[dict]) -> list[str]:
    """Views over the column (`views`) that the file itself drops before the type change, in a way the swap cannot
    take over (planner.move_view_statements): under --online they would stay gone for the whole backfill, so every
    reader of them would fail meanwhile."""
    over = {v["label"] for v in views}
    moved = set((spec.get("moved") or {}).get("lines", [])) | set(spec.get("moved_later", []))
    out = []
    for stmt in file_plan.parsed:
        if stmt.line >= line or stmt.line in moved or not isinstance(stmt.node, ast.DropStmt) or \
                ObjectType(stmt.node.removeType) is not ObjectType.OBJECT_VIEW:
            continue
        for parts in stmt.node.objects or ():
            names = [p.sval for p in parts]
            label = ".".join(names) if len(names) > 1 else f"public.{names[0]}"
            if label in over:
                out.append(f"line {stmt.line} of this file drops the view {label}, which uses {spec['name']}."
                           f"{spec['column']}: under --online it would stay gone through the whole backfill, and "
                           "every query on it would fail meanwhile. The file's DROP VIEW and CREATE VIEW run in the "
                           "swap's transaction only when the DROP VIEW statements (without CASCADE) come right before "
                           "the type change and each view they drop is made again by a CREATE VIEW right after it "
                           "(GRANT, REVOKE, COMMENT and ALTER VIEW of those views may follow it): write the file "
                           "that way, or take that DROP VIEW and its CREATE VIEW out (--online carries the view "
                           "through the swap itself)")
    return out


def read_info(conn, table: str, column: str, newtype: str, using: str | None, relname: str) -> dict[str, Any]:
    """Everything the later steps (indexes, NOT NULL, swap, rollback, contract) need, read once at expand."""
    attnum, oldtype, not_null = conn.execute(
        "select attnum, format_type(atttypid, atttypmod), attnotnull from pg_attribute "
        "where attrelid = to_regclass(%s) and attname = %s and not attisdropped", (table, column)).fetchone()
    default = conn.execute("select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid = to_regclass(%s) "
                           "and adnum = %s", (table, attnum)).fetchone()
    nn_name = None
    if not_null and conn.info.server_version >= 180000:
        found = conn.execute("select conname from pg_constraint where conrelid = to_regclass(%s) and contype = 'n' "
                             "and conkey = array[%s]::int2[]", (table, attnum)).fetchone()
        nn_name = found[0] if found else None
    comment = conn.execute("select col_description(to_regclass(%s), %s)", (table, attnum)).fetchone()[0]
    n = names_for(relname, column)
    indexes = []
    for name, schema, definition in conn.execute(
            "select distinct ic.relname, n.nspname, pg_get_indexdef(i.indexrelid) from pg_index i "
            "join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace "
            "join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = i.indexrelid "
            "and d.refobjid = i.indrelid and d.refobjsubid = %s "
            "where i.indrelid = to_regclass(%s) and not exists (select 1 from pg_depend o join pg_attribute a "
            "on a.attrelid = o.refobjid and a.attnum = o.refobjsubid where o.classid = 'pg_class'::regclass "
            "and o.objid = i.indexrelid and a.attname like '%%sage_old%%') "  # the old copy of an earlier change
            "order by ic.relname", (attnum, table)).fetchall():
        tmp, old = free_name(conn, schema, name, "sage_new", column), free_name(conn, schema, name, "sage_old", column)
        indexes.append({"name": name, "schema": schema, "tmp": tmp, "old": old,
                        "sql": index_on_new(definition, column, n["new"], tmp)})
    key = primary_key_on(conn, table, attnum)
    pk = None
    if key is not None:
        indexes = [ix for ix in indexes if not (ix["name"] == key["name"] and ix["schema"] == key["schema"])]
        tmp = free_name(conn, key["schema"], key["name"], "sage_new", column)
        old = free_name(conn, key["schema"], key["name"], "sage_old", column)
        pk = {"name": key["name"], "schema": key["schema"], "tmp": tmp, "old": old,
              "sql": index_on_new(key["definition"], column, n["new"], tmp),
              "sql_old": index_on_new(key["definition"], column, column, old)}
    identity = identity_of(conn, table, column)
    if identity is not None:
        identity["tmp"] = free_name(conn, identity["schema"], identity["name"], "sage_new", column)
        identity["new_options"] = _identity_options(identity, _integer_type(conn, newtype))
    return {"table": table, "column": column, "newtype": newtype, "oldtype": oldtype, "using": using,
            "pk": pk, "fks": referencing_fks(conn, table, attnum) if pk else [], "identity": identity,
            "checks": [{**c, "sql": check_on_new({"table": table, "column": column, "new": n["new"]}, c)}
                       for c in check_constraints(conn, table, attnum)],
            "views": dependent_views(conn, table, attnum)[0],
            "sequence": serial_sequence(conn, table, column),
            "default": default[0] if default else None, "not_null": bool(not_null), "nn_name": nn_name,
            "old_nn": temp_name(nn_name, "sage_old") if nn_name else None, "comment": comment,
            "indexes": indexes, **n}


def _function(info: dict, swapped: bool) -> str:
    """The sync trigger's function: before the swap `new := f(c)`; after it `old := c` (cast back)."""
    if not swapped:
        body = f"NEW.{ident(info['new'])} := {trigger_expression(info['using'], info['column'])};"
    else:
        body = f"NEW.{ident(info['old'])} := NEW.{ident(info['column'])};"
    search = " SET search_path FROM CURRENT" if info.get("using") else ""
    return (f"CREATE OR REPLACE FUNCTION {info['func']}() RETURNS trigger LANGUAGE plpgsql{search} AS $sage$ "
            f"BEGIN {body} RETURN NEW; END $sage$")


def expand_sql(info: dict) -> list[str]:
    t = info["table"]
    return [f"ALTER TABLE {t} ADD COLUMN {ident(info['new'])} {info['newtype']}",
            _function(info, swapped=False),
            f"CREATE TRIGGER {ident(info['trigger'])} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW "
            f"EXECUTE FUNCTION {info['func']}()"]


def _alter(info: dict, text: str) -> str:
    return f"ALTER TABLE {info['table']} {text}"


def qualified_index(ix: dict, name: str) -> str:
    return f"{ident(ix['schema'])}.{ident(name)}"


class CannotCarry(Exception):
    """A view over the column that the swap (or its undoing) cannot drop and make again, found in its transaction."""


def views_over(conn, table: str, column: str) -> list[dict]:
    """The views over the column as the catalog has them now (and the views over those), in creation order.
    Raises CannotCarry with the reasons when one of them cannot be made again in a short transaction."""
    row = conn.execute("select attnum from pg_attribute where attrelid = to_regclass(%s) and attname = %s "
                       "and not attisdropped", (table, column)).fetchone()
    if row is None:
        return []
    views, problems = dependent_views(conn, table, row[0])
    if problems:
        raise CannotCarry("; ".join(problems))
    return views


def run_swap(conn, info: dict, build, column: str, moved: dict | None = None) -> dict:
    """Run `build(info, head=False)` (swap_sql or unswap_sql) in the caller's transaction, with the views over
    `column` read from the catalog here and now, not when the change started: a view made after the expand (or
    after the swap, for its undoing) moves too. The views are dropped before the tables are locked (the order a
    reader of a view locks them in); a view made between that read and the table's lock is found once the lock is
    held (nothing new can use the table then) and dropped as well. `moved`: the file's own DROP VIEW statements,
    run first, and its CREATE VIEW (GRANT, COMMENT...) statements, run last (planner.move_view_statements); the
    views they drop are kept as they were (`moved_originals`), so the undoing makes them again as before the file.
    Returns `info` with the views it moved."""
    moved = moved or {}
    originals = []
    if moved:
        originals = views_named(conn, moved["views"])
        for text in moved["drop"]:
            conn.execute(text, prepare=False)
    views = _restored(views_over(conn, info["table"], column), info, build)
    info = {**info, "views": views}
    for text in head_sql(info):
        conn.execute(text, prepare=False)
    seen = {v["label"] for v in views}
    late = [v for v in _restored(views_over(conn, info["table"], column), info, build) if v["label"] not in seen]
    for text in drop_views_sql(late):
        conn.execute(text, prepare=False)
    info = {**info, "views": views + late}
    for text in build(info, head=False):
        conn.execute(text, prepare=False)
    for text in moved.get("create", []):
        conn.execute(text, prepare=False)
    return {**info, "moved_originals": originals} if moved else info


def _restored(views: list[dict], info: dict, build) -> list[dict]:
    """Undoing a swap: a view the file made again in the swap (its own CREATE VIEW) comes back as it was before,
    whether or not the file's version still reads the column (one that does not is not among `views`, the views
    over the column now: it is added, marked `gone`, to be dropped as the file left it and made again)."""
    if build is not unswap_sql:
        return views
    originals = info.get("moved_originals", [])
    before = {v["label"]: v for v in originals}
    now = {v["label"] for v in views}
    gone = []
    for n, v in enumerate(originals):  # a record of an older build has no `on`: the ones before it, to be safe
        if v["label"] not in now:
            gone.append({**v, "gone": True, "on": v.get("on", [o["label"] for o in originals[:n]])})
    return _by_dependency([before.get(v["label"], v) for v in views] + gone)


def _by_dependency(views: list[dict]) -> list[dict]:
    """Each view after the views of the list it is built on (`on`), otherwise in the order given."""
    out: list[dict] = []
    placed: set[str] = set()
    labels = {v["label"] for v in views}
    left = list(views)
    while left:
        ready = next((v for v in left if set(v.get("on", [])) & labels <= placed), left[0])
        left.remove(ready)
        out.append(ready)
        placed.add(ready["label"])
    return out


def undo_views(conn, info: dict) -> dict:
    """`info` with the views a swap back drops and makes again, as run_swap will find them (for the plan)."""
    return {**info, "views": _restored(views_over(conn, info["table"], info["column"]), info, unswap_sql)}


def head_sql(info: dict) -> list[str]:
    """The start of a swap either way: the views over the column dropped, then the referencing tables and the
    table itself locked."""
    return drop_views_sql(info.get("views", [])) + _lock_referencing(info) + \
        [f"LOCK TABLE {info['table']} IN ACCESS EXCLUSIVE MODE"]


def swap_sql(info: dict, head: bool = True) -> list[str]:
    """One short transaction: the new column takes the name, default, NOT NULL, indexes, primary key (with the
    foreign keys through it, NOT VALID), the serial's sequence and comment (`head`: with head_sql first)."""
    c, new, old = ident(info["column"]), ident(info["new"]), ident(info["old"])
    out = head_sql(info) if head else []  # views first: the order a reader locks them in
    if info["default"] is not None:
        out.append(_alter(info, f"ALTER COLUMN {c} DROP DEFAULT"))
    if info["nn_name"]:
        out.append(_alter(info, f"RENAME CONSTRAINT {ident(info['nn_name'])} TO {ident(info['old_nn'])}"))
    out += [_alter(info, f"RENAME COLUMN {c} TO {old}"), _alter(info, f"RENAME COLUMN {new} TO {c}")]
    if info["default"] is not None:
        out.append(_alter(info, f"ALTER COLUMN {c} SET DEFAULT {info['default']}"))
    if info["not_null"]:  # the validated CHECK lets SET NOT NULL skip its scan
        out += [_alter(info, f"ALTER COLUMN {c} SET NOT NULL"), _alter(info, f"DROP CONSTRAINT {ident(info['chk'])}")]
    for ix in info["indexes"]:
        out += [f"ALTER INDEX {qualified_index(ix, ix['name'])} RENAME TO {ident(ix['old'])}",
                f"ALTER INDEX {qualified_index(ix, ix['tmp'])} RENAME TO {ident(ix['name'])}"]
    if info.get("identity"):  # the new column (NOT NULL by now) takes the identity, its sequence continuing
        out += _move_identity(info, old, c, info["identity"]["new_options"])
    for check in info.get("checks", []):  # the copy built and validated beforehand takes the name
        out += [_alter(info, f"RENAME CONSTRAINT {ident(check['name'])} TO {ident(check['old'])}"),
                _alter(info, f"RENAME CONSTRAINT {ident(check['tmp'])} TO {ident(check['name'])}")]
        if check["comment"] is not None:
            out.append(f"COMMENT ON CONSTRAINT {ident(check['name'])} ON {info['table']} IS "
                       f"{sql.Literal(check['comment']).as_string(None)}")
    out += _key_to(info, info["pk"]["tmp"] if info.get("pk") else None)
    if info["comment"] is not None:
        out.append(f"COMMENT ON COLUMN {info['table']}.{c} IS {sql.Literal(info['comment']).as_string(None)}")
    out.append(_function(info, swapped=True))
    return out + create_views_sql(info.get("views", []))


def _move_identity(info: dict, source: str, dest: str, options: dict) -> list[str]:
    """The identity from column `source` to `dest` (both quoted), in the swap's transaction: a sequence with the
    same options, kind and privileges made for `dest`, set to where the old one is (no other session takes a value
    meanwhile: they wait for the table's lock), the old identity dropped with its sequence, and the new sequence
    renamed to the old one's name."""
    idn = info["identity"]
    seq, tmp = f"{ident(idn['schema'])}.{ident(idn['name'])}", f"{ident(idn['schema'])}.{ident(idn['tmp'])}"
    o = options
    kind = "ALWAYS" if idn["always"] else "BY DEFAULT"
    return [_alter(info, f"ALTER COLUMN {dest} ADD GENERATED {kind} AS IDENTITY (SEQUENCE NAME {tmp} START WITH "
                         f"{o['start']} INCREMENT BY {o['increment']} MINVALUE {o['min']} MAXVALUE {o['max']} "
                         f"CACHE {o['cache']} {'' if o['cycle'] else 'NO '}CYCLE)"),
            f"SELECT setval({sql.Literal(tmp).as_string(None)}, s.last_value, s.is_called) FROM {seq} s",
            copy_sequence_meta(seq, tmp),
            _alter(info, f"ALTER COLUMN {source} DROP IDENTITY"),
            f"ALTER SEQUENCE {tmp} RENAME TO {ident(idn['name'])}"]


def privileges_body(source: str, dest: str, kind: str) -> str:
    """PL/pgSQL statements that give relation `dest` exactly the privileges of `source` (`kind`: TABLE or
    SEQUENCE): every privilege `dest` has revoked (the defaults it was made with included), then every grant of
    `source` (grant option kept). Shared by the identity sequence swap and the version schema's views."""
    src, dst = sql.Literal(source).as_string(None), sql.Literal(dest).as_string(None)
    role = "CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END"
    default = {"TABLE": "r", "SEQUENCE": "s"}[kind]
    acl = ("FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('" + default + "', c.relowner))) a "
           "WHERE c.oid = {}::regclass")
    return (f"FOR g IN SELECT a.privilege_type AS p, a.grantee {acl.format(dst)} LOOP "
            f"EXECUTE format('REVOKE %s ON {kind} %s FROM %s', g.p, {dst}::regclass, {role}); END LOOP; "
            f"FOR g IN SELECT a.privilege_type AS p, a.grantee, a.is_grantable {acl.format(src)} LOOP "
            f"EXECUTE format('GRANT %s ON {kind} %s TO %s%s', g.p, {dst}::regclass, {role}, "
            "CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END); END LOOP; ")


def copy_sequence_meta(source: str, dest: str) -> str:
    """Give sequence `dest` the privileges and comment of `source` (a new identity sequence gets the default
    privileges instead)."""
    src, dst = sql.Literal(source).as_string(None), sql.Literal(dest).as_string(None)
    return ("DO $sage$ DECLARE g record; BEGIN " + privileges_body(source, dest, "SEQUENCE") +
            f"EXECUTE format('COMMENT ON SEQUENCE %s IS %L', {dst}::regclass, obj_description({src}::regclass, "
            "'pg_class')); END $sage$")


def _lock_referencing(info: dict) -> list[str]:
    """The referencing tables locked before the table itself: the order a foreign key check takes them in (child
    row written, then the parent row key-share locked), so a concurrent child insert waits instead of deadlocking."""
    tables = sorted({fk["table"] for fk in info.get("fks", [])})
    return [f"LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE" for t in tables]


def _key_to(info: dict, index: str | None) -> list[str]:
    """The primary key (and the foreign keys through it) onto the column now named `c`, from the unique index
    `index` built on it; the serial's sequence follows. Foreign keys come back NOT VALID (no scan here)."""
    out, pk = [], info.get("pk")
    if pk is not None and index is not None:
        name = ident(pk["name"])
        out += [f"ALTER TABLE {fk['table']} DROP CONSTRAINT {ident(fk['name'])}" for fk in info["fks"]]
        out += [_alter(info, f"DROP CONSTRAINT {name}"),
                f"ALTER INDEX {qualified_index(pk, index)} RENAME TO {name}",
                _alter(info, f"ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}")]
        out += [f"ALTER TABLE {fk['table']} ADD CONSTRAINT {ident(fk['name'])} {fk['def']} NOT VALID"
                for fk in info["fks"]]
    if info.get("sequence"):
        out.append(f"ALTER SEQUENCE {info['sequence']} OWNED BY {info['table']}.{ident(info['column'])}")
    return out


def validate_sql(info: dict) -> list[str]:
    """After a swap either way: each foreign key that was valid before, validated (one transaction each)."""
    return [f"ALTER TABLE {fk['table']} VALIDATE CONSTRAINT {ident(fk['name'])}"
            for fk in info.get("fks", []) if fk["valid"]]


def builds(info: dict) -> list[tuple[dict, str, str]]:
    """(index record, temporary name, CREATE INDEX CONCURRENTLY) of every index the expand builds: each index on
    the column again on the new one; for a primary key, its unique index on the new column and a unique copy on
    the old one (what lets *rollback put the key back without a scan after the swap)."""
    out = [(ix, ix["tmp"], ix["sql"]) for ix in info["indexes"]]
    if info.get("pk"):
        out += [(info["pk"], info["pk"]["tmp"], info["pk"]["sql"]), (info["pk"], info["pk"]["old"],
                                                                       info["pk"]["sql_old"])]
    return out


def unswap_sql(info: dict, head: bool = True) -> list[str]:
    """The swap undone: `c` is the old column again (kept current by the trigger), the new one is dropped (`head`:
    with head_sql first)."""
    c, new, old = ident(info["column"]), ident(info["new"]), ident(info["old"])
    out = [*(head_sql(info) if head else []), f"DROP TRIGGER IF EXISTS {ident(info['trigger'])} ON {info['table']}"]
    if info.get("identity"):  # back on the old column first: an identity column cannot drop NOT NULL
        out += _move_identity(info, c, old, info["identity"]["options"])
    for check in info.get("checks", []):
        out += [_alter(info, f"DROP CONSTRAINT {ident(check['name'])}"),
                _alter(info, f"RENAME CONSTRAINT {ident(check['old'])} TO {ident(check['name'])}")]
    if info.get("pk"):  # off the new column first: a key column cannot drop NOT NULL
        out += [f"ALTER TABLE {fk['table']} DROP CONSTRAINT {ident(fk['name'])}" for fk in info["fks"]]
        out.append(_alter(info, f"DROP CONSTRAINT {ident(info['pk']['name'])}"))
    if info["not_null"]:
        out.append(_alter(info, f"ALTER COLUMN {c} DROP NOT NULL"))
    if info["default"] is not None:
        out.append(_alter(info, f"ALTER COLUMN {c} DROP DEFAULT"))
    out += [_alter(info, f"RENAME COLUMN {c} TO {new}"), _alter(info, f"RENAME COLUMN {old} TO {c}")]
    if info["nn_name"]:
        out.append(_alter(info, f"RENAME CONSTRAINT {ident(info['old_nn'])} TO {ident(info['nn_name'])}"))
    if info["default"] is not None:
        out.append(_alter(info, f"ALTER COLUMN {c} SET DEFAULT {info['default']}"))
    for ix in info["indexes"]:
        out += [f"ALTER INDEX {qualified_index(ix, ix['name'])} RENAME TO {ident(ix['tmp'])}",
                f"ALTER INDEX {qualified_index(ix, ix['old'])} RENAME TO {ident(ix['name'])}"]
    if info.get("pk"):  # the unique copy built on the old column: the key again, with its foreign keys
        pk, name = info["pk"], ident(info["pk"]["name"])
        out += [f"ALTER INDEX {qualified_index(pk, pk['old'])} RENAME TO {name}",
                _alter(info, f"ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}")]
        out += [f"ALTER TABLE {fk['table']} ADD CONSTRAINT {ident(fk['name'])} {fk['def']} NOT VALID"
                for fk in info["fks"]]
    if info.get("sequence"):  # before the new column goes: it would take the sequence with it
        out.append(f"ALTER SEQUENCE {info['sequence']} OWNED BY {info['table']}.{c}")
    out += [_alter(info, f"DROP COLUMN {new}"), f"DROP FUNCTION IF EXISTS {info['func']}()"]
    return out + create_views_sql(info.get("views", []))


def unexpand_sql(info: dict) -> list[str]:
    """Before the swap: the trigger, its function and the new column (its indexes and check go with it)."""
    copy = [f"DROP INDEX IF EXISTS {qualified_index(info['pk'], info['pk']['old'])}"] if info.get("pk") else []
    return [f"DROP TRIGGER IF EXISTS {ident(info['trigger'])} ON {info['table']}",
            _alter(info, f"DROP COLUMN IF EXISTS {ident(info['new'])}"), *copy,
            f"DROP FUNCTION IF EXISTS {info['func']}()"]


def contract_sql(info: dict) -> list[str]:
    """*apply --complete: the old column (its indexes and NOT NULL go with it) and the trigger."""
    return [f"DROP TRIGGER IF EXISTS {ident(info['trigger'])} ON {info['table']}",
            _alter(info, f"DROP COLUMN {ident(info['old'])}"), f"DROP FUNCTION IF EXISTS {info['func']}()"]


def info_keys(state) -> list[str]:
    """The keys of one file's expand/contract records in its state row, in file order (@x2 before @x10)."""
    return sorted((k for k, v in state.names.items() if k.startswith("@x") and isinstance(v, dict)),
                  key=lambda k: int(k[2:]))


def infos(state) -> list[dict]:
    """The expand/contract records of one file's state row, in file order."""
    return [state.names[k] for k in info_keys(state)]


def dumps(info: dict) -> str:
    return json.dumps(info, sort_keys=True)
