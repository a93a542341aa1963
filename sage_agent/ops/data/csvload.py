"""*load-csv internals: reading the file, mapping the header, inferring types, streaming COPY, validating.

The fast path does no per-row Python work: raw bytes go to `COPY ... FROM STDIN (FORMAT csv)` in
1 MB chunks and the server parses them. Rows are only looked at one by one in the validation pass
(after a failure, or when asked) and in batched mode (which must cut the file at record boundaries).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from sage_agent.ops.artifacts import sage_dir
from sage_agent.ops.result import OpError
from sage_agent.sqlkit.idents import readable

CHUNK = 1 << 20
HEADER_LIMIT = 1 << 20
SAMPLE_BYTES = 64 << 10
MAX_LINE = 64 << 20
DEFAULT_MAX_ERRORS = 20

_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_PY_CODECS = {"utf8": "utf-8", "latin1": "latin-1", "latin9": "iso8859-15", "win1252": "cp1252",
              "win1250": "cp1250", "win1251": "cp1251", "sql_ascii": "ascii", "sjis": "shift_jis",
              "euc_jp": "euc_jp", "iso88591": "latin-1", "iso885915": "iso8859-15"}
# PostgreSQL encoding names for Python codec names people type
_PG_NAMES = {"utf-8": "UTF8", "latin-1": "LATIN1", "iso8859-15": "LATIN9", "cp1252": "WIN1252", "cp1250": "WIN1250",
             "cp1251": "WIN1251", "ascii": "SQL_ASCII", "shift_jis": "SJIS", "euc_jp": "EUC_JP"}


class LineTooLong(Exception):
    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line} is longer than {limit // (1 << 20)} MB")
        self.line = line
        self.limit = limit


# --- options -------------------------------------------------------------------------------------------
@dataclass
class CsvOptions:
    delimiter: str = ","
    quote: str = '"'
    null: str | None = None
    encoding_pg: str = "UTF8"
    encoding_py: str = "utf-8"
    header: bool = True

    @property
    def null_text(self) -> str:
        return "" if self.null is None else self.null


def parse_char(value: str, what: str) -> str:
    text = _DELIMITER_NAMES.get(value.lower(), value) if what == "delimiter" else value
    if len(text) != 1 or text in "\r\n" or ord(text) > 127:
        raise OpError(f"the {what} must be one ASCII character (got {value!r})",
                      "for tab write --delimiter tab" if what == "delimiter" else None, exit_code=2)
    return text


def resolve_encoding(name: str) -> tuple[str, str]:
    """(PostgreSQL name, Python codec) for an encoding as a person types it (utf8, latin1, ISO-8859-1...)."""
    key = re.sub(r"[^a-z0-9_]", "", name.lower())
    py = _PY_CODECS.get(key, name)
    try:
        py = codecs.lookup(py).name
    except LookupError:
        raise OpError(f"unknown encoding {name!r}", "use e.g. utf8, latin1, win1252", exit_code=2) from None
    pg = _PG_NAMES.get(py, name)
    return pg, py


def build_options(inputs: Any) -> CsvOptions:
    delimiter = parse_char(inputs.delimiter, "delimiter")
    quote = parse_char(inputs.quote, "quote")
    if delimiter == quote:
        raise OpError("the delimiter and the quote character must differ", exit_code=2)
    if inputs.null is not None and ("\n" in inputs.null or "\r" in inputs.null or delimiter in inputs.null):
        raise OpError(f"the NULL marker {inputs.null!r} cannot contain a line break or the delimiter", exit_code=2)
    pg, py = resolve_encoding(inputs.encoding)
    return CsvOptions(delimiter=delimiter, quote=quote, null=inputs.null, encoding_pg=pg, encoding_py=py,
                      header=inputs.header)


# --- the file --------------------------------------------------------------------------------------------
def resolve_file(project: Path, name: str) -> Path:
    path = Path(name).expanduser()
    tried = [path] if path.is_absolute() else [project / path, Path.cwd() / path]
    for cand in tried:
        if cand.is_file():
            return cand.resolve()
        if cand.exists():
            raise OpError(f"{cand} is not a file", "give the path of a .csv or .csv.gz file", exit_code=2)
    raise OpError(f"file not found: {name} (tried {', '.join(str(p) for p in dict.fromkeys(tried))})",
                  "give the path of a .csv or .csv.gz file, relative to the project folder or absolute", exit_code=2)


class Source:
    """The file as a binary stream (gzip decompressed on the fly); `raw_pos` is the position in the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        magic = self.raw.read(2)
        self.raw.seek(0)
        self.gzip = magic == b"\x1f\x8b"
        self.stream: BinaryIO = (gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gzip  # type: ignore[assignment]
                                 else self.raw)
        if self.gzip:
            self.stream = io.BufferedReader(self.stream, CHUNK)  # type: ignore[arg-type]

    @property
    def raw_pos(self) -> int:
        return self.raw.tell()

    def uncompressed_size(self) -> int | None:
        if not self.gzip:
            return self.size
        if self.size < 18:
            return None
        with open(self.path, "rb") as fh:  # gzip ISIZE: size mod 2**32 of the (last) member
            fh.seek(-4, 2)
            isize = int.from_bytes(fh.read(4), "little")
        return isize if isize >= self.size // 1032 else None

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.raw.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_header_line(src: Source) -> bytes:
    try:
        line = src.stream.readline(HEADER_LIMIT + 1)
    except (OSError, EOFError) as exc:
        raise OpError(f"cannot read {src.path.name}: {exc}", "is the .gz file complete?") from None
    if not line:
        raise OpError(f"{src.path.name} is empty: nothing to load")
    if len(line) > HEADER_LIMIT and not line.endswith(b"\n"):
        raise OpError(f"{src.path.name}: the first line is longer than {HEADER_LIMIT >> 20} MB (no line break): "
                      "this is not a CSV file with one record per line. Nothing was loaded.")
    return line


