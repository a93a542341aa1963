"""Both audits (*rls-audit's advisor lints and *schema-audit's findings) summarised per rule: how many findings,
how bad, and the first three places. This is what `sage watch` keeps of them; a full run builds every
finding's text and fix in Python.

Incremental: most rules find things in one relation's own catalog rows (lints.PER_RELATION_LINTS and the
column and naming rules of *schema-audit). Their findings are kept per relation (`AuditCache`) with a digest of
that relation's catalog rows (count and sum of `xmin` of its pg_class, pg_attribute, pg_index, pg_constraint,
pg_policy and pg_rewrite rows, its indexes' pg_class rows, and the functions its policies call). After DDL only
the relations whose digest changed (or that are new) are read again, and those that are gone are dropped. The
rest runs whole every time: rules that read no single relation (functions, extensions, auth's tables,
buckets, table bloat) and the statistics' and data's part of two rules (whether a candidate index was ever
scanned, how far an int id's sequence has gone). Anything that changes what every relation's findings depend
on (schemas, roles and their memberships, extensions, `pgrst.db_schemas`, which lints run) starts over.

The rows come from the same SQL the audits run (lints.LINTS, schema_audit.*_SQL) and the same decisions
(which lints run, which schemas count), so the summary of a full run and this one are the same
(tests/test_watch.py compares them, after DDL of every kind too).
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from sage_agent.ops.security import schema_audit as sa
from sage_agent.ops.security.lints import LINTS, PER_RELATION_LINTS, SCHEMA_LINTS, SECURITY_LINTS, SYSTEM_SCHEMAS, \
    UNUSED_INDEX_CANDIDATES_SQL, _only, lint_params, parse_exposed, skip_reason

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
_LEVEL = {"ERROR": "error", "WARN": "warning", "INFO": "info"}
_BY_RANK = {v: k for k, v in SEVERITY_RANK.items()}
SHOWN = 3  # places named per rule
SLICE = 10_000  # relations per statement when all are read
OWN = "/* db-sage */"  # statements that read no catalog table by name are still DB Sage's (*hotpaths)


@dataclass(frozen=True)
class RuleCount:
    """One rule's findings: the worst severity among them, how many, and the first places (code-point order)."""

    rule: str
    severity: str
    count: int
    first: tuple[str, ...]


@dataclass(frozen=True)
class AuditScope:
    """What decides which lints run and on what. `key`: everything every relation's findings depend on (with the
    server's major); when it changes, findings kept per relation are void."""

    exposed: list[str]
    roles: set[str]
    has_auth_users: bool
    has_buckets: bool
    user_schemas: list[str]
    key: str


# What every relation's findings depend on: schemas (names, USAGE), roles and who is a member of whom, extensions
# (pg_graphql's lints, extension-owned objects), pgrst.db_schemas, and the indexes of auth's tables (a foreign key
# to one of them is a finding on the referencing table). Small catalogs: read whole every round.
GLOBAL_FINGERPRINT_SQL = """
md5(concat_ws(',',
  (select count(*) || ':' || sum(i.xmin::text::bigint) || ':' || sum(c.xmin::text::bigint)
     from pg_index i join pg_class c on c.oid = i.indexrelid where c.relnamespace = to_regnamespace('auth')),
  (select count(*) || ':' || sum(xmin::text::bigint) from pg_namespace),
  (select count(*) || ':' || sum(xmin::text::bigint) from pg_extension),
  (select count(*) || ':' || sum(xmin::text::bigint) from pg_auth_members),
  (select string_agg(concat_ws(' ', oid, rolname, rolsuper, rolinherit, rolbypassrls), ',' order by oid)
     from pg_roles),
  current_setting('pgrst.db_schemas', true)))"""


