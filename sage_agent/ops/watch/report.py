"""The watch history as a report: the last rounds as a table, and each check's metric over time as a small
terminal chart (one sparkline row per check, as wide as the terminal allows)."""

from __future__ import annotations

import time
from pathlib import Path

from sage_agent.ops.result import Finding, OpResult, Table
from sage_agent.ops.watch.checks import CHECK_NAMES
from sage_agent.ops.watch.history import History, history_path

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], failed: set[int] | None = None) -> str:
    """One character per round: the bar's height is the value between the lowest and the highest shown;
    `·` for a round that did not run the check, `×` for one where it failed."""
    failed = failed or set()
    known = [v for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    out = []
    for i, v in enumerate(values):
        if i in failed:
            out.append("×")
        elif v is None:
            out.append("·")
        elif high == low:
            out.append(BLOCKS[0] if high == 0 else BLOCKS[3])
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int((v - low) / (high - low) * (len(BLOCKS) - 1) + 0.5))])
    return "".join(out)


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.2f}"


def _shown(path: Path, project: Path) -> str:
    """The history file as the other reports name their files: relative to the project."""
    try:
        return str(Path(path).resolve().relative_to(Path(project).resolve()))
    except ValueError:
        return str(path)


def build_report(project: Path, target: str, *, limit: int = 20, width: int = 100) -> OpResult:
    """The report for `target` from .sage/watch.sqlite; `width` (terminal columns) sets how many rounds the
    chart shows."""
    path = history_path(project)
    history_file = _shown(path, project)
    if not path.exists():
        return OpResult(operation="db-watch-report", status="warning",
                        summary=f"no watch history yet ({history_file} does not exist)",
                        next_steps=["sage watch --once"], data={"target": target, "rounds": []})
    with History(path) as history:
        chart_rounds = max(8, min(200, width - (64 if width >= 100 else 36)))
        rounds = history.rounds(target, max(chart_rounds, limit))
        if not rounds:
            others = history.targets()
            return OpResult(operation="db-watch-report", status="warning",
                            summary=f"no watch rounds recorded for {target}",
                            notes=[f"the history has rounds for: {', '.join(others)}"] if others else [],
                            next_steps=["sage watch --once"], data={"target": target, "rounds": [],
                                                                   "targets": others})
        total = history.count(target)
        latest = history.observations(rounds[-1]["id"])
    wide = width >= 100
    shown = rounds[-limit:]
    round_rows = []
    for r in shown:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S" if wide else "%H:%M:%S", time.localtime(r["started"]))
        failed = [name for name, m in r["metrics"].items() if m["status"] == "error"]
        row = [stamp, f"{r['duration_ms']:.0f}", r["alerts"], r["new"], r["worse"], r["resolved"]]
        if wide:
            row.insert(0, r["id"])
            hook = r["webhook"]
            row += [", ".join(failed), "" if hook is None else (f"{hook['status']}" if hook["ok"]
                                                                  else f"failed: {hook['error']}")]
        round_rows.append(row)
    columns = ["time", "ms", "alerts", "new", "worse", "resolved"]
    if wide:
        columns = ["round", *columns, "failed checks", "webhook"]
    charted = rounds[-chart_rounds:]
    check_rows = []
    for name in CHECK_NAMES:
        values: list[float | None] = []
        failed: set[int] = set()
        label = ""
        for i, r in enumerate(charted):
            m = r["metrics"].get(name)
            values.append(None if m is None or m["status"] == "error" else m["value"])
            if m is not None and m["status"] == "error":
                failed.add(i)
            if m is not None and m["label"]:
                label = m["label"]
        if all(v is None for v in values) and not failed:
            continue
        known = [v for v in values if v is not None]
        last = next((r["metrics"][name] for r in reversed(charted) if name in r["metrics"]), None)
        now = "failed" if last and last["status"] == "error" else _num(last["value"]) if last else ""
        row = [name, now, _num(max(known)) if known else "", sparkline(values, failed)]
        if wide:
            row.append(label)
        check_rows.append(row)
    check_columns = ["check", "now", "peak", "chart, oldest → newest"]
    if wide:
        check_columns.append("metric")
    alerts = [o for o in latest if o["alert"]]
    findings = [Finding(rule=f"watch.{o['check']}", severity="error" if o["severity"] == "error" else "warning",
                        location=o["key"], message=f"{o['change']}: {o['message']}") for o in alerts]
    last = rounds[-1]
    errors = [f"{name}: {m['error']}" for name, m in last["metrics"].items() if m["status"] == "error"]
    findings += [Finding(rule="watch.check_failed", severity="error", message=e) for e in errors]
    summary = (f"{total} round(s) recorded for {target}; the last ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last['started']))}) "
               f"has {last['alerts']} alert(s)")
    return OpResult(operation="db-watch-report", status="warning" if alerts or errors else "ok", summary=summary,
                    facts={"rounds": total, "history": history_file, "last_round_ms": round(last["duration_ms"] or 0)},
                    tables=[Table(title="Checks over time (· not run, × failed)", columns=check_columns, rows=check_rows),
                            Table(title="Rounds (newest last)", columns=columns, rows=round_rows,
                                  truncated=total > len(shown), total_rows=total)],
                    findings=findings,
                    notes=[f"the chart shows the last {len(charted)} rounds at most, each check scaled between its "
                           "lowest and highest value there"],
                    next_steps=["sage watch --once"],
                    data={"target": target, "rounds": rounds[-limit:], "latest_observations": latest})