def decode_strict(raw: bytes, opts: CsvOptions, line: int) -> str:
    try:
        return raw.decode(opts.encoding_py)
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        raise OpError(f"line {line}: byte 0x{bad} is not valid {opts.encoding_pg}",
                      "pass the file's real encoding, e.g. --encoding latin1", exit_code=1) from None


def parse_record(text: str, opts: CsvOptions) -> list[str]:
    text = text.rstrip("\r\n")
    rows = list(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote, strict=True))
    return rows[0] if rows else []


def header_names(line: bytes, opts: CsvOptions) -> list[str]:
    if opts.encoding_py == "utf-8" and line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8):]
    try:
        names = parse_record(decode_strict(line, opts, 1), opts)
    except csv.Error as exc:
        raise OpError(f"line 1 (header): {exc}") from None
    return [n.strip() for n in names]


@dataclass
class Sample:
    data: bytes           # bytes read for the sample (to be sent first)
    rows: list[list[str]]  # parsed complete records
    eof: bool


def read_sample(src: Source, opts: CsvOptions) -> Sample:
    data = src.stream.read(SAMPLE_BYTES)
    eof = len(data) < SAMPLE_BYTES
    cut = data if eof else data[: data.rfind(b"\n") + 1]
    text = cut.decode(opts.encoding_py, errors="replace")
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=opts.delimiter, quotechar=opts.quote):
            if row:
                rows.append(row)
    except csv.Error:
        pass
    if not eof and rows:
        rows.pop()  # may be cut inside a quoted line break
    return Sample(data=data, rows=rows, eof=eof)


# --- the table -------------------------------------------------------------------------------------------
@dataclass
class Column:
    name: str
    type: str
    notnull: bool = False
    has_default: bool = False
    generated: bool = False


@dataclass
class TableRef:
    schema: str
    name: str
    columns: list[Column] = field(default_factory=list)
    exists: bool = True

    @property
    def display(self) -> str:
        return readable(self.schema, self.name)

    def ident(self):
        # lazy: psycopg loads on the first database call
        from psycopg import sql

        return sql.Identifier(self.schema, self.name)


