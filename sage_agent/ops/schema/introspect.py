"""Read a database's schema (user schemas only) into a DatabaseSchema, in a dozen catalog queries.

Runs in one read-only repeatable-read transaction with `search_path = ''` so every name PostgreSQL's
deparsers print is schema-qualified and two databases deparse the same object the same way.
"""

from __future__ import annotations

import functools
import re
import sys

from sage_agent.db.schemas import is_managed_schema
from sage_agent.ops.schema.storage_policies import SCHEMAS as USER_POLICY_SCHEMAS
from sage_agent.ops.schema.model import (
    Column, Constraint, DatabaseSchema, Extension, Function, Index, Policy, Schema, Sequence, Table, Trigger,
    TypeDef, View,
)


def _acl(acl: str, kind: str, owner: str) -> str:
    """SQL: the non-owner privileges of an object as sorted 'grantee:PRIV:grantable' strings."""
    return f"""(select coalesce(array_agg(format('%s:%s:%s',
                     case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end,
                     a.privilege_type, a.is_grantable) order by 1), '{{}}')
               from aclexplode(coalesce({acl}, acldefault('{kind}', {owner}))) a
               where a.grantee <> {owner})"""


def _description(oid: str, catalog: str, subid: str = "0") -> str:
    """SQL: an object's comment. What obj_description/col_description return, read from pg_description directly:
    those are SQL functions run once per row, a third of the columns query at 20,000 tables."""
    return (f"(select ds.description from pg_description ds where ds.objoid = {oid} "
            f"and ds.classoid = '{catalog}'::regclass and ds.objsubid = {subid})")


def _not_ext(catalog: str, oid: str) -> str:
    return (f"not exists (select 1 from pg_depend e where e.classid = '{catalog}'::regclass "
            f"and e.objid = {oid} and e.deptype = 'e')")


Q_SCHEMAS = f"""
select n.oid, n.nspname, quote_ident(n.nspname), {_description('n.oid', 'pg_namespace')},
       {_acl('n.nspacl', 'n', 'n.nspowner')}
from pg_namespace n where {_not_ext('pg_namespace', 'n.oid')}
"""

Q_EXTENSIONS = """
select quote_ident(x.extname), quote_ident(n.nspname), x.extversion
from pg_extension x join pg_namespace n on n.oid = x.extnamespace where x.extname <> 'plpgsql'
"""

Q_TYPES = f"""
select t.oid, format('%I.%I', n.nspname, t.typname), quote_ident(n.nspname), t.typname::text, t.typtype,
       case when t.typtype = 'e' then array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid
                                            order by e.enumsortorder) end,
       case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
       t.typnotnull, t.typdefault,
       case when t.typtype = 'd' and t.typcollation <> 0 and t.typcollation <> bt.typcollation
            then (select format('%I.%I', cn.nspname, co.collname) from pg_collation co
                  join pg_namespace cn on cn.oid = co.collnamespace where co.oid = t.typcollation) end,
       case when t.typtype = 'd' then array(select quote_ident(c.conname) || E'\\t' || pg_get_constraintdef(c.oid)
                                            from pg_constraint c where c.contypid = t.oid and c.contype = 'c'
                                            order by c.conname) end,
       case when t.typtype = 'c' then array(select quote_ident(a.attname) || E'\\t' || format_type(a.atttypid, a.atttypmod)
                                            from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0
                                            and not a.attisdropped order by a.attnum) end,
       {_description('t.oid', 'pg_type')}
from pg_type t join pg_namespace n on n.oid = t.typnamespace
left join pg_type bt on bt.oid = t.typbasetype
where t.typnamespace = any(%(nsp)s)
  and (t.typtype in ('e', 'd') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
  and {_not_ext('pg_type', 't.oid')}
"""