def scope(conn, server_major: int, exposed: list[str] | None = None) -> AuditScope:
    """The audits' scope and what every relation's findings depend on, one statement. `exposed`: the schemas a
    local project's config.toml exposes (lints.project_exposed), in place of pgrst.db_schemas, as *rls-audit."""
    row = conn.execute(
        "select current_setting('pgrst.db_schemas', true),"
        " array(select rolname::text from pg_roles where rolname in ('anon', 'authenticated', 'service_role')),"
        " to_regclass('auth.users') is not null, to_regclass('storage.buckets') is not null,"
        f" array({sa.USER_SCHEMAS_SQL}), {GLOBAL_FINGERPRINT_SQL}", (SYSTEM_SCHEMAS,)).fetchone()
    exposed = parse_exposed(row[0]) if exposed is None else exposed
    roles, users, buckets, schemas = set(row[1]), row[2], row[3], list(row[4])
    key = "|".join([str(server_major), row[5], ",".join(exposed), ",".join(sorted(roles)), str(users), str(buckets),
                    ",".join(schemas)])
    return AuditScope(exposed, roles, users, buckets, schemas, key)


# Which relations' catalog rows changed since the last audit. A row another transaction wrote since then has an
# xmin at or after the last audit's horizon, so its age() is at most the horizon's (age() counts modulo 2^32 and
# gives bootstrap and frozen rows the largest age): DDL, GRANT, RLS on/off, a new policy, a rename. The horizon
# is the first xid the audit's snapshot did not see: its xmax, or an xid still running then, unless that
# transaction is known to run in another database (only this database's sessions write its catalogs; a long
# transaction elsewhere on the server must not make every row look new). A subtransaction's xid is above its
# top transaction's.
# A row can also be deleted without its relation's own row changing (DROP POLICY, DROP INDEX, dropping a foreign
# key), so the catalogs whose rows can go are counted per relation too: when a catalog's total is not its last
# total plus its new rows, something in it went (or was updated), and its count per relation says where.
_NEW = "(%(horizon)s <> 0 and age({x}) <= (select age(%(horizon)s::text::xid)))"
_HORIZON = """(select least(pg_snapshot_xmax(pg_current_snapshot())::text::bigint, (
  select min(x::text::bigint) from pg_snapshot_xip(pg_current_snapshot()) x
  where not exists (select 1 from pg_stat_activity a where a.backend_xid = x::xid
                    and a.datid <> (select oid from pg_database where datname = current_database())))))"""
# (catalog, the relation a row belongs to, which rows count)
COUNTED = (("pg_class", "oid", "relkind not in ('S', 't')"), ("pg_index", "indrelid", "true"),
           ("pg_constraint", "conrelid", "conrelid <> 0"), ("pg_policy", "polrelid", "true"),
           ("pg_rewrite", "ev_class", "true"))


def _changes_sql() -> str:
    """One pass over each catalog: the totals, the new rows, the relations they belong to."""
    new = _NEW.format(x="xmin")
    return f"""
with cls as (select count(*) filter (where relkind not in ('S', 't')) as total,
                    coalesce(array_agg(oid) filter (where relkind not in ('S', 't') and {new}), '{{}}') as rel
             from pg_class),
idx as (select count(*) as total, count(*) filter (where {new}) as n,
               coalesce(array_agg(indrelid) filter (where {new} or indexrelid = any((select rel from cls)::oid[])), '{{}}') as rel
        from pg_index),
con as (select count(*) filter (where conrelid <> 0) as total, count(*) filter (where conrelid <> 0 and {new}) as n,
               coalesce(array_agg(conrelid) filter (where conrelid <> 0 and {new}), '{{}}') as rel from pg_constraint),
pol as (select count(*) as total, count(*) filter (where {new}) as n,
               coalesce(array_agg(polrelid) filter (where {new}), '{{}}') as rel from pg_policy),
rw as (select count(*) as total, count(*) filter (where {new}) as n,
              coalesce(array_agg(ev_class) filter (where {new}), '{{}}') as rel from pg_rewrite),
att as (select array(select distinct attrelid from pg_attribute where {new}) as rel),
prc as (select count(*) as total, coalesce(array_agg(oid) filter (where {new}), '{{}}') as new from pg_proc)
select {_HORIZON},
  array[array[cls.total, cardinality(cls.rel)], array[idx.total, idx.n], array[con.total, con.n],
        array[pol.total, pol.n], array[rw.total, rw.n], array[prc.total, cardinality(prc.new)]],
  cls.rel,
  array(select distinct r from unnest(cls.rel || idx.rel || con.rel || pol.rel || rw.rel || att.rel || array(
    -- a policy calls a function that changed (renamed, say): the policy reads differently
    select p.polrelid from pg_depend d join pg_policy p on p.oid = d.objid
    where d.classid = 'pg_policy'::regclass and d.refclassid = 'pg_proc'::regclass and d.refobjid = any(prc.new))) r)
from cls, idx, con, pol, rw, att, prc"""


