"""Both audits (*rls-audit's advisor lints and *schema-audit's findings) summarised per rule: how many findings,
how bad, and the first three places. This is what `sage watch` keeps of them; a full run builds every
finding's text and fix in Python.

Incremental: most rules find things in one relation's own catalog rows (lints.PER_RELATION_LINTS and the
column and naming rules of *schema-audit). Their findings are kept per relation (`AuditStore`: SQLite rows) with a digest of
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

import gc
import heapq
import json
import queue
import re
import sqlite3
import sys
import threading
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from sage_agent.db.redact import redact
from sage_agent.ops.security import schema_audit as sa
from sage_agent.ops.security.lints import LINTS, PER_RELATION_LINTS, POLICIES_CTE, SCHEMA_LINTS, SECURITY_LINTS, \
    SYSTEM_SCHEMAS, UNUSED_INDEX_CANDIDATES_SQL, _only, lint_params, on_shared_policies, parse_exposed, skip_reason

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
_LEVEL = {"ERROR": "error", "WARN": "warning", "INFO": "info"}
_BY_RANK = {v: k for k, v in SEVERITY_RANK.items()}
SHOWN = 3  # places named per rule
SLICE = 10_000  # relations per statement when all are read (consecutive oids: one range per statement)
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
    """What changed since `horizon` (an AuditStore's; None: nothing to compare with, only the totals)."""
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
                                {"only": None if only is None else _oids(only), "lo": None, "hi": None}).fetchone()
    return dict(zip(keys, values))


# A row kept per relation: (rule, rank, location, a, b). For unused_index a candidate (a: the index), for int
# ids a column (a: its sequence or None, b: the type's maximum), for table_name a relation naming_mixed_plurality
# counts (a: 1 when its name is plural), for every other rule a finding.
Row = tuple[str, int, str, "int | None", "int | None"]


# The store of the per-relation part: SQLite tables (the watch's own .sage/watch.sqlite, or one in memory). A round
# after DDL rewrites only the rows of the relations it read again and keeps each rule's totals up to date, so
# neither a round nor a new process (sage watch --once) loads or rebuilds every kept row in Python.
STORE_SCHEMA = """
create table if not exists audit_meta (tid integer primary key, target text not null unique, meta text);
create table if not exists audit_rows (tid integer not null, relid integer not null, rule text not null,
  rank integer not null, location text not null, a integer, b integer);
create index if not exists audit_rows_relid on audit_rows (tid, relid);
create index if not exists audit_rows_rule on audit_rows (tid, rule, location, a, b);
create table if not exists audit_totals (tid integer not null, rule text not null, rank integer not null,
  n integer not null, s integer not null, primary key (tid, rule, rank)) without rowid;
create table if not exists audit_count_arrays (tid integer not null, cat integer not null, relids blob not null,
  ns blob not null, primary key (tid, cat)) without rowid;
drop table if exists audit_counts;
"""
STORE_FORMAT = 3  # meta without it (the JSON cache of earlier versions, a broken one) means: read everything again
_STORE_TABLES = ("audit_rows", "audit_totals", "audit_count_arrays")