Q_RELATIONS = f"""
select c.oid, format('%I.%I', n.nspname, c.relname), c.relkind, quote_ident(n.nspname),
       c.relpersistence = 'u', c.relrowsecurity, c.relforcerowsecurity,
       case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end,
       coalesce(c.reloptions, '{{}}'),
       {_description('c.oid', 'pg_class')},
       case when c.relkind = 'S' then {_acl('c.relacl', 's', 'c.relowner')}
            else {_acl('c.relacl', 'r', 'c.relowner')} end,
       c.relispartition,
       case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,
       (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits ih join pg_class pc on pc.oid = ih.inhparent
          join pg_namespace pn on pn.oid = pc.relnamespace where ih.inhrelid = c.oid and c.relispartition),
       case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end,
       c.relreplident::text,
       (select quote_ident(ic.relname) from pg_index x join pg_class ic on ic.oid = x.indexrelid
         where x.indrelid = c.oid and x.indisreplident limit 1)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relnamespace = any(%(nsp)s) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
  and {_not_ext('pg_class', 'c.oid')}
"""

Q_SEQUENCES = """
select s.seqrelid, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
       s.seqcycle,
       (select d.deptype::text || format('%I.%I.%I', tn.nspname, t.relname, a.attname)
          from pg_depend d join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace
          join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
         where d.classid = 'pg_class'::regclass and d.objid = s.seqrelid and d.refclassid = 'pg_class'::regclass
           and d.deptype in ('a', 'i') limit 1)
from pg_sequence s where s.seqrelid = any(%(rels)s)
"""

Q_COLUMNS = f"""
select a.attrelid, quote_ident(a.attname), a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
       a.attidentity::text, a.attgenerated::text,
       case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
       case when a.attcollation <> 0 and a.attcollation <> t.typcollation
            then (select format('%I.%I', cn.nspname, co.collname) from pg_collation co
                  join pg_namespace cn on cn.oid = co.collnamespace where co.oid = a.attcollation) end,
       {_description('a.attrelid', 'pg_class', 'a.attnum')},
       (select coalesce(array_agg(format('%s:%s:%s',
                     case when x.grantee = 0 then 'PUBLIC' else x.grantee::regrole::text end,
                     x.privilege_type, x.is_grantable) order by 1), '{{}}')
          from aclexplode(a.attacl) x),
       a.attislocal, idn.seqstart, idn.seqincrement, idn.seqmin, idn.seqmax, idn.seqcache, idn.seqcycle
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
left join lateral (select s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle
                     from pg_depend dd join pg_sequence s on s.seqrelid = dd.objid
                    where dd.classid = 'pg_class'::regclass and dd.refclassid = 'pg_class'::regclass
                      and dd.refobjid = a.attrelid and dd.refobjsubid = a.attnum and dd.deptype = 'i'
                    limit 1) idn on a.attidentity <> ''
where a.attrelid = any(%(tables)s) and a.attnum > 0 and not a.attisdropped
"""

Q_CONSTRAINTS = f"""
select c.oid, c.conrelid, quote_ident(c.conname), c.contype::text, pg_get_constraintdef(c.oid),
       {_description('c.oid', 'pg_constraint')}, c.conindid,
       c.conparentid <> 0 or (c.contype = 'c' and not c.conislocal)
from pg_constraint c
where c.conrelid = any(%(tables)s) and c.contype in ('p', 'u', 'c', 'f', 'x')
"""

Q_INDEXES = f"""
select i.indexrelid, format('%I.%I', n.nspname, ic.relname), i.indrelid, pg_get_indexdef(i.indexrelid),
       {_description('i.indexrelid', 'pg_class')},
       (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits ih join pg_class pc on pc.oid = ih.inhparent
          join pg_namespace pn on pn.oid = pc.relnamespace where ih.inhrelid = i.indexrelid)
from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace
where i.indrelid = any(%(tables)s)
  and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid and c.conrelid = i.indrelid
                  and c.contype in ('p', 'u', 'x'))
"""