@dataclass(frozen=True)
class Changes:
    """What the catalogs say since a cache's snapshot (all of it new when there was no cache)."""

    horizon: int                   # the first xid this look did not see: the next look starts there
    stats: list[tuple[int, int]]   # (total, new rows) per COUNTED catalog, then pg_proc's
    new_relations: set[int]        # relations with a new pg_class row
    touched: set[int]              # relations with any new row


def changes(conn, horizon: int | None) -> Changes:
    """What changed since `horizon` (an AuditCache's; None: nothing to compare with, only the totals)."""
    now, stats, new_relations, touched = conn.execute(
        _changes_sql(), {"horizon": (horizon or 0) % 2 ** 32}).fetchone()
    return Changes(int(now), [(int(t), int(n)) for t, n in stats], set(new_relations), set(touched))


def unchanged(meta: dict[str, Any], ch: Changes) -> bool:
    """Nothing the audits read in the catalogs changed since the cache `meta` describes was made."""
    return all(n == 0 for _, n in ch.stats) and [t for t, _ in ch.stats] == list(meta["totals"])


def _counts_sql(table: str, column: str, cond: str) -> str:
    """The rows of one catalog per relation, as two arrays (one value to send, not a row per relation)."""
    return (f"select coalesce(array_agg(r), '{{}}'), coalesce(array_agg(n), '{{}}') from (select {column}, count(*) "
            f"from {table} where {cond} and {_only(column)} group by 1) g(r, n)")


def _counts(conn, table: str, column: str, cond: str, only: list[int] | None) -> dict[int, int]:
    keys, values = conn.execute(_counts_sql(table, column, cond),
                                {"only": None if only is None else _oids(only)}).fetchone()
    return dict(zip(keys, values))


NAMES_SQL = f"""
select c.oid, n.nspname::text, c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind not in ('S', 't') and {_only('c.oid')}"""

# A row kept per relation: (rule, rank, location, a, b). For unused_index a candidate (a: the index), for int
# ids a column (a: its sequence or None, b: the type's maximum), for table_name a relation naming_mixed_plurality
# counts (a: 1 when its name is plural), for every other rule a finding.
Row = tuple[str, int, str, "int | None", "int | None"]


@dataclass
class AuditCache:
    """The per-relation part of the audits at their last run, and what tells which relations changed since."""

    key: str
    horizon: int = 0                                                     # see Changes
    totals: list[int] = field(default_factory=list)                      # rows per COUNTED catalog, then pg_proc
    counts: list[dict[int, int]] = field(default_factory=list)           # per COUNTED catalog: relation -> rows
    rows: dict[int, list[Row]] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """Names this state: the round whose findings it made records it as the audits' fingerprint."""
        return f"{self.horizon}:{','.join(map(str, self.totals))}:{sum(len(r) for r in self.rows.values())}"

    def meta(self) -> dict[str, Any]:
        """What decides whether these findings still hold, kept apart from them (a steady round reads only this)."""
        return {"key": self.key, "horizon": self.horizon, "totals": self.totals, "token": self.token}

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "horizon": self.horizon, "totals": self.totals,
                "counts": [[x for kv in c.items() for x in kv] for c in self.counts],
                "rows": [[k, *r] for k, rs in self.rows.items() for r in rs]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "AuditCache":
        counts = [dict(zip(flat[0::2], flat[1::2])) for flat in doc["counts"]]
        cache = cls(doc["key"], doc["horizon"], list(doc["totals"]), counts)
        for oid, rule, rank, loc, a, b in doc["rows"]:
            cache.rows.setdefault(oid, []).append((rule, rank, loc, a, b))
        return cache


