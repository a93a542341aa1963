"""*backup / *restore internals: names, pg_dump with progress, metadata, checksums, verification, restore."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from sage_agent.db.redact import redact
from sage_agent.db.tables import count_rows, list_tables
from sage_agent.ops.artifacts import sha256_file
from sage_agent.ops.result import OpError
from sage_agent.ops.snapshots.dumpdiff import inventory_file

FORMATS = {"custom": ("c", ".dump"), "plain": ("p", ".sql"), "directory": ("d", ".dir")}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
META_KEY = "sage_backup"
PLAIN_END = b"-- PostgreSQL database dump complete"
Popen = subprocess.Popen  # module attribute so tests can watch the exact argv and environment


def backups_dir(project: Path) -> Path:
    return project / "supabase" / "backups"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or ".." in name or name.lower().endswith(".json"):
        raise OpError(f"bad backup name {name!r}: use letters, digits, '.', '_' and '-' (no paths, no '..'), "
                      "at most 100 characters", exit_code=2)
    return name


def artifact_path(project: Path, name: str, fmt: str) -> Path:
    return backups_dir(project) / f"{name}{FORMATS[fmt][1]}"


def checksum(path: Path) -> tuple[str, int, dict[str, str] | None]:
    """sha256 and size of a file, or of a manifest ("sha256  relative/path" lines) for a directory."""
    if path.is_dir():
        files = {str(p.relative_to(path)): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
        manifest = "".join(f"{digest}  {rel}\n" for rel, digest in files.items())
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return hashlib.sha256(manifest.encode()).hexdigest(), size, files
    return sha256_file(path), path.stat().st_size, None


# --- the catalog --------------------------------------------------------------------------------------------
def restored_counts(conn, expected: dict[str, int], server_major: int) -> tuple[dict[str, int | None], int]:
    """Row counts of just-restored tables, and how many of them needed count(*).

    A restore writes every row through COPY into tables it has just created (pg_restore --clean drops and
    recreates them), so the server's exact per-table counters, inserted minus deleted, are the row count; reading
    them costs nothing, where count(*) reads every restored table again. A table whose counters disagree with the
    backup (counters not flushed yet, track_counts off, another writer) is counted with count(*), so a difference
    is always reported from an exact count. Counters are trusted from PostgreSQL 15 on (shared-memory statistics,
    flushed when the restoring session ends)."""
    # lazy: psycopg loads on the first database call
    import psycopg
    from psycopg import sql

    counts: dict[str, int | None] = {}
    if server_major >= 15:
        for attempt in range(3):
            conn.execute("select pg_stat_clear_snapshot()")
            rows = conn.execute("select schemaname || '.' || relname, n_tup_ins - n_tup_del from pg_stat_user_tables "
                                "where schemaname || '.' || relname = any(%s)", (list(expected),)).fetchall()
            counts = {table: n for table, n in rows if expected.get(table) == n}
            if len(counts) == len(expected):
                break
            time.sleep(0.05 * (attempt + 1))  # the restoring backend may still be flushing as it exits
    exact = [t for t in expected if t not in counts]
    for table in exact:
        schema, _, name = table.partition(".")
        try:
            counts[table] = conn.execute(sql.SQL("select count(*) from {}").format(
                sql.Identifier(schema, name))).fetchone()[0]
        except psycopg.Error:  # the table is missing: reported as such
            conn.rollback()
            counts[table] = None
    return counts, len(exact)


_LISTED_VIEW = re.compile(r"\d+ \d+ (?:MATERIALIZED )?VIEW (\S+) (\S+)")


def views_in_backup(listing: list[str] | None, artifact: Path, fmt: str) -> set[str]:
    """schema.name of the views and materialized views a backup re-creates: from the archive listing, or from the
    entry headers of a plain SQL backup (read as every plain dump is, by snapshots.dumpdiff)."""
    if fmt != "plain":
        return {f"{m[1]}.{m[2]}" for m in map(_LISTED_VIEW.search, listing or []) if m}
    return {f"{schema}.{name}" for kind, schema, name in inventory_file(artifact)
            if kind in ("VIEW", "MATERIALIZED VIEW")}


def outside_dependents(conn, tables: list[str], archived_views: set[str]) -> list[tuple[str, str, str]]:
    """Objects the backup does not hold that depend on tables it replaces: (object, kind, what to drop).

    pg_restore --clean (or a plain backup's DROP statements) drops each table before it recreates it; a foreign
    key from a table made after the backup, or a view made after it, blocks that DROP and the whole restore rolls
    back. Found before anything is done."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    found = [(child, "foreign key", sql.SQL("alter table {} drop constraint {};").format(
                 sql.Identifier(cs, cn), sql.Identifier(con)).as_string(conn) + f"  -- references {parent}")
             for child, cs, cn, con, parent in conn.execute(
        """
        select n.nspname || '.' || c.relname, n.nspname, c.relname, ct.conname, rn.nspname || '.' || r.relname
        from pg_constraint ct join pg_class c on c.oid = ct.conrelid join pg_namespace n on n.oid = c.relnamespace
        join pg_class r on r.oid = ct.confrelid join pg_namespace rn on rn.oid = r.relnamespace
        where ct.contype = 'f' and rn.nspname || '.' || r.relname = any(%(t)s)
          and not (n.nspname || '.' || c.relname = any(%(t)s))
        order by 1, 4
        """, {"t": tables}).fetchall()]
    for view, vs, vn, kind, table in conn.execute(
        """
        select distinct v.nspname || '.' || vc.relname, v.nspname, vc.relname, vc.relkind, tn.nspname || '.' || t.relname
        from pg_depend d join pg_rewrite rw on rw.oid = d.objid
        join pg_class vc on vc.oid = rw.ev_class join pg_namespace v on v.oid = vc.relnamespace
        join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace
        where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass and vc.oid <> t.oid
          and tn.nspname || '.' || t.relname = any(%(t)s)
        order by 1
        """, {"t": tables}).fetchall():
        if view not in archived_views and view not in tables:
            drop = "drop materialized view" if kind == "m" else "drop view"
            found.append((view, "materialized view" if kind == "m" else "view",
                          f"{drop} {sql.Identifier(vs, vn).as_string(conn)};  -- reads {table}"))
    return found


