"""The Supabase CLI's migration ledger: `supabase_migrations.schema_migrations(version, statements, name)`.

DB Sage and `supabase db push` must agree on what is applied, in both directions, so this module
reproduces the CLI exactly where it matters:

- the DDL that creates the ledger (after `SET lock_timeout = '4s'`, with ADD COLUMN IF NOT EXISTS);
- local files `supabase/migrations/<digits>_<name>.sql` (others skipped with a warning);
- the statements stored per version: the CLI splits a file with its own small state machine
  (quotes, E'' strings, dollar quotes, comments, parentheses, BEGIN ATOMIC), keeps each chunk as
  written (leading comments included), strips the trailing `;` and surrounding whitespace, and drops
  empty chunks. `cli_split` is a faithful port of CLI 3.x (checked against `supabase db push` 3.1.0 on
  tricky files), so the rows `*apply` writes are the rows `db push` writes;
- which local files are pending (`FindPendingMigrations`): a remote version missing locally is an
  error, and a local file older than the newest applied one is an error unless include-all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from psycopg import sql

from sage_agent.errors import LocatedError, NotUtf8, decode_utf8

HISTORY_SCHEMA = "supabase_migrations"
HISTORY_TABLE = "schema_migrations"
MIGRATION_FILE = re.compile(r"^([0-9]+)_(.*)\.sql$")
_INIT_SCHEMA = re.compile(r"([0-9]{14})_init\.sql")

SET_LOCK_TIMEOUT = "SET lock_timeout = '4s'"
CREATE_VERSION_SCHEMA = "CREATE SCHEMA IF NOT EXISTS supabase_migrations"
CREATE_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
                        "(version text NOT NULL PRIMARY KEY)")
ADD_STATEMENTS_COLUMN = "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]"
ADD_NAME_COLUMN = "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text"
INSERT_VERSION = "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) VALUES(%s, %s, %s)"
UPSERT_VERSION = (INSERT_VERSION + " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, "
                  "statements = EXCLUDED.statements")
DELETE_VERSION = "DELETE FROM supabase_migrations.schema_migrations WHERE version = %s"
SELECT_VERSIONS = ("SELECT version, coalesce(name, '') AS name, statements "
                   "FROM supabase_migrations.schema_migrations ORDER BY version")


class MigrationFileError(LocatedError):
    """A migration file that cannot be applied as written (binary, empty, unterminated quote...)."""


class UnreadableMigration(MigrationFileError):
    """Binary or not UTF-8: bad input (exit 2), not a migration that fails (exit 1)."""


# --- the CLI's statement splitter, ported ---------------------------------------------------------------------
# Supabase CLI 3.x splits a migration file with a small state machine (quotes, E'' strings with backslash
# escapes and continuation lines, dollar quotes, nested block comments, parentheses, BEGIN ATOMIC bodies),
# keeps each chunk as written (leading comments included), strips trailing `;` and whitespace, and drops
# empty chunks. The classes below follow it state for state, including its quirks (a `)` closes every open
# parenthesis level), because the chunks are what the CLI stores in `statements`.
_WS = " \t\n\r\f\v"


def _ident(ch: str) -> bool:
    return ord(ch) >= 128 or ch.isascii() and (ch.isalnum() or ch in "_$")


class _Tok:
    """The token being read: `text[start:end]` (end exclusive)."""

    __slots__ = ("text", "start", "end")

    def __init__(self, text: str) -> None:
        self.text = text
        self.start = 0
        self.end = 0

    def ident_before(self, rel: int) -> bool:
        """The CLI's f$n: is the character before token offset `rel` an identifier character?"""
        return rel > 0 and _ident(self.text[self.start + rel - 1])

    def ends_with_word(self, word: str, end: int | None = None) -> bool:
        """The CLI's SEe: the token (up to `end`) ends with `word` (case-insensitive), not inside an identifier."""
        end = self.end if end is None else end
        rel = end - self.start - len(word)
        if rel < 0 or self.text[end - len(word):end].upper() != word:
            return False
        return not self.ident_before(rel)


