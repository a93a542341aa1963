"""Seed loading: which files, parse first, what they write to, one transaction, seed hashes like the Supabase CLI."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sage_agent.ops.result import OpError
from sage_agent.sqlkit.idents import quoted
from sage_agent.errors import NotUtf8, decode_utf8

CREATE_SEED_TABLE = ("CREATE TABLE IF NOT EXISTS supabase_migrations.seed_files "
                     "(path text NOT NULL PRIMARY KEY, hash text NOT NULL)")
UPSERT_SEED_FILE = ("INSERT INTO supabase_migrations.seed_files(path, hash) VALUES(%s, %s) "
                    "ON CONFLICT (path) DO UPDATE SET hash = EXCLUDED.hash")


@dataclass
class SeedFile:
    path: Path
    rel: str  # as the Supabase CLI records it: relative to the project, forward slashes
    text: str
    hash: str
    statements: list = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # transaction control statements we leave out


def _rel(project: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def resolve_seed_files(project: Path, file: str | None) -> tuple[list[Path], list[str]]:
    """The file given, else config.toml [db.seed] sql_paths (globs relative to supabase/, in order), else
    supabase/seed.sql. Returns (paths, notes)."""
    notes: list[str] = []
    supabase = project / "supabase"
    if file:
        for candidate in (Path(file), project / file, supabase / file):
            if candidate.is_file():
                return [candidate], notes
        raise OpError(f"seed file not found: {file if file.isprintable() else repr(file)}", "give a path relative to the project (e.g. supabase/seed.sql)",
                      exit_code=2)
    config = supabase / "config.toml"
    if config.is_file():
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise OpError(f"supabase/config.toml is not valid TOML: {exc}", "fix the file or pass the seed file",
                          exit_code=2) from None
        seed_cfg = doc.get("db", {}).get("seed", {})
        if seed_cfg.get("enabled") is False:
            raise OpError("seeding is disabled in supabase/config.toml ([db.seed] enabled = false)",
                          "pass a file explicitly (*seed supabase/seed.sql) or enable it", exit_code=2)
        patterns = seed_cfg.get("sql_paths")
        if patterns:
            found: list[Path] = []
            for pattern in patterns:
                clean = pattern[2:] if pattern.startswith("./") else pattern
                matches = sorted(glob.glob(os.path.join(str(supabase), clean)))
                if not matches:
                    notes.append(f"config.toml [db.seed] sql_paths: no file matches {pattern!r}")
                for m in matches:
                    p = Path(m)
                    if p.is_file() and p not in found:
                        found.append(p)
            if not found:
                raise OpError("no seed files: config.toml [db.seed] sql_paths matches nothing",
                              "create supabase/seed.sql or fix sql_paths", exit_code=2)
            notes.append(f"seed files from config.toml [db.seed] sql_paths ({len(found)})")
            return found, notes
    default = supabase / "seed.sql"
    if default.is_file():
        return [default], notes
    raise OpError("no seed file: supabase/seed.sql does not exist and config.toml names none",
                  "create supabase/seed.sql (*bootstrap does) or pass a file: *seed path/to/file.sql", exit_code=2)


def parse_seed_files(project: Path, paths: list[Path], server_major: int) -> list[SeedFile]:
    """Read and split every file; a syntax error names file:line; non-transactional statements are refused."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.classify import classify
    from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

    files: list[SeedFile] = []
    for path in paths:
        rel = _rel(project, path)
        raw = path.read_bytes()
        try:
            text = decode_utf8(raw, rel)
        except NotUtf8 as exc:
            raise OpError(f"seed file {rel} is not UTF-8 text (byte {exc.start})",
                          "save the file as UTF-8; nothing was changed", exit_code=2) from None
        try:
            statements = split_sql(raw, rel)
        except SqlSyntaxError as exc:
            raise OpError(f"seed file has a syntax error at {exc.filename}:{exc.line}:{exc.column}: {exc.message}",
                          "fix the file; nothing was changed") from None
        seed = SeedFile(path=path, rel=rel, text=text, hash=hashlib.sha256(raw).hexdigest())
        for stmt in statements:
            info = classify(stmt, server_major)
            if info.category == "transaction":
                seed.skipped.append(f"{rel}:{stmt.line}: {stmt.text.split()[0].upper()} (the seed runs in one "
                                    "transaction of its own)")
                continue
            if not info.transactional:
                raise OpError(f"{rel}:{stmt.line}: {info.action} cannot run inside a transaction, and a seed is loaded "
                              "in one", "move it to a migration; nothing was changed")
            seed.statements.append(stmt)
        files.append(seed)
    return files


def qualified(rangevar) -> str:
    """A quoted name as written (no schema -> resolved through search_path, as the seed itself is)."""
    if getattr(rangevar, "schemaname", None):
        return quoted(rangevar.schemaname, rangevar.relname)
    return quoted(rangevar.relname)


def write_targets(stmt) -> list[str]:
    """Tables a statement writes to (INSERT/UPDATE/DELETE/MERGE/COPY FROM/TRUNCATE), quoted as written."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast

    node = stmt.node.stmt if hasattr(stmt.node, "stmt") else stmt.node
    if isinstance(node, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)) and node.relation:
        return [qualified(node.relation)]
    if isinstance(node, ast.CopyStmt) and node.is_from and node.relation:
        return [qualified(node.relation)]
    if isinstance(node, ast.TruncateStmt):
        return [qualified(r) for r in node.relations or ()]
    return []


def resolve_tables(conn, names: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(schema, table) for names that exist now; the rest (created by the seed itself?) separately."""
    found: list[tuple[str, str]] = []
    missing: list[str] = []
    for name in names:
        row = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.oid = to_regclass(%s)", (name,)).fetchone()
        if row and (row[0], row[1]) not in found:
            found.append((row[0], row[1]))
        elif not row:
            missing.append(name)
    return found, missing


def truncate_closure(conn, tables: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The tables and every table referencing them by foreign key (what TRUNCATE ... CASCADE would empty)."""
    if not tables:
        return []
    rows = conn.execute(
        """
        with recursive t(oid) as (
          select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))
          union
          select k.conrelid from pg_constraint k join t on k.confrelid = t.oid where k.contype = 'f'
        )
        select n.nspname, c.relname from t join pg_class c on c.oid = t.oid
        join pg_namespace n on n.oid = c.relnamespace order by 1, 2
        """, ([s for s, _ in tables], [t for _, t in tables])).fetchall()
    return [(r[0], r[1]) for r in rows]


_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")


def error_line(stmt, exc) -> int:
    """The file line of a server error inside a statement (its position), or inside COPY data."""
    diag = getattr(exc, "diag", None)
    context = getattr(diag, "context", None) or ""
    match = _COPY_LINE.search(context)
    if stmt.copy_data is not None and match:
        return stmt.end_line + int(match.group(1))
    pos = getattr(diag, "statement_position", None)
    try:
        pos = int(pos) if pos else 0
    except ValueError:
        pos = 0
    if pos > 0:
        return stmt.line + stmt.text[: pos - 1].count("\n")
    return stmt.line
