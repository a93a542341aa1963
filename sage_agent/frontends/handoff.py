"""Handoffs between agents (@architect, @dev, @qa, @devops <-> @db-sage): YAML documents in .aios/handoffs/.

`sage handoff list` shows the queue; `sage handoff receive FILE` acts on one headless; the REPL offers the
newest unconsumed handoff addressed to DB Sage right after the greeting. Acting goes through the generic
Session (`*command` lines), so any registered operation can be requested.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sage_agent.config import settings
from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.db.redact import redact, redact_obj
from sage_agent.ops.integration.handoff_files import (
    AGENT_ID,
    HANDOFF_DIR,
    Handoff,
    HandoffError,
    StepRunner,
    check_fields,
    check_file,
    load_handoff,
    newest_pending,
    queue,
    rel_path,
    safe_write,
    write_handoff,
)
from sage_agent.session.answers import FlagAnswers
from sage_agent.session.machine import Session

__all__ = ["HandoffError", "act_on", "describe", "load_handoff", "main", "offer_pending"]

_LIST_HINT_PENDING = "`sage handoff list` shows the pending ones"

# --- acting on a handoff --------------------------------------------------------------------------
def dev_change(session, handoff: Handoff, say: Callable[[str], None]) -> tuple[int, list[str], list[str], list[dict]]:
    """@dev change request: snapshot, migration, dry-run, apply if safe, smoke test (each via its *command)."""
    sql_text = str(handoff.inputs.get("sql", "")).strip()
    name = re.sub(r"[^a-z0-9_]+", "_", str(handoff.inputs.get("name") or handoff.request).lower()).strip("_")[:40] or "dev_change"
    version = str(handoff.inputs.get("version", "dev-change"))
    runner = StepRunner(session, say)
    migration: str | None = None
    runner.run("*snapshot before-dev-change")
    out = runner.run(f"*migration-new {name}", {"sql": sql_text}) if sql_text else None
    if out is not None and out.exit_code == 0 and out.result:
        migration = next((a for a in out.result.artifacts if a.endswith(".sql")), None)
    if migration:
        dry = runner.run(f"*dry-run {migration}")
        if dry.exit_code == 0 and dry.result and dry.result.status in ("ok", "warning"):
            applied = runner.run(f"*apply {migration}")
            if applied.exit_code == 0:
                runner.run(f"*smoke-test {version}")
        elif dry.exit_code == 0:
            runner.blockers.append(f"dry-run of {migration} did not pass: not applied")
    return (1 if runner.failed else 0), runner.artifacts, runner.blockers, runner.steps


def act_on(session, path: Path, handoff: Handoff, *, say: Callable[[str], None] = lambda t: None) -> dict[str, Any]:
    """Run the request, mark the handoff consumed (with the result), and write a reply to the sender."""
    project: Path = session.project
    label = rel_path(project, path)
    check_file(project, path, label)  # the checks of load_handoff, again before anything runs
    check_fields(project, handoff, label)
    if handoff.consumed:
        raise HandoffError(f"{label} was already consumed at {handoff.consumed_at or '?'}",
                           f"{_LIST_HINT_PENDING}; the sender writes a new handoff to run it again")
    request = handoff.request.strip()
    steps: list[dict] = []
    if request.startswith("*"):
        outcome = session.run_line(request, dict(handoff.inputs), source="the handoff's inputs")
        code = outcome.exit_code
        artifacts = list(outcome.result.artifacts) if outcome.result else []
        summary = outcome.result.summary if outcome.result else (outcome.error or "")
        blockers = [outcome.error] if outcome.error else []
        steps.append({"step": request, "status": outcome.result.status if outcome.result else "failed",
                      "exit_code": code})
    elif handoff.sender == "dev" and handoff.inputs.get("sql"):
        code, artifacts, blockers, steps = dev_change(session, handoff, say)
        summary = f"change request '{request}': " + ", ".join(f"{s['step'].split()[0]} {s['status']}" for s in steps)
    else:
        raise HandoffError(f"{label}: the request is free text ({request[:60]!r}); DB Sage acts on a "
                           "*command (e.g. request: \"*create-migration-from-design docs/architecture/schema-design.yaml\") "
                           "or, from @dev, free text with inputs.sql (the change)",
                           "ask the sender to name a *command in 'request' (`sage run \"*help\"` lists them)")

    if code in (2, 3):  # usage error or confirmation missing: nothing happened, keep it in the queue
        return redact_obj({"exit_code": code, "summary": summary, "blockers": blockers, "consumed": False,
                           "steps": steps})
    handoff.consumed = True
    handoff.consumed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    handoff.result = redact_obj({"exit_code": code, "summary": summary, "artifacts": artifacts, "steps": steps})
    safe_write(path, handoff.to_yaml())
    reply = Handoff(**{"from": f"@{AGENT_ID}", "to": f"@{handoff.sender}"}, story=handoff.story,
                    request=f"re: {request[:80]}", artifacts=[a for a in artifacts if (project / a).exists()],
                    decisions=[redact(summary)] if summary else [], blockers=[redact(b) for b in blockers],
                    next_action="review the artifacts" if code == 0 else "see blockers")
    reply_path = write_handoff(project, reply)
    return redact_obj({"exit_code": code, "summary": summary, "artifacts": artifacts, "blockers": blockers,
                       "consumed": True, "reply": rel_path(project, reply_path), "steps": steps})


def describe(handoff: Handoff) -> str:
    story = f" story {handoff.story.id}" if handoff.story and handoff.story.id else ""
    arts = f"; artifacts: {', '.join(handoff.artifacts)}" if handoff.artifacts else ""
    return redact(f"@{handoff.sender} -> @{handoff.recipient}{story}: {handoff.request}{arts}")


def error_lines(exc: HandoffError) -> list[str]:
    """What the person sees for a refused handoff: the cause, then the next step on a line of its own."""
    return [redact(f"error: {exc}"), redact(f"  next: {exc.next_step}")]


def offer_pending(repl) -> None:
    """REPL activation: offer the newest unconsumed handoff addressed to DB Sage."""
    try:
        found = newest_pending(repl.project)
        invalid = [p for p, h, problem in queue(repl.project) if problem]
    except Exception:  # noqa: BLE001 - a broken queue never blocks the REPL
        return
    if invalid:
        repl.console.print(f"{len(invalid)} handoff file(s) cannot be read: `sage handoff list` shows why.",
                           markup=False, highlight=False)
    if not found:
        return
    path, handoff = found
    repl.console.print(f"Handoff waiting ({rel_path(repl.project, path)}): {describe(handoff)}", markup=False,
                       highlight=False)
    try:
        answer = repl.ask("Act on it now? [y/N]: ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        return
    if answer not in ("y", "yes"):
        repl.console.print("Left in the queue: `sage handoff list`.", markup=False)
        return
    try:
        handoff = load_handoff(path, repl.project)
        report = act_on(repl.session, path, handoff, say=lambda t: repl.console.print(redact(t), markup=False))
    except HandoffError as exc:
        for line in error_lines(exc):
            repl.console.print(line, style="red", markup=False, highlight=False)
        return
    reply = f" (reply: {report['reply']})" if report.get("reply") else ""
    repl.console.print(redact(f"handoff: {report['summary']}") + reply, markup=False, highlight=False)


# --- CLI: sage handoff list | receive FILE | send AGENT ------------------------------------------------
def main(argv: list[str], project: Path) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", default=settings().env)
    common.add_argument("--db-url", default=None)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser(prog="sage handoff", description="handoffs between agents")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the queue, newest first", parents=[common])
    rec = sub.add_parser("receive", help="act on a handoff addressed to @db-sage", parents=[common])
    rec.add_argument("file", type=Path)
    for p in (rec,):
        p.add_argument("--yes", action="store_true")
        p.add_argument("--confirm", action="append", default=[])
    snd = sub.add_parser("send", help='write a handoff: sage handoff send qa (same as sage run "*handoff qa")',
                         parents=[common])
    snd.add_argument("agent")
    snd.add_argument("--set", action="append", default=[])
    snd.add_argument("--yes", action="store_true")
    snd.add_argument("--confirm", action="append", default=[])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    if args.action == "list":
        rows = []
        for path, handoff, problem in queue(project):
            name = rel_path(project, path)
            row = {"file": name, "status": "invalid" if problem else ("consumed" if handoff.consumed else "pending"),
                   "from": handoff.sender if handoff else None, "to": handoff.recipient if handoff else None,
                   "request": redact(handoff.request if handoff else problem)}
            if problem:  # the cause without the file name it starts with (the row names the file)
                row["reason"] = redact(problem.removeprefix(f"{name}: "))
            rows.append(row)
        if args.json:
            print(json.dumps(rows))
        elif not rows:
            print(f"no handoffs in {HANDOFF_DIR}/")
        else:
            for r in rows:
                if r["status"] == "invalid":  # no sender, recipient or request to show: why it cannot be read
                    print(f"{r['status']:9} {r['file']}  {r['reason']}")
                else:
                    print(f"{r['status']:9} {r['file']}  @{r['from']} -> @{r['to']}: {r['request']}")
        return 0

    try:
        target = resolve_target(project, args.env, args.db_url)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = Session(project=project, target=target, front_door="handoff",
                      answers=FlagAnswers(yes=args.yes, confirm_words=tuple(args.confirm)),
                      message_sink=lambda t: print(t, file=sys.stderr))
    if args.action == "send":
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.headless import run_headless

        return run_headless(f"*handoff {args.agent}", project=project, env=args.env, db_url=args.db_url, sets=args.set,
                            yes=args.yes, confirm=args.confirm, output="json" if args.json else "text")
    path = args.file if args.file.is_absolute() else project / args.file
    try:
        handoff = load_handoff(path, project)
        report = act_on(session, path, handoff, say=lambda t: print(redact(t), file=sys.stderr))
    except HandoffError as exc:
        if args.json:
            print(json.dumps(redact_obj({"error": str(exc), "next_steps": [exc.next_step], "exit_code": 2})))
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(report["summary"])
        for a in report.get("artifacts", []):
            print(f"  artifact: {a}")
        for b in report.get("blockers", []):
            print(f"  blocker: {b}")
        if report.get("reply"):
            print(f"  reply handoff: {report['reply']}")
        if not report["consumed"]:
            print("  (not consumed: still in the queue)")
    return report["exit_code"]