Q_FUNCTIONS = f"""
select p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       format('%I.%I', n.nspname, p.proname), p.prokind::text, pg_get_function_identity_arguments(p.oid),
       pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), pg_get_functiondef(p.oid),
       exists (select 1 from pg_type rt where rt.typrelid <> 0
               and (rt.oid = p.prorettype or rt.oid = any(p.proargtypes)
                    or rt.oid = any(coalesce(p.proallargtypes, '{{}}'))
                    or rt.typarray = p.prorettype)),
       {_description('p.oid', 'pg_proc')},
       {_acl('p.proacl', 'f', 'p.proowner')}
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where p.pronamespace = any(%(nsp)s) and p.prokind in ('f', 'p', 'w') and {_not_ext('pg_proc', 'p.oid')}
"""

Q_TRIGGERS = f"""
select t.oid, t.tgrelid, quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgenabled::text,
       {_description('t.oid', 'pg_trigger')}, t.tgparentid <> 0
from pg_trigger t where t.tgrelid = any(%(tables)s) and not t.tgisinternal
"""

Q_POLICIES = f"""
select p.oid, p.polrelid, quote_ident(p.polname), p.polpermissive,
       array(select case when r = 0 then 'PUBLIC' else r::regrole::text end from unnest(p.polroles) r order by 1),
       case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' when 'd' then 'DELETE'
                     else 'ALL' end,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
       {_description('p.oid', 'pg_policy')}
from pg_policy p where p.polrelid = any(%(tables)s)
"""

# policies on the tables of a managed schema that are the user's (storage.objects, ...): see storage_policies
Q_MANAGED_POLICIES = f"""
select p.oid, format('%I.%I', n.nspname, c.relname), quote_ident(p.polname), p.polpermissive,
       array(select case when r = 0 then 'PUBLIC' else r::regrole::text end from unnest(p.polroles) r order by 1),
       case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' when 'd' then 'DELETE'
                     else 'ALL' end,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
       {_description('p.oid', 'pg_policy')}
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s)
"""

Q_DEPEND = """
select d.classid::regclass::text, d.objid, d.objsubid, d.refclassid::regclass::text, d.refobjid, d.refobjsubid
from pg_depend d
where d.deptype in ('n', 'a')
  and d.classid in ('pg_class'::regclass, 'pg_rewrite'::regclass, 'pg_proc'::regclass, 'pg_constraint'::regclass,
                    'pg_trigger'::regclass, 'pg_policy'::regclass, 'pg_attrdef'::regclass, 'pg_type'::regclass)
  and d.refclassid in ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass, 'pg_constraint'::regclass)
"""

Q_CASTS = "select format_type(castsource, null), format_type(casttarget, null), castcontext::text from pg_cast"

Q_REWRITE = "select r.oid, r.ev_class from pg_rewrite r where r.ev_class = any(%(rels)s)"
Q_ATTRDEF = "select d.oid, d.adrelid, d.adnum from pg_attrdef d where d.adrelid = any(%(tables)s)"
Q_ROWTYPES = "select t.oid, t.typrelid from pg_type t where t.typrelid = any(%(rels)s)"

Q_DEFAULT_ACL = """
select coalesce(quote_ident(n.nspname), ''), d.defaclobjtype::text,
       array(select format('%s:%s:%s', case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end,
                           a.privilege_type, a.is_grantable)
             from aclexplode(d.defaclacl) a where a.grantee <> d.defaclrole)
from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
where d.defaclrole = (select oid from pg_roles where rolname = current_user)
"""


def _q(conn, query: str, params: dict | None = None):
    """The rows of a query with named parameters (every other % in the query, format() patterns, is literal),
    streamed in chunks: at 20,000 tables a whole result (100,000 columns) held at once, on both sides of a
    comparison, set the peak memory. Iterate the rows to the end before the next query."""
    text = query if params is None else re.sub(r"%%\((\w+)\)s", r"%(\1)s", query.replace("%", "%%"))
    return conn.cursor().stream(text, params, size=_chunk())