def _skip_space_and_comments(text: str) -> int:
    """The CLI's d$n with whitespace: index of the first character that is not whitespace or a comment."""
    r, n = 0, len(text)
    while r < n:
        if text[r] in _WS:
            r += 1
        elif text.startswith("--", r):
            nl = min([i for i in (text.find("\n", r + 2), text.find("\r", r + 2)) if i >= 0], default=-1)
            if nl == -1:
                return n
            r = nl + 1
        elif text.startswith("/*", r):
            depth, after = 1, True
            r += 2
            while r < n and depth > 0:
                step = 0 if after else _comment_delta(text[r - 1:r + 1])
                after = step != 0
                depth += step
                r += 1
            if depth > 0:
                return n
        else:
            return r
    return n


def _comment_delta(pair: str) -> int:
    return 1 if pair == "/*" else -1 if pair == "*/" else 0


class _Ready:
    __slots__ = ()
    open = False
    atomic = False

    def next(self, ch: str, tok: _Tok):
        if ch == "$":
            rel = tok.end - tok.start - 1
            if tok.ident_before(rel):
                return self
            return _Tag(rel)
        if ch == "'":
            return _Quote("'", tok.ends_with_word("E", tok.end - 1))
        if ch == '"':
            return _Quote('"', False)
        if ch == "-":
            return _Dash()
        if ch == "/":
            return _Block()
        if ch == "\\":
            return _Escape()
        if ch == ";":
            return None
        if ch == "(":
            return _Paren(_Ready())
        if ch in "cC" and _begin_atomic(tok):
            return _Atomic(_Ready(), tok.end - tok.start)
        return self


def _begin_atomic(tok: _Tok) -> bool:
    if not tok.ends_with_word("ATOMIC"):
        return False
    n = tok.end - 6
    while n > tok.start and tok.text[n - 1] in _WS:
        n -= 1
    return tok.ends_with_word("BEGIN", n)


class _Dash:
    __slots__ = ()
    open = False
    atomic = False

    def next(self, ch, tok):
        if ch == "-":
            return _LineComment()
        return _Ready().next(ch, tok)


class _LineComment:
    __slots__ = ()
    open = False
    atomic = False

    def next(self, ch, tok):
        return _Ready() if ch in "\n\r" else self


class _Block:
    __slots__ = ("depth", "after")
    atomic = False

    def __init__(self) -> None:
        self.depth = 0
        self.after = False

    @property
    def open(self) -> bool:
        return self.depth > 0

    def next(self, ch, tok):
        step = 0 if self.after else _comment_delta(tok.text[max(tok.start, tok.end - 2):tok.end])
        self.after = step != 0
        if self.depth == 0 and step == 0:
            return _Ready().next(ch, tok)
        self.depth += step
        return _Ready() if self.depth == 0 else self


class _Quote:
    __slots__ = ("delimiter", "backslash_escapes", "escape", "backslash")
    atomic = False

    def __init__(self, delimiter: str, backslash_escapes: bool) -> None:
        self.delimiter = delimiter
        self.backslash_escapes = backslash_escapes
        self.escape = False
        self.backslash = False

    @property
    def open(self) -> bool:
        return not self.escape

    def next(self, ch, tok):
        if self.escape:
            if ch == self.delimiter:
                self.escape = False
                return self
            if self.backslash_escapes:
                return _EContinue().next(ch, tok)
            return _Ready().next(ch, tok)
        if self.backslash:
            self.backslash = False
            return self
        if self.backslash_escapes and ch == "\\":
            self.backslash = True
            return self
        if ch == self.delimiter:
            self.escape = True
        return self


class _EContinue:
    """After an E'' string: whitespace with a newline, then `'` continues the string."""

    __slots__ = ("newline", "dashes")
    open = False
    atomic = False

    def __init__(self) -> None:
        self.newline = False
        self.dashes = 0

    def next(self, ch, tok):
        if self.dashes == 2:
            if ch in "\n\r":
                self.dashes = 0
                self.newline = True
            return self
        if ch == "-":
            self.dashes += 1
            return self
        if self.dashes == 0:
            if ch in _WS:
                self.newline = self.newline or ch in "\n\r"
                return self
            if self.newline and ch == "'":
                return _Quote(ch, True)
        return _Ready().next(ch, tok)


