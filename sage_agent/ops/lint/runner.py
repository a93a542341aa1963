"""Lint files one by one: a file that cannot be read or parsed becomes a finding of its own (with line and
column) and the other files are still linted."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

from sage_agent.sqlkit.lint.model import LintFinding
from sage_agent.errors import NotUtf8, decode_utf8

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
# Problems with the file itself rather than a rule: not names a user can --exclude.
SYNTAX_ERROR = "syntax-error"
UNREADABLE = "unreadable-file"


class FileReport:
    """One file's findings. Plain classes here: a dataclass costs `sage lint`'s start-up a millisecond each."""

    def __init__(self, path: Path, findings: list[LintFinding] | None = None, unreadable: bool = False,
                 note: str | None = None) -> None:
        self.path = path
        self.findings: list[LintFinding] = [] if findings is None else findings
        self.unreadable = unreadable  # not found, not a file, not UTF-8: exit 2 (bad input), not a lint result
        self.note = note  # e.g. "empty file"


class LintRun:
    def __init__(self, files: list[FileReport], notes: list[str] | None = None, rules: list | None = None) -> None:
        self.files = files
        self.notes: list[str] = [] if notes is None else notes
        self.rules: list = [] if rules is None else rules  # the Rule objects that ran (SARIF lists them)

    @property
    def findings(self) -> list[LintFinding]:
        return [f for r in self.files for f in r.findings]

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def exit_code(self, fail_on: str) -> int:
        """2 for an unreadable file, 1 when a finding at or above `fail_on` remains, else 0."""
        if any(r.unreadable for r in self.files):
            return 2
        floor = SEVERITY_RANK[fail_on]
        return 1 if any(SEVERITY_RANK.get(f.severity, 0) >= floor for f in self.findings) else 0


def _decode(data: bytes, shown: str) -> tuple[str | None, LintFinding | None]:
    try:
        text = decode_utf8(data, shown)
    except NotUtf8 as exc:
        return None, LintFinding(rule=UNREADABLE, severity="error", line=exc.line, column=exc.column, filename=shown,
                                 message=f"not UTF-8: byte 0x{exc.byte:02x} cannot be decoded; save the "
                                         "file as UTF-8 (PostgreSQL migrations are read as UTF-8)")
    return (text[1:] if text.startswith("\ufeff") else text), None


def lint_file(path: Path, rules: list, server_major: int, assume_in_transaction: bool, chain=None,
              jobs: int = 1) -> FileReport:
    """One file; `chain` (sqlkit LintChain) carries what earlier files of a migration sequence did; `jobs` > 1
    lets a big file use a second process (same findings)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.lint.engine import lint_sql
    from sage_agent.sqlkit.split import SqlSyntaxError

    shown = path.as_posix()
    report = FileReport(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.unreadable = True
        report.findings.append(LintFinding(rule=UNREADABLE, severity="error", line=1, column=1, filename=shown,
                                           message=f"cannot read the file: {exc.strerror or exc}"))
        return report
    text, problem = _decode(data, shown)
    if problem is not None:
        report.unreadable = True
        report.findings.append(problem)
        return report
    if not text.strip():
        report.note = "empty file"
        return report
    try:
        report.findings = lint_sql(text, shown, server_major, rules, assume_in_transaction, chain=chain, jobs=jobs)
    except SqlSyntaxError as exc:
        report.findings.append(LintFinding(rule=SYNTAX_ERROR, severity="error", line=exc.line, column=exc.column,
                                           filename=shown, message=f"syntax error: {exc.message}",
                                           safe_alternative="fix the statement; PostgreSQL would reject the file"))
    except RecursionError:
        report.findings.append(LintFinding(rule=SYNTAX_ERROR, severity="error", line=1, column=1, filename=shown,
                                           message="the statement nests too deeply to analyse"))
    return report


_PARALLEL_FROM = 8  # files; below this a worker pool costs more than it saves


def _running_elsewhere(samples: int = 3) -> int | None:
    """Tasks running or waiting for a core right now, this process not counted (None: no such count here).

    Linux's /proc/loadavg gives it as the 4th field ("running/total"): an instant count, unlike the load
    averages beside it, which trail by a minute (right after other work an idle machine still shows a load
    near 1). The fewest of a few reads 1 ms apart: a process that merely woke for a moment is not a busy
    core, one that computes is counted in every read. Costs about 2.2 ms; only many files or a big file ask."""
    fewest = None
    for i in range(samples):
        if i:
            time.sleep(0.001)
        try:
            fd = os.open("/proc/loadavg", os.O_RDONLY)
            try:
                field = os.read(fd, 128).split()[3]
            finally:
                os.close(fd)
            running = int(field.split(b"/")[0]) - 1  # this process, reading, is one of them
        except (OSError, IndexError, ValueError):  # not Linux, or no /proc
            return None
        fewest = running if fewest is None else min(fewest, running)
        if fewest <= 0:
            break
    return max(0, fewest)


def _cores() -> int:
    """Processes a run may use: SAGE_LINT_JOBS, else one per core that nothing else is running on right now (at
    most 4, at least 1). On a machine whose cores are already busy a second process gains no time, it only adds
    its own cost (measured: bench/results/lint.md), the way `make -l` holds back jobs."""
    # lazy: only many files or a big one need it, and the settings module costs a small file's start-up
    from sage_agent.config import settings

    wanted = settings().lint_jobs
    if wanted > 0:
        return wanted
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy: float | None = _running_elsewhere()
    if busy is None:  # no instant count on this platform: the 1-minute load average
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    return max(1, min(cores, 4, round(cores - busy)))


def _jobs(count: int) -> int:
    """Worker processes for `count` files; 1 = no pool. Never in a process that already runs threads (`*lint`
    inside `sage mcp` or the REPL): a forked child gets a copy of every lock a thread held at that moment, and
    one taken and never released there hangs the worker."""
    if count < _PARALLEL_FROM or threading.active_count() > 1:
        return 1
    return max(1, min(_cores(), count))


def _big(path: Path) -> bool:
    """Whether the file may be big enough for two processes (its characters are at most its bytes)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.sqlkit.lint.parallel import MIN_CHARS

    try:
        return path.stat().st_size >= MIN_CHARS
    except OSError:
        return False  # lint_file reports it


_WORK: tuple = ()


def _lint_one(path: Path) -> FileReport:
    return lint_file(path, *_WORK)


def lint_paths(paths: list[Path], rules: list, server_major: int, assume_in_transaction: bool, *,
               chain: bool = False) -> LintRun:
    """Lint every file, in order. `chain`: the files are one migration sequence (supabase/migrations/), linted
    in order with shared memory (a constraint validated earlier makes a later SET NOT NULL safe). Otherwise
    each file stands alone, as in squawk, and many files are spread over forked workers (the rules and pglast
    are already imported, so a worker starts in milliseconds). The cyclic GC stays off, as in sqlkit (parse
    trees are acyclic and reference counting frees them)."""
    global _WORK
    was = gc.isenabled()
    gc.disable()
    try:
        if chain:
            # lazy: pglast (the SQL parser) loads only when SQL is parsed
            from sage_agent.sqlkit.lint.engine import LintChain

            memory = LintChain()
            return LintRun([lint_file(p, rules, server_major, assume_in_transaction, memory) for p in paths],
                           rules=rules)
        jobs = _jobs(len(paths))
        if jobs > 1:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            import multiprocessing

            try:
                context = multiprocessing.get_context("fork")
            except ValueError:  # no fork on this platform: one process
                jobs = 1
        if jobs == 1:  # few files: a big one may still take two processes (sqlkit.lint.parallel)
            per_file = min(_cores(), 2) if any(_big(p) for p in paths) else 1
            return LintRun([lint_file(p, rules, server_major, assume_in_transaction, jobs=per_file) for p in paths],
                           rules=rules)
        _WORK = (rules, server_major, assume_in_transaction)
        # The parent is one of the `jobs` processes: it lints the first file before forking (the rule modules
        # the files need load once, and the workers inherit them), then its share of the files while `jobs - 1`
        # workers do the rest; reports stay in file order.
        first = [_lint_one(paths[0])]
        own = max(0, len(paths) // jobs - 1)
        rest = paths[1 + own:]
        with context.Pool(jobs - 1) as pool:
            pending = pool.map_async(_lint_one, rest, chunksize=max(1, len(rest) // ((jobs - 1) * 4)))
            mine = [_lint_one(p) for p in paths[1:1 + own]]
            reports = first + mine + pending.get()
        return LintRun(reports, rules=rules)
    finally:
        _WORK = ()
        if was:
            gc.enable()
