"""Which files `sage lint` reads: the paths given (files, folders, globs), or the pending migrations.

Pending means "not in the Supabase CLI's history table" when a database is configured and reachable; with
none, every file in supabase/migrations/ is linted and the report says so (a linter must work in CI without
a database)."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from sage_agent.ops.lint.config import LintUsageError

MIGRATIONS = Path("supabase") / "migrations"
_MIGRATION_FILE = re.compile(r"^([0-9]+)_(.*)\.sql$")  # the Supabase CLI's <version>_<name>.sql


class Selection:
    """The files to lint and what to say about how they were chosen."""

    def __init__(self, files: list[Path], notes: list[str] | None = None) -> None:
        self.files = files
        self.notes: list[str] = [] if notes is None else notes


def _excluded(path: Path, patterns: list[str]) -> bool:
    if not patterns:
        return False

    text = path.as_posix()
    return any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(path.name, p) for p in patterns)


def collect(paths: list[str], cwd: Path, excluded_paths: list[str], *, project: Path | None = None,
            command: str = "sage lint") -> list[Path]:
    """Files from the arguments, in order, each once. A folder gives its .sql files (recursively, sorted).
    A missing path, or a folder or pattern with no .sql file, is a usage error (as squawk does), with what to
    do instead in the words of `command` (`sage lint` or `*lint`)."""
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen and not _excluded(p, excluded_paths):
            seen.add(key)
            out.append(p)

    for arg in paths:
        p = Path(arg)
        full = p if p.is_absolute() else cwd / p
        if full.is_dir():
            found = sorted(q for q in full.rglob("*.sql") if q.is_file())
            if not found:
                raise LintUsageError(f"{arg}: no .sql files in this folder",
                                     _what_to_give(project or cwd, cwd, command))
            for q in found:
                add(_shown(q, cwd))
        elif full.is_file():
            add(p)
        elif _has_magic(arg):
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            import glob

            found = sorted(Path(m) for m in glob.glob(str(full), recursive=True) if os.path.isfile(m))
            if not found:
                raise LintUsageError(f"{arg}: the pattern matches no file (in {cwd})",
                                     _what_to_give(project or cwd, cwd, command))
            for q in found:
                add(_shown(q, cwd))
        else:
            raise LintUsageError(f"{arg}: no such file or folder (looked for {full})",
                                 _missing_hint(arg, project or cwd, cwd, command))
    return out


def _what_to_give(project: Path, cwd: Path, command: str) -> str:
    """How to name the files to lint, and the default selection when the project has one."""
    if (project / MIGRATIONS).is_dir():
        folder = _shown(project / MIGRATIONS, cwd).as_posix()
        return (f"give .sql files or folders of them (`{command} {folder}/`); `{command}` alone lints the pending "
                f"files of {folder}/, `{command} --all` every file there")
    return (f"give .sql files or folders of them (`{command} path/to/migrations/`); `{command}` alone lints "
            f"{MIGRATIONS.as_posix()}/ when run from the project folder")


def _missing_hint(arg: str, project: Path, cwd: Path, command: str) -> str:
    """A migration whose name contains what was typed (`sage lint add_todos`), else how to name files."""
    word = Path(arg).name.removesuffix(".sql").lower()
    folder = project / MIGRATIONS
    close = [p for p in _migration_files(folder) if word and word in p.name.lower()] if folder.is_dir() else []
    if close:
        shown = [_shown(p, cwd).as_posix() for p in close[:3]]
        return "did you mean " + " or ".join(f"`{command} {name}`" for name in shown) + "?"
    return _what_to_give(project, cwd, command)


def _has_magic(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def _shown(path: Path, cwd: Path) -> Path:
    """A path as the user will recognise it: relative to the current folder when under it."""
    try:
        return path.relative_to(cwd)
    except ValueError:
        return path


def _migration_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.sql") if p.is_file())


def default_files(project: Path, cwd: Path, *, all_files: bool, env: str, db_url: str | None,
                  excluded_paths: list[str], command: str = "sage lint") -> Selection:
    """supabase/migrations/: all files with --all or without a database, else the pending ones."""
    folder = project / MIGRATIONS
    if not folder.is_dir():
        raise LintUsageError(f"no {MIGRATIONS.as_posix()}/ folder in {project}",
                             f"give the files or folders to lint (`{command} FILE|DIR ...`), or run from your "
                             "project folder (*bootstrap creates the layout)")
    files = [p for p in _migration_files(folder) if not _excluded(p, excluded_paths)]
    shown = [_shown(p, cwd) for p in files]
    if all_files:
        return Selection(shown, [f"linting all {len(files)} file(s) in {MIGRATIONS}/ (--all)"])
    url, how = _configured_url(project, env, db_url)
    if url is None:
        return Selection(shown, [f"no database configured ({how}): linting all {len(files)} file(s) in "
                                 f"{MIGRATIONS}/; with a database only the pending ones are linted"])
    try:
        applied = _applied_versions(url)
    except Exception as exc:  # noqa: BLE001 - any connection problem: fall back to every file, and say so
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.redact import redact

        return Selection(shown, [f"could not read the migration history ({redact(str(exc)).splitlines()[0]}): "
                                 f"linting all {len(files)} file(s) in {MIGRATIONS}/"])
    pending = []
    for p, s in zip(files, shown):
        m = _MIGRATION_FILE.match(p.name)
        if m is None or m.group(1) not in applied:
            pending.append(s)
    return Selection(pending, [f"{len(pending)} pending of {len(files)} file(s) in {MIGRATIONS}/ "
                               f"({len(files) - len(pending)} applied per the history on {how}); --all lints every file"])


def _configured_url(project: Path, env: str, db_url: str | None) -> tuple[str | None, str]:
    """(url, description) of the configured database, or (None, why not). Never starts a server."""
    # lazy: `sage lint FILES` (CI, pre-commit) never reads the environments or the embedded server
    from sage_agent.db.embedded import project_server
    from sage_agent.db.env import ConfigError, resolve_target

    try:
        target = resolve_target(project, env, db_url)
    except ConfigError as exc:
        if db_url:
            raise LintUsageError(str(exc)) from None
        return None, str(exc).split(".")[0]
    if not target.embedded:
        return target.url, target.display_url

    server = project_server(project)
    if server.data_dir.is_dir() and server.is_running():
        return server.url(), "the embedded server"
    return None, "the embedded server is not running"


def _applied_versions(url: str) -> set[str]:
    """Versions in supabase_migrations.schema_migrations (empty when the table does not exist)."""
    # lazy: psycopg loads on the first database call
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("set statement_timeout = '10s'")
        exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
        if not exists:
            return set()
        return {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")}
