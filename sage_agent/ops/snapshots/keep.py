"""Kept data: the rows and column values a snapshot saves because a migration is about to destroy them.

A snapshot stays schema-only except for the objects `sqlkit.destroys` (or the reverse plan of a rollback)
names: those are saved with COPY into `supabase/snapshots/NAME.data/`, one file per table, each with its
sha256, its row count and the table's primary key, so that *rollback can put rows of a dropped table back
and values of a dropped or rewritten column back by primary key.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, Field

from sage_agent.sqlkit.destroys import Destroyed
from sage_agent.sqlkit.idents import quoted

_COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', t.typname
from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

_PRIMARY_KEY = """
select a.attname from pg_constraint k
join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(k.conkey) with ordinality as u(attnum, ord)
join pg_attribute a on a.attrelid = c.oid and a.attnum = u.attnum
where n.nspname = %s and c.relname = %s and k.contype = 'p'
order by u.ord
"""

_COLUMNS_OF_TYPE = """
select n.nspname, c.relname, a.attname
from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace
where tn.nspname = %s and (t.typname = %s or (t.typelem <> 0 and t.typname = '_' || %s))
  and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped and n.nspname = any(%s)
order by 1, 2, a.attnum
"""


class KeptData(BaseModel):
    """One table's kept rows: every column (whole) or the primary key plus the destroyed columns."""

    table: str  # schema.table, unquoted, as in SnapshotMeta.tables
    schema_: str
    name: str
    columns: list[tuple[str, str]]  # (column, type as format_type prints it, qualified) in the file's order
    key: list[str] = Field(default_factory=list)  # primary key columns at snapshot time
    whole: bool = False
    reasons: list[str] = Field(default_factory=list)
    file: str = ""  # relative to supabase/snapshots/
    rows: int = 0
    sha256: str = ""
    sequences: dict[str, int] = Field(default_factory=dict)  # column -> last value of its identity/serial sequence

    @property
    def value_columns(self) -> list[str]:
        """The kept columns that are not the key (what a column restore writes)."""
        return [c for c, _ in self.columns if self.whole or c not in self.key]


class Renamed(BaseModel):
    """A rename the migration makes: rollback renames back instead of dropping and re-creating."""

    kind: str  # table | column
    schema_: str
    table: str
    old: str
    new: str  # column name, or "schema.table"


def renames_of(destroyed: Iterable[Destroyed]) -> list[Renamed]:
    out = []
    for d in destroyed:
        if d.renamed_to is None:
            continue
        if d.kind == "table":
            out.append(Renamed(kind="table", schema_=d.schema, table=d.name, old=d.name, new=d.renamed_to))
        elif d.column:
            out.append(Renamed(kind="column", schema_=d.schema, table=d.name, old=d.column, new=d.renamed_to))
    return out


