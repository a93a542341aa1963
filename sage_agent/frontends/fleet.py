"""`sage run "*rls-audit" --targets FILE [--only TAG] [--parallel N]`: one command on many databases, one process.

Prints one JSON document `{"targets": [{"name", "exit_code", "results": [...]}, ...], "summary": {...}}` with
--json, else a table (target x command x status x top findings). The exit code is the worst target's
(ops/fleet/runner.py SEVERITY: 130 > 1 > 2 > 3 > 4 > 0); the summary names that target."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.text import Text

from sage_agent.db.redact import redact
from sage_agent.frontends.headless import _json_doc
from sage_agent.frontends.render import make_console, render_table
from sage_agent.ops.result import Table
from sage_agent.ops.fleet.runner import LinePlan, TargetRun, plan_lines, run_fleet, worst
from sage_agent.ops.fleet.targets import (
    FleetEntry,
    TargetsFileError,
    default_parallel,
    load_targets,
    resolve_entry,
    select,
)
from sage_agent.session.answers import FlagAnswers, PromptAnswers
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK, EXIT_USAGE, PRODUCTION_WORD
from sage_agent.session.parse import CommandLineError


def load_fleet(targets_file: Path, only: list[str] | None, project: Path) -> list[FleetEntry]:
    """The selected targets of the file, each resolved (a bad URL stays in the list as that target's problem)."""
    path = targets_file if targets_file.is_absolute() or targets_file.exists() else (project / targets_file)
    specs = select(load_targets(path), only)
    return [resolve_entry(spec, project, path) for spec in specs]


def confirmation_problem(plans: list[LinePlan], entries: list[FleetEntry], *, yes: bool, confirm: tuple[str, ...],
                         interactive: bool) -> str | None:
    """Why a fleet write cannot start without a person (headless, no --yes / --confirm), naming the flag to pass;
    None when it may start. Checked before any target runs, so a refusal changes nothing anywhere."""
    writes = [p for p in plans if p.writes]
    usable = [e for e in entries if e.target is not None]
    if not writes or not usable or interactive:
        return None
    names = ", ".join(e.name for e in usable[:5]) + (f" and {len(usable) - 5} more" if len(usable) > 5 else "")
    commands = ", ".join(f"*{p.task.command}" for p in writes)
    missing = []
    if not yes:
        missing.append("--yes")
    for p in writes:
        word = p.task.confirm_word
        if p.risk == "destructive" and word and word not in confirm and f"--confirm {word}" not in missing:
            missing.append(f"--confirm {word}")
    prod = [e.name for e in usable if e.target is not None and e.target.is_production]
    if prod and PRODUCTION_WORD not in confirm:
        missing.append(f"--confirm {PRODUCTION_WORD}")
    if not missing:
        return None
    extra = f" ({', '.join(prod)} production)" if prod and PRODUCTION_WORD not in confirm else ""
    return (f"confirmation required: {commands} changes each of {len(usable)} target(s): {names}{extra}. "
            f"Nothing was run. Re-run with {' '.join(missing)} to confirm once for all targets, or run it in a "
            "terminal to confirm target by target.")


def _prompt_answers(entry: FleetEntry, err) -> PromptAnswers:
    """A person confirming one target at a time (writes run one target at a time); prompts go to stderr."""

    def prompt(message: str) -> str:
        err.print(f"[{entry.name}] {message}", end="", markup=False, highlight=False)
        return sys.stdin.readline()

    return PromptAnswers(prompt=prompt, show=lambda text: err.print(redact(text), markup=False, highlight=False))


def run_fleet_headless(lines: list[str], *, project: Path, targets_file: Path, only: list[str] | None = None,
                       parallel: int | None = None, sets: list[str] | None = None, yes: bool = False,
                       confirm: list[str] | None = None, output: str = "text",
                       stop_on_failure: bool | None = None) -> int:
    # lazy: tests replace _tune_gc on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.frontends.headless import _Stderr, _tune_gc, parse_sets

    _tune_gc()
    err = _Stderr()
    confirm_words = tuple(confirm or ())
    try:
        extra = parse_sets(sets or [])
        entries = load_fleet(targets_file, only, project)
        plans = plan_lines(lines, extra, project)
    except (TargetsFileError, CommandLineError) as exc:
        return _refuse(EXIT_USAGE, str(exc), output, err)
    if parallel is not None and parallel < 1:
        return _refuse(EXIT_USAGE, f"--parallel {parallel}: give 1 or more", output, err)
    interactive = bool(sys.stdin.isatty()) and not yes and not confirm_words
    problem = confirmation_problem(plans, entries, yes=yes, confirm=confirm_words, interactive=interactive)
    if problem:
        return _refuse(EXIT_CONFIRM, problem, output, err)
    writes = any(p.writes for p in plans)
    stop = writes if stop_on_failure is None else stop_on_failure  # writes stop at the first failed target
    workers = parallel or default_parallel()

    def answers_for(entry: FleetEntry):
        if writes and interactive:
            return _prompt_answers(entry, err)
        return FlagAnswers(yes=yes, confirm_words=confirm_words)

    def on_done(run: TargetRun) -> None:
        if output == "text" and sys.stderr.isatty():
            err.print(f"  {_ICON.get(_status(run), '?')} {run.entry.name} ({run.duration_ms / 1000:.1f} s)",
                      markup=False, highlight=False)

    start = time.monotonic()
    runs = run_fleet(entries, plans, project=project, answers_for=answers_for, parallel=workers,
                     stop_on_failure=stop, on_done=on_done)
    doc = fleet_document(runs, plans, duration_ms=(time.monotonic() - start) * 1000,
                         parallel=1 if writes else min(workers, max(1, len(entries))), stop_on_failure=stop)
    if output == "json":
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.headless import _dump

        sys.stdout.write(_dump(doc) + "\n")
    elif output == "markdown":
        sys.stdout.write(fleet_markdown(doc))
    else:
        render_fleet(doc)
    return doc["summary"]["exit_code"]


def _refuse(code: int, message: str, output: str, err) -> int:
    message = redact(message)
    if output == "json":
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.headless import _dump

        sys.stdout.write(_dump({"targets": [], "summary": {"targets": 0, "exit_code": code, "error": message}}) + "\n")
    else:
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return code


# --- the document ----------------------------------------------------------------------------------------------

def _status(run: TargetRun) -> str:
    if run.status != "ran":
        return run.status
    return "ok" if run.exit_code == EXIT_OK else ("drift" if run.exit_code == 4 else "failed")


def target_document(run: TargetRun) -> dict[str, Any]:
    return {"name": run.entry.name, "tags": list(run.entry.spec.tags), "target": run.entry.display_url,
            "status": _status(run), "exit_code": run.exit_code, "duration_ms": run.duration_ms,
            "results": [_json_doc(o) for o in run.outcomes], "skipped": list(run.skipped),
            "error": redact(run.error) if run.error else None}


def fleet_document(runs: list[TargetRun], plans: list[LinePlan], *, duration_ms: float, parallel: int,
                   stop_on_failure: bool) -> dict[str, Any]:
    targets = [target_document(r) for r in runs]
    code, which = worst(runs)
    statuses = Counter(t["status"] for t in targets)
    summary = {"targets": len(runs), "ok": statuses.get("ok", 0), "failed": statuses.get("failed", 0),
               "drift": statuses.get("drift", 0), "invalid": statuses.get("invalid", 0),
               "skipped": statuses.get("skipped", 0),
               "by_exit_code": {str(k): v for k, v in sorted(Counter(r.exit_code for r in runs).items())},
               "exit_code": code, "worst_target": which, "commands": [p.line for p in plans],
               "writes": any(p.writes for p in plans), "parallel": parallel, "stop_on_failure": stop_on_failure,
               "duration_ms": round(duration_ms, 1)}
    return {"targets": targets, "summary": summary, "exit_code": code}


def top_findings(result: dict[str, Any], limit: int = 3) -> str:
    """`2 error, 5 warning: rls_disabled_in_public x2, no_primary_key x3` from one result document."""
    findings = result.get("findings") or []
    if not findings:
        return ""
    order = {"error": 0, "warning": 1, "info": 2}
    by_sev = Counter(f.get("severity") for f in findings)
    by_rule = Counter((order.get(f.get("severity"), 3), f.get("rule")) for f in findings)
    counts = ", ".join(f"{by_sev[s]} {s}" for s in ("error", "warning", "info") if by_sev.get(s))
    rules = ", ".join(f"{rule} x{n}" for (_, rule), n in sorted(by_rule.items(), key=lambda kv: (kv[0][0], -kv[1],
                                                                                                  kv[0][1]))[:limit])
    return f"{counts}: {rules}"


def _short(text: str, limit: int = 120) -> str:
    """The first line of an error, cut to fit a table cell (the JSON document keeps all of it)."""
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in doc["targets"]:
        if not t["results"]:
            rows.append([t["name"], ", ".join(t["skipped"]) or "-", t["status"], str(t["exit_code"]),
                         _short(t["error"] or "")])
            continue
        for line, result in zip(doc["summary"]["commands"], t["results"]):
            detail = top_findings(result) if result["exit_code"] == EXIT_OK or result.get("findings") else ""
            if result["exit_code"] != EXIT_OK and result.get("error"):
                detail = _short(result["error"])
            rows.append([t["name"], line, result["status"], str(result["exit_code"]), detail or result["summary"]])
        for line in t["skipped"]:
            rows.append([t["name"], line, "skipped", "", "not run: an earlier command failed on this target"])
    return rows


def _summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = [f"{s[k]} {k}" for k in ("ok", "drift", "failed", "invalid", "skipped") if s[k]]
    which = f" (worst: {s['worst_target']})" if s["worst_target"] else ""
    return (f"{s['targets']} target(s): {', '.join(parts) or 'none'}; exit {s['exit_code']}{which}; "
            f"{s['duration_ms'] / 1000:.1f} s, {s['parallel']} at a time")


_ICON = {"ok": "✔", "drift": "⚠", "failed": "✘", "invalid": "✘", "skipped": "■", "warning": "⚠", "cancelled": "■"}


def render_fleet(doc: dict[str, Any], console=None) -> None:
    console = console or make_console()
    # the one table renderer: the target's name is never cut; too narrow a terminal gets vertical records
    rows, commands = _rows(doc), doc["summary"]["commands"]
    columns = ["target", "command", "status", "exit", "top findings / error"]
    title = "Fleet"
    if len(commands) == 1:  # one command: it is the title, not a column (at 60 columns it was cut '*sche' 'ma-au')
        title = f"Fleet: {commands[0]}"
        columns.pop(1)
        rows = [row[:1] + row[2:] for row in rows]
    render_table(Table(title=title, columns=columns, rows=rows), console)
    style = "green" if doc["summary"]["exit_code"] == EXIT_OK else "red"
    console.print(Text(_summary_line(doc), style=f"bold {style}"))


def fleet_markdown(doc: dict[str, Any]) -> str:
    def cell(value: str) -> str:
        return redact(value).replace("|", "\\|").replace("\n", " ")

    out = ["# Fleet", "", "| target | command | status | exit | top findings / error |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in _rows(doc)]
    out += ["", _summary_line(doc), ""]
    return "\n".join(out)
