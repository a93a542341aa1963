"""Compare two DatabaseSchemas and plan the migration that makes A look like B.

Correct over clever: what PostgreSQL can ALTER in place is altered (columns, enum values, sequences, domains,
RLS flags, grants, comments, function bodies with the same signature); everything else is dropped and
created again, and so is every object that depends on something dropped or re-created (views on a changed
column, policies using a re-created function, ...), found through pg_depend. Steps run in phases:
drops of dependents before their dependencies, then creates of schemas/types/sequences/functions/tables
before constraints, indexes, foreign keys, views, triggers, policies, RLS flags, grants and comments.
"""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import BaseModel, Field

from sage_agent.ops.schema.model import Column, DatabaseSchema, Function, TypeDef

AE = "ACCESS EXCLUSIVE"


class Step(BaseModel):
    sql: str
    blocked: bool = False  # needs a human decision first (see Plan.blockers)
    kind: str
    object: str
    action: str  # create | drop | alter | replace
    phase: float
    data_loss: bool = False
    rewrite: bool = False
    lock: str = "none"
    transactional: bool = True
    authorization: bool = False
    note: str | None = None

    def flags(self) -> list[str]:
        out = []
        if self.data_loss:
            out.append("DATA LOSS")
        if self.rewrite:
            out.append("table rewrite")
        if not self.transactional:
            out.append("not transactional")
        if self.authorization:
            out.append("authorization")
        if self.blocked:
            out.append("BLOCKED")
        return out


class Drift(BaseModel):
    kind: str
    object: str
    change: str  # missing (in B only) | extra (in A only) | different
    detail: str = ""


class Plan(BaseModel):
    drift: list[Drift] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # hazards that stop the plan: it must not be applied as generated (e.g. a type change with no cast)
    blockers: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.drift and not self.steps

    def sql(self, header: bool = True) -> str:
        lines = []
        if header:
            lines.append("set check_function_bodies = off;")
        for step in self.steps:
            tags = step.flags()
            lines.append(f"-- {step.action} {step.kind} {step.object}" + (f" [{', '.join(tags)}]" if tags else ""))
            lines.append(step.sql.rstrip().rstrip(";") + ";")
        return "\n".join(lines) + "\n"


def lit(value: str | None) -> str:
    if value is None:
        return "NULL"
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    return sql.Literal(value).as_string(None)


def ident(name: str) -> str:
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    return sql.Identifier(name).as_string(None)


# --- classification helpers ----------------------------------------------------------------------------
_WIDEN = {("smallint", "integer"), ("smallint", "bigint"), ("integer", "bigint"), ("real", "double precision"),
          ("integer", "numeric"), ("bigint", "numeric"), ("smallint", "numeric"),
          ("timestamp without time zone", "timestamp with time zone")}


def _type_change(old: str, new: str) -> tuple[bool, bool]:
    """(rewrite, possible data loss) of ALTER COLUMN TYPE old -> new."""
    def parts(t: str) -> tuple[str, list[int]]:
        m = re.match(r"^(.*?)\((\d+)(?:,(\d+))?\)$", t)
        if not m:
            return t, []
        return m.group(1), [int(x) for x in m.groups()[1:] if x is not None]

    ob, oa = parts(old)
    nb, na = parts(new)
    if ob == nb and oa and (not na or (na[0] >= oa[0] and na[1:] == oa[1:])):
        return False, False  # varchar(n) -> varchar(m >= n), numeric(p,s) -> numeric(p2 >= p, s)
    if nb == "text" and ob in ("character varying", "text"):
        return False, False
    if nb == "character varying" and not na and ob in ("text", "character varying"):
        return False, False
    if (ob, nb) in _WIDEN or nb == "text":
        return True, False
    return True, True


def _first_difference(a, b) -> str:
    """A short 'old -> new' for the first differing line of two definitions (or tuples of them)."""
    left = a if isinstance(a, tuple) else (a,)
    right = b if isinstance(b, tuple) else (b,)
    for x, y in zip(left, right):
        if x == y:
            continue
        xs, ys = str(x).splitlines() or [""], str(y).splitlines() or [""]
        for i in range(max(len(xs), len(ys))):
            lx = xs[i].strip() if i < len(xs) else ""
            ly = ys[i].strip() if i < len(ys) else ""
            if lx != ly:
                return f"{lx[:70] or '(nothing)'} -> {ly[:70] or '(nothing)'}"
    return "definition"


_STRING_TYPES = {"text", "character varying", "character", "name", "\"char\"", "bpchar"}


def _base_type(t: str) -> tuple[str, bool]:
    """(type name without typmods, is array) of a format_type() string."""
    array = t.endswith("[]")
    t = t[:-2] if array else t
    return re.sub(r"\(\d+(?:,\d+)?\)", "", t).strip(), array


def _index_columns(definition: str) -> list[str]:
    """Column names PostgreSQL uses to name an index ('expr' for expressions), from pg_get_indexdef text."""
    m = re.search(r" USING \w+ \((.*)\)", definition)
    if not m:
        return []
    body = m.group(1)
    body = re.split(r"\) (?:INCLUDE|WITH|WHERE|NULLS|TABLESPACE)\b", body)[0]
    cols, depth, cur = [], 0, ""
    for ch in body + ",":
        if ch == "," and depth == 0:
            cols.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    include = re.search(r"\) INCLUDE \((.*?)\)", definition)
    if include:
        cols += [c.strip() for c in include.group(1).split(",")]
    out = []
    for c in cols:
        word = re.match(r'^("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)(\s|$)', c)
        out.append(word.group(1).strip('"').replace('""', '"') if word else "expr")
    return out


_VOLATILE = re.compile(r"\b(random|gen_random_uuid|uuid_generate_v\d|clock_timestamp|nextval|timeofday)\s*\(", re.I)