class _Dollar:
    __slots__ = ("delimiter",)
    open = True
    atomic = False

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def next(self, ch, tok):
        n = len(self.delimiter)
        if tok.end - tok.start >= n and tok.text[tok.end - n:tok.end] == self.delimiter:
            return _Ready()
        return self


class _Tag:
    __slots__ = ("offset",)
    open = False
    atomic = False

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def next(self, ch, tok):
        if ch == "$":
            return _Dollar(tok.text[tok.start + self.offset:tok.end])
        if _ident(ch):
            return self
        return _Ready().next(ch, tok)


class _Escape:
    __slots__ = ()
    open = False
    atomic = False

    def next(self, ch, tok):
        return _Ready()


class _Paren:
    __slots__ = ("prev",)

    def __init__(self, prev) -> None:
        self.prev = prev

    @property
    def open(self) -> bool:
        return self.prev.open is True

    @property
    def atomic(self) -> bool:
        return self.prev.atomic is True

    def next(self, ch, tok):
        r = self.prev.next(ch, tok)
        if r is None:
            self.prev = _Ready()
            return self
        self.prev = r
        if not isinstance(self.prev, _Ready):
            return self
        return _Ready() if ch == ")" else self


class _Atomic:
    __slots__ = ("prev", "pending_end", "statement_start", "has_content")
    atomic = True

    def __init__(self, prev, statement_start: int) -> None:
        self.prev = prev
        self.pending_end = False
        self.statement_start = statement_start
        self.has_content = False

    @property
    def open(self) -> bool:
        return self.prev.open is True

    def next(self, ch, tok):
        pending = self.pending_end
        self.pending_end = False
        if pending and not _ident(ch):
            return _Ready().next(ch, tok)
        r = self.prev.next(ch, tok)
        if r is None:
            self.prev = _Ready()
            self.statement_start = tok.end - tok.start
            self.has_content = False
            return self
        self.prev = r
        if not isinstance(self.prev, _Ready):
            return self
        if not self.has_content and tok.ends_with_word("END"):
            body = tok.text[tok.start + self.statement_start:tok.end - 3]
            if _skip_space_and_comments(body) == len(body):
                self.pending_end = True
            else:
                self.has_content = True
        return self


@dataclass(frozen=True)
class Chunk:
    """One statement as the Supabase CLI stores and sends it, with where it starts in the file."""

    text: str  # trimmed: no trailing ';', no surrounding whitespace (leading comments kept)
    line: int  # 1-based line of the first character of `text`
    end_line: int
    offset: int  # character offset of `text` in the file


def _open_problem(state) -> str | None:
    while isinstance(state, (_Paren, _Atomic)):
        state = state.prev
    if isinstance(state, _Dollar):
        return f"unterminated dollar-quoted string {state.delimiter}"
    if isinstance(state, _Quote) and state.open:
        return "unterminated quoted string" if state.delimiter == "'" else "unterminated quoted identifier"
    if isinstance(state, _Block) and state.open:
        return "unterminated /* comment"
    return None


_TRAILING_SEMIS = re.compile(r";+$")


