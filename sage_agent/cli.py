"""Entry points and argument parsing only. Heavy modules load lazily so `sage --version` stays fast."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from pathlib import Path

from sage_agent import __version__


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The global options. On a subcommand they default to SUPPRESS, so a value given before the
    subcommand (`sage --env dev run ...`) is not reset by the subcommand's own default."""
    unset = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--env", **({"default": None} if top else unset),
                        help="local | dev | staging | prod (default local, or SAGE_ENV)")
    parser.add_argument("--db-url", **({"default": None} if top else unset),
                        help="database URL (overrides the environment's settings)")
    parser.add_argument("--direct-url", **({"default": None} if top else unset),
                        help="the direct (session) URL beside a pooler URL: migrations, snapshots, backups use it")
    parser.add_argument("--project", type=Path, **({"default": None} if top else unset),
                        help="project folder (default: current folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sage", description="DB Sage: a DBA and database architect in your terminal")
    parser.add_argument("--version", action="version", version=f"sage {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="cmd")

    run = sub.add_parser("run", help='run commands headless: sage run "*env-check" --json')
    _common(run)
    run.add_argument("lines", nargs="+", metavar="LINE",
                     help='a command line, e.g. "*smoke-test v1.0"; several run in order in one session and '
                          'stop at the first that does not succeed')
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="supply an input")
    run.add_argument("--yes", action="store_true", help="answer yes to yes/no confirmations")
    run.add_argument("--confirm", action="append", default=[], metavar="WORD",
                     help="supply a typed confirmation word (ROLLBACK, RESTORE, PRODUCTION...)")
    run.add_argument("--allow-unsafe", action="store_true",
                     help="*apply even with error-level lint findings (the typed word UNSAFE; --yes does not)")
    run.add_argument("--targets", type=Path, default=None, metavar="FILE",
                     help="a fleet: run the lines on every database of this YAML file (name + url or env, tags)")
    run.add_argument("--only", action="append", default=[], metavar="TAG",
                     help="with --targets: only the targets with this tag (or name); repeat or comma-separate")
    run.add_argument("--parallel", type=int, default=None, metavar="N",
                     help="with --targets: targets worked on at once (default: SAGE_FLEET_PARALLEL, else cores)")
    stop = run.add_mutually_exclusive_group()
    stop.add_argument("--stop-on-failure", dest="stop_on_failure", action="store_const", const=True, default=None,
                      help="with --targets: start no further target after one fails (default for writes)")
    stop.add_argument("--continue-on-failure", dest="stop_on_failure", action="store_const", const=False,
                      help="with --targets: keep going after a target fails (default for reads)")
    fmt = run.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON document")
    fmt.add_argument("--markdown", action="store_true", help="print markdown")

    validate = sub.add_parser("validate", help="check persona, tasks, operations, templates and checklists agree")
    _common(validate)  # accepted in either order; the catalog check needs no database

    db = sub.add_parser("db", help="the embedded PostgreSQL server")
    _common(db)
    db.add_argument("action", choices=["status", "start", "stop", "url", "switch-major"])
    db.add_argument("major", nargs="?", default=None, help="with switch-major: the PostgreSQL major to move to "
                                                           "(default: the project's, from supabase/config.toml)")
    db.add_argument("--yes", action="store_true", help="with switch-major: do not ask")
    db.add_argument("--json", action="store_true")
    db.add_argument("--show-password", action="store_true", help="with url: print the password too")

    for name, help_text in EXTRA_COMMANDS.items():
        extra = sub.add_parser(name, help=help_text[1], add_help=False)
        extra.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


# Subcommands implemented elsewhere: name -> ("module:function(argv) -> int", help). Loaded on use.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    # area: lint (no database needed; keeps its imports light for CI and pre-commit)
    "lint": ("sage_agent.ops.lint.cli:main", "lint migrations for locks and rewrites (squawk rule names)"),
    # area: agent
    "ask": ("sage_agent.agent.cli:ask_main", "ask DB Sage in plain language"),
    # area: integration
    "handoff": ("sage_agent.frontends.handoff:main", "handoffs between agents: list | receive FILE | send AGENT"),
    "mcp": ("sage_agent.frontends.mcp_stdio:main", "serve DB Sage's operations over MCP (stdio)"),
    "ide": ("sage_agent.frontends.ide:main", "IDE files: sync | check"),
    # area: watch
    "watch": ("sage_agent.frontends.watch:main", "run the checks on a schedule with a history and alerts (--once, --report)"),
    # area: audit trail
    "log": ("sage_agent.frontends.auditlog:main", "the audit trail: what ran here, from which front door, who confirmed"),
}


GLOBAL_OPTIONS = ("--env", "--db-url", "--project")
# Global options an EXTRA_COMMANDS parser does not take (default: it takes --env and --db-url; --project is
# resolved here for all of them).
FORWARDED: dict[str, tuple[str, ...]] = {}


