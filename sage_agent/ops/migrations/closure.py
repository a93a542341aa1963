"""The closure load of a cold *dry-run on a big schema: only what the file can touch goes into the shadow.

A one-line change to a 10,000-table schema needs a handful of its tables in the shadow, not all of them. The
closure is computed on the target (read only) from the names the file's statements use:

- the relations, types and functions the statements name (an unqualified name counts in every schema: a
  superset of what any search_path resolves to), and every relation a string literal names (`'t'::regclass`,
  `nextval('s')`);
- everything that depends on them, transitively (pg_depend: indexes, constraints, foreign keys of other tables
  that reference them, partitions, views and the views over those, policies of other tables whose expressions
  use them, triggers, owned sequences, columns of their row type) - loaded with all of their own parts;
- everything those need to exist (pg_dump's own dependencies in the archive: foreign-key targets, parent
  partitioned tables, the tables a policy reads), loaded as far as needed;
- what the dry-run's schema-wide smoke checks read: the first views by name (the "views still query" check
  reads 200) and every table with a NOT VALID constraint or an invalid index, so those checks see on the
  closure exactly what they see on a full copy;
- and every schema, extension, function, type, default privilege and the migration history (cheap).

Only that is dumped: `pg_dump -t` of the closure's relations and of what they need (read upwards in the target's
pg_depend; pg_dump reads only these in full and locks only them), beside a dump of the user schemas without any
relation (`-T schema.*`). The two are restored in an order that fits (see plan_dumps); where none does, one
`pg_dump -Fc --schema-only` of the whole schema is taken and its closure entries restored, as before.

A later file whose closure an earlier closure template of the same fingerprint holds runs on that template
(covering_template: the relations each template holds are kept in supabase/.sage/closure-templates.json).

The file falls back to the full load when a statement is not one whose reach can be read statically (DO
blocks, DML, CALL, dynamic SQL, schema renames and drops, GRANT ... ON ALL TABLES, unknown kinds). When the run
on the closure fails with an undefined-object error, or a view no longer queries, the dry-run runs again on a
full copy and says so (tests/test_dry_run_closure.py compares the two reports field by field).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sage_agent.ops.artifacts import STATE_DIR, read_state, sage_dir, write_state

VIEWS_CHECKED = 200  # smoke_checks' "views still query" reads this many views, by name
# SQLSTATEs that mean "something the closure left out": the dry-run runs again on a full copy
UNDEFINED = ("42P01", "42703", "42883", "42704", "3F000", "42830", "42P02", "42P10")

# Statement kinds whose reach the names they contain bound. Anything else: the full load.
_SUPPORTED = {
    "CreateStmt", "AlterTableStmt", "IndexStmt", "DropStmt", "RenameStmt", "ViewStmt", "CreatePolicyStmt",
    "AlterPolicyStmt", "CreateTrigStmt", "CommentStmt", "GrantStmt", "AlterEnumStmt", "CreateEnumStmt",
    "CompositeTypeStmt", "CreateDomainStmt", "AlterDomainStmt", "CreateSeqStmt", "AlterSeqStmt",
    "AlterObjectSchemaStmt", "CreateFunctionStmt", "AlterFunctionStmt", "VariableSetStmt", "CreateSchemaStmt",
    "TransactionStmt", "CreateTableAsStmt", "RuleStmt", "CreateStatsStmt", "TruncateStmt", "LockStmt",
    "AlterDefaultPrivilegesStmt", "CreateExtensionStmt", "AlterOwnerStmt", "CreateRoleStmt", "AlterRoleStmt",
    "GrantRoleStmt", "DefineStmt", "AlterTypeStmt",
}
_REL_DROPS = {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_SEQUENCE",
              "OBJECT_FOREIGN_TABLE"}
_ON_TABLE_DROPS = {"OBJECT_POLICY", "OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_TABCONSTRAINT"}
_TYPE_OBJECTS = {"OBJECT_TYPE", "OBJECT_DOMAIN"}
_FUNC_OBJECTS = {"OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_AGGREGATE"}
_NEVER = {"OBJECT_SCHEMA", "OBJECT_EXTENSION", "OBJECT_DATABASE", "OBJECT_EVENT_TRIGGER", "OBJECT_PUBLICATION",
          "OBJECT_SUBSCRIPTION", "OBJECT_FDW", "OBJECT_FOREIGN_SERVER", "OBJECT_TABLESPACE", "OBJECT_CAST",
          "OBJECT_OPERATOR", "OBJECT_OPCLASS", "OBJECT_OPFAMILY", "OBJECT_COLLATION", "OBJECT_CONVERSION"}


@dataclass
class Names:
    """What a file names: (schema or None, name) of relations, types and functions."""

    rels: set = field(default_factory=set)
    types: set = field(default_factory=set)
    procs: set = field(default_factory=set)
    strings: set = field(default_factory=set)  # string literals that may name a relation


def _kind(value) -> str:
    return getattr(value, "name", str(value))


def _strings(items) -> list[str]:
    return [getattr(i, "sval", None) for i in items or () if getattr(i, "sval", None) is not None]


def _qualified(parts: list[str]) -> tuple[str | None, str] | None:
    if not parts:
        return None
    return (parts[-2] if len(parts) > 1 else None, parts[-1])


def file_names(statements) -> Names | str:
    """The names the statements use, or why their reach cannot be bounded statically (the full load)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast

    from sage_agent.sqlkit.nodes import walk

    names = Names()
    for stmt in statements:
        node = stmt.node
        kind = type(node).__name__
        if kind not in _SUPPORTED:
            return f"line {stmt.line}: {kind.removesuffix('Stmt') or kind} statements can reach any table"
        if kind == "DropStmt":
            what = _kind(node.removeType)
            if what in _NEVER:
                return f"line {stmt.line}: DROP {what.removeprefix('OBJECT_')} can reach any table"
            for obj in node.objects or ():
                if what in _REL_DROPS and isinstance(obj, (tuple, list)):
                    names.rels.add(_qualified(_strings(obj)))
                elif what in _ON_TABLE_DROPS and isinstance(obj, (tuple, list)):
                    names.rels.add(_qualified(_strings(obj)[:-1]))
                elif what in _TYPE_OBJECTS and isinstance(obj, ast.TypeName):
                    names.types.add(_qualified(_strings(obj.names)))
                elif what in _FUNC_OBJECTS and isinstance(obj, ast.ObjectWithArgs):
                    names.procs.add(_qualified(_strings(obj.objname)))
        if kind in ("RenameStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt", "CommentStmt"):
            what = _kind(getattr(node, "renameType", None) or getattr(node, "objectType", None)
                         or getattr(node, "objtype", None))
            if what in _NEVER:
                return f"line {stmt.line}: a change to a whole {what.removeprefix('OBJECT_').lower()} can reach " \
                       "any table"
            obj = getattr(node, "object", None)
            if what in _TYPE_OBJECTS | {"OBJECT_ATTRIBUTE"}:
                target = obj.names if isinstance(obj, ast.TypeName) else obj
                if isinstance(target, (tuple, list)):
                    names.types.add(_qualified(_strings(target)))
            elif what in _FUNC_OBJECTS and isinstance(obj, ast.ObjectWithArgs):
                names.procs.add(_qualified(_strings(obj.objname)))
            elif isinstance(obj, (tuple, list)):  # COMMENT ON TABLE/COLUMN/VIEW ...: every prefix may be a relation
                parts = _strings(obj)
                for end in range(1, len(parts) + 1):
                    names.rels.add(_qualified(parts[:end]))
        if kind == "GrantStmt" and _kind(node.targtype) != "ACL_TARGET_OBJECT":
            return f"line {stmt.line}: GRANT/REVOKE ON ALL ... IN SCHEMA can reach any table"
        if kind in ("AlterEnumStmt", "AlterDomainStmt", "AlterTypeStmt"):
            names.types.add(_qualified(_strings(node.typeName)))
        if kind == "AlterFunctionStmt":
            names.procs.add(_qualified(_strings(node.func.objname)))
        if kind == "CreateFunctionStmt":
            reason = _function_body(node, names, stmt.line)
            if reason:
                return reason
            if node.replace:
                names.procs.add(_qualified(_strings(node.funcname)))
        for sub, _loc in walk(node):
            if isinstance(sub, ast.RangeVar):
                names.rels.add((sub.schemaname or None, sub.relname))
            elif isinstance(sub, ast.A_Const) and isinstance(getattr(sub, "val", None), ast.String):
                text = sub.val.sval
                if text and len(text) < 200:
                    names.strings.add(text)
    names.rels.discard(None)
    names.types.discard(None)
    names.procs.discard(None)
    return names