@functools.cache
def _chunk() -> int:
    # lazy: psycopg loads on the first database call
    from psycopg import pq

    return 2000 if pq.version() >= 170000 else 1  # chunked rows need libpq 17; else one row at a time


def introspect(conn) -> DatabaseSchema:
    """The user's schema of the database behind `conn` (a psycopg connection; left as it was found)."""
    model = DatabaseSchema()
    model.server_major = conn.info.server_version // 10000
    was_autocommit = conn.autocommit
    if was_autocommit:
        conn.autocommit = False
    try:
        conn.execute("set transaction isolation level repeatable read, read only")
        conn.execute("select set_config('search_path', '', true)")
        _read(conn, model)
    finally:
        conn.rollback()
        if was_autocommit:
            conn.autocommit = True
    return model


def _read(conn, m: DatabaseSchema) -> None:
    share = _Sharer()
    nsp: list[int] = []
    nsp_name: dict[int, str] = {}
    for oid, raw, name, comment, grants in _q(conn, Q_SCHEMAS):
        if is_managed_schema(raw):
            continue
        nsp.append(oid)
        nsp_name[oid] = name
        m.schemas[name] = Schema(name=name, comment=comment, grants=frozenset(grants))
    for name, schema, version in _q(conn, Q_EXTENSIONS):
        m.extensions[name] = Extension(name=name, schema_=schema, version=version)

    keys: dict[tuple[str, int], str] = {}  # (catalog, oid) -> dependency key
    for (oid, qname, schema, raw_name, typtype, labels, base, notnull, default, collation, checks, attrs,
         comment) in _q(conn, Q_TYPES, {"nsp": nsp}):
        kind = {"e": "enum", "d": "domain", "c": "composite"}[typtype]
        m.types[qname] = TypeDef(
            qname=qname, schema_=schema, raw_name=raw_name, kind=kind, labels=list(labels or []), base=base, notnull=bool(notnull and kind == "domain"),
            default=default, collation=collation,
            checks=dict(x.split("\t", 1) for x in (checks or [])),
            attributes=[tuple(x.split("\t", 1)) for x in (attrs or [])], comment=comment)
        keys[("pg_type", oid)] = f"type:{qname}"

    tables: dict[int, Table] = {}
    rels: list[int] = []
    seq_oids: dict[int, tuple] = {}
    matviews: list[int] = []
    for (oid, qname, kind, schema, unlogged, rls, force, viewdef, options, comment, grants,
         is_partition, partkey, parent, bound, replident, replindex) in _q(conn, Q_RELATIONS, {"nsp": nsp}):
        rels.append(oid)
        if kind in ("r", "p", "f"):
            if kind == "f":
                m.unsupported.append(f"foreign table {qname} (not compared)")
                continue
            t = Table(qname=qname, schema_=schema, unlogged=unlogged, partitioned=kind == "p", rls=rls,
                      force_rls=force, comment=comment, grants=frozenset(grants), partition_key=partkey,
                      parent=parent if is_partition else None, bound=bound, replica_identity=replident or "d",
                      replica_index=replindex if replident == "i" else None, options=sorted(options))
            tables[oid] = t = share(t)
            m.tables[qname] = t
            keys[("pg_class", oid)] = f"table:{qname}"
        elif kind in ("v", "m"):
            m.views[qname] = View(qname=qname, materialized=kind == "m", definition=viewdef.strip(),
                                  options=sorted(options), comment=comment, grants=frozenset(grants))
            keys[("pg_class", oid)] = f"view:{qname}"
            if kind == "m":
                matviews.append(oid)
        elif kind == "S":
            seq_oids[oid] = (qname, comment, grants)
            keys[("pg_class", oid)] = f"sequence:{qname}"
    table_oids = list(tables)

    for (oid, data_type, start, inc, mn, mx, cache, cycle, owner) in _q(
            conn, Q_SEQUENCES, {"rels": list(seq_oids)}):
        qname, comment, grants = seq_oids[oid]
        if owner and owner[0] == "i":
            del keys[("pg_class", oid)]  # an identity column's sequence: part of the column
            continue
        m.sequences[qname] = Sequence(qname=qname, data_type=data_type, start=start, increment=inc, min_value=mn,
                                      max_value=mx, cache=cache, cycle=cycle, owned_by=owner[1:] if owner else None,
                                      comment=comment, grants=frozenset(grants))

    attnames: dict[tuple[int, int], str] = {}
    for (relid, name, num, typ, notnull, default, identity, generated, gexpr, collation, comment,
         grants, islocal, *seq) in _q(conn, Q_COLUMNS, {"tables": table_oids}):
        t = tables[relid]
        inherited = t.parent is not None and not islocal
        t.columns[name] = share(Column(name=name, position=num, type=typ, notnull=notnull, default=default,
                                 identity=identity or "", generated=generated or "", generation_expr=gexpr,
                                 collation=collation, comment=comment, grants=frozenset(grants),
                                 identity_opts=tuple(seq) if identity and seq[0] is not None else None,
                                 inherited=inherited))
        attnames[(relid, num)] = f"{t.qname}.{name}"

    for oid, relid, name, contype, definition, comment, indid, inherited in _q(
            conn, Q_CONSTRAINTS, {"tables": table_oids}):
        c = share(Constraint(table=tables[relid].qname, name=name, type=contype, definition=definition,
                             comment=comment, inherited=bool(inherited)))
        m.constraints[c.key] = c
        keys[("pg_constraint", oid)] = f"constraint:{c.key}"
        if indid and contype in ("p", "u", "x"):
            keys[("pg_class", indid)] = f"constraint:{c.key}"

    for oid, qname, relid, definition, comment, parent_index in _q(
            conn, Q_INDEXES, {"tables": table_oids + matviews}):
        owner = tables.get(relid)
        table = owner.qname if owner else _view_name(keys, relid)
        if table is None:
            continue
        m.indexes[qname] = share(Index(qname=qname, table=table, definition=definition, comment=comment,
                                       parent_index=parent_index))
        keys[("pg_class", oid)] = f"index:{qname}"

    for (oid, key, qname, kind, identity, arguments, result, definition, rowtype, comment,
         grants) in _q(conn, Q_FUNCTIONS, {"nsp": nsp}):
        m.functions[key] = Function(key=key, qname=qname, kind=kind, identity_args=identity, arguments=arguments,
                                    result=result, definition=definition.strip(), uses_rowtype=rowtype,
                                    comment=comment, grants=frozenset(grants))
        keys[("pg_proc", oid)] = f"function:{key}"

    for oid, relid, name, definition, enabled, comment, inherited in _q(
            conn, Q_TRIGGERS, {"tables": table_oids}):
        tr = Trigger(table=tables[relid].qname, name=name, definition=definition, enabled=enabled, comment=comment,
                     inherited=bool(inherited))
        m.triggers[tr.key] = tr
        keys[("pg_trigger", oid)] = f"trigger:{tr.key}"

    for oid, relid, name, permissive, roles, cmd, using, check, comment in _q(
            conn, Q_POLICIES, {"tables": table_oids}):
        p = share(Policy(table=tables[relid].qname, name=name, permissive=permissive, roles=list(roles),
                         command=cmd, using=using, check=check, comment=comment))
        m.policies[p.key] = p
        keys[("pg_policy", oid)] = f"policy:{p.key}"
    for oid, table, name, permissive, roles, cmd, using, check, comment in _q(
            conn, Q_MANAGED_POLICIES, {"schemas": list(USER_POLICY_SCHEMAS)}):
        p = Policy(table=table, name=name, permissive=permissive, roles=list(roles), command=cmd,
                   using=using, check=check, comment=comment)
        m.policies[p.key] = p
        keys[("pg_policy", oid)] = f"policy:{p.key}"

    for oid, ev_class in _q(conn, Q_REWRITE, {"rels": rels}):
        if ("pg_class", ev_class) in keys:
            keys[("pg_rewrite", oid)] = keys[("pg_class", ev_class)]
    for oid, relid, num in _q(conn, Q_ATTRDEF, {"tables": table_oids}):
        if (relid, num) in attnames:
            keys[("pg_attrdef", oid)] = f"default:{attnames[(relid, num)]}"
    for oid, relid in _q(conn, Q_ROWTYPES, {"rels": rels}):
        if ("pg_class", relid) in keys:
            keys[("pg_type", oid)] = keys[("pg_class", relid)]

    deps = m.depends
    for classid, objid, objsubid, refclassid, refobjid, refsubid in _q(conn, Q_DEPEND):
        dep = keys.get((classid, objid))
        if dep is None:
            continue
        if refclassid == "pg_class" and refsubid and (refobjid, refsubid) in attnames:
            ref = f"column:{attnames[(refobjid, refsubid)]}"
        else:
            ref = keys.get((refclassid, refobjid))
        if ref is None or ref == dep:
            continue
        deps.setdefault(dep, set()).add(ref)

    for source, target, context in _q(conn, Q_CASTS):
        m.casts[(source, target)] = context

    for schema, objtype, grants in _q(conn, Q_DEFAULT_ACL):
        key = f"{schema}:{objtype}"
        m.default_acl[key] = frozenset(grants) | m.default_acl.get(key, frozenset())
    compact(m, share)