# --- the differ -------------------------------------------------------------------------------------------
class _Differ:
    def __init__(self, a: DatabaseSchema, b: DatabaseSchema) -> None:
        self.a, self.b = a, b
        self.steps: list[Step] = []
        self.drift: list[Drift] = []
        self.notes: list[str] = []
        self.seq = 0
        # A-side keys (kind:name) that are dropped (and maybe created again from B)
        self.dropped: set[str] = set()
        self.replaced: set[str] = set()
        self.recreated_tables: set[str] = self._recreated(a, b)
        self.dropped_tables: set[str] = (set(a.tables) - set(b.tables)) | self.recreated_tables
        self.new_tables: set[str] = (set(b.tables) - set(a.tables)) | self.recreated_tables
        self.common_tables: set[str] = (set(a.tables) & set(b.tables)) - self.recreated_tables
        self.create_only: set[str] = set()  # keys of B objects on re-created tables: created, nothing to drop
        self.blockers: list[str] = []
        self.dropped_columns: set[str] = set()
        self.retyped_columns: set[str] = set()
        self.reset_defaults: set[str] = set()  # column keys whose default is dropped early and set late
        majors = [m for m in (a.server_major, b.server_major) if m]
        self.no_maintain = bool(majors) and min(majors) < 17 and max(majors) >= 17

    @staticmethod
    def _recreated(a: DatabaseSchema, b: DatabaseSchema) -> set[str]:
        """Tables in A and B that cannot be altered into B's: partitioning, partition key, parent or bound
        changed (and every partition of such a table)."""
        out: set[str] = set()
        for q in sorted(set(a.tables) & set(b.tables)):
            ta, tb = a.tables[q], b.tables[q]
            if (ta.partitioned, ta.partition_key, ta.parent, ta.bound) != (
                    tb.partitioned, tb.partition_key, tb.parent, tb.bound):
                out.add(q)
        changed = True
        while changed:
            changed = False
            for q in set(a.tables) & set(b.tables):
                if q not in out and b.tables[q].parent in out:
                    out.add(q)
                    changed = True
        return out

    def _depth(self, q: str, model: DatabaseSchema) -> int:
        n, t = 0, model.tables.get(q)
        while t is not None and t.parent and n < 20:
            n += 1
            t = model.tables.get(t.parent)
        return n

    # steps ---------------------------------------------------------------------------------------------
    def add(self, phase: float, kind: str, obj: str, action: str, sql: str, **flags) -> None:
        self.seq += 1
        self.steps.append(Step(sql=sql, kind=kind, object=obj, action=action, phase=phase + self.seq * 1e-9,
                               **flags))

    def d(self, kind: str, obj: str, change: str, detail: str = "") -> None:
        self.drift.append(Drift(kind=kind, object=obj, change=change, detail=detail))

    # main ----------------------------------------------------------------------------------------------
    def run(self) -> Plan:
        a, b = self.a, self.b
        self.notes += [f"A: {u}" for u in a.unsupported] + [f"B: {u}" for u in b.unsupported]
        self.schemas()
        self.extensions()
        self.types()
        self.sequences()
        self.tables()
        # objects compared by definition: changed -> drop + create
        self.simple("constraint", a.constraints, b.constraints, self._constraint_sig)
        attached_b = {k for k, i in b.indexes.items() if i.parent_index}
        self.a_plain_indexes = {k: i for k, i in a.indexes.items() if not i.parent_index and k not in attached_b}
        self.b_plain_indexes = {k: i for k, i in b.indexes.items() if not i.parent_index}
        self.simple("index", self.a_plain_indexes, self.b_plain_indexes, lambda i: i.definition)
        self.simple("view", a.views, b.views, lambda v: (v.materialized, v.definition, v.options))
        self.simple("trigger", a.triggers, b.triggers, lambda t: t.definition)
        self.simple("policy", a.policies, b.policies,
                    lambda p: (p.permissive, p.roles, p.command, p.using, p.check))
        self.functions()
        self.force_dependents()
        self.columns_pass()
        self.emit_objects()
        self.partition_indexes()
        self.replica_identity()
        self.emit_attributes()
        self.steps.sort(key=lambda s: s.phase)
        for s in self.steps:
            s.phase = int(s.phase * 10) / 10
        return Plan(drift=self.drift, steps=self.steps, notes=self.notes, blockers=self.blockers)

    @staticmethod
    def _constraint_sig(c):
        return (c.type, c.definition)

    # schemas & extensions --------------------------------------------------------------------------------
    def schemas(self) -> None:
        a, b = self.a.schemas, self.b.schemas
        for name in sorted(set(b) - set(a)):
            self.d("schema", name, "missing")
            self.add(1, "schema", name, "create", f"CREATE SCHEMA {name}")
        for name in sorted(set(a) - set(b)):
            self.d("schema", name, "extra")
            self.add(47, "schema", name, "drop", f"DROP SCHEMA {name}", lock=AE)

    def extensions(self) -> None:
        a, b = self.a.extensions, self.b.extensions
        for name in sorted(set(b) - set(a)):
            x = b[name]
            self.d("extension", name, "missing", f"version {x.version}")
            self.add(2, "extension", name, "create", f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {x.schema_}")
        for name in sorted(set(a) - set(b)):
            self.d("extension", name, "extra")
            self.add(46.5, "extension", name, "drop", f"DROP EXTENSION {name}", data_loss=True)
        for name in sorted(set(a) & set(b)):
            xa, xb = a[name], b[name]
            if xa.schema_ != xb.schema_:
                self.d("extension", name, "different", f"schema {xa.schema_} -> {xb.schema_}")
                self.add(2, "extension", name, "alter", f"ALTER EXTENSION {name} SET SCHEMA {xb.schema_}")
            if xa.version != xb.version:
                self.d("extension", name, "different", f"version {xa.version} -> {xb.version}")
                self.add(2, "extension", name, "alter", f"ALTER EXTENSION {name} UPDATE TO {lit(xb.version)}")

    # types ---------------------------------------------------------------------------------------------
    def _create_type(self, t: TypeDef, phase: float = 30) -> None:
        if t.kind == "enum":
            sql = f"CREATE TYPE {t.qname} AS ENUM ({', '.join(lit(v) for v in t.labels)})"
        elif t.kind == "composite":
            sql = f"CREATE TYPE {t.qname} AS ({', '.join(f'{n} {ty}' for n, ty in t.attributes)})"
        else:
            sql = f"CREATE DOMAIN {t.qname} AS {t.base}"
            if t.collation:
                sql += f" COLLATE {t.collation}"
            if t.default is not None:
                sql += f" DEFAULT {t.default}"
            if t.notnull:
                sql += " NOT NULL"
            for name, check in sorted(t.checks.items()):
                sql += f" CONSTRAINT {name} {check}"
        self.add(phase, "domain" if t.kind == "domain" else "type", t.qname, "create", sql)

    def _drop_type(self, t: TypeDef, phase: float = 21) -> None:
        self.add(phase, "domain" if t.kind == "domain" else "type", t.qname, "drop",
                 f"DROP {'DOMAIN' if t.kind == 'domain' else 'TYPE'} {t.qname}", lock=AE)

    def types(self) -> None:
        a, b = self.a.types, self.b.types
        for q in sorted(set(b) - set(a)):
            self.d(b[q].kind, q, "missing")
            self._create_type(b[q])
        for q in sorted(set(a) - set(b)):
            self.d(a[q].kind, q, "extra")
            self.dropped.add(f"type:{q}")
            self._drop_type(a[q], 46)  # after the columns that stop using it have changed type
        for q in sorted(set(a) & set(b)):
            ta, tb = a[q], b[q]
            if ta.kind != tb.kind:
                self.d(tb.kind, q, "different", f"{ta.kind} -> {tb.kind}")
                self.replaced.add(f"type:{q}")
                self._drop_type(ta)
                self._create_type(tb)
            elif ta.kind == "enum" and ta.labels != tb.labels:
                self.enum(ta, tb)
            elif ta.kind == "domain":
                self.domain(ta, tb)
            elif ta.kind == "composite" and ta.attributes != tb.attributes:
                self.d("composite", q, "different", "attributes")
                n = len(ta.attributes)
                if tb.attributes[:n] == ta.attributes:
                    for name, typ in tb.attributes[n:]:
                        self.add(30, "type", q, "alter", f"ALTER TYPE {q} ADD ATTRIBUTE {name} {typ}")
                else:
                    self.replaced.add(f"type:{q}")
                    self._drop_type(ta)
                    self._create_type(tb)

    def enum(self, ta: TypeDef, tb: TypeDef) -> None:
        q = ta.qname
        old, new = ta.labels, tb.labels
        it = iter(new)
        if all(v in it for v in old):  # A's labels are a subsequence of B's: ADD VALUE keeps the data
            added = [v for v in new if v not in old]
            self.d("enum", q, "different", f"add values {', '.join(added)}")
            for i, v in enumerate(new):
                if v in old:
                    continue
                where = f" AFTER {lit(new[i - 1])}" if i > 0 else f" BEFORE {lit(new[1])}"
                self.add(0, "enum", q, "alter", f"ALTER TYPE {q} ADD VALUE {lit(v)}{where}", lock=AE,
                         transactional=False,
                         note="runs before the main transaction: a new enum value cannot be used until committed")
            return
        removed = [v for v in old if v not in new]
        self.d("enum", q, "different",
               f"values {', '.join(old)} -> {', '.join(new)}" + (f" (removes {', '.join(removed)})" if removed else ""))
        tmp = f"{ta.schema_}.{ident(ta.raw_name + '__sage_old')}"
        self.add(30, "enum", q, "replace", f"ALTER TYPE {q} RENAME TO {ident(ta.raw_name + '__sage_old')}", lock=AE)
        self._create_type(tb, 30)
        users = []
        for t in self.a.tables.values():
            if t.qname in self.dropped_tables:
                continue
            for c in t.ordered_columns():
                if c.inherited:
                    continue  # the parent's ALTER COLUMN TYPE reaches its partitions
                if c.type in (q, q + "[]"):
                    bt = self.b.tables.get(t.qname)
                    bc = bt.columns.get(c.name) if bt else None
                    if bc is None or bc.type != c.type:
                        continue
                    users.append((t, c))
        for t, c in users:
            key = f"{t.qname}.{c.name}"
            self.retyped_columns.add(key)
            if c.default is not None:
                self.reset_defaults.add(key)
            self.add(35, "column", key, "alter",
                     f"ALTER TABLE {t.qname} ALTER COLUMN {c.name} TYPE {c.type} USING {c.name}::text::{c.type}",
                     lock=AE, rewrite=True, data_loss=bool(removed),
                     note="rows holding a removed value make this fail" if removed else None)
        self.add(35.5, "enum", q, "drop", f"DROP TYPE {tmp}", lock=AE)
        self.enum_recreated = getattr(self, "enum_recreated", set()) | {f"type:{q}"}

    def domain(self, ta: TypeDef, tb: TypeDef) -> None:
        q = ta.qname
        if ta.base != tb.base or ta.collation != tb.collation:
            self.d("domain", q, "different", f"base {ta.base} -> {tb.base}")
            self.replaced.add(f"type:{q}")
            self._drop_type(ta)
            self._create_type(tb)
            return
        if ta.default != tb.default:
            self.d("domain", q, "different", "default")
            self.add(30, "domain", q, "alter", f"ALTER DOMAIN {q} "
                     + ("DROP DEFAULT" if tb.default is None else f"SET DEFAULT {tb.default}"))
        if ta.notnull != tb.notnull:
            self.d("domain", q, "different", "not null")
            self.add(30, "domain", q, "alter", f"ALTER DOMAIN {q} {'SET' if tb.notnull else 'DROP'} NOT NULL",
                     note="checks every column using the domain" if tb.notnull else None)
        for name in sorted(set(ta.checks) | set(tb.checks)):
            ca, cb = ta.checks.get(name), tb.checks.get(name)
            if ca == cb:
                continue
            self.d("domain", q, "different", f"constraint {name}")
            if ca is not None:
                self.add(14, "domain", q, "alter", f"ALTER DOMAIN {q} DROP CONSTRAINT {name}")
            if cb is not None:
                self.add(37, "domain", q, "alter", f"ALTER DOMAIN {q} ADD CONSTRAINT {name} {cb}")

    # sequences -------------------------------------------------------------------------------------------
    @staticmethod
    def _seq_opts(s) -> str:
        return (f"AS {s.data_type} INCREMENT BY {s.increment} MINVALUE {s.min_value} MAXVALUE {s.max_value} "
                f"START WITH {s.start} CACHE {s.cache} {'CYCLE' if s.cycle else 'NO CYCLE'}")

    def _owner_gone(self, owned_by: str | None) -> bool:
        if not owned_by:
            return False
        table = owned_by.rsplit(".", 1)[0]
        return table in self.dropped_tables or owned_by in self.dropped_columns

    def sequences(self) -> None:
        a, b = self.a.sequences, self.b.sequences
        for q in sorted(set(b) - set(a)):
            s = b[q]
            self.d("sequence", q, "missing")
            self.add(31, "sequence", q, "create", f"CREATE SEQUENCE {q} {self._seq_opts(s)}")
            if s.owned_by:
                self.add(36, "sequence", q, "alter", f"ALTER SEQUENCE {q} OWNED BY {s.owned_by}")
        for q in sorted(set(a) - set(b)):
            self.d("sequence", q, "extra")
            self.dropped.add(f"sequence:{q}")
            self._pending_seq_drops = getattr(self, "_pending_seq_drops", []) + [a[q]]
        for q in sorted(set(a) & set(b)):
            sa, sb = a[q], b[q]
            if self._seq_opts(sa) != self._seq_opts(sb):
                self.d("sequence", q, "different", "options")
                restart = " RESTART" if not sb.min_value <= sa.start <= sb.max_value else ""
                self.add(31, "sequence", q, "alter", f"ALTER SEQUENCE {q} {self._seq_opts(sb)}{restart}",
                         note="restarts the sequence: its old position is outside the new range" if restart else None)
            if sa.owned_by != sb.owned_by:
                self.d("sequence", q, "different", f"owned by {sa.owned_by} -> {sb.owned_by}")
                self.add(36, "sequence", q, "alter", f"ALTER SEQUENCE {q} OWNED BY {sb.owned_by or 'NONE'}")

    # tables & columns --------------------------------------------------------------------------------------
    @staticmethod
    def _identity_opts(o: tuple | None) -> str:
        if not o:
            return ""
        start, inc, mn, mx, cache, cycle = o
        return (f" (START WITH {start} INCREMENT BY {inc} MINVALUE {mn} MAXVALUE {mx} CACHE {cache}"
                f"{' CYCLE' if cycle else ' NO CYCLE'})")

    def _coldef(self, c: Column) -> str:
        sql = f"{c.name} {c.type}"
        if c.collation:
            sql += f" COLLATE {c.collation}"
        if c.generated:
            sql += f" GENERATED ALWAYS AS ({c.generation_expr}) {'VIRTUAL' if c.generated == 'v' else 'STORED'}"
        if c.identity:
            sql += (f" GENERATED {'ALWAYS' if c.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
                    + self._identity_opts(c.identity_opts))
        if c.default is not None and not c.generated:
            sql += f" DEFAULT {c.default}"
        if c.notnull:
            sql += " NOT NULL"
        return sql

    def _create_table(self, q: str) -> None:
        t = self.b.tables[q]
        depth = self._depth(q, self.b)
        if t.parent:
            sql = f"CREATE TABLE {q} PARTITION OF {t.parent} {t.bound}"
            if t.partitioned:
                sql += f" PARTITION BY {t.partition_key}"
            self.add(33 + depth * 0.01, "partition", q, "create", sql)
            # what the partition gets from its parent, then its own defaults / NOT NULLs on top
            parent = self.b.tables[t.parent]
            for cb in t.ordered_columns():
                cp = parent.columns.get(cb.name)
                if cp is not None:
                    self._local_column(q, cp.default, cp.notnull, cb, 33.005 + depth * 0.01)
            return
        cols = ",\n  ".join(self._coldef(c) for c in t.ordered_columns())
        sql = f"CREATE {'UNLOGGED ' if t.unlogged else ''}TABLE {q} (\n  {cols}\n)"
        if t.partitioned:
            sql += f" PARTITION BY {t.partition_key}"
        if t.options:
            sql += f" WITH ({', '.join(t.options)})"
        self.add(33, "partitioned table" if t.partitioned else "table", q, "create", sql)

    def _local_column(self, q: str, default: str | None, notnull: bool, cb: Column, phase: float) -> None:
        """A partition column's default / NOT NULL where it differs from what it has (or gets from its parent)."""
        pre = f"ALTER TABLE ONLY {q} ALTER COLUMN {cb.name}"
        if default != cb.default:
            self.add(phase, "column", f"{q}.{cb.name}", "alter",
                     f"{pre} DROP DEFAULT" if cb.default is None else f"{pre} SET DEFAULT {cb.default}", lock=AE)
        if notnull != cb.notnull:
            self.add(phase, "column", f"{q}.{cb.name}", "alter", f"{pre} {'SET' if cb.notnull else 'DROP'} NOT NULL",
                     lock=AE)

    def tables(self) -> None:
        a, b = self.a.tables, self.b.tables
        for q in sorted(self.new_tables):
            t = b[q]
            if q in self.recreated_tables:
                ta = a[q]
                what = ("partition bound" if ta.bound != t.bound else "parent" if ta.parent != t.parent
                        else "partition key" if ta.partitioned and t.partitioned else "partitioning")
                if ta.parent and ta.parent in self.recreated_tables and ta.parent == t.parent and ta.bound == t.bound:
                    what = "parent table re-created"
                self.d("table", q, "different", f"{what} changed: dropped and created again (DATA LOSS)")
            else:
                self.d("partition" if t.parent else "table", q, "missing", f"{len(t.columns)} columns")
            self._create_table(q)
        for q in sorted(self.dropped_tables):
            ta = a[q]
            if q not in self.recreated_tables:
                self.d("table", q, "extra", f"{len(ta.columns)} columns")
            self.dropped.add(f"table:{q}")
            if ta.parent and ta.parent in self.dropped_tables:
                continue  # dropped with its parent
            self.add(18 - self._depth(q, self.a) * 0.01, "table", q, "drop", f"DROP TABLE {q}", data_loss=True,
                     lock=AE, note="the table is re-created empty: copy its rows first" if q in self.recreated_tables
                     else None)
        for q in sorted(self.common_tables):
            ta, tb = a[q], b[q]
            if ta.options != tb.options:
                self.d("table", q, "different", f"storage parameters {ta.options} -> {tb.options}")
                old = {o.split("=", 1)[0] for o in ta.options}
                new = {o.split("=", 1)[0] for o in tb.options}
                if old - new:
                    self.add(34, "table", q, "alter", f"ALTER TABLE {q} RESET ({', '.join(sorted(old - new))})", lock=AE)
                if set(tb.options) - set(ta.options):
                    self.add(34, "table", q, "alter",
                             f"ALTER TABLE {q} SET ({', '.join(sorted(set(tb.options) - set(ta.options)))})", lock=AE)
            if ta.unlogged != tb.unlogged:
                self.d("table", q, "different", "unlogged" if tb.unlogged else "logged")
                self.add(34, "table", q, "alter", f"ALTER TABLE {q} SET {'UNLOGGED' if tb.unlogged else 'LOGGED'}",
                         lock=AE, rewrite=True)
            for name in sorted(set(ta.columns) - set(tb.columns)):
                self.dropped_columns.add(f"{q}.{name}")
            for name in sorted(set(ta.columns) & set(tb.columns)):
                ca, cb = ta.columns[name], tb.columns[name]
                if (ca.generated, ca.generation_expr) != (cb.generated, cb.generation_expr):
                    self.dropped_columns.add(f"{q}.{name}")  # re-added below with the new expression
                elif ca.type != cb.type or ca.collation != cb.collation:
                    self.retyped_columns.add(f"{q}.{name}")
        # a partition's columns change with its parent's
        for q in sorted(self.common_tables):
            tb = b[q]
            if tb.parent:
                for name, c in tb.columns.items():
                    if f"{tb.parent}.{name}" in self.retyped_columns:
                        self.retyped_columns.add(f"{q}.{name}")

    def columns_pass(self) -> None:
        """Column changes on tables in both A and B (after dependents are known)."""
        a, b = self.a.tables, self.b.tables
        for q in sorted(self.common_tables):
            ta, tb = a[q], b[q]
            if tb.parent:
                self._partition_columns(q, ta, tb)
                continue
            for name in sorted(set(ta.columns) - set(tb.columns), key=lambda n: ta.columns[n].position):
                self.d("column", f"{q}.{name}", "extra", ta.columns[name].type)
                self.add(17, "column", f"{q}.{name}", "drop", f"ALTER TABLE {q} DROP COLUMN {name}",
                         data_loss=True, lock=AE)
            for cb in tb.ordered_columns():
                key = f"{q}.{cb.name}"
                ca = ta.columns.get(cb.name)
                if ca is None:
                    self.d("column", key, "missing", cb.type)
                    self._add_column(q, cb)
                elif key in self.dropped_columns:  # generation expression changed
                    self.d("column", key, "different", "generation expression")
                    self.add(17, "column", key, "drop", f"ALTER TABLE {q} DROP COLUMN {cb.name}", lock=AE,
                             data_loss=not ca.generated)
                    self._add_column(q, cb)
                else:
                    self._alter_column(q, ca, cb)

    def _partition_columns(self, q: str, ta, tb) -> None:
        """A partition's columns follow its parent's (ALTER on the parent recurses); only a default or NOT NULL
        of its own is set on the partition, after the parent's change."""
        pa, pb = self.a.tables.get(tb.parent), self.b.tables[tb.parent]
        for cb in tb.ordered_columns():
            ca = ta.columns.get(cb.name)
            cpb = pb.columns.get(cb.name)
            cpa = pa.columns.get(cb.name) if pa else None
            if cpb is None:
                continue
            if ca is None or cpa is None:  # added through the parent: starts with the parent's definition
                default, notnull = cpb.default, cpb.notnull
            else:
                key = f"{q}.{cb.name}"
                parent_key = f"{tb.parent}.{cb.name}"
                parent_default_set = cpa.default != cpb.default or parent_key in self.reset_defaults
                default = cpb.default if parent_default_set else ca.default
                if key in self.reset_defaults and not parent_default_set:
                    default = None
                    if ca.default is not None:
                        self.add(16.1, "column", key, "alter", f"ALTER TABLE ONLY {q} ALTER COLUMN {cb.name} DROP DEFAULT",
                                 lock=AE)
                notnull = cpb.notnull if cpa.notnull != cpb.notnull else ca.notnull
                if default != cb.default or notnull != cb.notnull:
                    self.d("column", key, "different", "default or NOT NULL of the partition")
            self._local_column(q, default, notnull, cb, 35.7)

    def _add_column(self, q: str, c: Column) -> None:
        volatile = bool(c.default and _VOLATILE.search(c.default)) or bool(c.identity) or c.generated == "s"
        note = None
        if c.notnull and c.default is None and not c.identity and not c.generated:
            note = "NOT NULL without a default fails when the table has rows"
        self.add(34, "column", f"{q}.{c.name}", "create", f"ALTER TABLE {q} ADD COLUMN {self._coldef(c)}",
                 lock=AE, rewrite=volatile, note=note)

    def _cast(self, old: str, new: str) -> str:
        """How ALTER COLUMN TYPE old -> new converts values: 'plain' (an assignment cast), 'using' (an explicit
        or I/O cast: USING col::new), 'text' (enum to enum: through text), or 'none' (no cast exists)."""
        ob, oarr = _base_type(old)
        nb, narr = _base_type(new)
        types = {**self.a.types, **self.b.types}
        ob = types[ob].base if ob in types and types[ob].kind == "domain" and types[ob].base else ob
        nbd = types[nb].base if nb in types and types[nb].kind == "domain" and types[nb].base else nb
        obb, _ = _base_type(ob)
        nbb, _ = _base_type(nbd)
        if oarr != narr:
            return "using" if nbb in _STRING_TYPES and not narr else "none"
        if obb == nbb:
            return "plain"
        casts = self.b.casts or self.a.casts
        context = casts.get((obb, nbb))
        if context in ("i", "a"):
            return "plain"
        if context == "e":
            return "using"
        enum_old = obb in types and types[obb].kind == "enum"
        enum_new = nbb in types and types[nbb].kind == "enum"
        if enum_old and enum_new:
            return "text"
        if nbb in _STRING_TYPES:
            return "plain" if not casts else "using"
        if obb in _STRING_TYPES or enum_old:
            return "using"
        if not casts:  # a model without cast data (an old snapshot of ours): let PostgreSQL decide
            return "using"
        return "none"

    def _alter_column(self, q: str, ca: Column, cb: Column) -> None:
        key = f"{q}.{cb.name}"
        pre = f"ALTER TABLE {q} ALTER COLUMN {cb.name}"
        retyped = ca.type != cb.type or ca.collation != cb.collation
        default_changed = ca.default != cb.default
        reset = key in self.reset_defaults or (retyped and ca.default is not None)
        if retyped:
            rewrite, loss = _type_change(ca.type, cb.type)
            self.d("column", key, "different", f"type {ca.type} -> {cb.type}")
            how = self._cast(ca.type, cb.type) if ca.type != cb.type else "plain"
            using = ""
            blocked = False
            if how == "text":
                using = f" USING {cb.name}::text::{cb.type}"
            elif how == "using" or (how == "plain" and rewrite and ca.type != cb.type):
                using = f" USING {cb.name}::{cb.type}"
            elif how == "none":
                blocked = True
                using = f" USING {cb.name}::{cb.type}"
                self.blockers.append(
                    f"column {key}: PostgreSQL has no cast from {ca.type} to {cb.type}, so its values cannot be "
                    f"converted automatically. Decide how: edit the step to USING <expression> (e.g. "
                    f"to_timestamp({cb.name}) for epoch seconds), or add a new column and backfill it.")
            coll = f" COLLATE {cb.collation}" if cb.collation else ""
            self.add(34, "column", key, "alter", f"{pre} TYPE {cb.type}{coll}{using}", lock=AE, rewrite=rewrite,
                     data_loss=loss, blocked=blocked,
                     note=("no cast exists: write the USING expression yourself" if blocked else
                           "values that do not convert make this fail" if loss else None))
        if default_changed:
            self.d("column", key, "different", f"default {ca.default} -> {cb.default}")
        if reset and ca.default is not None:
            self.add(16, "column", key, "alter", f"{pre} DROP DEFAULT", lock=AE)
            if cb.default is not None:
                self.add(35.6, "column", key, "alter", f"{pre} SET DEFAULT {cb.default}", lock=AE)
        elif default_changed:
            if cb.default is None:
                self.add(16, "column", key, "alter", f"{pre} DROP DEFAULT", lock=AE)
            else:
                self.add(35.6, "column", key, "alter", f"{pre} SET DEFAULT {cb.default}", lock=AE)
        if ca.notnull != cb.notnull:
            self.d("column", key, "different", "NOT NULL" if cb.notnull else "nullable")
            if cb.notnull:
                self.add(34.2, "column", key, "alter", f"{pre} SET NOT NULL", lock=AE,
                         note="scans the table; fails if NULLs exist")
            else:
                self.add(34.9, "column", key, "alter", f"{pre} DROP NOT NULL", lock=AE)
        if ca.identity != cb.identity:
            self.d("column", key, "different", f"identity {ca.identity or 'none'} -> {cb.identity or 'none'}")
            if not cb.identity:
                self.add(34.1, "column", key, "alter", f"{pre} DROP IDENTITY", lock=AE)
            elif not ca.identity:
                self.add(34.3, "column", key, "alter",
                         f"{pre} ADD GENERATED {'ALWAYS' if cb.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
                         + self._identity_opts(cb.identity_opts), lock=AE)
            else:
                self.add(34.3, "column", key, "alter",
                         f"{pre} SET GENERATED {'ALWAYS' if cb.identity == 'a' else 'BY DEFAULT'}", lock=AE)
        if ca.identity and cb.identity and cb.identity_opts and ca.identity_opts != cb.identity_opts:
            start, inc, mn, mx, cache, cycle = cb.identity_opts
            old_start = ca.identity_opts[0] if ca.identity_opts else start
            restart = "" if mn <= old_start <= mx else " RESTART"
            self.d("column", key, "different", "identity sequence options")
            self.add(34.35, "column", key, "alter",
                     f"{pre} SET START WITH {start} SET INCREMENT BY {inc} SET MINVALUE {mn} SET MAXVALUE {mx} "
                     f"SET CACHE {cache} SET {'CYCLE' if cycle else 'NO CYCLE'}{restart}", lock=AE)

    # objects compared by definition --------------------------------------------------------------------------
    def simple(self, kind: str, a: dict, b: dict, sig) -> None:
        for k in sorted(set(b) - set(a)):
            self.d(self._kind(kind, b[k]), k, "missing")
        for k in sorted(set(a) - set(b)):
            if self._on_dropped_table(kind, a[k]):
                continue
            self.d(self._kind(kind, a[k]), k, "extra")
            self.dropped.add(f"{kind}:{k}")
        for k in sorted(set(a) & set(b)):
            if getattr(b[k], "table", None) in self.recreated_tables:
                self.create_only.add(f"{kind}:{k}")  # its table is re-created: create it, nothing to drop
            elif sig(a[k]) != sig(b[k]):
                self.d(self._kind(kind, b[k]), k, "different", _first_difference(sig(a[k]), sig(b[k])))
                self.replaced.add(f"{kind}:{k}")

    @staticmethod
    def _kind(kind: str, obj) -> str:
        if kind == "view" and obj.materialized:
            return "materialized view"
        if kind == "constraint" and obj.type == "f":
            return "foreign key"
        return kind

    def _on_dropped_table(self, kind: str, obj) -> bool:
        return kind in ("constraint", "index", "trigger", "policy") and obj.table in self.dropped_tables

    def functions(self) -> None:
        a, b = self.a.functions, self.b.functions
        self.function_replace_in_place: list[Function] = []
        for k in sorted(set(b) - set(a)):
            self.d("procedure" if b[k].kind == "p" else "function", k, "missing")
        for k in sorted(set(a) - set(b)):
            self.d("procedure" if a[k].kind == "p" else "function", k, "extra")
            self.dropped.add(f"function:{k}")
        for k in sorted(set(a) & set(b)):
            fa, fb = a[k], b[k]
            if fa.definition == fb.definition:
                continue
            self.d("procedure" if fb.kind == "p" else "function", k, "different",
                   _first_difference(fa.definition, fb.definition))
            refs = self.a.depends.get(f"function:{k}", set())
            uses_gone = any(r in (f"table:{t}",) for r in refs for t in self.dropped_tables) or any(
                r.startswith("column:") and (r[7:] in self.dropped_columns
                                             or r[7:].rsplit(".", 1)[0] in self.dropped_tables) for r in refs)
            if (fa.kind, fa.arguments, fa.result) == (fb.kind, fb.arguments, fb.result) and not uses_gone:
                self.function_replace_in_place.append(fb)
            else:
                self.replaced.add(f"function:{k}")

    # dependents ----------------------------------------------------------------------------------------------
    def force_dependents(self) -> None:
        reverse: dict[str, set[str]] = defaultdict(set)
        for dep, refs in self.a.depends.items():
            for ref in refs:
                reverse[ref].add(dep)
        seeds = set(self.dropped) | set(self.replaced) | {f"column:{c}" for c in self.dropped_columns}
        seeds |= getattr(self, "enum_recreated", set())
        for q in self.dropped_tables:  # what reads a dropped (or re-created) table's columns goes first
            seeds |= {f"column:{q}.{c}" for c in self.a.tables[q].columns}
        for col in self.retyped_columns:
            for dep in reverse.get(f"column:{col}", ()):
                kind = dep.split(":", 1)[0]
                if kind in ("view", "policy", "trigger") or (
                        kind == "constraint" and self.a.constraints.get(dep.split(":", 1)[1]) is not None
                        and self.a.constraints[dep.split(":", 1)[1]].type in ("c", "f")):
                    seeds.add(dep)
                    self._force(dep)
        todo = list(seeds)
        seen = set(seeds)
        while todo:
            ref = todo.pop()
            for dep in reverse.get(ref, ()):
                if dep in seen:
                    continue
                kind = dep.split(":", 1)[0]
                if kind in ("table", "column", "sequence", "type"):
                    continue
                seen.add(dep)
                self._force(dep)
                todo.append(dep)

    def _force(self, key: str) -> None:
        kind, name = key.split(":", 1)
        if kind == "default":
            table = name.rsplit(".", 1)[0]
            if table not in self.dropped_tables and name not in self.dropped_columns:
                self.reset_defaults.add(name)
            return
        if key in self.dropped or key in self.replaced:
            return
        objects = {"view": (self.a.views, self.b.views), "constraint": (self.a.constraints, self.b.constraints),
                   "index": (self.a.indexes, self.b.indexes), "trigger": (self.a.triggers, self.b.triggers),
                   "policy": (self.a.policies, self.b.policies), "function": (self.a.functions, self.b.functions)}
        if kind not in objects:
            return
        a, b = objects[kind]
        if name not in a or self._on_dropped_table(kind, a[name]):
            return
        if name in b:
            self.replaced.add(key)
            self.notes.append(f"{kind} {name} is dropped and created again: it depends on a changed object")
        else:
            self.dropped.add(key)
        if kind == "function":
            self.function_replace_in_place = [f for f in self.function_replace_in_place if f.key != name]

    # emitting drops and creates ------------------------------------------------------------------------------
    def emit_objects(self) -> None:
        a, b = self.a, self.b
        for q in sorted(set(a.sequences) & set(b.sequences)):
            sa, sb = a.sequences[q], b.sequences[q]
            if sa.owned_by and sb.owned_by and sa.owned_by != sb.owned_by and self._owner_gone(sa.owned_by):
                # its old column or table is dropped: let go of it first, or the sequence goes with it
                self.add(9, "sequence", q, "alter", f"ALTER SEQUENCE {q} OWNED BY NONE")
        gone = self.dropped | self.replaced
        # drops (dependents first)
        for key in sorted(gone):
            kind, name = key.split(":", 1)
            if kind == "policy":
                p = a.policies[name]
                self.add(10, "policy", name, "drop", f"DROP POLICY {p.name} ON {p.table}", lock=AE, authorization=True)
            elif kind == "trigger":
                t = a.triggers[name]
                self.add(11, "trigger", name, "drop", f"DROP TRIGGER {t.name} ON {t.table}", lock=AE)
            elif kind == "constraint":
                c = a.constraints[name]
                self.add(13 if c.type == "f" else 14, self._kind("constraint", c), name, "drop",
                         f"ALTER TABLE {c.table} DROP CONSTRAINT {c.name}", lock=AE)
            elif kind == "index":
                i = a.indexes[name]
                if f"view:{i.table}" in gone or i.parent_index:
                    continue  # goes with its materialized view / with its partitioned index or column
                self.add(15, "index", name, "drop", f"DROP INDEX {name}", lock=AE)
        for name in self._topo([k.split(":", 1)[1] for k in gone if k.startswith("function:")], a, reverse=True,
                               kind="function"):
            f = a.functions[name]
            reads = any(r.startswith(("table:", "column:", "view:")) for r in a.depends.get(f"function:{name}", ()))
            self.add(16.4 if reads else 16.5 if f.uses_rowtype else 19, "procedure" if f.kind == "p" else "function",
                     name, "drop",
                     f"DROP {'PROCEDURE' if f.kind == 'p' else 'FUNCTION'} {name}", lock=AE)
        # foreign keys between tables that are all dropped: dropped first, so the tables can go in any order
        for key, c in sorted(a.constraints.items()):
            if c.type != "f" or c.table not in self.dropped_tables:
                continue
            refs = {r.split(":", 1)[1].rsplit(".", 1)[0] if r.startswith("column:") else r.split(":", 1)[1]
                    for r in a.depends.get(f"constraint:{key}", ()) if r.startswith(("table:", "column:"))}
            if any(r != c.table and r in self.dropped_tables for r in refs):
                t = a.tables.get(c.table)
                if t is not None and t.parent and t.parent in self.dropped_tables:
                    continue
                self.add(13, "foreign key", key, "drop", f"ALTER TABLE {c.table} DROP CONSTRAINT {c.name}", lock=AE)
        for name in self._topo([k.split(":", 1)[1] for k in gone if k.startswith("view:")], a, reverse=True):
            v = a.views[name]
            self.add(12, self._kind("view", v), name, "drop",
                     f"DROP {'MATERIALIZED VIEW' if v.materialized else 'VIEW'} {name}", lock=AE,
                     data_loss=False)
        for s in getattr(self, "_pending_seq_drops", []):
            if not self._owner_gone(s.owned_by):
                self.add(46, "sequence", s.qname, "drop", f"DROP SEQUENCE {s.qname}", lock=AE)
        # creates (from B)
        created = set(self.replaced) | self.create_only | {f"constraint:{k}" for k in set(b.constraints) - set(a.constraints)} \
            | {f"index:{k}" for k in set(self.b_plain_indexes) - set(self.a_plain_indexes)} \
            | {f"view:{k}" for k in set(b.views) - set(a.views)} \
            | {f"trigger:{k}" for k in set(b.triggers) - set(a.triggers)} \
            | {f"policy:{k}" for k in set(b.policies) - set(a.policies)} \
            | {f"function:{k}" for k in set(b.functions) - set(a.functions)}
        self.created = created
        for name in self._topo([k.split(":", 1)[1] for k in created if k.startswith("function:")], b,
                               kind="function"):
            f = b.functions[name]
            self.add(self._function_phase(f), "procedure" if f.kind == "p" else "function", name, "create",
                     f.definition)
        for key in sorted(created):
            kind, name = key.split(":", 1)
            if kind == "constraint":
                c = b.constraints[name]
                scan = "NOT VALID" not in c.definition and c.type in ("c", "f")
                self.add(39 if c.type == "f" else 37, self._kind("constraint", c), name, "create",
                         f"ALTER TABLE {c.table} ADD CONSTRAINT {c.name} {c.definition}",
                         lock="SHARE ROW EXCLUSIVE" if c.type == "f" else AE,
                         note=("validates every row (add NOT VALID, then VALIDATE CONSTRAINT separately)"
                               if scan and c.table not in self.new_tables else None))
            elif kind == "index":
                i = b.indexes[name]
                on_view = i.table in b.views
                self.add(40.5 if on_view else 38, "index", name, "create", i.definition, lock="SHARE",
                         note=None if i.table in self.new_tables or "CONCURRENTLY" in i.definition else
                         "blocks writes while building; CREATE INDEX CONCURRENTLY avoids that (outside a transaction)")
            elif kind == "trigger":
                t = b.triggers[name]
                self.add(41, "trigger", name, "create", t.definition, lock="SHARE ROW EXCLUSIVE")
            elif kind == "policy":
                p = b.policies[name]
                sql = (f"CREATE POLICY {p.name} ON {p.table} AS {'PERMISSIVE' if p.permissive else 'RESTRICTIVE'} "
                       f"FOR {p.command} TO {', '.join(p.roles) or 'PUBLIC'}")
                if p.using is not None:
                    sql += f" USING ({p.using})"
                if p.check is not None:
                    sql += f" WITH CHECK ({p.check})"
                self.add(42, "policy", name, "create", sql, lock=AE, authorization=True)
        for name in self._topo([k.split(":", 1)[1] for k in created if k.startswith("view:")], b):
            v = b.views[name]
            opts = f" WITH ({', '.join(v.options)})" if v.options else ""
            body = v.definition.rstrip().rstrip(";")
            self.add(40, self._kind("view", v), name, "create",
                     f"CREATE {'MATERIALIZED VIEW' if v.materialized else 'VIEW'} {name}{opts} AS\n{body}")
        for f in self.function_replace_in_place:
            self.add(self._function_phase(f), "procedure" if f.kind == "p" else "function", f.key, "replace",
                     f.definition)
        # trigger enabled state
        for k, t in sorted(b.triggers.items()):
            ta = a.triggers.get(k)
            state = t.enabled
            before = "O" if (ta is None or f"trigger:{k}" in self.replaced or f"trigger:{k}" in self.create_only) \
                else ta.enabled
            if state != before:
                verb = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}[state]
                if ta is not None and ta.enabled != state:
                    self.d("trigger", k, "different", f"enabled {ta.enabled} -> {state}")
                self.add(41.5, "trigger", k, "alter", f"ALTER TABLE {t.table} {verb} TRIGGER {t.name}",
                         lock="SHARE ROW EXCLUSIVE")

    # partitioned indexes -------------------------------------------------------------------------------------
    def _auto_index_name(self, table: str, parent_def: str, taken: set[str]) -> str:
        """The name PostgreSQL gives the index it creates on a new partition for a partitioned index
        (table_columns_idx, with a number when taken)."""
        schema, raw = table.split(".", 1)
        raw = raw[1:-1].replace('""', '"') if raw.startswith('"') else raw
        base = f"{raw}_{'_'.join(_index_columns(parent_def))}"
        n = 0
        while True:
            raw_name = base + '_idx' + (str(n) if n else '')
            plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", raw_name)
            name = f"{schema}.{raw_name if plain else ident(raw_name)}"
            if name not in taken:
                taken.add(name)
                return name
            n += 1

    def partition_indexes(self) -> None:
        """Indexes of partitions attached to a partitioned index: created with ON ONLY on the parent, each
        partition's index created and attached (ALTER INDEX ... ATTACH PARTITION), or renamed where a new
        partition got PostgreSQL's automatic name."""
        a, b = self.a, self.b
        gone = self.dropped | self.replaced
        taken = set(a.indexes) | set(a.tables) | set(a.sequences) | set(a.views)
        taken |= {k for k, i in b.indexes.items() if not i.parent_index}
        for k, ib in sorted(b.indexes.items()):
            parent = ib.parent_index
            if not parent:
                continue
            parent_new = f"index:{parent}" in self.created
            ia = a.indexes.get(k)
            attach = f"ALTER INDEX {parent} ATTACH PARTITION {k}"
            if ib.table in self.new_tables:
                if parent_new:
                    self.add(38.2, "index", k, "create", ib.definition, lock="SHARE")
                    self.add(38.4, "index", k, "alter", attach, lock="SHARE UPDATE EXCLUSIVE")
                elif parent in b.indexes:
                    auto = self._auto_index_name(ib.table, b.indexes[parent].definition, taken)
                    if auto != k:
                        self.add(33.5, "index", k, "alter", f"ALTER INDEX {auto} RENAME TO {ident_of(k)}", lock=AE,
                                 note="the partition's index PostgreSQL created for the parent's index")
                continue
            if ia is not None and ia.parent_index == parent and not parent_new and f"index:{parent}" not in gone:
                continue  # attached already
            if ia is None and not parent_new:
                old = [x for x in a.indexes.values() if x.parent_index == parent and x.table == ib.table]
                if old:
                    self.d("index", k, "different", f"renamed from {old[0].qname}")
                    self.add(38.1, "index", k, "alter", f"ALTER INDEX {old[0].qname} RENAME TO {ident_of(k)}", lock=AE)
                    continue
            self.d("index", k, "missing" if ia is None else "different", f"attached to {parent}")
            if ia is not None and ia.parent_index is None and ia.definition != ib.definition:
                self.add(15, "index", k, "drop", f"DROP INDEX {k}", lock=AE)
                ia = None
            if ia is None or ia.parent_index is not None:
                self.add(38.2, "index", k, "create", ib.definition, lock="SHARE")
            self.add(38.4, "index", k, "alter", attach, lock="SHARE UPDATE EXCLUSIVE")

    def replica_identity(self) -> None:
        kw = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL"}
        for q, tb in sorted(self.b.tables.items()):
            ta = None if q in self.recreated_tables else self.a.tables.get(q)
            before = (ta.replica_identity, ta.replica_index) if ta else ("d", None)
            after = (tb.replica_identity, tb.replica_index)
            renewed = tb.replica_identity == "i" and ta is not None and (
                f"index:{tb.schema_}.{tb.replica_index}" in self.created
                or f"constraint:{q}.{tb.replica_index}" in self.created)
            if before == after and not renewed:
                continue
            if ta is not None and before != after:
                self.d("table", q, "different", f"replica identity {before[0]} -> {after[0]}")
            what = f"USING INDEX {tb.replica_index}" if tb.replica_identity == "i" else kw[tb.replica_identity]
            self.add(38.6, "table", q, "alter", f"ALTER TABLE ONLY {q} REPLICA IDENTITY {what}", lock=AE,
                     note="changes what logical replication sends for updates and deletes")

    def _function_phase(self, f: Function) -> float:
        """Functions are created before tables, except those whose (SQL-standard) body or signature uses a
        table, view or row type: those come after the tables (pg_depend says which)."""
        refs = self.b.depends.get(f"function:{f.key}", ())
        if f.uses_rowtype or any(r.startswith(("table:", "column:", "view:")) for r in refs):
            return 36
        return 32

    @staticmethod
    def _topo(names: list[str], model: DatabaseSchema, reverse: bool = False, kind: str = "view") -> list[str]:
        """Objects of one kind ordered so each comes after those it uses, by pg_depend (reverse: dependents
        first)."""
        wanted = set(names)
        order: list[str] = []
        state: dict[str, int] = {}
        prefix = f"{kind}:"

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            state[n] = 1
            for ref in sorted(model.depends.get(f"{prefix}{n}", ())):
                if ref.startswith(prefix):
                    r = ref.split(":", 1)[1]
                    if r in wanted and state.get(r) != 1:
                        visit(r)
            state[n] = 2
            order.append(n)

        for n in sorted(wanted):
            visit(n)
        return list(reversed(order)) if reverse else order

    # RLS flags, grants, comments -------------------------------------------------------------------------------
    def _base_acl(self, objtype: str, schema: str) -> frozenset[str]:
        """The privileges a new object gets in A (its default ACL) - what the plan starts from."""
        acl = self.a.default_acl
        glob = acl.get(f":{objtype}")
        if glob is not None:
            base = set(glob)
        else:
            base = {"PUBLIC:EXECUTE:f"} if objtype == "f" else set()
        base |= acl.get(f"{schema}:{objtype}", frozenset())
        return frozenset(base)

    def _grants(self, kind_kw: str, target: str, old: frozenset[str], new: frozenset[str], label: str,
                columns: str = "") -> None:
        if self.no_maintain:  # MAINTAIN exists from PostgreSQL 17 on: not comparable with an older server
            old = frozenset(g for g in old if ":MAINTAIN:" not in g)
            new = frozenset(g for g in new if ":MAINTAIN:" not in g)
        if old == new:
            return
        revoke = defaultdict(list)
        grant = defaultdict(list)
        for item in sorted(old - new):
            grantee, priv, _ = item.rsplit(":", 2)
            revoke[grantee].append(priv)
        for item in sorted(new - old):
            grantee, priv, grantable = item.rsplit(":", 2)
            grant[(grantee, grantable == "t")].append(priv)
        cols = f" ({columns})" if columns else ""
        for grantee, privs in sorted(revoke.items()):
            p = ", ".join(f"{x}{cols}" for x in privs)
            self.add(44, "grant", label, "alter", f"REVOKE {p} ON {kind_kw} {target} FROM {grantee}",
                     authorization=True)
        for (grantee, option), privs in sorted(grant.items()):
            p = ", ".join(f"{x}{cols}" for x in privs)
            self.add(44.1, "grant", label, "alter",
                     f"GRANT {p} ON {kind_kw} {target} TO {grantee}" + (" WITH GRANT OPTION" if option else ""),
                     authorization=True)
        detail = []
        if old - new:
            detail.append("revoke " + ", ".join(sorted(old - new)))
        if new - old:
            detail.append("grant " + ", ".join(sorted(new - old)))
        self.grant_drift.append((label, "; ".join(detail)))

    def _comment(self, what: str, label: str, old: str | None, new: str | None, fresh: bool) -> None:
        if fresh:
            old = None
        if old == new:
            return
        if not fresh:
            self.comment_drift.append(label)
        self.add(45, "comment", label, "alter", f"COMMENT ON {what} IS {lit(new)}")

    def default_privileges(self) -> None:
        """ALTER DEFAULT PRIVILEGES (of the role that compares) as in B: part of the schema dump too."""
        kinds = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
        builtin = {"f": frozenset({"PUBLIC:EXECUTE:f"}), "T": frozenset({"PUBLIC:USAGE:f"})}
        da, db = self.a.default_acl, self.b.default_acl
        for key in sorted(set(da) | set(db)):
            schema, objtype = key.split(":", 1)
            if objtype not in kinds or (schema and schema not in self.b.schemas):
                continue
            base = frozenset() if schema else builtin.get(objtype, frozenset())
            old, new = da.get(key, base), db.get(key, base)
            if old == new:
                continue
            where = f" IN SCHEMA {schema}" if schema else ""
            for item in sorted(old - new):
                grantee, priv, _ = item.rsplit(":", 2)
                self.add(44.2, "default privileges", key, "alter",
                         f"ALTER DEFAULT PRIVILEGES{where} REVOKE {priv} ON {kinds[objtype]} FROM {grantee}",
                         authorization=True)
            for item in sorted(new - old):
                grantee, priv, grantable = item.rsplit(":", 2)
                self.add(44.2, "default privileges", key, "alter",
                         f"ALTER DEFAULT PRIVILEGES{where} GRANT {priv} ON {kinds[objtype]} TO {grantee}"
                         + (" WITH GRANT OPTION" if grantable == "t" else ""), authorization=True)
            self.grant_drift.append((f"default privileges {schema or '(all schemas)'} {kinds[objtype].lower()}",
                                     f"{sorted(old)} -> {sorted(new)}"))

    def emit_attributes(self) -> None:
        a, b = self.a, self.b
        self.grant_drift: list[tuple[str, str]] = []
        self.comment_drift: list[str] = []
        # RLS flags
        for q, tb in sorted(b.tables.items()):
            ta = None if q in self.recreated_tables else a.tables.get(q)
            rls_a = ta.rls if ta else False
            force_a = ta.force_rls if ta else False
            if tb.rls != rls_a:
                if ta:
                    self.d("rls", q, "different", f"row level security {'enabled' if tb.rls else 'disabled'}")
                self.add(43, "rls", q, "alter",
                         f"ALTER TABLE {q} {'ENABLE' if tb.rls else 'DISABLE'} ROW LEVEL SECURITY", lock=AE,
                         authorization=True)
            if tb.force_rls != force_a:
                if ta:
                    self.d("rls", q, "different", f"force row level security {'on' if tb.force_rls else 'off'}")
                self.add(43, "rls", q, "alter",
                         f"ALTER TABLE {q} {'FORCE' if tb.force_rls else 'NO FORCE'} ROW LEVEL SECURITY", lock=AE,
                         authorization=True)
        # grants and comments, object by object
        for name, sb in sorted(b.schemas.items()):
            sa = a.schemas.get(name)
            self._grants("SCHEMA", name, sa.grants if sa else frozenset(), sb.grants, name)
            self._comment(f"SCHEMA {name}", name, sa.comment if sa else None, sb.comment, sa is None)
        for q, tb in sorted(b.tables.items()):
            ta = None if q in self.recreated_tables else a.tables.get(q)
            base = ta.grants if ta else self._base_acl("r", tb.schema_)
            self._grants("TABLE", q, base, tb.grants, q)
            self._comment(f"TABLE {q}", q, ta.comment if ta else None, tb.comment, ta is None)
            for c in tb.ordered_columns():
                key = f"{q}.{c.name}"
                ca = ta.columns.get(c.name) if ta else None
                fresh = ca is None or key in self.dropped_columns
                self._grants("TABLE", q, frozenset() if fresh else ca.grants, c.grants, key, columns=c.name)
                self._comment(f"COLUMN {key}", key, None if fresh else ca.comment, c.comment, fresh)
        for q, vb in sorted(b.views.items()):
            va = a.views.get(q)
            fresh = va is None or f"view:{q}" in self.replaced
            schema = q.split(".", 1)[0]
            self._grants("TABLE", q, self._base_acl("r", schema) if fresh else va.grants, vb.grants, q)
            self._comment(f"{'MATERIALIZED VIEW' if vb.materialized else 'VIEW'} {q}", q,
                          None if fresh else va.comment, vb.comment, fresh)
        for q, sb in sorted(b.sequences.items()):
            sa = a.sequences.get(q)
            schema = q.split(".", 1)[0]
            self._grants("SEQUENCE", q, self._base_acl("S", schema) if sa is None else sa.grants, sb.grants, q)
            self._comment(f"SEQUENCE {q}", q, sa.comment if sa else None, sb.comment, sa is None)
        for k, fb in sorted(b.functions.items()):
            fa = a.functions.get(k)
            fresh = fa is None or f"function:{k}" in self.replaced
            kw = "PROCEDURE" if fb.kind == "p" else "FUNCTION"
            schema = fb.qname.split(".", 1)[0]
            self._grants(kw, k, self._base_acl("f", schema) if fresh else fa.grants, fb.grants, k)
            self._comment(f"{kw} {k}", k, None if fresh else fa.comment, fb.comment, fresh)
        for q, tb in sorted(b.types.items()):
            ta = a.types.get(q)
            fresh = ta is None or f"type:{q}" in self.replaced or f"type:{q}" in getattr(self, "enum_recreated", ())
            self._comment(f"{'DOMAIN' if tb.kind == 'domain' else 'TYPE'} {q}", q, None if fresh else ta.comment,
                          tb.comment, fresh)
        for kind, what, objs_a, objs_b in (("constraint", "CONSTRAINT", a.constraints, b.constraints),
                                           ("trigger", "TRIGGER", a.triggers, b.triggers),
                                           ("policy", "POLICY", a.policies, b.policies)):
            for k, ob in sorted(objs_b.items()):
                oa = objs_a.get(k)
                fresh = oa is None or f"{kind}:{k}" in self.replaced or f"{kind}:{k}" in self.create_only
                self._comment(f"{what} {ob.name} ON {ob.table}", k, None if fresh else oa.comment, ob.comment, fresh)
        for k, ib in sorted(b.indexes.items()):
            ia = a.indexes.get(k)
            fresh = ia is None or f"index:{k}" in self.replaced or f"index:{k}" in self.create_only \
                or ib.table in self.recreated_tables
            self._comment(f"INDEX {k}", k, None if fresh else ia.comment, ib.comment, fresh)
        self.default_privileges()
        for label, detail in self.grant_drift:
            self.d("grant", label, "different", detail)
        for label in self.comment_drift:
            self.d("comment", label, "different")


def ident_of(qname: str) -> str:
    """The (quoted) object name of a qualified 'schema.name'."""
    return qname.split(".", 1)[1]


def _own_objects(m: DatabaseSchema) -> DatabaseSchema:
    """A partition's copies of its parent's constraints and triggers are planned on the parent only."""
    m = m.model_copy()
    m.constraints = {k: c for k, c in m.constraints.items() if not c.inherited}
    m.triggers = {k: t for k, t in m.triggers.items() if not t.inherited}
    return m


def diff_schemas(a: DatabaseSchema, b: DatabaseSchema) -> Plan:
    """The drift between A and B, and the ordered, classified plan that turns A into B."""
    own_a, own_b = _own_objects(a), _own_objects(b)
    # a partition's own constraint or trigger that B has attached to its parent's: adopted by the parent's
    # ADD CONSTRAINT / CREATE TRIGGER, not dropped
    own_a.constraints = {k: c for k, c in own_a.constraints.items()
                         if not (k in b.constraints and b.constraints[k].inherited)}
    own_a.triggers = {k: t for k, t in own_a.triggers.items() if not (k in b.triggers and b.triggers[k].inherited)}
    differ = _Differ(own_a, own_b)
    return differ.run()