def resolve(conn, destroyed: list[Destroyed], schemas: list[str],
            tables: list[tuple[str, str]]) -> tuple[list[KeptData], list[str]]:
    """What to keep for these destroyed objects, as they exist now (objects made later in the same run are not
    there yet, and need nothing). Returns (kept tables, notes)."""
    existing = set(tables)
    whole: dict[tuple[str, str], list[str]] = {}
    cols: dict[tuple[str, str], dict[str, list[str]]] = {}
    notes: list[str] = []
    for d in destroyed:
        if d.renamed_to is not None:
            continue  # renamed back by *rollback: nothing is lost
        if d.kind == "opaque":
            notes.append(f"line {d.line}: {d.action} can change anything: the data of every table is kept")
            for t in tables:
                whole.setdefault(t, []).append(d.action)
        elif d.kind == "schema":
            for t in tables:
                if t[0] == d.schema:
                    whole.setdefault(t, []).append(d.action)
        elif d.kind == "type":
            for s, t, c in conn.execute(_COLUMNS_OF_TYPE, (d.schema, d.name, d.name, schemas)).fetchall():
                cols.setdefault((s, t), {}).setdefault(c, []).append(f"{d.action} {d.schema}.{d.name}")
        elif (d.schema, d.name) in existing:
            if d.kind == "table":
                whole.setdefault((d.schema, d.name), []).append(d.action)
            elif d.column:
                cols.setdefault((d.schema, d.name), {}).setdefault(d.column, []).append(d.action)
    out: list[KeptData] = []
    for t in sorted(set(whole) | set(cols)):
        columns = conn.execute(_COLUMNS, t).fetchall()
        stored = [(name, typ) for name, typ, generated, _ in columns if not generated]
        key = [r[0] for r in conn.execute(_PRIMARY_KEY, t).fetchall()]
        reasons = list(dict.fromkeys(whole.get(t, [])))
        wanted = cols.get(t, {})
        for column, why in wanted.items():
            reasons += [f"{w} {column}" for w in dict.fromkeys(why)]
        if t not in whole and wanted and not key:
            notes.append(f"{t[0]}.{t[1]} has no primary key: its whole data is kept (values cannot be matched back "
                         "by key)")
        is_whole = t in whole or not key
        if is_whole:
            chosen = stored
        else:
            names = set(key) | set(wanted)
            chosen = [(n, typ) for n, typ in stored if n in names and n in key] + \
                     [(n, typ) for n, typ in stored if n in names and n not in key]
        if not chosen:
            continue
        out.append(KeptData(table=f"{t[0]}.{t[1]}", schema_=t[0], name=t[1], columns=chosen, key=key,
                            whole=is_whole, reasons=reasons))
    return out, notes


def write(conn, kept: list[KeptData], folder: Path, name: str, *, url: str, exported: str | None,
          server_major: int) -> list[KeptData]:
    """COPY each kept table into NAME.data/ (text format); fills file/rows/sha256/sequences.

    psql's `\\copy` writes the files (a million rows in a second, where a per-row client loop takes tens), in
    one transaction that imports `exported` (the caller's pg_export_snapshot): the same MVCC snapshot as the
    dump and the counts. `conn` (inside that snapshot) reads the sequences."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.tools import run_pg_tool

    if not kept:
        return kept
    data_dir = folder / f"{name}.data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"]
    if exported:
        lines.append(sql.SQL("SET TRANSACTION SNAPSHOT {};").format(sql.Literal(exported)).as_string(conn))
    for i, k in enumerate(kept, 1):
        k.file = f"{name}.data/{i:03d}_{_file_safe(k.table)}.copy"
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c, _ in k.columns), sql.Identifier(k.schema_, k.name))
        target = str(folder / k.file).replace("'", "''")
        lines.append(f"\\copy ({query.as_string(conn)}) to '{target}'")
    lines.append("COMMIT;")
    with tempfile.TemporaryDirectory(prefix="sage-keep-") as tmp:
        script = Path(tmp) / "keep.sql"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = run_pg_tool("psql", url, ["-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                          server_major=server_major).stdout
    rows = [int(n) for n in re.findall(r"^COPY (\d+)$", out, re.M)]
    for k, n in zip(kept, rows):
        k.rows = n
    for k in kept:
        k.sha256 = _sha256(folder / k.file)
        k.sequences = _sequence_values(conn, k)
    return kept


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sequence_values(conn, k: KeptData) -> dict[str, int]:
    out = {}
    for column, _ in k.columns:
        value = conn.execute("select s, pg_sequence_last_value(s::regclass) from pg_get_serial_sequence(%s, %s) s",
                             (quoted(k.schema_, k.name), column)).fetchone()
        if value and value[0]:
            out[column] = int(value[1] or 0)
    return out




def _file_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in text)[:80]


def verify_files(folder: Path, kept: list[KeptData]) -> list[str]:
    """Problems with the kept files (missing, or not what was written): empty when all match."""
    problems = []
    for k in kept:
        path = folder / k.file
        if not path.is_file():
            problems.append(f"{k.file} is missing")
            continue
        if _sha256(path) != k.sha256:
            problems.append(f"{k.file} does not match its sha256")
    return problems
