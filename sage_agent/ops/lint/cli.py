"""`sage lint [FILES|DIRS ...]`: migration lint without a database, for CI, pre-commit and editors.

Exit codes: 0 no finding at or above --fail-on, 1 some, 2 bad usage / unreadable file / unknown rule."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sage_agent.ops.lint.config import SEVERITIES, LintConfig, LintUsageError, check_fail_on, parse_pg_version, \
    split_rules

DEFAULT_PG = 18  # the newest major DB Sage runs; --pg-version or config for older servers


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 as well; keep the one-line form
        self.print_usage(sys.stderr)
        print(f"sage lint: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.lint.reporters import REPORTERS

    p = _Parser(prog="sage lint", description="Lint PostgreSQL migrations for locks, rewrites and breaking "
                "changes (squawk's rule names). No database needed.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files, folders (their .sql files) or glob patterns; default: the pending files of "
                        "supabase/migrations/ (all of them when no database is configured)")
    p.add_argument("--all", action="store_true", help="every file in supabase/migrations/, applied or not")
    p.add_argument("--reporter", choices=REPORTERS, default="text", help="output format (default text)")
    p.add_argument("--fail-on", default=None, metavar="LEVEL",
                   help=f"exit 1 when a finding at or above this level remains: {'|'.join(SEVERITIES)} (default error)")
    p.add_argument("--pg-version", default=None, metavar="VERSION", help="target PostgreSQL version, e.g. 15 or 15.4")
    tx = p.add_mutually_exclusive_group()
    tx.add_argument("--assume-in-transaction", dest="assume_in_transaction", action="store_true", default=None,
                    help="each file runs inside a transaction (as *apply and the Supabase CLI run them)")
    tx.add_argument("--no-assume-in-transaction", dest="assume_in_transaction", action="store_false")
    p.add_argument("-e", "--exclude", action="append", default=None, metavar="RULES",
                   help="rules to skip, comma-separated or repeated")
    p.add_argument("-i", "--include", action="append", default=None, metavar="RULES",
                   help="opt-in rules to run as well (exclude wins)")
    p.add_argument("--exclude-path", action="append", default=None, metavar="GLOB", help="files to skip")
    p.add_argument("-c", "--config", type=Path, default=None, metavar="PATH",
                   help="squawk's .squawk.toml (default: found from the current folder upwards)")
    p.add_argument("--list-rules", action="store_true", help="print the rules with their level and exit")
    p.add_argument("--env", default=os.environ.get("SAGE_ENV", "local"),
                   help="environment whose history says which files are pending (default local)")
    p.add_argument("--db-url", default=None, help="database whose history says which files are pending")
    return p


def _flags(args) -> LintConfig:
    return LintConfig(
        pg_version=parse_pg_version(args.pg_version, "--pg-version") if args.pg_version else None,
        assume_in_transaction=args.assume_in_transaction,
        exclude=split_rules(args.exclude) if args.exclude is not None else None,
        include=split_rules(args.include) if args.include is not None else None,
        excluded_paths=list(args.exclude_path) if args.exclude_path is not None else None,
        fail_on=check_fail_on(args.fail_on) if args.fail_on is not None else None)


def _list_rules(rules: list) -> int:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.lint import ALL_RULES

    running = {r.id for r in rules}
    for r in ALL_RULES:
        state = "on" if r.id in running else "off" if not getattr(r, "opt_in", False) else "opt-in"
        print(f"{r.id:48} {r.severity:8} {state:7} {r.summary}")
    return 0


def main(argv: list[str], project: Path | None = None) -> int:
    """Entry point of `sage lint` (wired in sage_agent/cli.py)."""
    args = build_parser().parse_args(argv)
    cwd = Path.cwd()
    project = (project or cwd).resolve()
    try:
        return _run(args, project, cwd)
    except LintUsageError as exc:
        print(f"sage lint: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  next: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sage lint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _run(args, project: Path, cwd: Path) -> int:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.lint.config import load_config, select_rules

    cfg = load_config(project, cwd, _flags(args), args.config)
    rules = select_rules(cfg)
    if args.list_rules:
        return _list_rules(rules)
    if args.paths and args.all:
        raise LintUsageError("--all lints supabase/migrations/; give either paths or --all")
    excluded_paths = cfg.excluded_paths or []
    notes: list[str] = []
    if args.paths:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.lint.files import collect

        files = collect(args.paths, cwd, excluded_paths, project=project)
    else:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.lint.files import default_files

        selection = default_files(project, cwd, all_files=args.all, env=args.env, db_url=args.db_url,
                                  excluded_paths=excluded_paths)
        files, notes = selection.files, selection.notes
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.lint.reporters import render
    from sage_agent.ops.lint.runner import lint_paths

    run = lint_paths(files, rules, cfg.pg_version or DEFAULT_PG, bool(cfg.assume_in_transaction),
                     chain=not args.paths)
    run.notes = notes + [f"settings from {s}" for s in cfg.sources]
    out = render(run, args.reporter, stream=sys.stdout)
    sys.stdout.write(out)
    if args.reporter != "text":  # machine output stays clean; say the same things on stderr
        for n in run.notes:
            print(f"note: {n}", file=sys.stderr)
    sys.stdout.flush()
    return run.exit_code(cfg.fail_on or "error")