def cli_split(text: str, filename: str = "<sql>", *, strict: bool = True) -> list[Chunk]:
    """Split like `supabase db push` (CLI 3.x). With `strict`, a quote or comment left open at the end of the
    file is an error naming the line where it opened (the CLI would send it and let the server fail)."""
    chunks: list[Chunk] = []
    tok = _Tok(text)
    state = _Ready()
    opened_at = 0

    def emit(start: int, end: int) -> None:
        token = text[start:end]
        trimmed = _TRAILING_SEMIS.sub("", token).strip()
        if not trimmed:
            return
        offset = start + (len(token) - len(token.lstrip()))
        line = text.count("\n", 0, offset) + 1
        chunks.append(Chunk(trimmed, line, line + trimmed.count("\n"), offset))

    n = len(text)
    for i in range(n):
        tok.end = i + 1
        was_ready = type(state) is _Ready
        new = state.next(text[i], tok)
        if new is None:
            emit(tok.start, tok.end)
            tok.start = i + 1
            state = _Ready()
            continue
        if was_ready and type(new) is not _Ready:
            opened_at = i
        state = new
    if tok.start < n:
        problem = _open_problem(state) if strict and state.open is True else None
        if problem:
            inner = state
            while isinstance(inner, (_Paren, _Atomic)):
                inner = inner.prev
            where = opened_at
            if isinstance(inner, _Dollar):
                found = text.rfind(inner.delimiter, tok.start, n - 1 if text.endswith(inner.delimiter) else n)
                where = found if found >= 0 else opened_at
            raise MigrationFileError(filename, text.count("\n", 0, where) + 1, problem)
        emit(tok.start, n)
    return chunks


