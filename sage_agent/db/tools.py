"""Running pg_dump / pg_restore / psql without ever putting a password on a command line."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from sage_agent.db.binaries import find_binary
from sage_agent.db.redact import redact
from sage_agent.db.urls import conninfo_params


class PgToolError(RuntimeError):
    pass


def tool_env(url: str) -> dict[str, str]:
    """libpq environment for a URL: the password goes in PGPASSWORD, never into argv (process lists)."""
    params = conninfo_params(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    mapping = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
               "password": "PGPASSWORD", "sslmode": "PGSSLMODE", "connect_timeout": "PGCONNECT_TIMEOUT",
               "sslrootcert": "PGSSLROOTCERT", "options": "PGOPTIONS"}
    for key, var in mapping.items():
        if key in params:
            env[var] = params[key]
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    env.setdefault("PGAPPNAME", "db-sage")  # DB Sage's own pg_dump/psql sessions are recognisable as its own
    return env


def run_pg_tool(name: str, url: str, args: list[str], *, server_major: int | None = None,
                timeout: float | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = find_binary(name, server_major)
    proc = subprocess.run([str(binary), *args], env=tool_env(url), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        message = redact((proc.stderr or proc.stdout).strip())
        raise PgToolError(f"{name} failed: {message}")
    return proc


def pipe_dump(src_url: str, dump_args: list[str], dst_url: str, load_args: list[str], *,
              dump_major: int | None = None, load_major: int | None = None,
              on_line: Callable[[bytes], bytes] = lambda line: line) -> None:
    """`pg_dump ... | psql ...` without a shell and without holding the dump: pg_dump's output streams line by
    line through `on_line` (which may hash or rewrite a line) into psql, so the load runs while the dump is still
    being written. Raises PgToolError naming the tool that failed (psql's error first: it stops the pipe)."""
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as load_err:
        dump = subprocess.Popen([str(find_binary("pg_dump", dump_major)), *dump_args], env=tool_env(src_url),
                                stdout=subprocess.PIPE, stderr=dump_err)
        load = subprocess.Popen([str(find_binary("psql", load_major)), *load_args, "-f", "-"],
                                env=tool_env(dst_url), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=load_err)
        try:
            assert dump.stdout is not None and load.stdin is not None
            try:
                for line in dump.stdout:
                    load.stdin.write(on_line(line))
                load.stdin.close()
            except BrokenPipeError:  # psql stopped at an error: its message says why
                pass
        finally:
            if dump.poll() is None and load.poll() is not None:
                dump.kill()
            dump_rc, load_rc = dump.wait(), load.wait()
        for name, rc, err in (("psql", load_rc, load_err), ("pg_dump", dump_rc, dump_err)):
            if rc != 0:
                err.seek(0)
                message = redact(err.read().decode("utf-8", "replace").strip())
                raise PgToolError(f"{name} failed: {message or f'exit code {rc}'}")