@dataclass
class Rerun:
    """How a summary was made: from scratch, or reading `changed` relations again and dropping `gone` ones."""

    full: bool
    changed: int = 0
    gone: int = 0


def _first(location: str) -> str:
    return f"(array_agg({location} order by {location} collate \"C\"))[1:{SHOWN}]"


def _runs(sc: AuditScope, server_major: int) -> list[str]:
    return [name for name in SECURITY_LINTS + SCHEMA_LINTS
            if skip_reason(LINTS[name], sc.roles, server_major, has_auth_users=sc.has_auth_users,
                           has_buckets=sc.has_buckets) is None]


def _lint_part(name: str, columns: str) -> str:
    lint = LINTS[name]
    assert re.fullmatch(r"[a-z0-9_]+", name)  # a rule name is written into the statement as a literal
    rank = SEVERITY_RANK[_LEVEL[lint.level]]
    # *schema-audit keeps only the lints' findings in user schemas
    where = " where x.s::text = any(%(schemas)s)" if lint.area == "schema" else ""
    return f"select '{name}'::text, {rank}, {columns} from ({lint.sql}) x(s, o, t, d, k, e){where}"


def _per_relation_sql(sc: AuditScope, server_major: int) -> str:
    """(rule, rank, schema, relation, column, relation oid or NULL, a, b): the rows kept per relation."""
    parts = [_lint_part(name, "x.s::text, x.o::text, null::text, null::oid, null::bigint, null::bigint")
             for name in _runs(sc, server_major) if name in PER_RELATION_LINTS]
    if "unused_index" in _runs(sc, server_major):
        parts.append("select 'unused_index', 0, x.s::text, x.o::text, null, x.relid, x.i::bigint, null "
                     f"from ({UNUSED_INDEX_CANDIDATES_SQL}) x(s, o, n, i, relid) where x.s::text = any(%(schemas)s)")
    parts.append("select 'int_id', 0, x.s, x.o, x.c, x.relid, x.seq::bigint, x.maxv "
                 f"from ({sa.INT_ID_COLUMNS_SQL}) x(s, o, c, typ, seq, maxv, relid)")
    parts.append("select 'timestamp_without_time_zone', 1, x.s, x.o, x.c, x.relid, null, null "
                 f"from ({sa.TIMESTAMP_SQL}) x(s, o, c, relid)")
    parts.append(f"select 'varchar_n', 0, x.s, x.o, x.c, x.relid, null, null from ({sa.VARCHAR_SQL}) x(s, o, c, n, relid)")
    parts.append("select 'nullable_foreign_key', 0, x.s, x.o, x.c, x.relid, null, null "
                 f"from ({sa.NULLABLE_FK_SQL}) x(s, o, c, con, relid)")
    parts.append("select 'naming_not_snake_case', 0, x.s, x.o, x.c, x.relid, null, null "
                 f"from ({sa.NAMES_SQL}) x(s, o, c, relid) where coalesce(x.c, x.o) !~ %(snake)s")
    # naming_mixed_plurality counts the tables (a: 1 when the name is plural)
    parts.append("select 'table_name', 0, x.s, x.o, null, x.relid, (x.o like '%%s')::int, null "
                 f"from ({sa.RELATION_NAMES_SQL}) x(s, o, c, relid)")
    return f"with {sa.COLUMNS_CTE}\n" + "\nunion all\n".join(parts)


def _whole_sql(sc: AuditScope, server_major: int) -> str:
    """(rule, rank, count, first places): the rules that always run whole, summarised on the server."""
    loc2 = "(x.s || '.' || x.o)"
    parts = [_lint_part(name, f"count(*), {_first(loc2)}")
             for name in _runs(sc, server_major) if name not in PER_RELATION_LINTS and name != "unused_index"]
    return "\nunion all\n".join(parts)