def _function_body(node, names: Names, line: int) -> str | None:
    """A new function: plpgsql bodies are not analysed when created; an SQL body is (its tables must exist):
    its relations join the names. Other languages: the full load."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    import pglast

    from sage_agent.sqlkit.nodes import walk

    language, body = "sql", None
    for opt in node.options or ():
        if opt.defname == "language":
            language = getattr(opt.arg, "sval", "sql").lower()
        elif opt.defname == "as":
            parts = _strings(opt.arg if isinstance(opt.arg, (tuple, list)) else [opt.arg])
            body = parts[0] if parts else None
    if language == "plpgsql" or node.sql_body is not None:
        return None  # (a BEGIN ATOMIC body is part of the statement: walked with it)
    if language != "sql":
        return f"line {line}: a function in {language} (its body is not read)"
    if body:
        try:
            for parsed in pglast.parse_sql(body):
                inner = type(parsed.stmt).__name__
                if inner not in ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"):
                    return f"line {line}: an SQL function whose body runs {inner}"
                for sub, _loc in walk(parsed.stmt):
                    if isinstance(sub, pglast.ast.RangeVar):
                        names.rels.add((sub.schemaname or None, sub.relname))
        except pglast.parser.ParseError:
            return f"line {line}: an SQL function body that does not parse on its own"
    return None


# --- on the target: the closure ---------------------------------------------------------------------------
_RESOLVE = """
with n as (select oid, nspname from pg_namespace where nspname = any(%(schemas)s))
select 'rel', c.oid from pg_class c join n on n.oid = c.relnamespace
 where (n.nspname, c.relname) in (select s, r from unnest(%(rs)s::text[], %(rr)s::text[]) q(s, r))
    or (c.relname = any(%(ru)s::text[]))