class AuditStore:
    """The per-relation part of the audits at their last run, for one target: the rows kept per relation, each
    rule's totals, each COUNTED catalog's rows per relation, and (meta) the scope key, horizon and totals that
    tell what changed."""

    def __init__(self, db: sqlite3.Connection, target: str = "") -> None:
        self.db, self.target = db, target
        db.execute("pragma cache_size = -32000")  # 32 MB: the kept rows of 20,000 tables stay in memory between rounds
        db.executescript(STORE_SCHEMA)
        db.execute("insert or ignore into audit_meta (target) values (?)", (target,))
        self.tid = int(db.execute("select tid from audit_meta where target = ?", (target,)).fetchone()[0])

    @classmethod
    def memory(cls) -> "AuditStore":
        return cls(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))

    def meta(self) -> dict[str, Any] | None:
        """key, horizon, totals and token of the kept state; None when there is none (or it is unreadable)."""
        row = self.db.execute("select meta from audit_meta where tid = ?", (self.tid,)).fetchone()
        try:
            meta = json.loads(row[0]) if row and row[0] else None
        except ValueError:
            return None
        return meta if isinstance(meta, dict) and meta.get("format") == STORE_FORMAT else None

    def rows_kept(self) -> int:
        return int(self.db.execute("select count(*) from audit_rows where tid = ?", (self.tid,)).fetchone()[0])

    def intact(self, meta: dict[str, Any]) -> bool:
        """The rows are those the meta was written with (its token counts them)."""
        return meta.get("token") == _token(meta["horizon"], meta["totals"], self.rows_kept())

    def relations(self) -> int:
        return len(self.counts(0))

    def counts(self, cat: int) -> dict[int, int]:
        """One COUNTED catalog's rows per relation (two packed arrays: 134,000 SQLite rows at 20,000 tables took
        0.5 s of a first round to insert; the arrays take 0.03 s)."""
        row = self.db.execute("select relids, ns from audit_count_arrays where tid = ? and cat = ?",
                              (self.tid, cat)).fetchone()
        if row is None:
            return {}
        return dict(zip(_unpack(row[0]), _unpack(row[1])))

    def known(self, cat: int, relids: Iterable[int]) -> set[int]:
        counts = self.counts(cat)
        return {r for r in relids if r in counts}

    def sum_counts(self, cat: int, relids: Iterable[int]) -> int:
        counts = self.counts(cat)
        return sum(counts.get(r, 0) for r in relids)

    def with_rows(self) -> list[int]:
        return [r for (r,) in self.db.execute("select distinct relid from audit_rows where tid = ?", (self.tid,))]

    def clear(self) -> None:
        for table in _STORE_TABLES:
            self.db.execute(f"delete from {table} where tid = ?", (self.tid,))
        self.db.execute("update audit_meta set meta = null where tid = ?", (self.tid,))

    def write(self, *, reread: Iterable[int], rows: dict[int, list[Row]],
              counts: list[dict[int, int | None]], key: str, horizon: int, totals: list[int]) -> None:
        """One transaction: the rows of `reread` relations replaced by `rows`, the rules' totals moved with them,
        the counts set (None: removed), and the meta that names this state. (A first round writes a whole new
        state with rewrite.)"""
        db, t = self.db, self.tid
        db.execute("begin immediate")
        try:
            delta: dict[tuple[str, int], list[int]] = {}
            kept = self.rows_kept()
            ids = json.dumps(sorted(reread))
            for rule, rank, n, s in db.execute(
                    "select rule, rank, count(*), coalesce(sum(a), 0) from audit_rows where tid = ? and relid in "
                    "(select value from json_each(?)) group by 1, 2", (t, ids)).fetchall():
                delta[(rule, rank)] = [-n, -s]
                kept -= n
            db.execute("delete from audit_rows where tid = ? and relid in (select value from json_each(?))",
                       (t, ids))
            kept += self._insert(rows, delta)
            db.execute("delete from audit_totals where tid = ? and n = 0", (t,))
            self._set_counts(counts)
            self._set_meta(key, horizon, totals, kept)
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise

    def rewrite(self, counts: list[dict[int, int | None]]) -> "Rewrite":
        """A whole new state written while it is read (a first round: SQLite's inserts overlap the server's reads
        of the next slices), in short transactions that never hold the file's write lock across a read: cleared
        (without meta the rows name no state), the counts, each slice's rows as they come (Rewrite.add), then the
        meta (Rewrite.done). A read that fails leaves no meta: the next round reads everything again."""
        db = self.db
        db.execute("begin immediate")
        try:
            self.clear()
            self._set_counts(counts)
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise
        return Rewrite(self)

    def _insert(self, rows: dict[int, list[Row]], delta: dict[tuple[str, int], list[int]]) -> int:
        """Insert rows and move the rules' totals by them (with `delta`, the changes already due); the rows' count."""
        db, t = self.db, self.tid
        flat = [(t, oid, *r) for oid, rs in rows.items() for r in rs]
        # a relation's name is stored redacted (.sage/watch.sqlite holds no password a name may carry); one redact()
        # over all of them says whether any needs it
        every = "\n".join(r[4] for r in flat)
        if redact(every) != every:
            flat = [(t, oid, rule, rank, redact(location), a, b) for t, oid, rule, rank, location, a, b in flat]
        db.executemany("insert into audit_rows values (?, ?, ?, ?, ?, ?, ?)", flat)
        for _, _, rule, rank, _, a, _ in flat:
            d = delta.setdefault((rule, rank), [0, 0])
            d[0] += 1
            d[1] += a if rule == "table_name" and a else 0
        db.executemany("insert into audit_totals values (?, ?, ?, ?, ?) on conflict (tid, rule, rank) do update "
                       "set n = n + excluded.n, s = s + excluded.s", [(t, r, k, n, s) for (r, k), (n, s) in delta.items()])
        return len(flat)

    def _set_counts(self, counts: list[dict[int, int | None]]) -> None:
        """Move each catalog's counts by `counts` (None: the relation is gone)."""
        db, t = self.db, self.tid
        for cat, changes_ in enumerate(counts):
            if not changes_:
                continue
            now = self.counts(cat)
            for r, n in changes_.items():
                if n is None:
                    now.pop(r, None)
                else:
                    now[r] = n
            db.execute("insert or replace into audit_count_arrays values (?, ?, ?, ?)",
                       (t, cat, _pack(now.keys()), _pack(now.values())))

    def _set_meta(self, key: str, horizon: int, totals: list[int], kept: int) -> None:
        meta = {"format": STORE_FORMAT, "key": key, "horizon": horizon, "totals": totals,
                "token": _token(horizon, totals, kept)}
        self.db.execute("update audit_meta set meta = ? where tid = ?", (json.dumps(meta), self.tid))


