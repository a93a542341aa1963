"""`sage log`: the project's audit trail (.sage/audit.jsonl) as a table, filtered by command and status."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from sage_agent.frontends.render import make_console
from sage_agent.session.audit import audit_path, read

STATUSES = ("ok", "warning", "failed", "cancelled", "unfinished")


def main(argv: list[str], project: Path) -> int:
    parser = argparse.ArgumentParser(prog="sage log", description="what every front door ran in this project")
    parser.add_argument("--command", help="only this command (with or without the *)")
    parser.add_argument("--status", choices=STATUSES, help="only operations that ended this way")
    parser.add_argument("--limit", type=int, default=50, help="the last N operations (default 50; 0 for all)")
    parser.add_argument("--json", action="store_true", help="print the records as one JSON array")
    parser.add_argument("--env", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--db-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be 0 or more")
    records = read(project)
    if args.command:
        records = [r for r in records if r.get("command") == args.command.lstrip("*")]
    if args.status:
        records = [r for r in records if r.get("status") == args.status]
    if args.limit:
        records = records[-args.limit:]
    if args.json:
        sys.stdout.write(json.dumps(records, ensure_ascii=False) + "\n")
        return 0
    if not records:
        where = audit_path(project)
        print(f"no operations recorded in {where}" if not where.exists() else "no operation matches these filters")
        return 0

    table = Table(title=f"{audit_path(project)}", title_justify="left")
    for col in ("time", "door", "env", "command", "status", "risk", "confirmed by", "ms", "target"):
        table.add_column(col, overflow="fold", no_wrap=col in ("time", "command"))
    for r in records:
        table.add_row(str(r.get("time", ""))[:19].replace("T", " "), str(r.get("front_door", "")),
                      str(r.get("env", "")), "*" + str(r.get("command", "")), str(r.get("status", "")),
                      str(r.get("risk") or ""), ", ".join(r.get("confirmed_by") or []),
                      "" if r.get("duration_ms") is None else str(r["duration_ms"]), str(r.get("target", "")))
    make_console().print(table)
    return 0