def split_table_name(text: str) -> tuple[str | None, str]:
    text = text.strip()
    if not text:
        raise OpError("the table name is empty", exit_code=2)
    parts = [p.strip() for p in text.split(".")]
    if len(parts) > 2 or not all(parts):
        raise OpError(f"bad table name {text!r}: use table or schema.table", exit_code=2)
    parts = [p[1:-1].replace('""', '"') if len(p) > 1 and p[0] == p[-1] == '"' else p for p in parts]
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def find_table(conn, text: str) -> TableRef:
    schema, name = split_table_name(text)
    for candidate in dict.fromkeys([name, name.lower()]):
        row = conn.execute(
            """
            select n.nspname, c.relname, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relname = %s and c.relkind in ('r', 'p')
              and (n.nspname = %s or (%s::text is null and n.nspname = any(current_schemas(false))))
            order by array_position(current_schemas(false), n.nspname) nulls last limit 1
            """, (candidate, schema, schema)).fetchone()
        if row:
            cols = conn.execute(
                """
                select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       a.atthasdef or a.attidentity <> '', a.attgenerated <> ''
                from pg_attribute a where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
                order by a.attnum
                """, (row[2],)).fetchall()
            return TableRef(row[0], row[1], [Column(*c) for c in cols])
    quoted = '"' in text
    return TableRef(schema or "public", name if quoted else name.lower(), exists=False)


def map_columns(header: list[str], table: TableRef) -> list[Column]:
    """Header names -> table columns, case-insensitive; errors name the expected columns."""
    usable = [c for c in table.columns if not c.generated]
    expected = ", ".join(c.name for c in usable)
    mapped: list[Column] = []
    for pos, name in enumerate(header, start=1):
        if not name:
            raise OpError(f"header column {pos} has no name", f"the table's columns: {expected}", exit_code=2)
        exact = [c for c in table.columns if c.name == name]
        loose = exact or [c for c in table.columns if c.name.lower() == name.lower()]
        if not loose:
            raise OpError(f"header column {name!r} is not a column of {table.display}",
                          f"the table's columns: {expected} (rename the header, or load into another table)",
                          exit_code=2)
        col = loose[0]
        if col.generated:
            raise OpError(f"header column {name!r} is a generated column of {table.display}: it cannot be loaded",
                          "remove that column from the file", exit_code=2)
        if col in mapped:
            raise OpError(f"header column {name!r} appears twice (both map to {col.name})", exit_code=2)
        mapped.append(col)
    missing = [c.name for c in usable if c not in mapped and c.notnull and not c.has_default]
    if missing:
        raise OpError(f"the file has no column for {', '.join(missing)} (NOT NULL without a default in "
                      f"{table.display})", f"add {'it' if len(missing) == 1 else 'them'} to the file", exit_code=2)
    return mapped


def positional_columns(width: int, table: TableRef) -> list[Column]:
    usable = [c for c in table.columns if not c.generated]
    if width > len(usable):
        raise OpError(f"the first line has {width} fields but {table.display} has {len(usable)} columns",
                      "with --header no, fields map to the table's columns in order", exit_code=2)
    return usable[:width]


# --- type inference --------------------------------------------------------------------------------------
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_NUM = re.compile(r"[+-]?(0|[1-9][0-9]*)?(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                 r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?")
_BOOL = {"true", "false", "t", "f", "yes", "no"}


def _is_int(v: str) -> bool:
    return bool(_INT.fullmatch(v)) and -(2 ** 63) <= int(v) < 2 ** 63


def _is_num(v: str) -> bool:
    return bool(_NUM.fullmatch(v)) and any(ch.isdigit() for ch in v)


def _is_date(v: str) -> bool:
    if not _DATE.fullmatch(v):
        return False
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _is_ts(v: str) -> bool:
    if not _TS.fullmatch(v) or not _is_date(v[:10]):
        return False
    return 0 <= int(v[11:13]) < 24 and 0 <= int(v[14:16]) < 60


def _is_json(v: str) -> bool:
    if not v[:1] in ("{", "["):
        return False
    try:
        json.loads(v)
    except ValueError:
        return False
    return True


_CHECKS = [("boolean", lambda v: v.lower() in _BOOL), ("bigint", _is_int), ("numeric", _is_num),
           ("uuid", lambda v: bool(_UUID.fullmatch(v))), ("date", _is_date), ("timestamptz", _is_ts),
           ("jsonb", _is_json)]


def infer_type(values: list[str]) -> str:
    present = [v for v in values if v != ""]
    if not present:
        return "text"
    for name, check in _CHECKS:
        if all(check(v) for v in present):
            return name
    return "text"