# --- pg_dump -------------------------------------------------------------------------------------------------
_DUMPING = re.compile(r'dumping contents of table "?([^"]+?)"?\s*$')
_FINISHED = re.compile(r"finished item \d+ TABLE DATA (\S+)")


@dataclass
class DumpRun:
    stderr_tail: list[str] = field(default_factory=list)
    tables_seen: int = 0


def run_pg_dump(url: str, out: Path, fmt: str, *, jobs: int | None, snapshot: str | None, server_major: int,
                on_table: Callable[[str], None], lock_timeout_ms: int | None = None) -> DumpRun:
    """pg_dump --verbose, password in the environment only; each table it reports advances the progress."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.binaries import find_binary
    from sage_agent.db.tools import tool_env

    binary = find_binary("pg_dump", server_major)
    args = [str(binary), "--verbose", "--no-password", f"--format={FORMATS[fmt][0]}", f"--file={out}"]
    if fmt == "plain":
        args += ["--clean", "--if-exists"]
    if jobs and jobs > 1:
        args.append(f"--jobs={jobs}")
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    if lock_timeout_ms:
        args.append(f"--lock-wait-timeout={int(lock_timeout_ms)}ms")
    run = DumpRun()
    proc = Popen(args, env=tool_env(url), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE, text=True, errors="replace")

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            match = _DUMPING.search(line) or _FINISHED.search(line)
            if match:
                run.tables_seen += 1
                on_table(match.group(1))
            run.stderr_tail.append(line)
            del run.stderr_tail[:-40]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    run.proc = proc  # type: ignore[attr-defined]
    run.reader = reader  # type: ignore[attr-defined]
    run.redact = redact  # type: ignore[attr-defined]
    return run


def finish_pg_dump(run: DumpRun) -> None:
    proc = run.proc  # type: ignore[attr-defined]
    code = proc.wait()
    run.reader.join(timeout=10)  # type: ignore[attr-defined]
    if code != 0:
        errors = [l for l in run.stderr_tail if "error" in l.lower() or "fatal" in l.lower()] or run.stderr_tail[-5:]
        raise OpError("pg_dump failed: " + run.redact("; ".join(errors[-5:])),  # type: ignore[attr-defined]
                      "check the connection and privileges (*env-check); nothing was kept")


@lru_cache(maxsize=8)
def tool_version(name: str, server_major: int) -> str:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.binaries import find_binary

    binary = find_binary(name, server_major)
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return out


def archive_list(path: Path, server_major: int) -> list[str]:
    """`pg_restore --list`: the archive's table of contents (fails on a damaged or foreign file)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.binaries import find_binary

    binary = find_binary("pg_restore", newest=True)  # reading needs a pg_restore as new as the writer
    proc = subprocess.run([str(binary), "--list", str(path)], capture_output=True, text=True, timeout=300,
                          errors="replace")
    if proc.returncode != 0:
        raise_unreadable(path, binary, proc.stderr or proc.stdout)
    return [l for l in proc.stdout.splitlines() if l and not l.startswith(";")]