union all
select 'type', t.oid from pg_type t join n on n.oid = t.typnamespace
 where (n.nspname, t.typname) in (select s, r from unnest(%(ts)s::text[], %(tr)s::text[]) q(s, r))
    or t.typname = any(%(tu)s::text[])
union all
select 'proc', p.oid from pg_proc p join n on n.oid = p.pronamespace
 where (n.nspname, p.proname) in (select s, r from unnest(%(ps)s::text[], %(pr)s::text[]) q(s, r))
    or p.proname = any(%(pu)s::text[])
"""


def _owner_relation(alias: str, relation: str) -> str:
    """SQL: the relation the object `alias`.(classid, objid) is a part of (a constraint's, trigger's, policy's,
    default's, rule's or statistics' table; a row type's relation); `relation` says what a pg_class row gives."""
    return f"""case {alias}.classid
    when 'pg_class'::regclass then {relation}
    when 'pg_constraint'::regclass then (select nullif(conrelid, 0) from pg_constraint where oid = {alias}.objid)
    when 'pg_trigger'::regclass then (select tgrelid from pg_trigger where oid = {alias}.objid)
    when 'pg_policy'::regclass then (select polrelid from pg_policy where oid = {alias}.objid)
    when 'pg_attrdef'::regclass then (select adrelid from pg_attrdef where oid = {alias}.objid)
    when 'pg_rewrite'::regclass then (select ev_class from pg_rewrite where oid = {alias}.objid)
    when 'pg_statistic_ext'::regclass then (select stxrelid from pg_statistic_ext where oid = {alias}.objid)
    when 'pg_type'::regclass then (select nullif(typrelid, 0) from pg_type where oid = {alias}.objid)
  end"""


# Everything that depends on the roots, transitively (a view's rule leads on to the view itself), and the
# relation each belongs to. Relations only in the dumped schemas (the rest is not in the dump).
_DOWN = """
with recursive down(classid, objid) as (
  select 'pg_class'::regclass::oid, o from unnest(%(rels)s::oid[]) o
  union select 'pg_type'::regclass::oid, o from unnest(%(types)s::oid[]) o
  union select 'pg_proc'::regclass::oid, o from unnest(%(procs)s::oid[]) o
  union
  select x.classid, x.objid from down cross join lateral (
    select d.classid, d.objid from pg_depend d where d.refclassid = down.classid and d.refobjid = down.objid
    union all
    select 'pg_class'::regclass::oid, r.ev_class from pg_rewrite r
    where down.classid = 'pg_rewrite'::regclass::oid and r.oid = down.objid) x
)
select d.classid, d.objid, """ + _owner_relation("d", "d.objid") + """
from down d
"""
# What the schema-wide smoke checks read beyond the file's reach: the first views by name, and the tables with
# a NOT VALID constraint or an invalid index (on a full copy they would be reported).
_CHECKED = """
with n as (select oid, nspname from pg_namespace where nspname = any(%(schemas)s))
(select c.oid from pg_class c join n on n.oid = c.relnamespace where c.relkind = 'v'
 order by n.nspname, c.relname limit %(views)s)
union select con.conrelid from pg_constraint con join pg_class t on t.oid = con.conrelid
  join n on n.oid = t.relnamespace where not con.convalidated
union select x.indrelid from pg_index x join pg_class c on c.oid = x.indexrelid join n on n.oid = c.relnamespace
  where not x.indisvalid
union select c.oid from pg_class c join pg_namespace h on h.oid = c.relnamespace
  where h.nspname = 'supabase_migrations' and %(history)s