def column_name(raw: str, pos: int, taken: set[str]) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")[:60] or f"column_{pos}"
    if name[0].isdigit():
        name = f"c_{name}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def infer_columns(header: list[str] | None, sample: Sample, opts: CsvOptions) -> list[Column]:
    width = len(header) if header is not None else max((len(r) for r in sample.rows), default=0)
    if width == 0:
        raise OpError("cannot infer columns: the file has no fields", exit_code=2)
    names = header if header is not None else [f"column_{i}" for i in range(1, width + 1)]
    taken: set[str] = set()
    cols = []
    for i, raw in enumerate(names):
        values = [r[i] for r in sample.rows if i < len(r) and r[i] != opts.null_text]
        cols.append(Column(column_name(raw, i + 1, taken), infer_type(values)))
    return cols


def create_table_sql(table: TableRef, cols: list[Column]):
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    return sql.SQL("create table {} ({})").format(
        table.ident(), sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type))
                                          for c in cols))


def copy_sql(table: TableRef, cols: list[Column], opts: CsvOptions):
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    options = [sql.SQL("format csv"), sql.SQL("delimiter {}").format(sql.Literal(opts.delimiter)),
               sql.SQL("quote {}").format(sql.Literal(opts.quote)),
               sql.SQL("encoding {}").format(sql.Literal(opts.encoding_pg))]
    if opts.null is not None:
        options.append(sql.SQL("null {}").format(sql.Literal(opts.null)))
    return sql.SQL("copy {} ({}) from stdin with ({})").format(
        table.ident(), sql.SQL(", ").join(sql.Identifier(c.name) for c in cols), sql.SQL(", ").join(options))


