"""Split a SQL script into statements with the real PostgreSQL grammar (pglast).

Why not a hand-written splitter: dollar quotes, nested comments, E'' strings and
plpgsql bodies make regex splitting wrong in exactly the files that matter
(migrations).  libpg_query is the server's own grammar, so what it accepts is
what Postgres accepts.

pglast >= 6 already converts libpg_query's UTF-8 *byte* offsets
(``stmt_location``, node ``location``, error cursor) into ``str`` indexes; we
rely on that and keep every offset in this package a character index.
"""
from __future__ import annotations

import bisect
import gc
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pglast import parser as _pg

from sage_agent.errors import NotUtf8, decode_utf8
__all__ = ["SqlSyntaxError", "Statement", "split_sql", "LineIndex", "Prepared", "prepare", "build_statements"]


class SqlSyntaxError(ValueError):
    """A script that Postgres would reject; carries a ``file:line:col`` location."""

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        self.filename = filename
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{filename}:{line}:{column}: {message}")


class LineIndex:
    """Maps character offsets to 1-based (line, column) quickly."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, max(offset, 0))

    def column(self, offset: int) -> int:
        ln = self.line(offset)
        return max(offset, 0) - self._starts[ln - 1] + 1

    def position(self, offset: int) -> tuple[int, int]:
        """(line, column) with one search."""
        offset = max(offset, 0)
        ln = bisect.bisect_right(self._starts, offset)
        return ln, offset - self._starts[ln - 1] + 1


_new = object.__new__
_set = object.__setattr__
# Statement's fields in order; all but `lines` take part in == and repr (as the dataclass it was declared them).
_FIELDS = ("text", "line", "end_line", "node", "comments", "copy_data", "trailing_comment", "start", "end",
           "filename", "lines")
_COMPARED = _FIELDS[:-1]


class Statement:
    """One top-level SQL statement and where it sits in the source file. Immutable.

    A plain class with the frozen dataclass's behaviour (same fields, ==, hash and repr), because importing
    ``dataclasses`` (it brings ``inspect``, ``ast``, ``dis``, ``tokenize``) was about 13 ms of `sage lint`'s
    start-up on a small file, and its frozen ``__init__`` set the 11 fields one call at a time (5 us a
    statement on a 5 MB file)."""

    text: str
    line: int
    end_line: int
    node: Any  # pglast.ast.Node (e.g. CreateStmt)
    comments: tuple[str, ...]
    copy_data: str | None
    trailing_comment: str | None
    start: int  # char offset of the first token in the file
    end: int  # char offset just past the last token
    filename: str
    lines: LineIndex | None

    def __init__(self, text: str, line: int, end_line: int, node: Any, comments: tuple[str, ...] = (),
                 copy_data: str | None = None, trailing_comment: str | None = None, start: int = 0, end: int = 0,
                 filename: str = "<sql>", lines: LineIndex | None = None) -> None:
        _set(self, "__dict__", {"text": text, "line": line, "end_line": end_line, "node": node,
                                "comments": comments, "copy_data": copy_data, "trailing_comment": trailing_comment,
                                "start": start, "end": end, "filename": filename, "lines": lines})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a Statement is immutable (use replace())")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a Statement is immutable")

    def _compared(self) -> tuple:
        d = self.__dict__
        return tuple(d[k] for k in _COMPARED)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        d = self.__dict__
        return "Statement(" + ", ".join(f"{k}={d[k]!r}" for k in _COMPARED) + ")"

    def replace(self, **changes: Any) -> "Statement":
        """A copy with some fields changed (what ``dataclasses.replace`` did)."""
        return Statement(**{**self.__dict__, **changes})

    def line_at(self, location: int | None) -> int:
        """Line of an AST node ``location`` (file offset); statement line if unknown."""
        if location is None or location < 0 or self.lines is None:
            return self.line
        return self.lines.line(location)


def _statement(fields: dict[str, Any]) -> Statement:
    """A :class:`Statement` from a dict of all its fields in field order, without the call of ``__init__``
    (build_statements makes one per statement: 56,000 on a 5 MB file)."""
    stmt = _new(Statement)
    _set(stmt, "__dict__", fields)
    return stmt


# COPY ... FROM STDIN; the data that follows is not SQL and libpg_query cannot parse it.
_COPY_RE = re.compile(r"\bCOPY\b[^;]*?\bFROM\s+STDIN\b[^;]*;", re.IGNORECASE | re.DOTALL)
_COMMENT_TOKENS = {"SQL_COMMENT", "C_COMMENT"}


def _is_code_at(text: str, pos: int) -> bool:
    """True when ``pos`` starts a real token (not inside a string/comment/dollar quote)."""
    probe = text[:pos] + " COPY"
    try:
        toks = _pg.scan(probe)
    except Exception:  # unterminated quote in the prefix: we are inside a literal
        return False
    return bool(toks) and toks[-1].start == pos + 1 and toks[-1].name == "COPY"


def _mask_copy_data(text: str) -> tuple[str, dict[int, str]]:
    """Blank out COPY FROM STDIN data blocks, keeping offsets and line numbers intact."""
    data: dict[int, str] = {}
    if "STDIN" not in text.upper():  # no COPY ... FROM STDIN possible: skip the slow case-insensitive search
        return text, data
    pos = 0
    while True:
        m = _COPY_RE.search(text, pos)
        if not m:
            return text, data
        if not _is_code_at(text, m.start()):
            pos = m.start() + 4
            continue
        nl = text.find("\n", m.end())
        if nl < 0:
            return text, data
        block_start = nl + 1
        term = re.compile(r"^\\\.\r?$", re.MULTILINE).search(text, block_start)
        block_end = term.end() if term else len(text)
        payload_end = term.start() if term else len(text)
        data[m.start()] = text[block_start:payload_end]
        # every character but newlines becomes a space (split/join: a regex substitution took seconds per 10 MB)
        masked = "\n".join(" " * len(line) for line in text[block_start:block_end].split("\n"))
        text = text[:block_start] + masked + text[block_end:]
        pos = block_end


def _raise_syntax(filename: str, text: str, exc: Exception) -> None:
    msg = exc.args[0] if exc.args else str(exc)
    loc = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    idx = LineIndex(text)
    if loc is None:
        loc = len(text)
    loc = min(max(loc, 0), len(text))
    raise SqlSyntaxError(filename, idx.line(loc), idx.column(loc), _short_near(msg)) from exc


def _short_near(msg: str) -> str:
    """PostgreSQL quotes the rest of the input after `at or near`: for an unterminated string or comment that is the
    whole remaining file (megabytes, many lines). Keep its first line, at most 40 characters."""
    m = re.match(r'(?s)(.*? at or near ")(.*)"\s*$', msg)
    if not m:
        return msg
    near = m.group(2)
    short = near.split("\n", 1)[0][:40]
    return f'{m.group(1)}{short}{"…" if short != near else ""}"'


# PostgreSQL's scanner whitespace (scan.l ``space``); anything else is part of a token.
_PG_SPACE = " \t\n\r\f\v"


def _may_have_comment(text: str) -> bool:
    """False only when ``text`` certainly holds no SQL comment (no ``--`` / ``/*`` at all)."""
    return "--" in text or "/*" in text


def _plain_bounds(chunk: str) -> tuple[int, int] | None:
    """(first, past-last) char of the code in a comment-free chunk; None when the scanner is needed.

    Without ``--``/``/*`` anywhere in the chunk, everything that is not scanner whitespace
    belongs to a token, so stripping whitespace gives exactly the first/last token bounds.
    """
    if _may_have_comment(chunk):
        return None
    body = chunk.lstrip(_PG_SPACE)
    if not body:
        return None
    first = len(chunk) - len(body)
    return first, len(chunk.rstrip(_PG_SPACE))


_FAST_BUILD_LOCK = threading.Lock()


def _parse(text: str) -> Any:
    """``pglast.parser.parse_sql`` without pglast's per-attribute validation.

    pglast's C extension builds every node from already-typed values (enum members, bools,
    tuples, 1-char strings), so ``Node.__setattr__``'s validation/coercion is an identity
    there, yet it was over half of the parse time of big migration files.  While the C
    builder runs we use plain slot assignment; the resulting trees are equal to the
    validated ones (tests/sqlkit/test_sqlkit_speed.py checks this).  Other pglast majors:
    the normal path.  The switch is process-wide for the duration of the parse (serialised
    by a lock); a node built by hand in another thread meanwhile would skip validation only.
    """
    if not _FAST_BUILD_OK:
        return _pg.parse_sql(text)
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast as _ast

    with _FAST_BUILD_LOCK:
        saved = _ast.Node.__dict__["__setattr__"]
        _ast.Node.__setattr__ = object.__setattr__  # type: ignore[method-assign]
        # The one exception: A_Const's Boolean gets a C int (0/1); keep its bool() coercion.
        _ast.Boolean.__setattr__ = saved  # type: ignore[method-assign]
        enums = _pg.enums
        _pg.enums = _FAST_ENUMS
        try:
            return _pg.parse_sql(text)
        finally:
            _pg.enums = enums
            del _ast.Boolean.__setattr__
            _ast.Node.__setattr__ = saved  # type: ignore[method-assign]


class _Members(dict):
    """An enum's value -> member map: a lookup in C. A value not in it (a combination of IntFlag bits, or one
    the enum lacks) goes to the enum class, which returns or raises exactly what it would have."""

    __slots__ = ("enum",)

    def __missing__(self, value: Any) -> Any:
        return self.enum(value)


class _FastEnums:
    """Stands in for ``pglast.enums`` in the parser module while it builds a tree. The C builder turns each enum
    field into a member with ``getattr(enums, 'AlterTableType')(value)``, a call through ``EnumType.__call__``
    and ``Enum.__new__`` in Python: 226,000 of them on the 5 MB bench file, about a sixth of the tree building.
    Here the same name gives the bound ``__getitem__`` of a :class:`_Members` map: the same member objects
    (tests/sqlkit/test_sqlkit_speed.py compares the trees). Filled on first use of each name."""

    def __getattr__(self, name: str) -> Any:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from pglast import enums

        found = getattr(enums, name)
        value2member = getattr(found, "_value2member_map_", None)
        if isinstance(found, type) and isinstance(value2member, dict):
            members = _Members(value2member)
            members.enum = found
            found = members.__getitem__
        setattr(self, name, found)
        return found


_FAST_ENUMS = _FastEnums()


def _fast_build_supported() -> bool:
    try:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        import pglast
        from pglast import ast as _ast

        major = int(str(pglast.__version__).lstrip("v").split(".")[0])
        return (major in (7, 8) and "__setattr__" in _ast.Node.__dict__
                and "__setattr__" not in _ast.Boolean.__dict__ and getattr(_pg, "enums", None) is pglast.enums)
    except Exception:  # noqa: BLE001
        return False


_FAST_BUILD_OK = _fast_build_supported()


def _tokens(text: str) -> list[Any]:
    try:
        return list(_pg.scan(text))
    except Exception:
        return []


# pglast turns a parse tree into Python objects recursively: an expression nested some 20,000+ levels deep
# (e.g. `select 1 + 1 + ... + 1` on one enormous line) overflows the C stack and kills the process with a
# segmentation fault. libpg_query's JSON output checks the stack depth, so large texts are checked with it first
# (a text shorter than this cannot nest that deep).
_DEEP_CHECK_CHARS = 30_000


def _check_depth(filename: str, text: str) -> list[slice] | None:
    """Only pieces longer than _DEEP_CHECK_CHARS can nest that deep: the scanner's split (C, no parse tree)
    finds them. A deep expression holds no `;` token, so it lies inside one piece even where the scanner splits
    more finely than the grammar (BEGIN ATOMIC bodies); a piece that is no statement of its own is checked with
    the whole text instead. Returns the scanner's pieces (None when the scanner refused the text)."""
    try:
        slices = list(_pg.split(text, with_parser=False, only_slices=True))
    except Exception:  # noqa: BLE001 - the scanner refused the text: check it whole
        _check_whole(filename, text)
        return None
    for piece in (text[s] for s in slices if s.stop - s.start > _DEEP_CHECK_CHARS):
        try:
            _pg.parse_sql_json(piece)
        except _pg.ParseError:  # too deep, or not a statement on its own: the whole text says which
            _check_whole(filename, text)
            break
    return slices


def _check_whole(filename: str, text: str) -> None:
    try:
        _pg.parse_sql_json(text)
    except _pg.ParseError as exc:
        if "stack depth" in str(exc).lower():
            raise SqlSyntaxError(filename, 1, 1, "statement nested too deeply to parse (an expression thousands of "
                                                 "levels deep); split it into smaller statements") from None
        _raise_syntax(filename, text, exc)


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building/inspecting big statement lists.

    A 5 MB migration is over a million small acyclic AST objects; the collector's repeated
    passes over them were half of the lint time.  Reference counting still frees everything;
    the collector is switched back on (if it was on) afterwards.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def split_sql(text: str | bytes, filename: str = "<sql>") -> list[Statement]:
    """Split ``text`` into :class:`Statement` objects; raise :class:`SqlSyntaxError` on bad SQL."""
    with no_gc():
        return _split_sql(text, filename)


class Prepared:
    """A script checked and ready to parse: COPY data blanked out (offsets kept), deep nesting refused.
    (A plain class: a dataclass costs `sage lint`'s start-up about a millisecond.)"""

    def __init__(self, masked: str, copy_blocks: dict[int, str], pieces: list[slice] | None = None) -> None:
        self.masked = masked
        self.copy_blocks = copy_blocks
        # the scanner's statement slices of `masked` (finer than the grammar's in BEGIN ATOMIC bodies); None
        # when the text was too short to need them or the scanner refused it
        self.pieces = pieces


def prepare(text: str | bytes, filename: str = "<sql>", *, pieces: bool = False) -> Prepared:
    """Everything :func:`split_sql` does before building parse trees; raises :class:`SqlSyntaxError`.
    ``pieces``: give the scanner's statement slices even for a short text."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = decode_utf8(text, filename)
        except NotUtf8 as exc:
            raise SqlSyntaxError(filename, 1, 1, f"not UTF-8 text (byte {exc.start}); binary file?") from exc
    nul = text.find("\x00")
    if nul >= 0:
        idx = LineIndex(text)
        raise SqlSyntaxError(filename, idx.line(nul), idx.column(nul),
                             "binary input: NUL byte found, this is not a SQL text file")
    masked, copy_blocks = _mask_copy_data(text)
    slices = _check_depth(filename, masked) if pieces or len(masked) > _DEEP_CHECK_CHARS else None
    return Prepared(masked, copy_blocks, slices)


def _split_sql(text: str | bytes, filename: str) -> list[Statement]:
    prep = prepare(text, filename)
    return build_statements(prep.masked, prep.copy_blocks, filename)


def build_statements(masked: str, copy_blocks: dict[int, str], filename: str = "<sql>") -> list[Statement]:
    """The statements of a :func:`prepare`-d text. A text whose leading part is blanked out (spaces, newlines
    kept) gives the statements of the rest at their real lines and offsets."""
    try:
        raws = _parse(masked)
    except _pg.ParseError as exc:
        _raise_syntax(filename, masked, exc)
        raise  # pragma: no cover
    lines = LineIndex(masked)
    starts = lines._starts  # line() inlined below: two lookups per statement of a file of 56,000
    out: list[Statement] = []
    prev_end = 0
    for raw in raws:
        loc = raw.stmt_location or 0
        chunk_end = loc + raw.stmt_len if raw.stmt_len else len(masked)
        chunk = masked[loc:chunk_end]
        bounds = _plain_bounds(chunk)
        if bounds is not None:  # fast path: no comment anywhere in the chunk, no scanner needed
            start, end = loc + bounds[0], loc + bounds[1]
            toks = []
        else:
            toks = _tokens(chunk)
            code = [t for t in toks if t.name not in _COMMENT_TOKENS]
            if code:
                start, end = loc + code[0].start, loc + code[-1].end + 1
            else:  # should not happen; keep the raw slice
                start, end = loc, chunk_end
        gap = masked[prev_end:start]
        gap_comments = [
            (prev_end + t.start, masked[prev_end + t.start: prev_end + t.end + 1])
            for t in _tokens(gap) if t.name in _COMMENT_TOKENS
        ] if _may_have_comment(gap) else []
        if toks:
            gap_comments += [(loc + t.start, chunk[t.start:t.end + 1]) for t in toks
                             if t.name in _COMMENT_TOKENS and loc + t.start < start]
        line = bisect.bisect_right(starts, start)  # start >= 0
        if gap_comments:
            if out:
                prev = out[-1]
                first_pos, first_txt = gap_comments[0]
                if lines.line(first_pos) == prev.end_line:
                    out[-1] = _replace(prev, trailing_comment=first_txt.strip())
                    gap_comments = gap_comments[1:]
            comments = tuple(_adjacent_comments(gap_comments, lines, line))
        else:
            comments = ()
        copy_data = None
        if copy_blocks:
            for cpos, payload in copy_blocks.items():
                if start <= cpos < end:
                    copy_data = payload
        out.append(_statement({
            "text": masked[start:end], "line": line,
            "end_line": bisect.bisect_right(starts, end - 1) if end - 1 > start else line,
            "node": raw.stmt, "comments": comments, "copy_data": copy_data, "trailing_comment": None,
            "start": start, "end": end, "filename": filename, "lines": lines}))
        prev_end = end
        if prev_end < len(masked) and masked[prev_end] == ";":
            prev_end += 1
    if out:  # a comment after the last statement, on its line, still belongs to it
        rest = masked[prev_end:]
        tail = [t for t in _tokens(rest) if t.name in _COMMENT_TOKENS] if _may_have_comment(rest) else []
        if tail and lines.line(prev_end + tail[0].start) == out[-1].end_line:
            out[-1] = _replace(out[-1], trailing_comment=masked[prev_end + tail[0].start:
                                                                  prev_end + tail[0].end + 1].strip())
    return out


def _replace(stmt: Statement, **changes: Any) -> Statement:
    return stmt.replace(**changes)


def _adjacent_comments(found: list[tuple[int, str]], lines: LineIndex, stmt_line: int) -> list[str]:
    """Keep the comment block directly above the statement (a blank line breaks it)."""
    kept: list[str] = []
    expect = stmt_line
    for pos, txt in reversed(found):
        last_line = lines.line(pos + len(txt) - 1)
        if last_line < expect - 1:
            break
        kept.append(txt.strip())
        expect = lines.line(pos)
    return list(reversed(kept))
