"""Running pg_dump / pg_restore / psql without ever putting a password on a command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