# --- streaming -----------------------------------------------------------------------------------------
class LineWatch:
    """Counts line breaks and stops a line longer than the limit, in C-speed bytes operations."""

    def __init__(self, first_line: int, limit: int = MAX_LINE) -> None:
        self.lines = 0
        self.run = 0
        self.first_line = first_line
        self.limit = limit

    def feed(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self.run += len(chunk)
            if self.run > self.limit:
                raise LineTooLong(self.first_line + self.lines, self.limit)
            return
        if self.run + first > self.limit:
            raise LineTooLong(self.first_line + self.lines, self.limit)
        self.lines += chunk.count(b"\n")
        self.run = len(chunk) - chunk.rfind(b"\n") - 1


def iter_chunks(prefix: bytes, stream: BinaryIO) -> Iterator[bytes]:
    if prefix:
        yield prefix
    read = stream.read
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return
        yield chunk


def iter_records(stream: BinaryIO, quote: bytes, first_line: int, prefix: bytes = b"") -> Iterator[tuple[int, bytes]]:
    """(line number where the record starts, raw bytes including its line break), honouring quoted line breaks."""
    reader = io.BufferedReader(_Prefixed(prefix, stream), CHUNK) if prefix else stream
    line_no = first_line
    parts: list[bytes] = []
    start = line_no
    open_quote = False
    size = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            break
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise LineTooLong(line_no, MAX_LINE)
        if not parts:
            start = line_no
        parts.append(line)
        size += len(line)
        if size > MAX_LINE:
            raise LineTooLong(start, MAX_LINE)
        line_no += 1
        if line.count(quote) & 1:
            open_quote = not open_quote
        if not open_quote:
            yield start, b"".join(parts) if len(parts) > 1 else parts[0]
            parts, size = [], 0
    if parts:
        yield start, b"".join(parts)


class _Prefixed(io.RawIOBase):
    """A raw stream that returns `prefix` first, then `stream`."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Meter:
    """rows/s and MB/s for the progress line."""

    def __init__(self, progress, raw_start: int) -> None:
        self.progress = progress
        self.started = time.perf_counter()
        self.raw_last = raw_start
        self.bytes = 0

    def tick(self, raw_pos: int, nbytes: int, rows: int) -> None:
        self.bytes += nbytes
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        detail = f"{rows:,} rows, {rows / elapsed:,.0f} rows/s, {self.bytes / elapsed / 1e6:,.1f} MB/s"
        self.progress.advance(raw_pos - self.raw_last, detail)
        self.raw_last = raw_pos


# --- validation ----------------------------------------------------------------------------------------
@dataclass
class BadRow:
    line: int
    reason: str
    record: str


def validate_rows(conn, src_stream: BinaryIO, prefix: bytes, first_line: int, cols: list[Column],
                  opts: CsvOptions, server_major: int) -> list[BadRow]:
    """Check every record: encoding, field count, NOT NULL, and each value's cast (on the server)."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    bad: dict[int, BadRow] = {}
    width = len(cols)
    quote = opts.quote.encode("ascii")
    null_text = opts.null_text
    records = iter_records(src_stream, quote, first_line, prefix)
    conn.execute("set local statement_timeout = 0")
    conn.execute(sql.SQL("create temp table sage_csv_check (line bigint, {}) on commit drop").format(
        sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(f"c{i}")) for i in range(width))))
    with conn.cursor().copy(sql.SQL("copy sage_csv_check from stdin")) as copy:
        try:
            for line, raw in records:
                if raw.strip(b"\r\n") == b"" and width > 1:
                    bad[line] = BadRow(line, "empty line", "")
                    continue
                try:
                    text = raw.decode(opts.encoding_py)
                except UnicodeDecodeError as exc:
                    bad[line] = BadRow(line, f"byte 0x{raw[exc.start:exc.start + 1].hex()} at position "
                                             f"{exc.start + 1} is not valid {opts.encoding_pg}",
                                       raw.decode(opts.encoding_py, errors="replace").rstrip("\r\n"))
                    continue
                if "\x00" in text:
                    bad[line] = BadRow(line, "contains a NUL character (not allowed in PostgreSQL text)",
                                       text.replace("\x00", "").rstrip("\r\n"))
                    continue
                try:
                    fields = parse_record(text, opts)
                except csv.Error as exc:
                    bad[line] = BadRow(line, f"cannot parse the record: {exc}", text.rstrip("\r\n"))
                    continue
                if len(fields) != width:
                    bad[line] = BadRow(line, f"expected {width} fields, found {len(fields)}", text.rstrip("\r\n"))
                    continue
                copy.write_row([line, *[None if f == null_text else f for f in fields]])
        except LineTooLong as exc:  # stop reading; the rows so far are still checked
            bad[exc.line] = BadRow(exc.line, str(exc), "")
    for i, col in enumerate(cols):
        c = sql.Identifier(f"c{i}")
        if col.notnull:
            for (line,) in conn.execute(sql.SQL("select line from sage_csv_check where {} is null").format(c)):
                bad.setdefault(line, BadRow(line, f"column {col.name} is NOT NULL but the value is NULL", ""))
        if col.type in ("text", "character varying", "varchar"):
            continue
        if server_major >= 16:
            query = sql.SQL("select line, {c}, (pg_input_error_info({c}, %(t)s)).message from sage_csv_check "
                            "where {c} is not null and not pg_input_is_valid({c}, %(t)s) order by line").format(c=c)
        else:
            conn.execute("""
                create or replace function pg_temp.sage_cast_error(v text, t text) returns text language plpgsql as $f$
                begin execute format('select %L::%s', v, t); return null;
                exception when others then return sqlerrm; end $f$""")
            query = sql.SQL("select * from (select line, {c}, pg_temp.sage_cast_error({c}, %(t)s) e "
                            "from sage_csv_check where {c} is not null) s where e is not null order by line").format(c=c)
        for line, value, message in conn.execute(query, {"t": col.type}):
            bad.setdefault(line, BadRow(line, f"column {col.name} ({col.type}): {message}", ""))
    need = {b.line for b in bad.values() if not b.record}
    if need:  # fill in the records of rows that failed a check on the server
        rows = conn.execute(sql.SQL("select line, {} from sage_csv_check where line = any(%s)").format(
            sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(width))), (sorted(need),)).fetchall()
        for row in rows:
            out = io.StringIO()
            csv.writer(out, delimiter=opts.delimiter, quotechar=opts.quote, lineterminator="").writerow(
                [null_text if v is None else v for v in row[1:]])
            bad[row[0]].record = out.getvalue()
    return sorted(bad.values(), key=lambda b: b.line)


def write_rejects(project: Path, table: TableRef, bad: list[BadRow]) -> Path:
    folder = sage_dir(project) / "rejects"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = table.name if table.schema == "public" else f"{table.schema}.{table.name}"
    path = folder / f"{base}-{stamp}.csv"
    n = 2
    while path.exists():
        path, n = folder / f"{base}-{stamp}-{n}.csv", n + 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "reason", "record"])
        for b in bad:
            writer.writerow([b.line, b.reason, b.record])
    return path


# --- batched mode state ------------------------------------------------------------------------------------
def state_path(project: Path, table: TableRef, file: Path) -> Path:
    key = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    return sage_dir(project) / "load-state" / f"{table.schema}.{table.name}-{key}.json"