def warn(message: str, stream=None) -> None:
    """`warning: ...` on stderr; on a terminal wrapped at spaces to its width (the terminal itself would cut words
    in two), piped as one line for logs and grep."""
    stream = stream or sys.stderr
    text = f"warning: {message}"
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        # lazy: only a terminal needs them
        import shutil
        import textwrap

        width = shutil.get_terminal_size().columns
        text = textwrap.fill(text, width=max(width - 1, 20), subsequent_indent="  ", break_long_words=False,
                             break_on_hyphens=False)
    print(text, file=stream)


def _take_globals(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split `--env X`, `--db-url=Y`, `--project Z` out of a token list: (options, the other tokens)."""
    found: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        name, eq, value = tok.partition("=")
        if name in GLOBAL_OPTIONS and (eq or i + 1 < len(tokens)):
            found[name] = value if eq else tokens[i + 1]
            i += 1 if eq else 2
            continue
        rest.append(tok)
        i += 1
    return found, rest


def _extra_command_at(argv: list[str]) -> int | None:
    """Index of an EXTRA_COMMANDS name after the global options, so its own parser sees every option that
    follows it (argparse's REMAINDER refuses a leading option: `sage ask --json "..."`)."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in EXTRA_COMMANDS:
            return i
        if tok in ("--env", "--db-url", "--project"):
            i += 2
        elif tok.startswith(("--env=", "--db-url=", "--project=")):
            i += 1
        else:
            return None
    return None


# Commands that run once and end, started often by CI and pre-commit: the whole process is theirs (see _end).
SHORT_LIVED = ("lint",)


def _end(code: int) -> int:
    """End a short-lived command's process now that its output is written. The interpreter's own ending
    frees every module and parse tree one object at a time, which costs `sage lint` of a small file about a
    tenth of its time; the exit handlers still run. When stdout cannot be flushed (a closed pipe) or another
    thread runs, the interpreter ends as usual and reports that as it always has."""
    # lazy: `sage --version` does not need it
    import threading

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code
    if threading.active_count() > 1:
        return code
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None  # the console script or `python -m sage_agent`, not a caller in Python
    argv = list(sys.argv[1:] if argv is None else argv)
    at = _extra_command_at(argv)
    if at is not None:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import importlib

        short_lived = whole_process and argv[at] in SHORT_LIVED
        if short_lived:
            # Start-up imports build many objects that live until the end, and lint keeps the cycle collector
            # off anyway (parse trees are acyclic): collecting during start-up only re-scans them.
            gc.disable()

        # Global options reach the subcommand whichever side of its name they are on: those before it are
        # handed to its own parser (`sage --env x mcp` == `sage mcp --env x`), --project is resolved here.
        name = argv[at]
        before, _ = _take_globals(argv[:at])
        after, rest = _take_globals(argv[at + 1:])
        given = {**before, **after}
        project = Path(given.pop("--project", None) or Path.cwd()).resolve()
        forwarded = [tok for opt, value in given.items() if opt not in FORWARDED.get(name, ())
                     for tok in (opt, value)]
        module, _, func = EXTRA_COMMANDS[name][0].partition(":")
        code = int(getattr(importlib.import_module(module), func)(rest + forwarded, project=project) or 0)
        return _end(code) if short_lived else code
    args = build_parser().parse_args(argv)
    args.project = getattr(args, "project", None)
    if args.env is None:
        from sage_agent.config import settings  # lazy: `sage --version` must not pay for the settings module

        args.env = settings().env
    project = (args.project or Path.cwd()).resolve()
    if args.cmd == "run":
        output = "json" if args.json else "markdown" if args.markdown else "text"
        if args.targets is not None or args.only or args.parallel is not None or args.stop_on_failure is not None:
            return _fleet(args, project, output)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.headless import run_headless

        return run_headless(args.lines, project=project, env=args.env, db_url=args.db_url, sets=args.set,
                            yes=args.yes, confirm=args.confirm + (["UNSAFE"] if args.allow_unsafe else []),
                            output=output, direct_url=getattr(args, "direct_url", None))
    if args.cmd == "validate":
        return _validate()
    if args.cmd == "db":
        return _db(args, project)
    if args.cmd in EXTRA_COMMANDS:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import importlib

        module, _, func = EXTRA_COMMANDS[args.cmd][0].partition(":")
        return int(getattr(importlib.import_module(module), func)(args.rest, project=project) or 0)
    return _repl(args, project)


def _fleet(args, project: Path, output: str) -> int:
    """`sage run ... --targets FILE`: the fleet front door (frontends/fleet.py)."""
    if args.targets is None:
        print("error: --only, --parallel, --stop-on-failure and --continue-on-failure go with --targets FILE",
              file=sys.stderr)
        return 2
    if args.db_url or getattr(args, "direct_url", None):
        print("error: --targets names its own databases: drop --db-url/--direct-url (put url and direct_url in "
              "the targets file)", file=sys.stderr)
        return 2
    # lazy: the thread pool loads only for parallel work
    from sage_agent.frontends.fleet import run_fleet_headless

    return run_fleet_headless(args.lines, project=project, targets_file=args.targets, only=args.only,
                              parallel=args.parallel, sets=args.set, yes=args.yes,
                              confirm=args.confirm + (["UNSAFE"] if args.allow_unsafe else []), output=output,
                              stop_on_failure=args.stop_on_failure)


def _validate() -> int:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.catalog.validate import validate_catalog

    report = validate_catalog()
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    if report.ok:
        print(f"catalog OK: {counts}")
        return 0
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(f"catalog has {len(report.problems)} problem(s) ({counts})", file=sys.stderr)
    return 1


def _db(args, project: Path) -> int:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    import json

    from sage_agent.db.embedded import EmbeddedError, project_server
    from sage_agent.db.redact import redact

    try:
        server = project_server(project)
        if args.action == "switch-major":
            return _switch_major(args, project, server)
        if args.major is not None:
            print(f"error: sage db {args.action} takes no major (only switch-major does)", file=sys.stderr)
            return 2
        if args.action == "start":
            status = server.start()
        elif args.action == "stop":
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.db.embedded import EmbeddedServer

            stopped = server.stop()
            for other in sorted((project / ".sage").glob("pg*-shadow")):  # shadow servers of other majors
                EmbeddedServer(other).stop()
            print("stopped" if stopped else "not running")
            return 0
        else:
            status = server.status()
    except EmbeddedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.action == "url":
        if not status.running:
            print("error: the embedded server is not running: sage db start", file=sys.stderr)
            return 1
        print(status.url if args.show_password else redact(status.url or ""))
        if not args.show_password:  # a script that pastes the redacted URL would fail to log in
            print("note: the password is hidden; `sage db url --show-password` prints it", file=sys.stderr)
        return 0
    doc = {"running": status.running, "port": status.port, "version": status.version, "data_dir": status.data_dir,
           "url": redact(status.url or ""), "project_major": status.wanted_major, "warning": status.warning}
    if args.json:
        print(json.dumps(doc))
    else:
        # in words: `running  False` and an empty `url` read as Python, and left the next step unsaid
        shown = {"running": "yes" if status.running else "no (sage db start starts it, and so does any command "
                                                         "that needs the database)",
                 "port": status.port, "version": status.version, "data dir": status.data_dir,
                 "url": doc["url"] if status.running else None, "project major": status.wanted_major}
        for key, value in shown.items():
            if value not in (None, ""):
                print(f"{key:13} {value}")
        if status.warning:
            warn(status.warning)
    return 0


def _switch_major(args, project: Path, server) -> int:
    """Recreate the local cluster on another major after a confirmation; data kept by dump and restore."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.embedded import EmbeddedError
    from sage_agent.db.switch import switch_major

    if args.major is None:
        target = server.wanted_major
        if target is None:
            print("error: give the major (sage db switch-major 15) or set [db] major_version in "
                  "supabase/config.toml", file=sys.stderr)
            return 2
    elif not str(args.major).isdigit():
        print(f"error: {args.major!r} is not a PostgreSQL major version (e.g. 15 or 17)", file=sys.stderr)
        return 2
    else:
        target = int(args.major)
    current = server.version()
    if current and int(current) == target:
        print(f"the local server already runs PostgreSQL {target}: nothing to do")
        return 0
    prompt = (f"Recreate the local cluster ({server.data_dir}) on PostgreSQL {target}, now {current or 'none'}? "
              "Every database is dumped and restored; the old data directory is kept aside.")
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"error: {prompt} Confirm with --yes (nothing was changed)", file=sys.stderr)
            return 3
        if input(prompt + " [y/N] ").strip().lower() not in ("y", "yes"):
            print("not confirmed: nothing was changed")
            return 3
    try:
        report = switch_major(server, target, say=lambda text: print(text, file=sys.stderr))
    except EmbeddedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tables = sum(len(t) for t in report.databases.values())
    rows = sum(sum(t.values()) for t in report.databases.values())
    print(f"the local server now runs PostgreSQL {report.to_major} (was {report.from_major}): "
          f"{len(report.databases)} database(s), {tables} table(s), {rows} row(s) restored and counted; "
          f"the old data directory is kept in {report.kept_aside} (delete it when satisfied)")
    return 0


def _repl(args, project: Path) -> int:
    # lazy: prompt-toolkit loads only for the REPL
    from sage_agent.db.env import ConfigError, resolve_target
    from sage_agent.frontends.repl import Repl
    from sage_agent.session.context import EMBEDDED_MAJOR

    try:
        target = resolve_target(project, args.env, args.db_url)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not sys.stdin.isatty():
        print("error: the REPL needs a terminal; use `sage run \"*command\"` for scripts", file=sys.stderr)
        return 2
    status = None
    if target.embedded:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.embedded import EmbeddedError, project_server

        try:
            status = project_server(project).start()
            target.url = status.url
            if status.warning:
                warn(status.warning)
        except EmbeddedError as exc:
            warn(str(exc))
    repl = Repl(project, target, history_file=project / ".sage" / "history")
    if status is not None and status.warning:
        repl.session.said.add(EMBEDDED_MAJOR)  # said at start-up: not again under a command's report
    return repl.run()


if __name__ == "__main__":
    raise SystemExit(main())