def raise_unreadable(path: Path, binary: Path, output: str) -> None:
    """The reason pg_restore could not read an archive: too old a pg_restore is named as such (the file is
    fine), anything else is a damaged or foreign file."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.archive import unreadable_reason
    from sage_agent.db.binaries import binary_major

    reason = unreadable_reason(path.name, binary_major(str(binary)), output)
    if reason:
        raise OpError(*reason)
    message = output.strip().splitlines()
    raise OpError(f"{path.name} is not a readable pg_dump archive: {message[-1] if message else 'unknown error'}",
                  "the file is damaged or not a backup; nothing was changed")


def verify_archive(path: Path, fmt: str, tables: dict[str, int], server_major: int) -> list[str]:
    """Problems found in what was written (empty list: fine)."""
    problems = []
    if fmt == "plain":
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            if PLAIN_END not in fh.read():
                problems.append("the SQL file does not end with pg_dump's completion marker (truncated?)")
        return problems
    listing = archive_list(path, server_major)
    data_entries = set()
    for line in listing:
        m = re.search(r" TABLE DATA (\S+) (\S+) ", line)
        if m:
            data_entries.add(f"{m.group(1)}.{m.group(2)}")
    for table, rows in tables.items():
        if rows and table not in data_entries:
            problems.append(f"no data entry for {table} ({rows} rows) in the archive")
    return problems


def archive_owners(listing: list[str]) -> set[str]:
    """The roles that own entries of a `pg_restore --list`: an entry's last field, empty (the line ends in a
    space) for extensions and their comments, which no role owns in the archive."""
    owners = set()
    for line in listing:
        parts = line.split()
        if len(parts) >= 6 and parts[0].endswith(";") and not line.endswith(" "):
            owners.add(parts[-1])
    return owners


# --- a backup, start to end --------------------------------------------------------------------------------
def make_backup(ctx, url: str, name: str, fmt: str, *, jobs: int | None = None, env_label: str = "",
                progress_label: str | None = None) -> dict:
    """Dump `url` into supabase/backups/NAME.*, count rows in the same snapshot, verify, write NAME.json."""
    # lazy: psycopg loads on the first database call
    import psycopg

    from sage_agent.db.info import server_info
    from sage_agent.db.urls import describe

    out = artifact_path(ctx.project, name, fmt)
    meta_path = backups_dir(ctx.project) / f"{name}.json"
    if out.exists() or meta_path.exists():
        raise OpError(f"a backup named {name!r} already exists ({out.name})", "choose another name", exit_code=2)
    if not out.parent.is_dir():
        out.parent.mkdir(parents=True)
        (out.parent / ".gitignore").write_text("*\n!.gitignore\n", encoding="utf-8")  # backups stay out of git
    started = time.perf_counter()
    conn = ctx.connect(url)
    notes: list[str] = []
    try:
        info = server_info(conn)
        conn.rollback()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute("set local statement_timeout = 0")
        snapshot = None
        try:
            snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
        except psycopg.Error:
            conn.rollback()
            conn.execute("set local statement_timeout = 0")
            notes.append("could not export a snapshot: row counts were taken next to the dump, not inside it")
        tables = list_tables(conn)
        # one core for the counts: pg_dump and its server backend need the others (no parallel workers)
        conn.execute("set local max_parallel_workers_per_gather = 0")
        progress = ctx.progress(progress_label or f"Backing up {describe(url)['database']}", total=len(tables) or None)
        run = run_pg_dump(url, out, fmt, jobs=jobs, snapshot=snapshot, server_major=info.major,
                          on_table=lambda t: progress.advance(1, t),
                          lock_timeout_ms=ctx.settings.lock_timeout_ms)
        try:
            counts = count_rows(conn, tables, inherited=True)
        finally:
            try:
                finish_pg_dump(run)
            except BaseException:
                _remove(out)
                raise
        conn.rollback()
    finally:
        conn.close()
    # lazy: the thread pool loads only for parallel work
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        # read back from disk (the metadata describes what was written) while pg_restore lists the archive
        summed = pool.submit(checksum, out)
        problems = verify_archive(out, fmt, counts, info.major)
        digest, size, files = summed.result()
    if problems:
        _remove(out)
        raise OpError("the backup did not verify: " + "; ".join(problems), "nothing was kept; try again")
    meta = {
        META_KEY: 1, "name": name, "format": fmt, "file": out.name,
        "sha256": digest, "checksum_of": "manifest" if files is not None else "file", "size": size,
        "server_version": info.version, "server_major": info.major,
        "pg_dump_version": tool_version("pg_dump", info.major), "database": info.database,
        "environment": env_label, "url": redact(url),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.perf_counter() - started, 3), "consistent_snapshot": snapshot is not None,
        "tables": [{"schema": s, "name": t, "rows": counts[f"{s}.{t}"]} for s, t in tables],
        "total_rows": sum(counts.values()), "jobs": jobs or 1, "notes": notes,
    }
    if files is not None:
        meta["files"] = files
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    meta["_path"] = str(out)
    meta["_meta_path"] = str(meta_path)
    return meta


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- finding and checking a backup -----------------------------------------------------------------------------
def available(project: Path) -> list[str]:
    folder = backups_dir(project)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def locate(project: Path, text: str) -> tuple[dict, Path, Path]:
    """(metadata, metadata path, artifact path) for a backup name, NAME.json, or the dump file / folder."""
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [project / given, Path.cwd() / given]
    meta_path = None
    for cand in candidates:
        if cand.exists():
            if cand.suffix == ".json" and cand.is_file():
                meta_path = cand
            else:
                sibling = cand.with_name(cand.name[: -len(cand.suffix)] + ".json") if cand.suffix else None
                if sibling is None or not sibling.is_file():
                    raise OpError(f"{cand.name} is not a DB Sage backup: there is no metadata file next to it "
                                  f"({sibling.name if sibling else cand.name + '.json'})",
                                  "restore backups made by *backup; for a foreign dump use pg_restore directly",
                                  exit_code=2)
                meta_path = sibling
            break
    if meta_path is None:
        if NAME_RE.fullmatch(text) and ".." not in text and (backups_dir(project) / f"{text}.json").is_file():
            meta_path = backups_dir(project) / f"{text}.json"
        else:
            names = available(project)
            raise OpError(f"no backup named {text!r}",
                          ("available: " + ", ".join(names[-10:])) if names else "make one with *backup", exit_code=2)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OpError(f"{meta_path.name} is not a DB Sage backup metadata file ({exc})", exit_code=2) from None
    if not isinstance(meta, dict) or meta.get(META_KEY) != 1 or meta.get("format") not in FORMATS \
            or not isinstance(meta.get("file"), str) or "/" in meta["file"] or ".." in meta["file"]:
        raise OpError(f"{meta_path.name} is not a DB Sage backup metadata file", exit_code=2)
    artifact = meta_path.parent / meta["file"]
    return meta, meta_path, artifact


def check_backup(meta: dict, artifact: Path, server_major: int) -> list[str]:
    """Checksum and readability; raises OpError when the backup cannot be trusted. Returns the archive listing."""
    if not artifact.exists():
        raise OpError(f"the backup file {artifact.name} is missing", exit_code=1)
    digest, size, files = checksum(artifact)
    if size != meta.get("size") or digest != meta.get("sha256"):
        what = f"size {size:,} bytes, expected {meta.get('size', 0):,}" if size != meta.get("size") else "content changed"
        if files is not None and isinstance(meta.get("files"), dict):
            changed = sorted(set(files.items()) ^ set(meta["files"].items()))
            if changed:
                what += f"; differing files: {', '.join(sorted({c[0] for c in changed})[:5])}"
        raise OpError(f"backup {artifact.name} is damaged or was changed: sha256 does not match its metadata ({what})",
                      "nothing was changed; use another backup")
    if meta["format"] == "plain":
        problems = verify_archive(artifact, "plain", {}, server_major)
        if problems:
            raise OpError(f"backup {artifact.name}: {problems[0]}", "nothing was changed; use another backup")
        return []
    return archive_list(artifact, server_major)