def summarize(conn, sc: AuditScope, server_major: int, cache: AuditCache | None = None,
              ch: Changes | None = None) -> tuple[list[RuleCount], AuditCache, Rerun]:
    """Both audits' findings per rule (rules without findings left out), in rule order, and the cache to pass
    next time. With a cache of the same scope, only relations whose catalog rows changed are read again.
    `ch`: changes(conn, cache) when the caller has read them already."""
    params: dict[str, Any] = {**lint_params(sc.exposed), "schemas": sc.user_schemas, "snake": sa.SNAKE_CASE}
    valid = cache is not None and cache.key == sc.key and len(cache.counts) == len(COUNTED)
    # what changed first: a relation that changes after this statement is read again next time, even if read now
    if ch is None:
        ch = changes(conn, cache.horizon if valid and cache is not None else None)
    run, only = Rerun(full=True), None
    if valid:
        assert cache is not None
        counts, changed, gone = _changed(conn, cache, ch)
        run = Rerun(full=False, changed=len(changed), gone=len(gone))
        rows = {oid: rs for oid, rs in cache.rows.items() if oid not in changed and oid not in gone}
        only = sorted(changed)
        if len(only) > len(counts[0]) // 2:  # most relations changed: one pass over all is cheaper
            run, only = Rerun(full=True), None
    if only is None:
        counts = [_counts(conn, *k, None) for k in COUNTED]
        rows = {}
        # every relation, a slice at a time: each statement stays under the watch's statement timeout
        every = sorted(counts[0])
        slices = [every[i:i + SLICE] for i in range(0, len(every), SLICE)]
    else:
        slices = [only] if only else []
    for part in slices:
        param = _oids(part)
        names = {(s, o): oid for oid, s, o in conn.execute(NAMES_SQL, {"only": param}).fetchall()}
        for rule, rank, s, o, c, relid, a, b in conn.execute(_per_relation_sql(sc, server_major),
                                                               {**params, "only": param}).fetchall():
            oid = relid if relid is not None else names.get((s, o))
            if oid is None or oid not in counts[0]:
                continue  # made after `ch` was read: it is new next time, and read then
            rows.setdefault(oid, []).append((rule, rank, f"{s}.{o}" + (f".{c}" if c is not None else ""), a, b))
    new_cache = AuditCache(sc.key, ch.horizon, [t for t, _ in ch.stats], counts, rows)
    return _assemble(conn, sc, server_major, params, new_cache), new_cache, run


