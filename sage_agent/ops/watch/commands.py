"""*watch-report: the history `sage watch` keeps in .sage/watch.sqlite, as a table and a terminal chart.
(The watch itself is `sage watch`, a long-running front door: frontends/watch.py.)"""
# area: watch

from __future__ import annotations

import shutil

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpError, OpResult


class WatchReportInput(BaseModel):
    limit: str = "20"  # text input: the task file's default is the source


@operation("db-watch-report", risk="read")
def watch_report(inputs: WatchReportInput, ctx) -> OpResult:
    """Reads only the history file: no database connection."""
    # lazy: sqlite3 loads only for the watch history
    from sage_agent.ops.watch.report import build_report
    from sage_agent.ops.watch.runner import target_name

    limit = int(inputs.limit) if inputs.limit.strip().isdigit() else 0
    if limit < 1:
        raise OpError("limit must be 1 or more (rounds shown in the table)", "e.g. *watch-report --limit 50",
                      exit_code=2)
    width = shutil.get_terminal_size((100, 24)).columns
    return build_report(ctx.project, target_name(ctx.target), limit=limit, width=width)
