"""The Supabase CLI's migration ledger: `supabase_migrations.schema_migrations(version, statements, name)`.

DB Sage and `supabase db push` must agree on what is applied, in both directions, so this module
reproduces the CLI exactly where it matters:

- the DDL that creates the ledger (after `SET lock_timeout = '4s'`, with ADD COLUMN IF NOT EXISTS);
- local files `supabase/migrations/<digits>_<name>.sql` (others skipped with a warning);
- the statements stored per version: the CLI splits a file with its own small state machine
  (pkg/parser: quotes, dollar quotes, comments, parentheses, BEGIN ATOMIC), keeps each chunk as
  written (leading comments included), strips the trailing `;` and surrounding whitespace, and drops
  empty chunks. `cli_split` is a faithful port, so the rows `*apply` writes are the rows `db push` writes;
- which local files are pending (`FindPendingMigrations`): a remote version missing locally is an
  error, and a local file older than the newest applied one is an error unless include-all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from psycopg import sql

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


class MigrationFileError(ValueError):
    """A migration file that cannot be applied as written (binary, empty, unterminated quote...)."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


# --- the CLI's statement splitter (pkg/parser/state.go + token.go), ported ----------------------------------
class _Ready:
    __slots__ = ()

    def next(self, ch: str, data: list[str], end: int):
        if ch == "$":
            return _Tag(end - 1)
        if ch == "'" or ch == '"':
            # CLI 3.x: backslash escapes inside E'...' strings (standard strings keep backslashes literal)
            estring = ch == "'" and end >= 2 and data[end - 2] in "eE" and (
                end < 3 or not (data[end - 3].isalnum() or data[end - 3] in "_$"))
            return _Quote(ch, estring)
        if ch == "-":
            return _Comment()
        if ch == "/":
            return _Block()
        if ch == "\\":
            return _Escape()
        if ch == ";":
            return None  # emit the token
        if ch == "(":
            return _Atomic(self, ")")
        if ch == "c" or ch == "C":
            offset = end - 6
            if offset > 0 and "".join(data[offset:end]).upper() == "ATOMIC" and data[offset - 1].isspace():
                return _Atomic(self, "END")
        return self


_READY = _Ready()


class _Comment:
    __slots__ = ()

    def next(self, ch, data, end):
        if ch == "-":
            return _Dollar("\n")
        return _READY.next(ch, data, end)


class _Block:
    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def next(self, ch, data, end):
        window = data[end - 2] + ch if end >= 2 else ch
        if window == "/*":
            self.depth += 1
            return self
        if self.depth == 0:
            return _READY.next(ch, data, end)
        if window == "*/":
            self.depth -= 1
            if self.depth == 0:
                return _READY
        return self


class _Quote:
    __slots__ = ("delimiter", "escape", "backslash", "skip")

    def __init__(self, delimiter: str, backslash: bool = False) -> None:
        self.delimiter = delimiter
        self.escape = False
        self.backslash = backslash
        self.skip = False

    def next(self, ch, data, end):
        if self.skip:
            self.skip = False
            return self
        if self.backslash and not self.escape and ch == "\\":
            self.skip = True
            return self
        if self.escape:
            if ch == self.delimiter:
                self.escape = False
                return self
            return _READY.next(ch, data, end)
        if ch == self.delimiter:
            self.escape = True
        return self


class _Dollar:
    __slots__ = ("delimiter",)

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def next(self, ch, data, end):
        n = len(self.delimiter)
        if ch == self.delimiter[-1] and end >= n and "".join(data[end - n:end]) == self.delimiter:
            return _READY
        return self


class _Tag:
    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def next(self, ch, data, end):
        if ch == "$":
            return _Dollar("".join(data[self.offset:end]))
        if ch.isalpha() or ch.isdigit() or ch == "_":
            return self
        return _READY.next(ch, data, end)


class _Escape:
    __slots__ = ()

    def next(self, ch, data, end):
        return _READY


class _Atomic:
    __slots__ = ("prev", "delimiter")

    def __init__(self, prev, delimiter: str) -> None:
        self.prev = prev
        self.delimiter = delimiter

    def next(self, ch, data, end):
        curr = self.prev.next(ch, data, end)
        if curr is not None:
            self.prev = curr
        if self.prev is _READY or isinstance(self.prev, _Ready):
            n = len(self.delimiter)
            if end >= n and "".join(data[end - n:end]).upper() == self.delimiter.upper():
                return _READY
        return self


@dataclass(frozen=True)
class Chunk:
    """One statement as the Supabase CLI stores and sends it, with where it starts in the file."""

    text: str  # trimmed: no trailing ';', no surrounding whitespace (leading comments kept)
    line: int  # 1-based line of the first character of `text`
    end_line: int
    offset: int  # character offset of `text` in the file


def _unterminated(state, start_line: int) -> str | None:
    while isinstance(state, _Atomic):
        state = state.prev
    if isinstance(state, _Dollar) and state.delimiter != "\n":
        return f"unterminated dollar-quoted string {state.delimiter}"
    if isinstance(state, _Quote) and not state.escape:
        return "unterminated quoted string" if state.delimiter == "'" else "unterminated quoted identifier"
    if isinstance(state, _Block):
        return "unterminated /* comment"
    return None


def cli_split(text: str, filename: str = "<sql>", *, strict: bool = True) -> list[Chunk]:
    """Split like `supabase db push` (parser.SplitAndTrim). With `strict`, a quote or comment left open at the
    end of the file is an error naming the line where it opened (the CLI would send it and let the server fail)."""
    chunks: list[Chunk] = []
    state = _READY
    start = 0
    data: list[str] = []
    open_line: int | None = None

    def emit(token_start: int, token_chars: list[str]) -> None:
        token = "".join(token_chars)
        trimmed = token.rstrip(";").strip()
        if not trimmed:
            return
        lead = len(token) - len(token.lstrip())
        offset = token_start + lead
        line = text.count("\n", 0, offset) + 1
        chunks.append(Chunk(trimmed, line, line + trimmed.count("\n"), offset))

    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        data.append(ch)
        prev_kind = type(state)
        state = state.next(ch, data, len(data))
        if state is None:
            emit(start, data)
            start = i + 1
            data = []
            state = _READY
        elif prev_kind is _Ready and type(state) is not _Ready:
            open_line = text.count("\n", 0, i) + 1
        i += 1
    if data:
        problem = _unterminated(state, open_line or 1) if strict else None
        if problem:
            inner = state
            while isinstance(inner, _Atomic):
                inner = inner.prev
            if isinstance(inner, _Dollar):
                opened = text.rfind(inner.delimiter, start)
                open_line = text.count("\n", 0, opened) + 1 if opened >= 0 else open_line
            raise MigrationFileError(filename, open_line, problem)
        emit(start, data)
    return chunks


def read_migration_text(path: Path) -> str:
    """The file as text; binary or non-UTF-8 content is a clear error."""
    raw = path.read_bytes()
    if b"\x00" in raw[:65536] or b"\x00" in raw:
        raise MigrationFileError(path.name, None, "this is a binary file, not SQL (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MigrationFileError(path.name, line, f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x}); "
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
    return found, warnings


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
        for stmt in (f"SET LOCAL lock_timeout = '4s'", CREATE_VERSION_SCHEMA, CREATE_VERSION_TABLE,
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
