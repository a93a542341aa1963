"""Rendering an OpResult as text (rich), markdown or JSON. Everything shown is redacted first."""

from __future__ import annotations

import json
import os
from typing import Any

from sage_agent.db.redact import json_may_need_redaction, redact, redact_obj
from sage_agent.ops.result import OpResult

_ICON = {"ok": "✔", "warning": "⚠", "failed": "✘", "cancelled": "■"}
_STYLE = {"ok": "green", "warning": "yellow", "failed": "red", "cancelled": "yellow"}
_SEV_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    return redact(str(value))


def make_console(stderr: bool = False, width: int | None = None):
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")) or None, width=width,
                   highlight=False, soft_wrap=False)


def render_text(result: OpResult, console=None) -> None:
    from rich.table import Table as RichTable
    from rich.text import Text

    console = console or make_console()
    console.print(Text(f"{_ICON[result.status]} {redact(result.summary)}", style=f"bold {_STYLE[result.status]}"))
    if result.facts:
        grid = RichTable.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for key, value in result.facts.items():
            grid.add_row(Text(key.replace("_", " ")), Text(_cell(value)))
        console.print(grid)
    for table in result.tables:
        # cells are Text, never markup: `[name]` in a usage line or a value from the database stays as it is
        rt = RichTable(title=Text(redact(table.title)) if table.title else None, title_justify="left",
                       show_lines=False)
        for col in table.columns:
            rt.add_column(Text(col))
        for row in table.rows:
            rt.add_row(*[Text(_cell(v)) for v in row])
        console.print(rt)
        if table.truncated:
            shown = len(table.rows)
            total = f" of {table.total_rows:,}" if table.total_rows is not None else ""
            console.print(Text(f"(truncated: showing {shown}{total} rows)", style="yellow"))
    if result.findings:
        console.print(Text("Findings", style="bold"))
        for f in result.findings:
            where = f" [{f.location}]" if f.location else ""
            console.print(Text(f"  {f.severity.upper():7} {f.rule}{where}: {redact(f.message)}",
                               style=_SEV_STYLE[f.severity]))
            if f.detail:
                console.print(Text(f"          {redact(f.detail)}"))
            if f.fix:
                console.print(Text(f"          fix: {redact(f.fix)}", style="dim"))
    for note in result.notes:
        console.print(Text(f"• {redact(note)}"))
    for path in result.artifacts:
        console.print(Text(f"📄 {path}"))
    if result.next_steps:
        console.print(Text("Next: " + ", ".join(result.next_steps), style="dim"))


def render_markdown(result: OpResult) -> str:
    if result.markdown:
        return redact(result.markdown)
    lines = [f"# {result.operation}", "", f"**{result.status.upper()}** - {result.summary}", ""]
    for key, value in result.facts.items():
        lines.append(f"- **{key.replace('_', ' ')}**: {_cell(value)}")
    for table in result.tables:
        lines += ["", f"## {table.title}" if table.title else "", "",
                  "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in table.rows]
        if table.truncated:
            lines.append(f"\n_truncated: {len(table.rows)} rows shown_")
    if result.findings:
        lines += ["", "## Findings", ""]
        for f in result.findings:
            lines.append(f"- **{f.severity}** `{f.rule}`{' (' + f.location + ')' if f.location else ''}: {f.message}"
                         + (f" - fix: {f.fix}" if f.fix else ""))
    if result.notes:
        lines += [""] + [f"- {n}" for n in result.notes]
    if result.next_steps:
        lines += ["", "Next: " + ", ".join(f"`{s}`" for s in result.next_steps)]
    return redact("\n".join(lines)) + "\n"


def to_json(obj: dict[str, Any], *, pretty: bool = True) -> str:
    """One JSON document, redacted. Compact output uses the C encoder: ten times faster on large audits."""
    options: dict[str, Any] = {"indent": 2} if pretty else {"separators": (",", ":")}
    text = json.dumps(obj, default=str, ensure_ascii=False, **options)
    if json_may_need_redaction(text):
        text = json.dumps(redact_obj(obj), default=str, ensure_ascii=False, **options)
    return text