"""
_COUNT = "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = any(%s)"


@dataclass
class Closure:
    """The target's relations loaded with all their parts (oids), and every object found depending on the
    roots ((catalog oid, object oid), the way pg_dump's archive names them)."""

    relations: set[int]
    objects: set[tuple[int, int]]
    roots: int
    total_relations: int
    # the two-dump load (see plan_dumps): the relations `pg_dump -t` dumps, (schema, name), and the objects of the
    # rest of the schema that need one of them (restored after them); `whole` says why the whole-schema archive
    # is dumped instead (None: the two dumps)
    tables: list[tuple[str, str]] = field(default_factory=list)
    after: set[tuple[int, int]] = field(default_factory=set)
    needed: set[int] = field(default_factory=set)  # the relations those objects need (restored before them)
    stats: list[tuple[int, str]] = field(default_factory=list)  # (oid, CREATE STATISTICS ...): -t leaves them out
    whole: str | None = "not planned"

    def digest(self, fingerprint: str) -> str:
        text = fingerprint + "|" + ",".join(map(str, sorted(self.relations)))
        return hashlib.sha256(text.encode()).hexdigest()[:19]


def relation_count(conn, schemas: list[str]) -> int:
    return int(conn.execute(_COUNT, (schemas,)).fetchone()[0])


def compute(conn, names: Names, schemas: list[str], history: bool, total: int) -> Closure:
    """The closure of the names on the target (a read-only connection)."""
    dumped = schemas + (["supabase_migrations"] if history else [])
    params: dict = {"schemas": dumped}
    for key, items in (("r", names.rels), ("t", names.types), ("p", names.procs)):
        qualified = [(s, n) for s, n in items if s]
        params[key + "s"] = [s for s, _ in qualified]
        params[key + "r"] = [n for _, n in qualified]
        params[key + "u"] = sorted({n for s, n in items if not s})
    for text in names.strings:  # '<schema>.<rel>' or '<rel>' in a literal: nextval('s'), 't'::regclass
        parts = text.replace('"', "").split(".")
        if 1 <= len(parts) <= 2 and all(parts):
            if len(parts) == 2:
                params["rs"].append(parts[0])
                params["rr"].append(parts[1])
            else:
                params["ru"].append(parts[0])
    found: dict[str, list[int]] = {"rel": [], "type": [], "proc": []}
    for what, oid in conn.execute(_RESOLVE, params).fetchall():
        found[what].append(int(oid))
    rows = conn.execute(_DOWN, {"rels": found["rel"], "types": found["type"], "procs": found["proc"]}).fetchall()
    objects = {(int(c), int(o)) for c, o, _ in rows}
    relations = {int(r) for _, _, r in rows if r is not None}
    views_in = conn.execute("select count(*) from pg_class where oid = any(%s) and relkind = 'v'",
                            (sorted(relations),)).fetchone()[0]
    checked = conn.execute(_CHECKED, {"schemas": schemas, "views": VIEWS_CHECKED + int(views_in),
                                      "history": history}).fetchall()
    relations |= {int(r[0]) for r in checked}
    kept = {int(r[0]) for r in conn.execute(
        "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.oid = any(%s) and n.nspname = any(%s)", (sorted(relations), dumped)).fetchall()}
    closure = Closure(kept, objects, len(found["rel"]) + len(found["type"]) + len(found["proc"]), total)
    plan_dumps(conn, closure, schemas)
    return closure


# --- the two dumps: `pg_dump -t` of the closure's relations and what they need, and the rest without relations ----
# The owner relation of an object (a part of a relation: itself, its table for an index), only relations pg_dump -t
# dumps (tables, partitioned tables, views, materialized views, sequences, foreign tables) in the user schemas.
_INDEX_TABLE = "coalesce((select indrelid from pg_index where indexrelid = o.objid), o.objid)"  # an index: its table
_OWNER = """
select distinct {cols} from (
  select """ + _owner_relation("o", _INDEX_TABLE) + """ as rel, o.* from up o) x
cross join lateral (select oid, relname, relnamespace from pg_class  -- (offset 0: an index look-up each, not a
                    where oid = x.rel and relkind in ('r', 'p', 'v', 'm', 'S', 'f') offset 0) r  -- scan of pg_class)
join pg_namespace n on n.oid = r.relnamespace
where n.nspname = any(%(schemas)s)
"""
# What the given relations (with all their parts: what pg_dump -t dumps with a table) depend on, transitively
# (pg_depend upwards: foreign-key targets, parent tables, the tables a view or a policy reads, sequences in
# defaults, column types and, through them, other tables' row types).
_UP = """
with recursive rels(oid) as (select unnest(%(rels)s::oid[])),
seed(classid, objid) as (
  select 'pg_class'::regclass::oid, oid from rels
  union all select 'pg_class'::regclass::oid, indexrelid from pg_index where indrelid in (select oid from rels)
  union all select 'pg_constraint'::regclass::oid, oid from pg_constraint where conrelid in (select oid from rels)
  union all select 'pg_trigger'::regclass::oid, oid from pg_trigger where tgrelid in (select oid from rels)
  union all select 'pg_policy'::regclass::oid, oid from pg_policy where polrelid in (select oid from rels)
  union all select 'pg_attrdef'::regclass::oid, oid from pg_attrdef where adrelid in (select oid from rels)
  union all select 'pg_rewrite'::regclass::oid, oid from pg_rewrite where ev_class in (select oid from rels)
  union all select 'pg_statistic_ext'::regclass::oid, oid from pg_statistic_ext
            where stxrelid in (select oid from rels)),
up(classid, objid) as (
  select classid, objid from seed
  union
  select d.refclassid, d.refobjid from up cross join lateral (  -- (offset 0: an index look-up per object, not a
    select refclassid, refobjid from pg_depend d                -- join over all of pg_depend)
    where d.classid = up.classid and d.objid = up.objid offset 0) d)
"""
# The objects of the user schemas that are not parts of relations (functions, types; what the second dump holds),
# each with everything it depends on, transitively: those that reach a relation are restored after the relations.
_AFTER = """
with recursive n as (select oid from pg_namespace where nspname = any(%(schemas)s)),
seed(classid, objid) as (
  select 'pg_proc'::regclass::oid, p.oid from pg_proc p where p.pronamespace in (select oid from n)
  union all  -- types, not arrays and not the row types of relations (those are the relations' own)
  select 'pg_type'::regclass::oid, t.oid from pg_type t where t.typnamespace in (select oid from n)
    and t.typtype in ('b', 'd', 'e', 'r', 'm') and t.typcategory <> 'A'
  union all  -- composite types (CREATE TYPE ... AS (...))
  select 'pg_type'::regclass::oid, c.reltype from pg_class c where c.relkind = 'c'
    and c.relnamespace in (select oid from n)),
up(seed_c, seed_o, classid, objid) as (
  select classid, objid, classid, objid from seed
  union
  select up.seed_c, up.seed_o, d.refclassid, d.refobjid from up cross join lateral (
    select refclassid, refobjid from pg_depend d where d.classid = up.classid and d.objid = up.objid offset 0) d)
"""
_STATS = """
select s.oid, pg_get_statisticsobjdef(s.oid) || ';'
       || case when s.stxstattarget is not null and s.stxstattarget >= 0
               then format(' alter statistics %%I.%%I set statistics %%s;', n.nspname, s.stxname, s.stxstattarget)
               else '' end
       || coalesce(format(' comment on statistics %%I.%%I is %%L;', n.nspname, s.stxname,
                          obj_description(s.oid, 'pg_statistic_ext')), '')
from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where s.stxrelid = any(%(rels)s::oid[])
"""
# a closure of more than half the relations, or of very many (pg_dump runs one catalog query per -t name): the
# whole-schema archive costs no more
WHOLE_SHARE, WHOLE_AT = 2, 5000


def plan_dumps(conn, closure: Closure, schemas: list[str]) -> None:
    """The two dumps of the closure load: the relations for `pg_dump -t` (the closure's, and everything they and
    the rest of the schema's functions and types need, to a fixed point) and which of those other objects must
    be restored after the relations. Sets `closure.whole` when only the whole-schema archive will do: a relation
    needs an object that itself needs a relation (no order of two restores fits), or the closure is a big share
    of the schema."""
    after_rels = conn.execute(_AFTER + _OWNER.format(cols="x.seed_c, x.seed_o, r.oid, n.nspname, r.relname"),
                              {"schemas": schemas}).fetchall() if schemas else []
    after = {(int(c), int(o)) for c, o, *_ in after_rels}
    names = {int(oid): (s, r) for *_, oid, s, r in after_rels}
    rels = conn.execute("select c.oid, n.nspname, c.relname from pg_class c join pg_namespace n "
                        "on n.oid = c.relnamespace where c.oid = any(%s) and n.nspname = any(%s) "
                        "and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')",
                        (sorted(closure.relations), schemas)).fetchall()
    names.update({int(oid): (s, r) for oid, s, r in rels})
    frontier = set(names)
    while frontier:  # what the relations need, and what those need, ...
        rows = conn.execute(_UP + _OWNER.format(cols="r.oid, n.nspname, r.relname"),
                            {"rels": sorted(frontier), "schemas": schemas}).fetchall()
        frontier = {int(oid) for oid, _s, _r in rows} - set(names)
        names.update({int(oid): (s, r) for oid, s, r in rows})
    closure.after = after
    closure.needed = {int(oid) for *_, oid, _s, _r in after_rels}
    closure.tables = sorted(names.values())
    closure.whole = None
    if len(names) * WHOLE_SHARE > closure.total_relations or len(names) > WHOLE_AT:
        closure.whole = f"the closure holds {len(names)} of {closure.total_relations} relations"
        return
    if after:
        reached = conn.execute(_UP + "select count(*) from up where (classid, objid) in "
                               "(select c, o from unnest(%(ac)s::oid[], %(ao)s::oid[]) q(c, o))",
                               {"rels": sorted(names), "ac": [c for c, _ in after],
                                "ao": [o for _, o in after]}).fetchone()[0]
        if reached:
            closure.whole = "a relation of the closure needs a function or type that itself needs a relation"
            return
    # the statistics of the relations restored with all their parts (the others are restored bare)
    closure.stats = [(int(oid), d) for oid, d in conn.execute(_STATS, {"rels": sorted(closure.relations)}).fetchall()]


# --- the archive's table of contents: which entries to restore --------------------------------------------
_ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
_PG_CLASS = 1259
# catalogs of the parts of a relation (constraints, triggers, policies, defaults, rules, statistics) and the
# entries without an object of their own (ACL, COMMENT, ROW SECURITY, TABLE ATTACH, INDEX ATTACH, TABLE DATA,
# SEQUENCE OWNED BY ...): parts of a relation when they depend on one
_PARTS = {0, 2606, 2620, 3256, 2604, 2618, 3381}


@dataclass
class TocEntry:
    dump_id: int
    catalog: int
    oid: int
    text: str
    deps: list[int] = field(default_factory=list)


def parse_toc(listing: str) -> list[TocEntry]:
    """`pg_restore -l -v` output: one entry per line, its dependencies on the `; depends on:` line after it."""
    entries: list[TocEntry] = []
    for line in listing.splitlines():
        match = _ENTRY.match(line)
        if match:
            entries.append(TocEntry(int(match.group(1)), int(match.group(2)), int(match.group(3)), line))
        elif line.startswith(";\tdepends on:") and entries:
            entries[-1].deps = [int(x) for x in line.split(":", 1)[1].split()]
    return entries


def select_entries(entries: list[TocEntry], closure: Closure) -> list[TocEntry]:
    """The entries to restore: everything not part of a relation (schemas, extensions, functions, types, default
    privileges), the closure's relations with all their parts, the parts found depending on the roots, and then
    everything those entries depend on (pg_dump's own dependencies), as far as needed."""
    by_id = {e.dump_id: e for e in entries}
    bound: set[int] = set()  # entries that belong to a relation
    core: set[int] = set()
    changed = True
    while changed:  # dependencies may point forward in the list: to a fixed point
        changed = False
        for e in entries:
            if e.dump_id in bound:
                if e.dump_id not in core and any(d in core for d in e.deps):
                    core.add(e.dump_id)
                    changed = True
                continue
            if e.catalog == _PG_CLASS:
                is_core = e.oid in closure.relations
            elif e.catalog in _PARTS and any(d in bound for d in e.deps):
                is_core = (e.catalog, e.oid) in closure.objects or any(d in core for d in e.deps)
            else:
                continue
            bound.add(e.dump_id)
            changed = True
            if is_core:
                core.add(e.dump_id)
    chosen = {e.dump_id for e in entries if e.dump_id not in bound} | core
    chosen |= {e.dump_id for e in entries if e.catalog == _PG_CLASS and e.oid in closure.needed}
    stack = list(chosen)
    while stack:  # what the chosen entries need
        for d in by_id[stack.pop()].deps:
            if d in by_id and d not in chosen:
                chosen.add(d)
                stack.append(d)
    return [e for e in entries if e.dump_id in chosen and not _is_public_schema(e)]


def _is_public_schema(e: TocEntry) -> bool:
    """The shadow has `public` already (from template1); the full load makes its CREATE idempotent."""
    return e.catalog == 2615 and " SCHEMA - public " in e.text + " "


def build_template(admin_url: str, target_url: str, schemas: list[str], history: bool, dump_major: int,
                   key: str, closure: Closure, budget_bytes: int) -> tuple[str, int, int | None, str | None]:
    """The closure's objects restored into a new database kept as the template `sage_tpl_c<closure digest>`
    labelled with `key` (fingerprint + closure): from two dumps (`pg_dump -t` of the closure's relations, and the
    rest of the schema without its relations), or, when that cannot be done (`closure.whole`) or its restore
    fails, from one `pg_dump -Fc --schema-only` of the whole schema. Returns (name, entries restored, entries in
    the whole-schema archive or None for the two dumps, why the whole schema was dumped or None)."""
    # lazy: the database layers load on the first database call
    from sage_agent.db.shadow import create_database, drop_database
    from sage_agent.db.tools import PgToolError
    from sage_agent.ops.migrations.shadow_run import TEMPLATE_PREFIX, evict_templates, publish_template

    building = f"{TEMPLATE_PREFIX}building_{secrets.token_hex(4)}"
    whole = closure.whole
    with tempfile.TemporaryDirectory(prefix="sage-closure-") as tmp:
        url = create_database(admin_url, building)
        try:
            total = None
            if whole is None:
                try:
                    chosen = _load_two_dumps(target_url, url, Path(tmp), schemas, history, dump_major, closure)
                except PgToolError as exc:  # say so, and load from the whole-schema archive instead
                    whole = f"the restore of the two dumps failed ({str(exc)[:300]})"
                    drop_database(admin_url, building)
                    url = create_database(admin_url, building)
            if whole is not None:
                chosen, total = _load_whole_archive(target_url, url, Path(tmp), schemas, history, dump_major,
                                                    closure)
            name = TEMPLATE_PREFIX + "c" + closure.digest(key)
            publish_template(admin_url, url, building, name, key)
        except BaseException:
            drop_database(admin_url, building)
            raise
    evict_templates(admin_url, keep=name, budget_bytes=budget_bytes)
    return name, chosen, total, whole


def _relation_patterns(tables: list[tuple[str, str]], per: int = 1) -> list[str]:
    """`-t` patterns for exactly these relations: one per schema and up to `per` names (one catalog query each in
    pg_dump), every name double-quoted (literal)."""
    # lazy: the database layers load on the first database call
    from sage_agent.db.schemas import pg_dump_pattern

    by_schema: dict[str, list[str]] = {}
    for schema, name in tables:
        by_schema.setdefault(schema, []).append(name)
    out = []
    for schema, names in sorted(by_schema.items()):
        for i in range(0, len(names), per):
            out.append(f"{pg_dump_pattern(schema)}.({'|'.join(pg_dump_pattern(n) for n in names[i:i + per])})")
    return out


def _load_two_dumps(target_url: str, url: str, tmp: Path, schemas: list[str], history: bool, dump_major: int,
                    closure: Closure) -> int:
    """Two pg_dumps side by side: the closure's relations (`-t`: only they are read in full and locked) and the
    user schemas without any relation (schemas, extensions, types, functions, default privileges; the migration
    history with its rows). Restored in one order that fits: the rest, the relations, then the objects of the
    rest that need a relation (a function returning a table's rows) and the default privileges (pg_dump restores
    those last: they must not apply to the relations created here). Returns the entries restored."""
    # lazy: the database layers load on the first database call
    from concurrent.futures import ThreadPoolExecutor

    from sage_agent.db.connect import connect
    from sage_agent.db.schemas import pg_dump_pattern
    from sage_agent.db.tools import run_pg_tool

    base = ["--no-password", "--encoding=UTF8", "--format=custom", "--compress=0"]
    rest_args = base + [a for s in schemas + (["supabase_migrations"] if history else [])
                        for a in ("-n", pg_dump_pattern(s))]
    rest_args += [a for s in schemas for a in ("-T", f"{pg_dump_pattern(s)}.*")]
    rel_args = base + ["--schema-only"] + [a for p in _relation_patterns(closure.tables) for a in ("-t", p)]
    rest, rels = tmp / "rest.dump", tmp / "relations.dump"

    def dump_and_list(args: list[str], out: Path) -> list[TocEntry]:
        run_pg_tool("pg_dump", target_url, args + ["-f", str(out)], server_major=dump_major)
        return parse_toc(run_pg_tool("pg_restore", target_url, ["-l", "-v", str(out)],
                                     server_major=dump_major).stdout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        rest_job = pool.submit(dump_and_list, rest_args, rest)
        rel_entries = dump_and_list(rel_args, rels) if closure.tables else []
        rest_entries = rest_job.result()
    # of the relations dumped, the closure's with all their parts, the others only as far as those need them
    # (the same choice as from the whole-schema archive)
    rel_entries = select_entries(rel_entries, closure)
    before, after = split_rest(rest_entries, closure.after)
    restore = ["-d", url_dbname(url), "--no-owner", "--single-transaction", "--exit-on-error"]
    for entries, archive in ((before, rest), (rel_entries, rels), (after, rest)):
        if entries:
            listing = tmp / f"{archive.stem}.{len(entries)}.list"
            listing.write_text("\n".join(e.text for e in entries) + "\n", encoding="utf-8")
            run_pg_tool("pg_restore", url, restore + ["-L", str(listing), str(archive)], server_major=dump_major)
    dumped = {e.oid for e in rel_entries if e.catalog == 3381}
    stats = [text for oid, text in closure.stats if oid not in dumped]
    if stats:
        with connect(url, autocommit=False) as conn:
            for text in stats:
                conn.execute(text)
            conn.commit()
    return len(before) + len(rel_entries) + len(after) + len(stats)


def split_rest(entries: list[TocEntry], after: set[tuple[int, int]]) -> tuple[list[TocEntry], list[TocEntry]]:
    """The entries of the dump without relations: those restored before the relations, and after them (objects
    that need a relation, what depends on those, and the default privileges), each part in the archive's order."""
    late = {e.dump_id for e in entries if (e.catalog, e.oid) in after or e.catalog == 826}
    changed = True
    while changed:  # dependencies may point forward in the list: to a fixed point
        changed = False
        for e in entries:
            if e.dump_id not in late and any(d in late for d in e.deps):
                late.add(e.dump_id)
                changed = True
    keep = [e for e in entries if not _is_public_schema(e)]
    return [e for e in keep if e.dump_id not in late], [e for e in keep if e.dump_id in late]


def _load_whole_archive(target_url: str, url: str, tmp: Path, schemas: list[str], history: bool,
                        dump_major: int, closure: Closure) -> tuple[int, int]:
    """One `pg_dump -Fc --schema-only` of the target, and `pg_restore -L` of the closure's entries (select_entries).
    Returns (entries restored, entries in the archive)."""
    # lazy: the database layers load on the first database call
    from sage_agent.db.tools import run_pg_tool
    from sage_agent.ops.migrations.shadow_run import dump_args

    archive, listing = tmp / "schema.dump", tmp / "closure.list"
    args = [a for a in dump_args(schemas, history) if a not in ("--format=plain", "--no-owner")]
    run_pg_tool("pg_dump", target_url, args + ["--format=custom", "--compress=0", "-f", str(archive)],
                server_major=dump_major)
    toc = run_pg_tool("pg_restore", target_url, ["-l", "-v", str(archive)], server_major=dump_major).stdout
    entries = parse_toc(toc)
    chosen = select_entries(entries, closure)
    listing.write_text("\n".join(e.text for e in chosen) + "\n", encoding="utf-8")
    run_pg_tool("pg_restore", url, ["-d", url_dbname(url), "--no-owner", "--single-transaction",
                                    "--exit-on-error", "-L", str(listing), str(archive)], server_major=dump_major)
    return len(chosen), len(entries)


def url_dbname(url: str) -> str:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.urls import conninfo_params

    return conninfo_params(url)["dbname"]


# Which relations each closure template holds with all their parts (the target's oids, valid while its catalog
# fingerprint holds): a later file whose closure they cover reuses the template instead of a new closure load.
COVERS_PATH = STATE_DIR / "closure-templates.json"
COVERS_KEPT = 50  # entries kept in that file (the newest)


def remember_cover(project: Path, name: str, fingerprint: str, closure: Closure) -> None:
    """Record the relations the closure template `name` holds (for covering_template)."""
    covers = _read_covers(project)
    covers.pop(name, None)
    covers[name] = {"fingerprint": fingerprint, "relations": sorted(closure.relations)}
    sage_dir(project)
    write_state(project / COVERS_PATH, dict(list(covers.items())[-COVERS_KEPT:]))


def _read_covers(project: Path) -> dict:
    data = read_state(project / COVERS_PATH)
    return data if isinstance(data, dict) else {}


def covering_template(admin_url: str, project: Path, fingerprint: str, closure: Closure) -> tuple[str, int] | None:
    """(name, relations it holds) of the smallest closure template of this fingerprint whose relations (each with
    all its parts, and what those need) include every relation of `closure`, or None. Such a template is a bigger
    closure of the same schema: what the file reaches is there as on a full copy."""
    # lazy: the database layers load on the first database call
    from sage_agent.ops.migrations.shadow_run import find_template, templates

    covers = _read_covers(project)
    on_server = {name: label for name, label, _used, _size in templates(admin_url, sizes=False)}
    need = closure.relations
    best = None
    for name, entry in covers.items():
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
            continue
        label = on_server.get(name)
        if not label or not label.startswith(fingerprint + "_c"):
            continue
        held = set(entry.get("relations") or ())
        if need <= held and (best is None or len(held) < best[1]):
            best = (name, len(held), label)
    if best is None:
        return None
    find_template(admin_url, best[2])  # its last use recorded (the template budget drops the least recent first)
    return best[0], best[1]


def closure_key(fingerprint: str, closure: Closure) -> str:
    """The label of a closure template: the target's fingerprint and the closure's digest (\\w only)."""
    return f"{fingerprint}_c{closure.digest(fingerprint)}"


def needs_full(runs) -> str | None:
    """Why a run on the closure must be repeated on a full copy: an undefined object (the closure left out
    something the file reaches), or a view that no longer queries (one may read a table through a function)."""
    for run in runs:
        error = run.error or ""
        code = next((c for c in UNDEFINED if f"SQLSTATE {c}" in error), None)
        if code:
            return f"{run.mig.filename} failed on the closure with SQLSTATE {code}"
        for name, passed, _detail in run.checks:
            if name == "views still query" and not passed:
                return f"{run.mig.filename}: a view did not query on the closure"
    return None