def read_migration_text(path: Path) -> str:
    """The file as text; binary or non-UTF-8 content is a clear error."""
    raw = path.read_bytes()
    if b"\x00" in raw[:65536] or b"\x00" in raw:
        raise UnreadableMigration(path.name, None, "this is a binary file, not SQL (it contains NUL bytes)")
    try:
        text = decode_utf8(raw, path.name)
    except NotUtf8 as exc:
        raise UnreadableMigration(path.name, exc.line, f"not UTF-8 text (invalid byte 0x{exc.byte:02x}); "
                                                   "save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


# --- local files -----------------------------------------------------------------------------------------------
@dataclass
class LocalMigration:
    version: str
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem

    def chunks(self) -> list[Chunk]:
        return cli_split(read_migration_text(self.path), self.path.name)

    def statements(self) -> list[str]:
        return [c.text for c in self.chunks()]


def migrations_dir(project: Path) -> Path:
    return project / "supabase" / "migrations"


def list_local(project: Path) -> tuple[list[LocalMigration], list[str]]:
    """Local migration files in version order (as the CLI reads them), and warnings for skipped files."""
    folder = migrations_dir(project)
    warnings: list[str] = []
    found: list[LocalMigration] = []
    if not folder.is_dir():
        return found, warnings
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    for i, filename in enumerate(names):
        if i == 0:
            init = _INIT_SCHEMA.search(filename)
            if init and int(init.group(1)) < 20211209000000:
                warnings.append(f"skipping {filename}: a deprecated <timestamp>_init.sql (rename it to apply it)")
                continue
        match = MIGRATION_FILE.match(filename)
        if not match:
            if not filename.startswith("."):
                warnings.append(f'skipping {filename}: file name must match "<timestamp>_name.sql"')
            continue
        found.append(LocalMigration(match.group(1), match.group(2), folder / filename))
    check_versions(found)
    return found, warnings


def check_versions(local: list[LocalMigration]) -> None:
    """Two files with one version: an error before anything is read or applied. (The Supabase CLI applies the
    first, then fails on the second with a duplicate key in the history table.)"""
    seen: dict[str, LocalMigration] = {}
    for mig in local:
        first = seen.setdefault(mig.version, mig)
        if first is not mig:
            raise MigrationFileError(mig.filename, None,
                                     f"version {mig.version} is used by two files: {first.filename} and "
                                     f"{mig.filename}; the history keeps one row per version. Give one of them a "
                                     "new timestamp (rename it, or move its SQL into *migration-new NAME); "
                                     "nothing was applied")


def version_time(version: str) -> str:
    """`20240101120000` -> `2024-01-01 12:00:00` (UTC), as `supabase migration list` shows it; else ''."""
    try:
        return datetime.strptime(version[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S") if len(version) >= 14 else ""
    except ValueError:
        return ""


# --- the ledger ------------------------------------------------------------------------------------------------
@dataclass
class AppliedMigration:
    version: str
    name: str
    statements: list[str] | None


def history_exists(conn) -> bool:
    row = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()
    return bool(row and row[0])


def ensure_history_table(conn) -> None:
    """Create the ledger exactly as the CLI does. Runs in its own transaction (lock_timeout reset at its end)."""
    with conn.transaction():
        for stmt in ("SET LOCAL lock_timeout = '4s'", CREATE_VERSION_SCHEMA, CREATE_VERSION_TABLE,
                     ADD_STATEMENTS_COLUMN, ADD_NAME_COLUMN):
            conn.execute(stmt)


def read_applied(conn) -> list[AppliedMigration]:
    """Applied rows in version order; an empty list when the ledger does not exist yet."""
    if not history_exists(conn):
        return []
    cols = {r[0] for r in conn.execute(
        "select attname from pg_attribute where attrelid = 'supabase_migrations.schema_migrations'::regclass "
        "and attnum > 0 and not attisdropped").fetchall()}
    query = SELECT_VERSIONS
    if "statements" not in cols or "name" not in cols:  # a very old CLI ledger: version only
        query = "SELECT version, '' AS name, NULL::text[] AS statements FROM supabase_migrations.schema_migrations " \
                "ORDER BY version"
    return [AppliedMigration(v, n, list(s) if s is not None else None) for v, n, s in conn.execute(query).fetchall()]


def insert_version(conn, version: str, name: str, statements: list[str]) -> None:
    conn.execute(INSERT_VERSION, (version, name, statements))


def upsert_version(conn, version: str, name: str, statements: list[str]) -> None:
    conn.execute(UPSERT_VERSION, (version, name, statements))


def delete_version(conn, version: str) -> int:
    return conn.execute(DELETE_VERSION, (version,)).rowcount


# --- comparing a local file with its ledger row ----------------------------------------------------------------
def _canonical(text: str) -> list[str] | None:
    """A script's statements as the PostgreSQL parser understands them (comments, layout and statement
    boundaries ignored); None if it does not parse."""
    try:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        import pglast
        from pglast.stream import RawStream
    except ImportError:  # pragma: no cover - pglast is a dependency
        return None
    try:
        return [RawStream()(raw) for raw in pglast.parse_sql(text)]
    except Exception:  # noqa: BLE001 - any parse/deparse problem: no canonical form
        return None


def same_statements(stored: list[str] | None, local: list[str], local_text: str | None = None) -> bool | None:
    """True when the file still says what was applied; False on drift; None when the ledger kept no statements.

    Exact match first (what the CLI stores); then the same SQL up to whitespace; then the same parse trees
    (an edited comment or a different CLI version's split is not drift)."""
    if stored is None:
        return None
    if stored == local:
        return True
    squeeze = lambda items: [re.sub(r"\s+", " ", s).strip() for s in items]  # noqa: E731
    if squeeze(stored) == squeeze(local):
        return True
    a = _canonical("\n;\n".join(stored))
    b = _canonical(local_text if local_text is not None else "\n;\n".join(local))
    return a is not None and a == b


# --- what `db push` would apply --------------------------------------------------------------------------------
@dataclass
class PendingPlan:
    pending: list[LocalMigration] = field(default_factory=list)
    applied: list[LocalMigration] = field(default_factory=list)
    missing_local: list[str] = field(default_factory=list)  # remote versions with no local file
    out_of_order: list[LocalMigration] = field(default_factory=list)  # local, unapplied, older than newest remote


def find_pending(local: list[LocalMigration], remote_versions: list[str]) -> PendingPlan:
    """The CLI's FindPendingMigrations: walk both sorted lists together."""
    plan = PendingPlan()
    remote = sorted(remote_versions)
    i = j = 0
    while i < len(remote) and j < len(local):
        r, loc = remote[i], local[j]
        if r == loc.version:
            plan.applied.append(loc)
            i += 1
            j += 1
        elif r < loc.version:
            plan.missing_local.append(r)
            i += 1
        else:
            plan.out_of_order.append(loc)
            j += 1
    if j == len(local):
        plan.missing_local.extend(remote[i:])
    plan.pending = local[j:]
    return plan


def history_identifier() -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(HISTORY_SCHEMA), sql.Identifier(HISTORY_TABLE))