class _Sharer:
    """Share what tens of thousands of objects repeat: equal grant sets (every table of a Supabase schema has
    the same two dozen), qualified names, type names, and pydantic's per-instance record of the fields set (all
    of them, here). Applied as each object is read, so the peak shrinks too; nothing the model says changes."""

    def __init__(self) -> None:
        self.frozen: dict[frozenset, frozenset] = {}
        self.fields_set: dict[type, set[str]] = {}

    def __call__(self, obj):
        values = obj.__dict__
        for name, value in values.items():
            if isinstance(value, frozenset):
                values[name] = self.frozen.setdefault(value, value)
            elif isinstance(value, str) and len(value) < 200:
                values[name] = sys.intern(value)
        cls = type(obj)
        if cls not in self.fields_set:
            self.fields_set[cls] = set(cls.model_fields)
        if obj.__pydantic_fields_set__ <= self.fields_set[cls]:
            object.__setattr__(obj, "__pydantic_fields_set__", self.fields_set[cls])
        return obj


def compact(m: DatabaseSchema, share: _Sharer | None = None) -> None:
    """_Sharer over every object of the model (those already shared are left as they are)."""
    share = share or _Sharer()
    for group in (m.schemas, m.types, m.sequences, m.constraints, m.indexes, m.views, m.functions, m.triggers,
                  m.policies):
        for obj in group.values():
            share(obj)
    for table in m.tables.values():
        share(table)
        for column in table.columns.values():
            share(column)


def _view_name(keys: dict, relid: int) -> str | None:
    key = keys.get(("pg_class", relid))
    return key.split(":", 1)[1] if key and key.startswith("view:") else None


def introspect_in_transaction(conn) -> DatabaseSchema:
    """Like introspect(), but inside the caller's open transaction: it sees that transaction's uncommitted DDL
    (e.g. *rollback's rename-back steps on a shadow copy) and leaves the transaction open and as it was."""
    model = DatabaseSchema()
    model.server_major = conn.info.server_version // 10000
    saved = conn.execute("select current_setting('search_path')").fetchone()[0]
    conn.execute("select set_config('search_path', '', true)")
    try:
        _read(conn, model)
    finally:
        conn.execute("select set_config('search_path', %s, true)", (saved,))
    return model
