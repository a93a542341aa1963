"""*compare-schemas: drift between environments, snapshots or migrations, with a proven migration plan."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpResult, Table

EXIT_DRIFT = 4  # A and B differ (documented in the README's exit code table): lets CI gate on drift


class CompareInput(BaseModel):
    source: str
    target: str
    write_migration: bool = False
    name: str = "schema_sync"


def _plan_table(plan) -> Table:
    def shown(sql: str) -> str:
        return sql if len(sql) <= 600 else sql[:600] + " ... (full SQL: --markdown or the migration file)"

    rows = [[i + 1, s.action, s.kind, s.object, s.lock, ", ".join(s.flags()) or "-", shown(s.sql)]
            for i, s in enumerate(plan.steps)]
    return Table(title="Migration plan (A -> B), in order", columns=["#", "action", "kind", "object", "lock", "flags",
                                                                     "sql"], rows=rows)


class PartitionRoots:
    """Which partitioned table a partition, or an index, constraint, policy or trigger of a partition, belongs
    to (the root of its tree), from both models: what happens on 10,000 partitions is shown as one line."""

    def __init__(self, *models) -> None:
        self.parent: dict[str, str] = {}
        self.index_table: dict[str, str] = {}
        for m in models:
            self.parent.update({q: t.parent for q, t in m.tables.items() if t.parent})
            self.index_table.update({q: i.table for q, i in m.indexes.items()})

    def _table_root(self, qname: str) -> str | None:
        root = None
        for _ in range(64):  # partition trees are shallow; a bound, never a loop
            if qname not in self.parent:
                break
            qname = root = self.parent[qname]
        return root

    def __call__(self, obj: str, kind: str | None = None) -> str | None:
        if kind in (None, "table", "partition") and obj in self.parent:
            return self._table_root(obj)
        if kind in (None, "index") and obj in self.index_table:
            return self._table_root(self.index_table[obj])
        if kind in ("table", "partition", "index"):
            return None
        return self._table_root(".".join(obj.split(".")[:2]))


def _drift_rows(drift, roots: PartitionRoots | None = None) -> list[list]:
    """[kind, object, drift, detail], sorted; the partitions of one partitioned table grouped into one row."""
    order = {"missing": 0, "extra": 1, "different": 2}
    label = {"missing": "only in B", "extra": "only in A", "different": "differs"}
    rows: list[list] = []
    groups: dict[tuple[str, str, str], list] = {}
    for d in sorted(drift, key=lambda d: (d.kind, order[d.change], d.object)):
        root = roots(d.object, d.kind) if roots else None
        if root is None:
            rows.append([d.kind, d.object, label[d.change], d.detail])
            continue
        row = groups.get((d.kind, d.change, root))
        if row is None:
            row = groups[(d.kind, d.change, root)] = [d.kind, root, label[d.change], d.detail, 0]
            rows.append(row)
        row[4] += 1
    for (kind, _change, root), row in groups.items():
        n = row.pop()
        what = "partition" if kind in ("table", "partition") else kind
        row[1] = f"{n} partition{'s' if n > 1 else ''} of {root}" if what == "partition" else \
            f"on {n} partition{'s' if n > 1 else ''} of {root}"
    return rows


def _drift_table(plan, title: str, roots: PartitionRoots | None = None) -> Table:
    return Table(title=title, columns=["kind", "object", "drift", "detail"], rows=_drift_rows(plan.drift, roots))


def _group_findings(findings: list[Finding], roots: PartitionRoots) -> list[Finding]:
    """One finding per rule and partitioned table instead of one per partition."""
    out: list[Finding] = []
    groups: dict[tuple[str, str], list] = {}
    for f in findings:
        root = roots(f.location) if f.location else None
        if root is None:
            out.append(f)
            continue
        if (f.rule, root) in groups:
            groups[(f.rule, root)][1] += 1
            continue
        groups[(f.rule, root)] = [f, 1]
        out.append(f)
    for (_rule, root), (f, n) in groups.items():
        if n > 1:
            f.message += f" (and on {n - 1} more object(s) of the partitions of {root})"
    return out


_LINT_SKIP = {"require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts"}
_LOCK_RANK = {"none": 0, "ACCESS SHARE": 1, "ROW SHARE": 2, "ROW EXCLUSIVE": 3, "SHARE UPDATE EXCLUSIVE": 4,
              "SHARE": 5, "SHARE ROW EXCLUSIVE": 6, "EXCLUSIVE": 7, "ACCESS EXCLUSIVE": 8}


def _dump_table(missing: list[str], extra: list[str], title: str) -> Table:
    def short(stmt: str) -> str:
        one = " ".join(stmt.split())
        return one if len(one) <= 300 else one[:300] + " ..."

    rows = [["only in B (target)", short(x)] for x in missing] + [["not in B", short(x)] for x in extra]
    return Table(title=title, columns=["where", "statement (normalized pg_dump --schema-only)"], rows=rows[:200],
                 truncated=len(rows) > 200, total_rows=len(rows))


def _lint_plan(plan, server_major: int) -> list[Finding]:
    """The migration linter (sqlkit, squawk rules) over the plan: stronger locks and rewrites it knows about
    are folded into the steps' classification; its warnings become findings."""
    try:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.sqlkit.lint import lint_sql
    except ImportError:  # pragma: no cover - sqlkit missing
        return []
    lines: list[str] = []
    owner: dict[int, int] = {}
    for i, step in enumerate(plan.steps):
        text = step.sql.rstrip().rstrip(";") + ";"
        start = len(lines) + 1
        lines.extend(text.splitlines())
        for n in range(start, len(lines) + 1):
            owner[n] = i
    try:
        found = lint_sql("\n".join(lines) + "\n", "plan.sql", server_major=server_major or 18,
                         assume_in_transaction=True)
    except Exception:  # noqa: BLE001 - the linter must never break a comparison
        return []
    new_tables = {d.object for d in plan.drift if d.kind == "table" and d.change == "missing"}

    def on_new_table(sql: str) -> bool:
        return any(f"ALTER TABLE {t} " in sql or f" ON {t} " in sql for t in new_tables)

    findings = []
    for f in found:
        i = owner.get(f.line)
        if i is None:
            continue
        step = plan.steps[i]
        if on_new_table(step.sql):
            continue
        if f.lock and _LOCK_RANK.get(f.lock, 0) > _LOCK_RANK.get(step.lock, 0):
            step.lock = f.lock
        if f.rewrites:
            step.rewrite = True
        if f.rule in _LINT_SKIP or f.severity not in ("error", "warning"):
            continue
        findings.append(Finding(rule=f"lint.{f.rule}", severity="warning", message=f.message,
                                location=step.object, detail=step.sql.splitlines()[0][:200],
                                fix=f.safe_alternative or None))
    return findings


