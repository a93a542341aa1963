"""The report file an audit leaves in the project (supabase/tests/, beside the dry-run and smoke-test reports), so
that it is recorded as the command's artifact and travels with `*handoff` (with its checksum)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from sage_agent.db.redact import redact
from sage_agent.ops.result import OpResult

REPORTS_DIR = Path("supabase") / "tests"


def _cell(value: object) -> str:
    return ("" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")


def report_markdown(result: OpResult, title: str, target: str, env: str, findings: list | None = None) -> str:
    """The whole result as markdown: summary, facts, every table, every finding (`findings`: the full list when
    the result shows only the most severe)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "", f"- Target: {target} ({env}) - only read", f"- When: {stamp}",
             f"- Status: **{result.status}**", f"- Summary: {result.summary}", ""]
    if result.facts:
        lines += ["## Facts", ""] + [f"- {k}: {v}" for k, v in result.facts.items()] + [""]
    for table in result.tables:
        lines += [f"## {table.title or 'Table'}", "", "| " + " | ".join(_cell(c) for c in table.columns) + " |",
                  "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
        if table.truncated:
            lines.append(f"\n({len(table.rows)} of {table.total_rows} rows shown)")
        lines.append("")
    every = result.findings if findings is None else findings
    if every:
        lines += ["## Findings", ""]
        for f in every:
            where = f" ({f.location})" if f.location else ""
            lines.append(f"- **{f.severity}** `{f.rule}`{where}: {f.message}" + (f" Fix: {f.fix}" if f.fix else ""))
        lines.append("")
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return redact("\n".join(lines))


def write_report(ctx, result: OpResult, name: str, title: str, findings: list | None = None) -> str:
    """Write supabase/tests/NAME.md (the latest run replaces it, atomically) and return its project-relative
    path; the caller lists it in the result's artifacts. One target of a fleet run (`sage run --targets`) gets its
    own file, named after its line of the targets file."""
    source = str(getattr(ctx.target, "source", "") or "")
    if source.startswith("targets file"):
        name += "-" + re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")
    path = ctx.project / REPORTS_DIR / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(report_markdown(result, title, ctx.target.display_url, ctx.target.env, findings), encoding="utf-8")
    tmp.replace(path)
    return str(REPORTS_DIR / path.name)