def _oids(values) -> str:
    """An oid[] parameter as text (psycopg checks every element of a list; this is one string)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _changed(conn, cache: AuditCache, ch: Changes) -> tuple[list[dict[int, int]], set[int], set[int]]:
    """The counts per relation now, the relations to read again and those that are gone."""
    changed = set(ch.touched)
    relations = dict(cache.counts[0])
    total, _ = ch.stats[0]
    added = ch.new_relations - relations.keys()  # an updated relation (ALTER, GRANT) is no new one
    gone: set[int] = set()
    if total != cache.totals[0] + len(added):
        # relations went: which of those that had rows (one without, an index say, only leaves its count behind;
        # what went with it, its pg_index row, is found by that catalog's count)
        gone = set(conn.execute(f"select {OWN} coalesce(array_agg(o), '{{}}') from unnest(%s::oid[]) o "
                                "where not exists (select 1 from pg_class c where c.oid = o)",
                                (_oids(cache.rows),)).fetchone()[0])
    changed -= gone
    counts = [relations]
    recount = [0]
    for i, ((table, col, cond), (total, new)) in enumerate(zip(COUNTED, ch.stats)):
        if i == 0:
            continue
        before = cache.counts[i]
        went = sum(before.get(r, 0) for r in gone)  # rows that went with their relation
        if total != cache.totals[i] + new - went:  # other rows went (or were updated): count them all, see where
            now = _counts(conn, table, col, cond, None)
            changed |= {r for r, _ in now.items() ^ before.items()} - gone
        else:
            now = dict(before)
            recount.append(i)
        counts.append(now)
    if changed:  # the relations with new rows: their counts now (the other counts are as they were)
        ids = sorted(changed)
        for i in recount:
            table, col, cond = COUNTED[i]
            fresh = _counts(conn, table, col, cond, ids)
            for r in ids:
                if r in fresh:
                    counts[i][r] = fresh[r]
                else:
                    counts[i].pop(r, None)
    for c in counts:
        for r in gone:
            c.pop(r, None)
    return counts, changed, gone


def _assemble(conn, sc: AuditScope, server_major: int, params: dict[str, Any], cache: AuditCache) -> list[RuleCount]:
    """The per-relation rows with today's statistics and sequences, and the rules that run whole."""
    by_rule: dict[str, tuple[int, list[str]]] = {}
    candidates: list[tuple[int, str]] = []
    int_ids: list[tuple[str, int | None, int]] = []
    tables = plural = 0
    for rs in cache.rows.values():
        for rule, rank, location, a, b in rs:
            if rule == "unused_index":
                candidates.append((a, location))
            elif rule == "table_name":
                tables += 1
                plural += a
            elif rule == "int_id":
                int_ids.append((location, a, b))
            else:
                worst, where = by_rule.setdefault(rule, (rank, []))
                if rank > worst:
                    by_rule[rule] = (rank, where)
                where.append(location)
    if candidates:  # the few that were ever scanned (pg_stat_user_indexes.idx_scan is pg_stat_get_numscans)
        used = set(conn.execute(f"select {OWN} coalesce(array_agg(i), '{{}}') from unnest(%s::oid[]) i "
                                "where pg_stat_get_numscans(i) <> 0", (_oids(i for i, _ in candidates),)).fetchone()[0])
        unused = [location for i, location in candidates if i not in used]
        if unused:
            by_rule["unused_index"] = (0, unused)
    sequences = sorted({a for _, a, _ in int_ids if a is not None})
    last: dict[int, int | None] = {}
    if sequences:
        last = dict(conn.execute(
            f"select {OWN} q, {sa.SEQUENCE_LAST_SQL.format(seq='q')} from unnest(%s::oid[]) q "
            "where q in (select oid from pg_class where relkind = 'S')", (_oids(sequences),)).fetchall())
    for location, a, b in int_ids:
        name, severity, _ = sa.int_id_rule(last.get(a) if a is not None else None, b)
        worst, where = by_rule.setdefault(name, (SEVERITY_RANK[severity], []))
        if SEVERITY_RANK[severity] > worst:
            by_rule[name] = (SEVERITY_RANK[severity], where)
        where.append(location)
    out = [RuleCount(rule, _BY_RANK[rank], len(where), tuple(heapq.nsmallest(SHOWN, where)))
           for rule, (rank, where) in by_rule.items()]
    if sa.mixed_plurality(tables, plural):
        out.append(RuleCount("naming_mixed_plurality", "info", 1, (", ".join(sc.user_schemas),)))
    for rule, rank, count, first in conn.execute(_whole_sql(sc, server_major), {**params, "only": None}):
        if count:
            out.append(RuleCount(rule, _BY_RANK[rank], count, tuple(first or ())))
    return sorted(out, key=lambda r: r.rule)


def group(findings: Iterable[tuple[str, str, str]]) -> list[RuleCount]:
    """(rule, severity, location) of a full run -> the same summary (what the watch would keep of it)."""
    by_rule: dict[str, tuple[str, list[str]]] = {}
    for rule, severity, location in findings:
        worst, where = by_rule.setdefault(rule, (severity, []))
        if SEVERITY_RANK[severity] > SEVERITY_RANK[worst]:
            by_rule[rule] = (severity, where)
        where.append(location)
    return [RuleCount(rule, sev, len(where), tuple(sorted(where)[:SHOWN])) for rule, (sev, where) in sorted(by_rule.items())]
