"""*optimize: index candidates from predicates, joins and ORDER BY (sqlglot, qualified against the real
catalog), checked against existing indexes, evaluated as hypothetical indexes with hypopg when the server
has it, and rewrite advice. The database is never changed: hypopg runs in a transaction that is rolled back."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sage_agent.ops.observe.sqlexec import SqlRefused, server_error
from sage_agent.ops.result import Finding, OpResult, Table
from sage_agent.sqlkit.idents import readable

MIN_IMPROVEMENT = 0.10   # a what-if index must cut the plan cost by 10% to be recommended


@dataclass
class Candidate:
    schema: str
    table: str
    columns: list[str]
    reason: str
    covered_by: str | None = None        # an existing index with these leading columns
    partial: str | None = None           # an existing index leading with the first column only
    cost_before: float | None = None
    cost_after: float | None = None
    used: bool | None = None
    verdict: str = "unverified"

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.schema, self.table, tuple(self.columns))

    def name(self) -> str:
        base = f"idx_{self.table}_{'_'.join(self.columns)}"
        return re.sub(r"[^a-z0-9_]", "_", base.lower())[:63]

    def ddl(self, concurrently: bool = True) -> str:
        cols = ", ".join(readable(c) for c in self.columns)
        return (f"create index {'concurrently ' if concurrently else ''}if not exists {readable(self.name())} "
                f"on {readable(self.schema, self.table)} ({cols});")




@dataclass
class TableInfo:
    schema: str
    name: str
    columns: dict[str, str] = field(default_factory=dict)           # name -> type
    indexes: list[dict[str, Any]] = field(default_factory=list)     # name, method, columns, unique, partial
    rows: float = 0.0


def load_tables(conn, names: list[tuple[str | None, str]]) -> dict[tuple[str, str], TableInfo]:
    """Columns, row estimates and indexes (every access method) of the named tables."""
    out: dict[tuple[str, str], TableInfo] = {}
    if not names:
        return out
    rels = conn.execute(
        """select c.oid, n.nspname, c.relname, greatest(c.reltuples, 0)::float8
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'm', 'v', 'f') and c.relname = any(%s)
              and (n.nspname = any(current_schemas(false)) or n.nspname = any(%s))""",
        ([n for _, n in names], [s for s, _ in names if s])).fetchall()
    wanted = {(s, n) for s, n in names}
    for oid, schema, name, rows in rels:
        if (schema, name) not in wanted and (None, name) not in wanted:
            continue
        info = TableInfo(schema, name, rows=rows)
        for col, typ in conn.execute(
                "select attname, format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = %s and attnum > 0 and not attisdropped order by attnum", (oid,)).fetchall():
            info.columns[col] = typ
        for iname, method, cols, unique, partial in conn.execute(
                """select ic.relname, am.amname,
                          array(select coalesce(a.attname, pg_get_indexdef(i.indexrelid, k.ord::int, true))
                                  from unnest(i.indkey) with ordinality k(attnum, ord)
                                  left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                                 where k.ord <= i.indnkeyatts
                                 order by k.ord),
                          i.indisunique, i.indpred is not null
                     from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_am am on am.oid = ic.relam
                    where i.indrelid = %s""", (oid,)).fetchall():
            info.indexes.append({"name": iname, "method": method, "columns": list(cols), "unique": unique,
                                 "partial": partial})
        out[(schema, name)] = info
    return out


def _column_parts(col) -> tuple[str | None, str]:
    return (col.table or None), col.name


def _find_table(tables: dict[tuple[str, str], TableInfo], aliases: dict[str, tuple[str, str]], col) -> tuple[str, str] | None:
    qual, name = _column_parts(col)
    if qual:
        return aliases.get(qual)
    owners = [k for k, t in tables.items() if name in t.columns]
    return owners[0] if len(owners) == 1 else None


def analyse_query(sql_text: str, tables: dict[tuple[str, str], TableInfo]) -> tuple[list[Candidate], list[Finding]]:
    """Index candidates and rewrite advice from the query's AST (sqlglot)."""
    # lazy: sqlglot loads only when it is used
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql_text, read="postgres")
    try:  # qualify every column with its table, using the real catalog's columns
        # lazy: sqlglot loads only when it is used
        from sqlglot.optimizer.qualify import qualify

        schema: dict[str, dict[str, dict[str, str]]] = {}
        for (sch, name), info in tables.items():
            schema.setdefault(sch, {})[name] = dict(info.columns)
        tree = qualify(tree, schema=schema, dialect="postgres", db="public", expand_stars=False,
                       validate_qualify_columns=False, quote_identifiers=False, identify=False)
    except Exception:  # noqa: BLE001 - qualification is best effort; unqualified columns are resolved below
        pass
    aliases: dict[str, tuple[str, str]] = {}
    for t in tree.find_all(exp.Table):
        key = next((k for k in tables if k[1] == t.name and (not t.db or k[0] == t.db)), None)
        if key:
            aliases[t.alias_or_name] = key
            aliases[t.name] = key
    findings: list[Finding] = []
    eq: dict[tuple[str, str], list[str]] = {}
    rng: dict[tuple[str, str], list[str]] = {}
    joins: dict[tuple[str, str], list[str]] = {}

    def add(bucket: dict, key, col: str) -> None:
        if key and col not in bucket.setdefault(key, []):
            bucket[key].append(col)

    def is_column(node) -> bool:
        return isinstance(node, exp.Column)

    def const_like(node) -> bool:
        return isinstance(node, (exp.Literal, exp.Placeholder, exp.Parameter, exp.Null, exp.Boolean, exp.Cast)) \
            and not list(node.find_all(exp.Column))

    predicates = []
    for where in tree.find_all(exp.Where):
        predicates.append(where.this)
    for join in tree.find_all(exp.Join):
        if join.args.get("on") is not None:
            predicates.append(join.args["on"])
    for pred_root in predicates:
        for node in pred_root.find_all(exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like,
                                       exp.ILike, exp.Is, exp.NEQ):
            left, right = node.this, node.args.get("expression")
            if isinstance(node, exp.In) and node.args.get("query") is not None and isinstance(node.parent, exp.Not):
                findings.append(Finding(rule="rewrite.not_in_subquery", severity="warning", location=node.sql(dialect='postgres')[:80],
                                        message="NOT IN (subquery) returns no rows when the subquery yields a NULL, "
                                                "and cannot use an anti-join",
                                        fix="rewrite as NOT EXISTS (select 1 from ... where ... = outer.col)"))
            if is_column(left) and is_column(right) and isinstance(node, exp.EQ):
                lk, rk = _find_table(tables, aliases, left), _find_table(tables, aliases, right)
                if lk and rk and lk != rk:
                    add(joins, lk, left.name)
                    add(joins, rk, right.name)
                continue
            if is_column(right) and not is_column(left) and isinstance(node, (exp.EQ, exp.GT, exp.GTE, exp.LT,
                                                                               exp.LTE)):
                left, right = right, left
            if is_column(left):
                key = _find_table(tables, aliases, left)
                if isinstance(node, (exp.EQ, exp.In, exp.Is)):
                    add(eq, key, left.name)
                elif isinstance(node, (exp.Like, exp.ILike)):
                    pattern = right.this if isinstance(right, exp.Literal) else None
                    if isinstance(pattern, str) and pattern.startswith(("%", "_")):
                        findings.append(Finding(
                            rule="rewrite.leading_wildcard", severity="info", location=node.sql(dialect='postgres')[:80],
                            message=f"LIKE '{pattern}' starts with a wildcard: a btree index cannot help",
                            fix=f"CREATE EXTENSION pg_trgm; CREATE INDEX CONCURRENTLY ... USING gin "
                                f"({left.name} gin_trgm_ops)"))
                    elif isinstance(node, exp.Like):
                        add(rng, key, left.name)
                elif not isinstance(node, exp.NEQ):
                    add(rng, key, left.name)
                if key and isinstance(right, exp.Literal):
                    ctype = tables[key].columns.get(left.name, "")
                    numeric_col = re.match(r"(integer|bigint|smallint|numeric|real|double)", ctype)
                    textual_col = re.match(r"(text|character)", ctype)
                    if textual_col and not right.is_string:
                        findings.append(Finding(
                            rule="rewrite.implicit_cast", severity="warning", location=node.sql(dialect='postgres')[:80],
                            message=f"{left.name} is {ctype} but is compared with the number {right.this}: the column "
                                    "is cast for every row and its index is not used",
                            fix=f"compare with a string: {left.name} = '{right.this}'"))
                    elif numeric_col and right.is_string and not re.fullmatch(r"-?\d+(\.\d+)?", right.this):
                        findings.append(Finding(rule="rewrite.implicit_cast", severity="warning",
                                                location=node.sql(dialect='postgres')[:80],
                                                message=f"{left.name} is {ctype} but is compared with '{right.this}'",
                                                fix="compare with a value of the column's type"))
            elif isinstance(left, exp.Func) and list(left.find_all(exp.Column)) and (right is None or const_like(right)):
                col = next(left.find_all(exp.Column))
                key = _find_table(tables, aliases, col)
                if key:
                    indexed = any(ix["columns"] and ix["columns"][0] == col.name for ix in tables[key].indexes)
                    findings.append(Finding(
                        rule="rewrite.function_on_column", severity="warning", location=node.sql(dialect='postgres')[:80],
                        message=f"{left.sql(dialect='postgres')} wraps the column {col.name}"
                                + (" so its index is not used" if indexed else "") + "",
                        fix=f"create an expression index: CREATE INDEX CONCURRENTLY ON {key[0]}.{key[1]} "
                            f"(({left.sql(dialect='postgres')})); or compare the bare column (e.g. a range for dates)"))
        for orx in pred_root.find_all(exp.Or):
            cols = {c.name for c in orx.find_all(exp.Column)}
            if len(cols) > 1 and not isinstance(orx.parent, exp.Or):
                findings.append(Finding(rule="rewrite.or_across_columns", severity="info", location=orx.sql(dialect='postgres')[:80],
                                        message=f"OR across different columns ({', '.join(sorted(cols))}) often "
                                                "forces a sequential scan",
                                        fix="an index per column lets PostgreSQL use a BitmapOr; or rewrite as "
                                            "UNION (ALL) of two indexed queries"))
                break
    order_cols: dict[tuple[str, str], list[str]] = {}
    for order in tree.find_all(exp.Order):
        keys = []
        for o in order.expressions:
            col = o.this if isinstance(o.this, exp.Column) else None
            if col is None:
                keys = []
                break
            keys.append((_find_table(tables, aliases, col), col.name))
        if keys and len({k for k, _ in keys}) == 1 and keys[0][0]:
            order_cols[keys[0][0]] = [c for _, c in keys]
    for star in tree.find_all(exp.Star):
        if isinstance(star.parent, exp.Select) or isinstance(star.parent, exp.Column):
            findings.append(Finding(rule="rewrite.select_star", severity="info", location="SELECT *",
                                    message="SELECT * reads every column: no index-only scans, more I/O and network",
                                    fix="list the columns the caller needs"))
            break
    offset = tree.find(exp.Offset)
    if offset is not None:
        value = offset.expression
        if isinstance(value, exp.Literal) and not value.is_string and int(value.this) >= 1000:
            findings.append(Finding(rule="rewrite.offset_pagination", severity="warning",
                                    location=f"OFFSET {value.this}",
                                    message=f"OFFSET {value.this} reads and throws away {value.this} rows on every page",
                                    fix="keyset pagination: WHERE (sort_col, id) > (:last_sort, :last_id) "
                                        "ORDER BY sort_col, id LIMIT n"))
    candidates: list[Candidate] = []

    def add_candidate(key, cols: list[str], reason: str) -> None:
        if not key or not cols:
            return
        cand = Candidate(key[0], key[1], cols, reason)
        if all(c.key != cand.key for c in candidates):
            candidates.append(cand)

    for key in set(eq) | set(rng):
        cols = list(eq.get(key, []))
        if rng.get(key):
            cols.append(rng[key][0])
        elif order_cols.get(key):
            cols += [c for c in order_cols[key] if c not in cols]
        add_candidate(key, cols[:4], "WHERE " + ", ".join(cols[:4]))
    for key, cols in joins.items():
        for c in cols:
            add_candidate(key, [c], f"join key {c}")
    for key, cols in order_cols.items():
        if key not in eq and key not in rng:
            add_candidate(key, cols[:3], "ORDER BY " + ", ".join(cols[:3]))
    for cand in candidates:
        info = tables[(cand.schema, cand.table)]
        for ix in info.indexes:
            icols = ix["columns"]
            if icols[: len(cand.columns)] == cand.columns or (
                    len(cand.columns) > 1 and set(icols[: len(cand.columns)]) == set(cand.columns)
                    and not cand.reason.startswith("ORDER BY")):
                cand.covered_by = f"{ix['name']} ({ix['method']}: {', '.join(icols)})"
                cand.verdict = "exists"
                break
            if icols and icols[0] == cand.columns[0] and not cand.partial:
                cand.partial = f"{ix['name']} ({ix['method']}: {', '.join(icols)})"
    return candidates, findings


