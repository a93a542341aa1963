"""`sage watch`: the checks on a schedule, with a history and alerts; `sage watch --report` shows the history.

Exit codes: 0 no alert (with --once: the round found nothing over a threshold), 1 an alert or a check that
could not run, 2 bad input, 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from sage_agent.config import settings
from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.db.redact import redact
from sage_agent.frontends.render import make_console, render_text, to_json
from sage_agent.ops.watch.runner import EXIT_INTERRUPTED, EXIT_USAGE

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_every(text: str) -> float:
    """`60s`, `5m`, `1h`, `90`, `0.5s` -> seconds (> 0); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", text or "")
    if not match:
        raise ValueError(f"--every {text!r}: give a duration such as 30s, 5m or 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds <= 0:
        raise ValueError(f"--every {text!r}: the interval must be more than 0 (e.g. 60s)")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sage watch", description="run DB Sage's checks on a schedule: history "
                                     "in .sage/watch.sqlite, alerts on stdout, by exit code and by webhook")
    parser.add_argument("--every", default=None, metavar="DURATION",
                        help="time between the starts of two rounds, e.g. 30s, 5m (default SAGE_WATCH_EVERY_S, 60s)")
    parser.add_argument("--checks", default=None, metavar="LIST",
                        help="comma-separated: locks,long-queries,idle-in-tx,vacuum,wraparound,replication,audits "
                             "(default all)")
    parser.add_argument("--once", action="store_true", help="one round; exit code 1 when it alerts")
    parser.add_argument("--rounds", type=int, default=None, metavar="N", help="stop after N rounds")
    parser.add_argument("--webhook", default=None, metavar="URL",
                        help="POST a JSON alert here when alerts start, get worse or resolve")
    parser.add_argument("--report", action="store_true", help="show the history as a table and a chart, and exit")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="with --report: rounds listed (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON document per round (or the report)")
    parser.add_argument("--targets", type=Path, default=None, metavar="FILE",
                        help="watch every database of a targets file (the YAML of sage run --targets)")
    parser.add_argument("--only", action="append", default=[], metavar="TAG",
                        help="with --targets: only the targets with this tag (or name)")
    parser.add_argument("--parallel", type=int, default=None, metavar="N",
                        help="with --targets: targets checked at once (default SAGE_FLEET_PARALLEL, else cores)")
    parser.add_argument("--env", default=None, help="local | dev | staging | prod")
    parser.add_argument("--db-url", default=None, help="database URL (overrides the environment's settings)")
    return parser


class _Usage(Exception):
    pass


def main(argv: list[str], project: Path) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the problem (or --help)
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    try:
        return _run(args, project)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args, project: Path) -> int:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.watch.alerts import check_webhook_url
    from sage_agent.ops.watch.checks import Thresholds, parse_checks

    conf = settings()
    try:
        every = parse_every(args.every) if args.every is not None else conf.watch_every_s
        if every <= 0:
            raise ValueError(f"SAGE_WATCH_EVERY_S={every:g}: the interval must be more than 0")
        checks = parse_checks(args.checks)
        if args.webhook is not None:
            check_webhook_url(args.webhook)
        if args.rounds is not None and args.rounds < 1:
            raise ValueError("--rounds must be 1 or more")
        if args.limit < 1:
            raise ValueError("--limit must be 1 or more")
        if args.report and (args.once or args.rounds or args.webhook):
            raise ValueError("--report only reads the history: it takes no --once, --rounds or --webhook")
        if args.targets is None and (args.only or args.parallel is not None):
            raise ValueError("--only and --parallel go with --targets FILE")
        if args.targets is not None and args.db_url:
            raise ValueError("--targets names its own databases: drop --db-url (put each url in the targets file)")
        if args.parallel is not None and args.parallel < 1:
            raise ValueError("--parallel must be 1 or more")
        watched = _targets(project, args, conf)
    except (ValueError, ConfigError) as exc:
        raise _Usage(str(exc)) from None
    if args.report:
        return _report(project, [w.name for w in watched], args.limit, args.json)
    parallel = args.parallel or conf.fleet_parallel or (os.cpu_count() or 1)
    return _watch(project, watched, checks, every, 1 if args.once else args.rounds, args.webhook, args.json,
                  Thresholds.from_settings(conf), conf, parallel)


def _targets(project: Path, args, conf) -> list:
    """What to watch: the environment's database, or every (selected) target of a targets file."""
    # lazy: sqlite3 loads only for the watch history
    from sage_agent.ops.watch.runner import Watched, target_name, watch_context

    if args.targets is None:
        target = resolve_target(project, args.env or conf.env, args.db_url)
        return [Watched(target_name(target), watch_context(project, target, conf.watch_timeout_ms))]
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.fleet.targets import load_targets, resolve_entry, select

    file = args.targets if args.targets.is_absolute() else project / args.targets
    watched = []
    for spec in select(load_targets(file), args.only):
        entry = resolve_entry(spec, project, file)
        ctx = watch_context(project, entry.target, conf.watch_timeout_ms) if entry.target is not None else None
        watched.append(Watched(spec.name, ctx, entry.problem))
    return watched


def _report(project: Path, names: list[str], limit: int, as_json: bool) -> int:
    # lazy: sqlite3 loads only for the watch history
    from sage_agent.ops.watch.report import build_report

    width = shutil.get_terminal_size((100, 24)).columns
    results = [build_report(project, name, limit=limit, width=width) for name in names]
    if as_json:
        doc = results[0].model_dump(mode="json") if len(results) == 1 else \
            {"targets": [{"name": n, **r.model_dump(mode="json")} for n, r in zip(names, results)]}
        sys.stdout.write(to_json(doc, pretty=False) + "\n")
        return 0
    console = make_console()
    for name, result in zip(names, results):
        if len(results) > 1:
            console.print(f"── {name} ──", markup=False, highlight=False)
        render_text(result, console)
    return 0


def _watch(project: Path, watched: list, checks: list[str], every: float, rounds: int | None, webhook: str | None,
           as_json: bool, thresholds, conf, parallel: int) -> int:
    # lazy: sqlite3 loads only for the watch history
    from sage_agent.ops.watch.history import history_path
    from sage_agent.ops.watch.runner import watch_loop

    done: list = []

    def emit(rnd) -> None:
        done.append(rnd)
        # redacted right before it leaves: a check's text can hold what a session showed it (an application_name
        # or a query with a connection string)
        if as_json:
            sys.stdout.write(to_json(rnd.to_json(), pretty=False) + "\n")
        else:
            sys.stdout.write(redact("\n".join(rnd.lines())) + "\n")
        sys.stdout.flush()

    if not as_json and rounds != 1:
        where = f"{len(watched)} target(s)" if len(watched) > 1 else watched[0].name
        print(redact(f"watching {', '.join(checks)} on {where} every {every:g}s; history in {history_path(project)}; "
                     "Ctrl-C stops"), file=sys.stderr, flush=True)
    try:
        last = watch_loop(watched, checks, thresholds, history_path(project), every_s=every, rounds=rounds, emit=emit,
                          webhook_url=webhook, webhook_timeout_s=conf.watch_webhook_timeout_s,
                          keep=conf.watch_keep_rounds, audit_every_s=conf.watch_audit_every_s, parallel=parallel)
    except KeyboardInterrupt:
        print(f"stopped (Ctrl-C) after {len(done)} round(s); a round cut short is not recorded and its statements "
              "were cancelled on the server", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return max((r.exit_code for r in last), default=0)