class Rewrite:
    """AuditStore.rewrite's state being written: add each slice's rows, then done."""

    def __init__(self, store: AuditStore) -> None:
        self.store, self.kept = store, 0

    def add(self, rows: dict[int, list[Row]]) -> None:
        db = self.store.db
        db.execute("begin immediate")
        try:
            self.kept += self.store._insert(rows, {})
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise

    def done(self, key: str, horizon: int, totals: list[int]) -> None:
        """The meta that names the state written (its token counts the rows)."""
        self.store._set_meta(key, horizon, totals, self.kept)


def _pack(values: Iterable[int]) -> bytes:
    """64-bit integers, little-endian (the same file on any machine)."""
    packed = array("q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(data: bytes) -> array:
    packed = array("q")
    packed.frombytes(data)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


def _token(horizon: int, totals: list[int], rows: int) -> str:
    """Names a kept state: the round whose findings it made records it as the audits' fingerprint."""
    return f"{horizon}:{','.join(map(str, totals))}:{rows}"


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


def _lint_part(name: str, columns: str, sql: str | None = None) -> str:
    lint = LINTS[name]
    assert re.fullmatch(r"[a-z0-9_]+", name)  # a rule name is written into the statement as a literal
    rank = SEVERITY_RANK[_LEVEL[lint.level]]
    # *schema-audit keeps only the lints' findings in user schemas
    where = " where x.s::text = any(%(schemas)s)" if lint.area == "schema" else ""
    return f"select '{name}'::text, {rank}, {columns} from ({sql or lint.sql}) x(s, o, t, d, k, e){where}"


_OID_OF_NAME = ("(select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = x.s::name and c.relname = x.o::name)")


def _per_relation_sql(sc: AuditScope, server_major: int) -> str:
    """(rule, rank, schema, relation, column, relation oid or NULL, a, b): the rows kept per relation."""
    # the policy lints read one deparse of each policy (the `policies` CTE); a lint names its relation, whose oid
    # is looked up here (not by reading every relation's name into Python)
    parts = [_lint_part(name, f"x.s::text, x.o::text, null::text, {_OID_OF_NAME}, null::bigint, null::bigint",
                        on_shared_policies(name))
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
    return f"with {sa.COLUMNS_CTE},\n{POLICIES_CTE}\n" + "\nunion all\n".join(parts)


def _whole_sql(sc: AuditScope, server_major: int) -> str:
    """(rule, rank, count, first places): the rules that always run whole, summarised on the server."""
    loc2 = "(x.s || '.' || x.o)"
    parts = [_lint_part(name, f"count(*), {_first(loc2)}")
             for name in _runs(sc, server_major) if name not in PER_RELATION_LINTS and name != "unused_index"]
    return "\nunion all\n".join(parts)


def summarize(conn, sc: AuditScope, server_major: int, store: AuditStore | None = None,
              ch: Changes | None = None, *, connect: Callable[[], Any] | None = None,
              parallel: int = 1) -> tuple[list[RuleCount], AuditStore, Rerun]:
    """Both audits' findings per rule (rules without findings left out), in rule order, and the store that keeps
    them (`store`, or a new one in memory). With a store of the same scope, only relations whose catalog rows
    changed are read again. `ch`: changes(conn, horizon) when the caller has read them already. A read of every
    relation (a first round) takes its slices `parallel` at a time, on `conn` and connections from `connect`."""
    params: dict[str, Any] = {**lint_params(sc.exposed), "schemas": sc.user_schemas, "snake": sa.SNAKE_CASE}
    store = store if store is not None else AuditStore.memory()
    meta = store.meta()
    valid = (meta is not None and meta.get("key") == sc.key and len(meta.get("totals") or ()) == len(COUNTED) + 1
             and store.intact(meta))
    # what changed first: a relation that changes after this statement is read again next time, even if read now
    if ch is None:
        ch = changes(conn, meta["horizon"] if valid and meta is not None else None)
    run, only = Rerun(full=True), None
    updates: list[dict[int, int | None]] = []
    reread: set[int] = set()
    if valid:
        assert meta is not None
        updates, changed, gone = _changed(conn, store, meta, ch)
        run = Rerun(full=False, changed=len(changed), gone=len(gone))
        reread = changed | gone
        only = sorted(changed)
        if len(only) > store.relations() // 2:  # most relations changed: one pass over all is cheaper
            run, only = Rerun(full=True), None
    if only is None:
        updates = [dict(_counts(conn, *k, None)) for k in COUNTED]
        relations = updates[0]
        # every relation, a slice of consecutive oids at a time: each statement stays under the watch's statement
        # timeout, and there is a slice for each connection that reads them
        slices = [Slice(part, ranged=True) for part in oid_slices(relations, parallel if connect is not None else 1)]
        present: Any = relations
    else:
        slices = [Slice(only, ranged=False)] if only else []
        # only the relations counted now (a relation made after `ch` was read is new next time, and read then)
        present = {r for r in only if updates[0].get(r)}
    sql = _per_relation_sql(sc, server_major)
    totals = [t for t, _ in ch.stats]
    with _no_cycle_collection(only is None), \
            _reading(conn, slices, sql, params, present, connect if parallel > 1 and len(slices) > 1 else None,
                     parallel) as parts:
        if only is None:  # a new state, stored slice by slice as the reads come in
            rewrite = store.rewrite(updates)
            for part_rows in parts:
                rewrite.add(part_rows)
            rewrite.done(sc.key, ch.horizon, totals)
        else:
            rows: dict[int, list[Row]] = {}
            for part_rows in parts:
                rows.update(part_rows)
            store.write(reread=reread, rows=rows, counts=updates, key=sc.key, horizon=ch.horizon,
                        totals=totals)
    return _assemble(conn, sc, server_major, params, store), store, run


@contextmanager
def _no_cycle_collection(whole: bool) -> Iterator[None]:
    """A read of every relation builds ~70,000 rows at 20,000 tables, none of them in a reference cycle (reference
    counting frees them): the cycle collector's passes over that heap cost 0.15 s of a first round's CPU for
    nothing. It runs again, as before, when the read is done."""
    if not whole or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class Slice:
    """Relations one statement reads: these oids (`ranged`: every oid from the first to the last of them, all
    relations in between being in `oids`; else these oids as a list)."""

    oids: list[int]
    ranged: bool

    def params(self) -> dict[str, Any]:
        if self.ranged:
            return {"only": None, "lo": self.oids[0], "hi": self.oids[-1]}
        return {"only": _oids(self.oids), "lo": None, "hi": None}


def oid_slices(relations: Iterable[int], at_least: int = 1) -> list[list[int]]:
    """Every relation in slices of consecutive oids (in oid order, as the server compares them: unsigned), at most
    SLICE each and at least `at_least` of them (one per connection that reads them), of even sizes."""
    every = sorted(relations)
    if not every:
        return []
    n = max(-(-len(every) // SLICE), min(at_least, len(every)))
    size = -(-len(every) // n)
    return [every[i:i + size] for i in range(0, len(every), size)]


def _read_slice(conn, part: Slice, sql: str, params: dict[str, Any], present) -> dict[int, list[Row]]:
    """The rows kept per relation of the relations in `part` (of those in `present`)."""
    with conn.transaction():
        # no parallel workers: the slices keep a backend per connection busy already, and each worker starts with
        # cold caches (at 20,000 tables 5.6 s of the server's CPU for all slices instead of 4.0 s)
        conn.execute("set local max_parallel_workers_per_gather = 0")
        fetched = conn.execute(sql, {**params, **part.params()}).fetchall()
    rows: dict[int, list[Row]] = {}
    for rule, rank, s, o, c, oid, a, b in fetched:
        if oid is None or oid not in present:
            continue
        rows.setdefault(oid, []).append((rule, rank, f"{s}.{o}" + (f".{c}" if c is not None else ""), a, b))
    return rows


@contextmanager
def _reading(conn, slices: list[Slice], sql: str, params: dict[str, Any], present,
             connect: Callable[[], Any] | None, parallel: int) -> Iterator[Iterator[dict[int, list[Row]]]]:
    """Each slice's rows as they are read. With `connect`, up to `parallel` connections (`conn` and new ones) take
    slices from one queue on threads of their own while the caller stores what they give, in the order they
    finish (a first round at 20,000 tables is mostly the server's work: a second backend takes half of it on a
    second core, and SQLite's inserts overlap the reads). A failure stops the readers and is raised, once every
    reader has stopped, by the iteration; when the caller fails, the readers stop after their current slice."""
    if connect is None:
        yield (_read_slice(conn, part, sql, params, present) for part in slices)
        return
    done: queue.SimpleQueue = queue.SimpleQueue()  # a slice's rows, or None: a reader failed
    todo = list(slices)
    lock = threading.Lock()
    failed: list[BaseException] = []
    stop = threading.Event()

    def work(c) -> None:
        while True:
            with lock:
                if stop.is_set() or failed or not todo:
                    return
                part = todo.pop(0)
            try:
                rows = _read_slice(c, part, sql, params, present)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                with lock:
                    failed.append(exc)
                done.put(None)
                return
            done.put(rows)

    def extra() -> None:
        try:
            c = connect()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            with lock:
                failed.append(exc)
            done.put(None)
            return
        with c:
            work(c)

    readers = [threading.Thread(target=work, args=(conn,), name="sage-audit-read-0", daemon=True)]
    readers += [threading.Thread(target=extra, name=f"sage-audit-read-{n}", daemon=True)
                for n in range(1, min(parallel, len(slices)))]
    for t in readers:
        t.start()

    def stopped() -> None:
        stop.set()
        for t in readers:
            t.join()

    def results() -> Iterator[dict[int, list[Row]]]:
        for _ in slices:
            rows = done.get()
            if rows is None:
                break
            yield rows
        stopped()
        if failed:
            raise failed[0]

    try:
        yield results()
    finally:
        stopped()


def _oids(values) -> str:
    """An oid[] parameter as text (psycopg checks every element of a list; this is one string)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _changed(conn, store: AuditStore, meta: dict[str, Any],
             ch: Changes) -> tuple[list[dict[int, int | None]], set[int], set[int]]:
    """The counts per relation that changed (None: gone), the relations to read again and those that are gone."""
    changed = set(ch.touched)
    total, _ = ch.stats[0]
    added = ch.new_relations - store.known(0, ch.new_relations)  # an updated relation (ALTER, GRANT) is no new one
    gone: set[int] = set()
    if total != meta["totals"][0] + len(added):
        # relations went: which of those that had rows (one without, an index say, only leaves its count behind;
        # what went with it, its pg_index row, is found by that catalog's count)
        gone = set(conn.execute(f"select {OWN} coalesce(array_agg(o), '{{}}') from unnest(%s::oid[]) o "
                                "where not exists (select 1 from pg_class c where c.oid = o)",
                                (_oids(store.with_rows()),)).fetchone()[0])
    changed -= gone
    updates: list[dict[int, int | None]] = [{} for _ in COUNTED]
    recount = [0]
    for i, ((table, col, cond), (total, new)) in enumerate(zip(COUNTED, ch.stats)):
        if i == 0:
            continue
        went = store.sum_counts(i, gone)  # rows that went with their relation
        if total != meta["totals"][i] + new - went:  # other rows went (or were updated): count them all, see where
            now = _counts(conn, table, col, cond, None)
            before = store.counts(i)
            moved = {r for r, _ in now.items() ^ before.items()}
            changed |= moved - gone
            updates[i] = {r: now.get(r) for r in moved}
        else:
            recount.append(i)
    if changed:  # the relations with new rows: their counts now (the other counts are as they were)
        ids = sorted(changed)
        for i in recount:
            table, col, cond = COUNTED[i]
            fresh = _counts(conn, table, col, cond, ids)
            for r in ids:
                updates[i][r] = fresh.get(r)
    for u in updates:
        for r in gone:
            u[r] = None
    return updates, changed, gone


def _assemble(conn, sc: AuditScope, server_major: int, params: dict[str, Any], store: AuditStore) -> list[RuleCount]:
    """The kept per-relation rows (each rule's totals, and its first places from SQLite's index) with today's
    statistics and sequences, and the rules that run whole."""
    db, t = store.db, store.tid
    out: list[RuleCount] = []

    def first(where: str, args: tuple = ()) -> tuple[str, ...]:
        # SQLite orders text by its UTF-8 bytes: code-point order, as a full run sorts
        return tuple(r[0] for r in db.execute(f"select location from audit_rows where tid = ? and {where} "
                                              f"order by location limit {SHOWN}", (t, *args)))

    totals = db.execute("select rule, max(rank), sum(n), sum(s) from audit_totals where tid = ? group by rule",
                        (t,)).fetchall()
    for rule, rank, count, _ in totals:
        if rule not in ("unused_index", "table_name", "int_id"):
            out.append(RuleCount(rule, _BY_RANK[rank], count, first("rule = ?", (rule,))))
    by_rule = {rule: (count, s) for rule, _, count, s in totals}
    if "unused_index" in by_rule:  # the few that were ever scanned (pg_stat_user_indexes.idx_scan is pg_stat_get_numscans)
        candidates = [a for (a,) in db.execute("select a from audit_rows where tid = ? and rule = 'unused_index'", (t,))]
        used = set(conn.execute(f"select {OWN} coalesce(array_agg(i), '{{}}') from unnest(%s::oid[]) i "
                                "where pg_stat_get_numscans(i) <> 0", (_oids(candidates),)).fetchone()[0])
        unused = sum(1 for i in candidates if i not in used)
        if unused:
            shown: list[str] = []
            for location, i in db.execute("select location, a from audit_rows where tid = ? "
                                          "and rule = 'unused_index' order by location", (t,)):
                if i not in used:
                    shown.append(location)
                    if len(shown) == SHOWN:
                        break
            out.append(RuleCount("unused_index", "info", unused, tuple(shown)))
    int_ids: dict[str, tuple[int, int, list[str]]] = {}  # rule -> (worst rank, count, first places)

    def add_int_id(name: str, severity: str, count: int, places) -> None:
        worst, n, where = int_ids.get(name, (0, 0, []))
        int_ids[name] = (max(worst, SEVERITY_RANK[severity]), n + count, heapq.nsmallest(SHOWN, [*where, *places]))

    if "int_id" in by_rule:
        with_sequence = db.execute("select location, a, b from audit_rows where tid = ? and rule = 'int_id' "
                                   "and a is not null", (t,)).fetchall()
        sequences = sorted({a for _, a, _ in with_sequence})
        last: dict[int, int | None] = {}
        if sequences:
            last = dict(conn.execute(
                f"select {OWN} q, {sa.SEQUENCE_LAST_SQL.format(seq='q')} from unnest(%s::oid[]) q "
                "where q in (select oid from pg_class where relkind = 'S')", (_oids(sequences),)).fetchall())
        for location, a, b in with_sequence:
            name, severity, _ = sa.int_id_rule(last.get(a), b)
            add_int_id(name, severity, 1, [location])
        for b, count in db.execute("select b, count(*) from audit_rows where tid = ? and rule = 'int_id' "
                                   "and a is null group by b", (t,)).fetchall():
            name, severity, _ = sa.int_id_rule(None, b)
            add_int_id(name, severity, count, first("rule = 'int_id' and a is null and b is ?", (b,)))
    out += [RuleCount(name, _BY_RANK[rank], n, tuple(where)) for name, (rank, n, where) in int_ids.items()]
    tables, plural = by_rule.get("table_name", (0, 0))
    if sa.mixed_plurality(tables, plural):
        out.append(RuleCount("naming_mixed_plurality", "info", 1, (", ".join(sc.user_schemas),)))
    for rule, rank, count, firsts in conn.execute(_whole_sql(sc, server_major), {**params, "only": None}):
        if count:
            out.append(RuleCount(rule, _BY_RANK[rank], count, tuple(firsts or ())))
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