def _write_migration(project: Path, name: str, plan) -> list[Path]:
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "schema_sync"
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = int(time.strftime("%Y%m%d%H%M%S", time.gmtime()))
    written = []
    early = [s for s in plan.steps if not s.transactional]
    rest = [s for s in plan.steps if s.transactional]
    header = "-- Generated by DB Sage *compare-schemas; proven on a shadow copy before it was written.\n"
    if early:
        path = folder / f"{stamp}_{safe}_enum_values.sql"
        body = "".join(f"{s.sql};\n" for s in early)
        path.write_text(header + "-- New enum values: must be committed before they can be used.\n" + body)
        written.append(path)
        stamp += 1
    path = folder / f"{stamp}_{safe}.sql"
    lines = [header, "set lock_timeout = '5s';\nset check_function_bodies = off;\n"]
    for s in rest:
        tags = s.flags()
        lines.append(f"-- {s.action} {s.kind} {s.object}" + (f" [{', '.join(tags)}]" if tags else "") + "\n")
        lines.append(s.sql.rstrip().rstrip(";") + ";\n")
    path.write_text("".join(lines))
    written.append(path)
    return written


@operation("db-compare-schemas", risk="read")
def compare_schemas(inputs: CompareInput, ctx) -> OpResult:
    """Drift between A and B and the proven plan that turns A into B."""
    # lazy: the thread pool loads only for parallel work
    from sage_agent.ops.schema.compare import compare

    started = time.perf_counter()
    ctx.say(f"Comparing {inputs.source} (A) with {inputs.target} (B)")
    cmp = compare(ctx, inputs.source, inputs.target)
    plan, proof = cmp.plan, cmp.proof
    lint_findings = _lint_plan(plan, cmp.model_a.server_major) if plan.steps else []
    total = time.perf_counter() - started
    facts = {"A (source)": cmp.a.label, "B (target)": cmp.b.label,
             "objects A": sum(cmp.model_a.counts().values()), "objects B": sum(cmp.model_b.counts().values()),
             "differences": len(plan.drift), "plan steps": len(plan.steps),
             "proof": ("proven" if proof and proof.proven else "NOT proven"),
             "seconds": round(total, 2)}
    findings: list[Finding] = []
    tables: list[Table] = []
    notes = list(dict.fromkeys(cmp.notes + plan.notes))
    data = {"drift": [d.model_dump() for d in plan.drift], "steps": [s.model_dump() for s in plan.steps],
            "proven": bool(proof and proof.proven), "timings": {k: round(v, 4) for k, v in cmp.timings.items()},
            "counts_a": cmp.model_a.counts(), "counts_b": cmp.model_b.counts(), "drift_exists": cmp.drift,
            "blockers": list(plan.blockers),
            "dump_missing": list(proof.dump_missing) if proof else [],
            "dump_extra": list(proof.dump_extra) if proof else []}
    if not cmp.drift:
        return OpResult(operation="db-compare-schemas", summary=f"No drift: {cmp.a.label} matches {cmp.b.label} "
                        "(their schema dumps are equal)", facts=facts, notes=notes, data=data)
    if plan.empty:  # the model sees nothing, the dumps do: say so, never "no differences"
        facts["differences"] = len(cmp.dump_only_a or []) + len(cmp.dump_only_b or [])
        facts["proof"] = "NOT proven"
        return OpResult(
            operation="db-compare-schemas", status="warning", exit_code=EXIT_DRIFT,
            summary=(f"The schema dumps differ ({facts['differences']} statements) in what the comparison does not "
                     "model: no plan covers it; NOT PROVEN"),
            facts=facts, notes=notes, data=data,
            tables=[_dump_table(cmp.dump_only_b or [], cmp.dump_only_a or [], "Differences in pg_dump --schema-only")],
            findings=[Finding(rule="proof.dump_differs", severity="error",
                              message="pg_dump --schema-only of A and B differ although no object differs in the "
                                      "comparison's model",
                              fix="review the statements listed; change A by hand or report the object kind")])
    by_kind: dict[str, int] = {}
    for d in plan.drift:
        by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
    tables.append(Table(title="Drift per object kind", columns=["kind", "differences"],
                        rows=[[k, n] for k, n in sorted(by_kind.items())]))
    roots = PartitionRoots(cmp.model_a, cmp.model_b)
    tables.append(_drift_table(plan, "Drift (A -> B)", roots))
    tables.append(_plan_table(plan))
    findings += lint_findings
    for s in plan.steps:
        if s.data_loss:
            findings.append(Finding(rule="plan.data_loss", severity="warning", message=f"{s.action} {s.kind} loses data",
                                    location=s.object, detail=s.sql.splitlines()[0], fix=s.note))
        elif s.rewrite:
            findings.append(Finding(rule="plan.rewrite", severity="info", message=f"{s.kind} change rewrites the table",
                                    location=s.object, detail=s.sql.splitlines()[0]))
    artifacts: list[str] = []
    status = "ok"
    for blocker in plan.blockers:
        findings.insert(0, Finding(rule="plan.blocked", severity="error", message=blocker,
                                   fix="edit the step marked BLOCKED, then apply it yourself"))
    if proof and proof.proven:
        summary = (f"{len(plan.drift)} differences; plan of {len(plan.steps)} steps PROVEN on {proof.applied_to} "
                   "(zero difference after applying)")
        if inputs.write_migration:
            paths = _write_migration(Path(ctx.project), inputs.name, plan)
            artifacts = [str(p) for p in paths]
            notes.append("Migration written: " + ", ".join(p.name for p in paths))
    else:
        status = "warning"
        summary = f"{len(plan.drift)} differences; the plan of {len(plan.steps)} steps is NOT proven"
        if plan.blockers:
            summary += f" (BLOCKED: {len(plan.blockers)} step(s) need your decision first)"
        if plan.blockers:
            pass
        elif proof and proof.failed_step:
            findings.insert(0, Finding(rule="proof.failed", severity="error",
                                       message=f"the plan fails on the shadow copy: {proof.error}",
                                       detail=proof.failed_step, fix="edit the plan by hand; do not apply it as is"))
        elif proof and proof.remaining is None and proof.error:
            findings.insert(0, Finding(rule="proof.no_shadow", severity="error", message=proof.error,
                                       fix="make the roles/extensions the schema uses exist on the shadow server "
                                           "(SAGE_SHADOW_URL), then compare again"))
        elif proof and proof.remaining:
            findings.insert(0, Finding(rule="proof.remaining", severity="error",
                                       message="differences remain after applying the plan on the shadow copy",
                                       fix="review the remaining diff; do not apply the plan as is"))
            if proof.remaining.drift:
                tables.append(_drift_table(proof.remaining, "Remaining diff after applying the plan (NOT proven)",
                                           roots))
            if proof.dump_missing or proof.dump_extra:
                tables.append(_dump_table(proof.dump_missing, proof.dump_extra,
                                          "Remaining lines of pg_dump --schema-only after the plan (NOT PROVEN)"))
        if inputs.write_migration:
            notes.append("No migration written: the plan is not proven.")
    findings = _group_findings(findings, roots)
    if any(s.data_loss for s in plan.steps) and status == "ok":
        status = "warning"
    timing_rows = [[k, round(v, 3)] for k, v in sorted(cmp.timings.items(), key=lambda kv: -kv[1])]
    tables.append(Table(title="Time", columns=["phase", "seconds"], rows=timing_rows))
    markdown = _markdown(cmp, summary, roots)
    return OpResult(operation="db-compare-schemas", status=status, exit_code=EXIT_DRIFT, summary=summary,
                    facts=facts, tables=tables,
                    findings=findings, notes=notes, artifacts=artifacts, data=data | {"sql": plan.sql()},
                    markdown=markdown,
                    next_steps=_compare_next_steps(inputs, artifacts, bool(proof and proof.proven and plan.steps)))


def _compare_next_steps(inputs: CompareInput, artifacts: list[str], proven: bool) -> list[str]:
    """A whole command line to copy: the migration written, to dry-run; else this comparison again writing its
    proven plan (it said `*compare-schemas ... with write_migration=yes`, not a line that runs, and also for a
    plan it would refuse to write)."""
    # lazy: only for a next step
    import shlex

    if artifacts:
        return ["*dry-run " + Path(artifacts[-1]).name]
    if not proven:
        return []
    return [f"*compare-schemas {shlex.quote(inputs.source)} {shlex.quote(inputs.target)} --write-migration"]


def _markdown(cmp, summary: str, roots: PartitionRoots | None = None) -> str:
    lines = ["# Schema comparison", "", f"- A (source): {cmp.a.label}", f"- B (target): {cmp.b.label}", "",
             summary, "", "## Drift", ""]
    for kind, obj, change, detail in _drift_rows(cmp.plan.drift, roots):
        lines.append(f"- {kind} `{obj}`: {change}" + (f" ({detail})" if detail else ""))
    lines += ["", "## Plan", "", "```sql", cmp.plan.sql().rstrip(), "```"]
    return "\n".join(lines) + "\n"