def _plan_cost(cur, text: str, params: int, major: int) -> tuple[float, Any]:
    if params and major >= 16:
        cur.execute("explain (format json, generic_plan) " + text)
    elif params:
        cur.execute("deallocate all")
        cur.execute("set local plan_cache_mode = force_generic_plan")
        cur.execute("prepare sage_opt as " + text)
        cur.execute(f"explain (format json) execute sage_opt({', '.join(['null'] * params)})")
    else:
        cur.execute("explain (format json) " + text)
    doc = cur.fetchone()[0]
    return float(doc[0]["Plan"]["Total Cost"]), doc


def _uses_index(doc: Any, oid: int) -> bool:
    return f"<{oid}>" in json.dumps(doc)


def optimize_query(ctx, sql_text: str, *, migration: bool) -> OpResult:
    # lazy: psycopg loads on the first database call; pglast (the SQL parser) loads only when SQL is parsed
    import psycopg

    from sage_agent.ops.observe.explain import max_param
    from sage_agent.ops.observe.sqlexec import begin_read_only, end_transaction, one_statement, parse_statements
    from sage_agent.sqlkit.classify import classify

    stmt = one_statement(parse_statements(sql_text), "*optimize takes one query", "optimize them one at a time")
    kind = type(stmt.node).__name__
    if kind not in ("SelectStmt", "UpdateStmt", "DeleteStmt"):
        raise SqlRefused(f"{classify(stmt).action} is not a query: *optimize works on SELECT, UPDATE and DELETE",
                         "for DDL use *lint", reason="not_query")
    info = classify(stmt, ctx.server.major)
    params = max_param(stmt.node)
    major = ctx.server.major
    names = []
    for obj in info.objects_touched:
        schema, _, name = obj.rpartition(".")
        names.append((schema if schema and schema != "public" else None, name))
    try:
        # lazy: sqlglot loads only when it is used
        import sqlglot

        sqlglot.parse_one(stmt.text, read="postgres")
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several error types
        raise SqlRefused(f"the query could not be analysed: {str(exc).splitlines()[0][:200]}",
                         "simplify the query or use *explain", reason="unsupported") from None
    conn = ctx.connect(autocommit=True)
    notes: list[str] = []
    with conn:
        cur = conn.cursor()
        try:
            begin_read_only(cur, ctx.settings.statement_timeout_ms, ctx.settings.lock_timeout_ms)
            tables = load_tables(conn, names)
            hypo = conn.execute(
                "select (select extversion from pg_extension where extname = 'hypopg'), "
                "exists (select 1 from pg_available_extensions where name = 'hypopg')").fetchone()
            cur.execute("rollback")
        except psycopg.Error as exc:
            raise server_error(exc, "reading the catalog") from None
        missing = [n for s, n in names if not any(k[1] == n for k in tables)]
        if missing:
            raise SqlRefused(f"table(s) not found: {', '.join(missing)}", "check the names (schema.table)",
                             reason="missing_table")
        candidates, findings = analyse_query(stmt.text, tables)
        hypopg_state = "installed" if hypo[0] else ("available" if hypo[1] else "missing")
        todo = [c for c in candidates if not c.covered_by]
        if hypopg_state != "missing":
            try:
                cur.execute("begin")
                cur.execute("select set_config('statement_timeout', %s, true)",
                            (f"{ctx.settings.statement_timeout_ms}ms",))
                if hypopg_state == "available":
                    cur.execute("create extension hypopg")
                    notes.append("hypopg was created inside a transaction that was rolled back (not left installed)")
                before, _ = _plan_cost(cur, stmt.text, params, major)
                for cand in todo:
                    cur.execute("select indexrelid from hypopg_create_index(%s)", (cand.ddl(concurrently=False),))
                    oid = cur.fetchone()[0]
                    after, doc = _plan_cost(cur, stmt.text, params, major)
                    cand.cost_before, cand.cost_after, cand.used = before, after, _uses_index(doc, oid)
                    cand.verdict = ("recommended" if cand.used and after <= before * (1 - MIN_IMPROVEMENT)
                                    else "no gain")
                    cur.execute("select hypopg_drop_index(%s)", (oid,))
            except psycopg.Error as exc:
                notes.append(f"hypopg evaluation failed ({str(exc).splitlines()[0]}): candidates unverified")
                for cand in todo:
                    cand.verdict = "unverified"
            finally:
                end_transaction(conn)
        else:
            notes.append("hypopg is not available on this server: candidates are unverified (Supabase: enable the "
                         "hypopg extension; Debian/Ubuntu: apt install postgresql-<major>-hypopg)")
    recommended = [c for c in todo if c.verdict in ("recommended", "unverified")]
    rows = [[f"{c.schema}.{c.table}", ", ".join(c.columns), c.reason, c.covered_by or c.partial or "",
             "" if c.cost_before is None else f"{c.cost_before:,.1f}",
             "" if c.cost_after is None else f"{c.cost_after:,.1f}",
             "" if c.cost_before in (None, 0) or c.cost_after is None
             else f"{100 * (1 - c.cost_after / c.cost_before):.0f}%", c.verdict] for c in candidates]
    for c in recommended:
        findings.insert(0, Finding(rule="index.candidate", severity="warning" if c.verdict == "recommended" else "info",
                                   location=f"{c.schema}.{c.table}",
                                   message=f"index on {c.table} ({', '.join(c.columns)}) for {c.reason}"
                                           + (f": cost {c.cost_before:,.0f} -> {c.cost_after:,.0f}"
                                              if c.cost_after is not None else " (unverified: no hypopg)"),
                                   fix=c.ddl()))
    ddl = [c.ddl() for c in recommended]
    artifacts = []
    if migration and ddl:
        folder = Path(ctx.project) / "supabase" / "migrations"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        path = folder / f"{stamp}_add_indexes_{recommended[0].table}.sql"
        path.write_text("-- Indexes proposed by *optimize (DB Sage).\n"
                        "-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block: apply this file on its\n"
                        "-- own (one statement per transaction); it does not block writes while it builds.\n"
                        + "\n".join(ddl) + "\n", encoding="utf-8")
        artifacts.append(str(path.relative_to(ctx.project)))
    elif migration:
        notes.append("no index to add: no migration file written")
    status = "warning" if any(f.severity == "warning" for f in findings) else "ok"
    summary = (f"{len(candidates)} index candidate(s), {sum(c.verdict == 'recommended' for c in candidates)} "
               f"recommended, {sum(c.verdict == 'exists' for c in candidates)} already indexed, "
               f"{sum(c.verdict == 'unverified' for c in candidates)} unverified; "
               f"{sum(f.rule.startswith('rewrite.') for f in findings)} rewrite hint(s)")
    return OpResult(operation="query-optimization", status=status, summary=summary,
                    facts={"hypopg": hypopg_state, "tables": ", ".join(f"{k[0]}.{k[1]}" for k in tables)},
                    tables=[Table(title="Index candidates", columns=["table", "columns", "from", "existing index",
                                                                     "cost before", "cost after", "gain", "verdict"],
                                  rows=rows)] if rows else [],
                    findings=findings, notes=notes + ([f"{d}" for d in ddl] if ddl else []), artifacts=artifacts,
                    next_steps=["*explain QUERY --analyze"] + (["*migration-new add_indexes"] if ddl and not migration
                                                               else []),
                    data={"candidates": [{"table": f"{c.schema}.{c.table}", "columns": c.columns, "reason": c.reason,
                                          "covered_by": c.covered_by, "cost_before": c.cost_before,
                                          "cost_after": c.cost_after, "used": c.used, "verdict": c.verdict,
                                          "ddl": c.ddl()} for c in candidates],
                          "ddl": ddl, "hypopg": hypopg_state})
