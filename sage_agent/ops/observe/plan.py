"""EXPLAIN (FORMAT JSON) plans: parsed into a tree, rendered readably, and analysed for findings.

Pure functions (no database): `parse_plan(json)`, `render_plan(root)`, `analyse_plan(root, catalog)`.
The catalog facts the analysis needs (table sizes, leading index columns) are passed in as a
`PlanCatalog`, fetched by `plan_catalog(conn, root)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from sage_agent.ops.result import Finding

LARGE_TABLE_ROWS = 10_000      # a sequential scan over at least this many rows is worth a look
MISESTIMATE_FACTOR = 10        # estimated vs actual rows off by 10x or more
MISESTIMATE_MIN_ROWS = 100     # ...and the larger of the two is at least this
NESTED_LOOP_ROWS = 1_000       # outer rows (or inner loops) above this make a nested loop expensive
FILTER_DISCARD_RATIO = 0.9     # a filter that removes 90%+ of the rows it reads
FILTER_MIN_REMOVED = 1_000


@dataclass
class PlanNode:
    node_type: str
    raw: dict[str, Any]
    children: list["PlanNode"] = field(default_factory=list)
    depth: int = 0
    parent_relationship: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def relation(self) -> str | None:
        return self.raw.get("Relation Name")

    @property
    def schema(self) -> str | None:
        return self.raw.get("Schema")

    @property
    def alias(self) -> str | None:
        return self.raw.get("Alias")

    @property
    def plan_rows(self) -> float:
        return float(self.raw.get("Plan Rows") or 0)

    @property
    def actual_rows(self) -> float | None:
        value = self.raw.get("Actual Rows")
        return None if value is None else float(value)

    @property
    def loops(self) -> float:
        return float(self.raw.get("Actual Loops") or 1)

    @property
    def analysed(self) -> bool:
        return "Actual Rows" in self.raw

    @property
    def total_time(self) -> float | None:
        """Inclusive time of this node over all loops (ms)."""
        t = self.raw.get("Actual Total Time")
        return None if t is None else float(t) * self.loops

    @property
    def self_time(self) -> float | None:
        total = self.total_time
        if total is None:
            return None
        kids = sum((c.total_time or 0) for c in self.children
                   if c.parent_relationship not in ("InitPlan", "SubPlan"))
        return max(total - kids, 0.0)

    def walk(self) -> Iterator["PlanNode"]:
        yield self
        for child in self.children:
            yield from child.walk()

    def label(self) -> str:
        text = self.node_type
        join_type = self.get("Join Type")
        if join_type and join_type != "Inner":
            text = f"{text} ({join_type})"
        if self.get("Index Name"):
            text += f" using {self.get('Index Name')}"
        if self.relation:
            rel = f"{self.schema}.{self.relation}" if self.schema else self.relation
            text += f" on {rel}"
            if self.alias and self.alias != self.relation:
                text += f" {self.alias}"
        elif self.get("CTE Name"):
            text += f" on {self.get('CTE Name')}"
        elif self.get("Function Name"):
            text += f" on {self.get('Function Name')}()"
        return text

    def conditions(self) -> list[str]:
        out = []
        for key in ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter",
                    "Sort Key", "Group Key", "One-Time Filter"):
            value = self.get(key)
            if value:
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                out.append(f"{key}: {value}")
        return out


@dataclass
class PlanCatalog:
    """Facts about the relations a plan touches: estimated rows, and leading index columns."""

    table_rows: dict[str, float] = field(default_factory=dict)            # relname -> reltuples
    leading_columns: dict[str, set[str]] = field(default_factory=dict)    # relname -> {first index column}


def parse_plan(doc: Any) -> tuple[PlanNode, dict[str, Any]]:
    """`EXPLAIN (FORMAT JSON)` output (list, dict or text) -> (root node, top-level facts)."""
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    if isinstance(doc, list):
        doc = doc[0]
    top = {k: v for k, v in doc.items() if k != "Plan"}

    def build(raw: dict[str, Any], depth: int) -> PlanNode:
        node = PlanNode(raw.get("Node Type", "?"), raw, depth=depth, parent_relationship=raw.get("Parent Relationship"))
        node.children = [build(c, depth + 1) for c in raw.get("Plans", []) or []]
        return node

    return build(doc["Plan"], 0), top


def _fmt_rows(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _buffers(node: PlanNode) -> str:
    parts = []
    for key, short in (("Shared Hit Blocks", "hit"), ("Shared Read Blocks", "read"),
                       ("Shared Dirtied Blocks", "dirtied"), ("Temp Read Blocks", "temp read"),
                       ("Temp Written Blocks", "temp written")):
        value = node.get(key)
        if value:
            parts.append(f"{short}={value}")
    return " ".join(parts)


def render_plan(root: PlanNode) -> tuple[list[str], list[list[Any]]]:
    """The plan as (text lines of a tree, table rows: node, cost, est rows, actual rows, loops, ms, self ms, buffers)."""
    lines: list[str] = []
    rows: list[list[Any]] = []
    total = root.total_time or 0.0

    def visit(node: PlanNode, prefix: str, last: bool, is_root: bool) -> None:
        branch = "" if is_root else ("└─ " if last else "├─ ")
        head = f"{prefix}{branch}{node.label()}"
        cost = f"cost={node.get('Startup Cost', 0):.2f}..{node.get('Total Cost', 0):.2f}"
        est = f"rows={_fmt_rows(node.plan_rows)}"
        info = f"({cost} {est})"
        if node.analysed:
            info += (f" (actual {node.get('Actual Total Time', 0):.3f} ms rows={_fmt_rows(node.actual_rows)} "
                     f"loops={node.loops:.0f})")
        buf = _buffers(node)
        if buf:
            info += f" [buffers {buf}]"
        lines.append(f"{head} {info}")
        child_prefix = prefix + ("" if is_root else ("   " if last else "│  "))
        for cond in node.conditions():
            lines.append(f"{child_prefix}{'│  ' if node.children else '   '}{cond}")
        if node.get("Sort Method"):
            lines.append(f"{child_prefix}{'│  ' if node.children else '   '}Sort Method: {node.get('Sort Method')} "
                         f"{node.get('Sort Space Used', '')}kB ({node.get('Sort Space Type', '')})")
        removed = node.get("Rows Removed by Filter")
        if removed:
            lines.append(f"{child_prefix}{'│  ' if node.children else '   '}Rows Removed by Filter: {removed:,.0f}")
        self_ms = node.self_time
        rows.append([
            f"{prefix}{branch}{node.label()}",
            round(float(node.get("Total Cost", 0)), 2),
            int(node.plan_rows),
            None if node.actual_rows is None else int(node.actual_rows),
            None if not node.analysed else int(node.loops),
            None if node.total_time is None else round(node.total_time, 3),
            None if self_ms is None else (f"{self_ms:.3f} ({100 * self_ms / total:.0f}%)" if total else f"{self_ms:.3f}"),
            buf,
        ])
        for i, child in enumerate(node.children):
            visit(child, child_prefix, i == len(node.children) - 1, False)

    visit(root, "", True, True)
    return lines, rows


_JOIN_KEY = re.compile(r"\(?\s*\(?(?P<a>[A-Za-z_][\w$]*)\.(?P<acol>[A-Za-z_][\w$]*|\"[^\"]+\")\)?(?:::[\w ]+)?\s*=\s*"
                       r"\(?(?P<b>[A-Za-z_][\w$]*)\.(?P<bcol>[A-Za-z_][\w$]*|\"[^\"]+\")\)?")


def _scans_under(node: PlanNode) -> dict[str, PlanNode]:
    """alias (or relation name) -> scan node, for every scan under node."""
    out: dict[str, PlanNode] = {}
    for n in node.walk():
        if n.relation:
            out[n.alias or n.relation] = n
    return out


def _rows_read(node: PlanNode) -> float:
    """Rows a scan read: actual rows plus the ones its filter removed, per all loops; or the estimate."""
    if node.analysed:
        return ((node.actual_rows or 0) + float(node.get("Rows Removed by Filter") or 0)) * node.loops
    return node.plan_rows


def analyse_plan(root: PlanNode, catalog: PlanCatalog | None = None, *, max_per_rule: int = 5) -> list[Finding]:
    """Findings on a parsed plan. Deterministic, no database access. At most `max_per_rule` findings per rule
    (the first ones in plan order, i.e. nearest the top); the rest are counted in one `plan.more` finding."""
    catalog = catalog or PlanCatalog()
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()

    def add(rule: str, key: str, **kw: Any) -> None:
        if (rule, key) not in seen:
            seen.add((rule, key))
            findings.append(Finding(rule=rule, **kw))

    for node in root.walk():
        nt = node.node_type
        where = node.label()
        # 1. sequential scan on a large table
        if nt in ("Seq Scan", "Parallel Seq Scan") and node.relation:
            table_rows = catalog.table_rows.get(node.relation, 0.0)
            read = _rows_read(node)
            size = max(table_rows, read if node.analysed else 0.0)
            if size >= LARGE_TABLE_ROWS:
                cond = node.get("Filter")
                fix = ("an index on the filtered column(s) lets PostgreSQL skip most rows: *optimize QUERY proposes one"
                       if cond else "a full read of a large table: add a WHERE clause, a LIMIT, or accept it for reports")
                add("plan.seq_scan_large", node.relation, severity="warning",
                    message=f"sequential scan on {node.relation} (~{_fmt_rows(size)} rows)"
                            + (f" filtering {cond}" if cond else ""),
                    location=where, fix=fix)
        # 2. row misestimates
        if node.analysed and node.actual_rows is not None:
            est, act = node.plan_rows, node.actual_rows
            hi, lo = max(est, act), max(min(est, act), 1.0)
            if hi >= MISESTIMATE_MIN_ROWS and hi / lo >= MISESTIMATE_FACTOR:
                direction = "under" if act > est else "over"
                add("plan.misestimate", f"{id(node)}", severity="warning",
                    message=f"row estimate {direction} by {hi / lo:.0f}x: estimated {_fmt_rows(est)}, "
                            f"actual {_fmt_rows(act)} per loop",
                    location=where,
                    fix="ANALYZE the table(s); for correlated columns CREATE STATISTICS (dependencies, ndistinct); "
                        "raise the column's statistics target if values are skewed")
        # 3. sorts and hashes spilling to disk
        if nt in ("Sort", "Incremental Sort") and (node.get("Sort Space Type") == "Disk"
                                                   or "external" in str(node.get("Sort Method", ""))):
            add("plan.sort_spill", f"{id(node)}", severity="warning",
                message=f"sort spilled to disk ({node.get('Sort Method')}, {node.get('Sort Space Used', '?')} kB)",
                location=where, fix="raise work_mem for this query (SET LOCAL work_mem = '64MB') or sort fewer rows; "
                                    "an index matching the ORDER BY avoids the sort")
        if nt == "Hash" and int(node.get("Hash Batches") or 1) > 1:
            add("plan.hash_spill", f"{id(node)}", severity="warning",
                message=f"hash used {node.get('Hash Batches')} batches (spilled to disk; "
                        f"{node.get('Peak Memory Usage', '?')} kB in memory)",
                location=where, fix="raise work_mem (or hash_mem_multiplier), or join fewer rows")
        elif node.get("Temp Written Blocks") and nt not in ("Sort", "Hash", "Incremental Sort") and not node.children:
            add("plan.temp_spill", f"{id(node)}", severity="info",
                message=f"wrote {node.get('Temp Written Blocks')} temporary blocks", location=where,
                fix="raise work_mem for this query")
        # 4. nested loops over many rows
        if nt == "Nested Loop" and len(node.children) == 2:
            outer, inner = node.children
            outer_rows = (outer.actual_rows or 0) * outer.loops if outer.analysed else outer.plan_rows
            inner_loops = inner.loops if inner.analysed else outer_rows
            inner_scan = next((n for n in inner.walk() if n.relation), None)
            inner_is_index = any(n.node_type in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
                                 for n in inner.walk())
            if (outer_rows >= NESTED_LOOP_ROWS and not inner_is_index) or inner_loops >= 100 * NESTED_LOOP_ROWS:
                add("plan.nested_loop_rows", f"{id(node)}", severity="warning",
                    message=f"nested loop runs its inner side {_fmt_rows(inner_loops)} times"
                            + (f" ({inner.label()})" if inner_scan else ""),
                    location=where,
                    fix="an index on the inner join key turns each loop into a lookup; if row estimates are off, "
                        "ANALYZE so the planner can pick a hash join")
        # 5. filters discarding most rows
        removed = float(node.get("Rows Removed by Filter") or 0) * (node.loops if node.analysed else 1)
        if node.analysed and removed >= FILTER_MIN_REMOVED:
            kept = (node.actual_rows or 0) * node.loops
            ratio = removed / max(removed + kept, 1)
            if ratio >= FILTER_DISCARD_RATIO:
                add("plan.filter_discards", f"{id(node)}", severity="warning",
                    message=f"filter removed {ratio:.0%} of the rows read ({_fmt_rows(removed)} removed, "
                            f"{_fmt_rows(kept)} kept): {node.get('Filter')}",
                    location=where, fix="an index (or partial index) on the filter's columns reads only the rows kept")
        # 6. joins without an index on the key
        if nt in ("Hash Join", "Merge Join", "Nested Loop"):
            cond = node.get("Hash Cond") or node.get("Merge Cond") or node.get("Join Filter") or ""
            scans = _scans_under(node)
            if nt == "Nested Loop" and not cond and len(node.children) == 2:
                cond = " ".join(str(n.get("Index Cond") or n.get("Filter") or "") for n in node.children[1].walk())
            for m in _JOIN_KEY.finditer(str(cond)):
                for alias, col in ((m["a"], m["acol"]), (m["b"], m["bcol"])):
                    scan = scans.get(alias)
                    if scan is None or not scan.relation:
                        continue
                    rel, col = scan.relation, col.strip('"')
                    size = max(catalog.table_rows.get(rel, 0.0), _rows_read(scan))
                    if size < LARGE_TABLE_ROWS or rel not in catalog.leading_columns and not catalog.table_rows:
                        continue
                    if col in catalog.leading_columns.get(rel, set()):
                        continue
                    add("plan.join_without_index", f"{rel}.{col}", severity="warning",
                        message=f"join key {rel}.{col} has no index leading with it (~{_fmt_rows(size)} rows)",
                        location=where,
                        fix=f"CREATE INDEX CONCURRENTLY ON {scan.schema + '.' if scan.schema else ''}{rel} ({col});")
    kept: list[Finding] = []
    dropped: dict[str, int] = {}
    per_rule: dict[str, int] = {}
    for f in findings:
        per_rule[f.rule] = per_rule.get(f.rule, 0) + 1
        if per_rule[f.rule] <= max_per_rule:
            kept.append(f)
        else:
            dropped[f.rule] = dropped.get(f.rule, 0) + 1
    if dropped:
        kept.append(Finding(rule="plan.more", severity="info",
                            message="more of the same: " + ", ".join(f"{n} x {r}" for r, n in sorted(dropped.items())),
                            fix="--markdown (or --json data.plan) shows the whole plan"))
    return kept


def relations_in(root: PlanNode) -> set[str]:
    return {n.relation for n in root.walk() if n.relation}


def plan_catalog(conn, root: PlanNode) -> PlanCatalog:
    """Table sizes and leading index columns for the relations a plan reads (one query)."""
    names = sorted(relations_in(root))
    catalog = PlanCatalog()
    if not names:
        return catalog
    rows = conn.execute(
        """select c.relname, greatest(c.reltuples, 0)::float8,
                  coalesce(array_agg(a.attname) filter (where a.attname is not null), '{}')
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             left join pg_index i on i.indrelid = c.oid
             left join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0] and i.indkey[0] <> 0
            where c.relname = any(%s) and c.relkind in ('r', 'p', 'm')
              and n.nspname not in ('pg_catalog', 'information_schema')
            group by c.relname, c.reltuples""", (names,)).fetchall()
    for relname, reltuples, cols in rows:
        catalog.table_rows[relname] = max(catalog.table_rows.get(relname, 0.0), float(reltuples or 0))
        catalog.leading_columns.setdefault(relname, set()).update(cols or [])
    return catalog
