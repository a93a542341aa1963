"""Size-aware severity: the same finding matters very differently on an empty table and on a
200 GB one. Pure functions; the caller passes facts read from a database (rows, bytes)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sage_agent.config import settings

from .model import LintFinding

DEFAULT_ERROR_BYTES = 100 * 1024 * 1024  # above this a rewrite/scan/lock finding is an error
DEFAULT_BYTES_PER_SECOND = 50 * 1024 * 1024  # conservative sequential rewrite/scan speed


@dataclass(frozen=True)
class TableFacts:
    rows: int
    bytes: int


@dataclass(frozen=True)
class SizePolicy:
    error_bytes: int = DEFAULT_ERROR_BYTES
    bytes_per_second: int = DEFAULT_BYTES_PER_SECOND

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SizePolicy":
        """``SAGE_LINT_ERROR_MB`` sets the size above which a rewrite or scan is an error (default 100)."""
        return cls(error_bytes=int(settings(environ).lint_error_mb * 1024 * 1024))


def _key(name: str) -> str:
    return name if "." in name else f"public.{name}"


def is_size_sensitive(f: LintFinding) -> bool:
    """Findings about a table rewrite, scan or lock (the ones whose cost grows with the table)."""
    return bool(f.table) and (f.rewrites or f.scans or f.lock is not None)


def apply_table_facts(findings: Iterable[LintFinding], facts: Mapping[str, TableFacts],
                      policy: SizePolicy = SizePolicy()) -> list[LintFinding]:
    """Copies of ``findings`` with table facts attached and severity following size:
    a table created in the same file, or empty, gives info; one above ``policy.error_bytes``
    gives an error with the estimated duration; other sizes keep the rule's severity."""
    by_name = {_key(k): v for k, v in facts.items()}
    out = []
    for f in findings:
        if not is_size_sensitive(f):
            out.append(f)
            continue
        g = f.model_copy()
        if g.new_table:
            g.severity = "info"
            g.message += " (the table is created in this file: no one else uses it yet)"
            out.append(g)
            continue
        fact = by_name.get(_key(g.table))
        if fact is None:
            out.append(g)
            continue
        g.table_rows, g.table_bytes = fact.rows, fact.bytes
        if fact.rows == 0:
            g.severity = "info"
            g.message += f" ({g.table} is empty)"
        elif fact.bytes > policy.error_bytes and (g.rewrites or g.scans):
            g.estimated_seconds = round(fact.bytes / policy.bytes_per_second, 1)
            g.severity = "error"
            g.message += (f" ({g.table}: ~{fact.rows:,} rows, {fact.bytes / 1024 / 1024:,.0f} MB; "
                          f"about {g.estimated_seconds:,.0f}s under {g.lock or 'its lock'})")
        out.append(g)
    return out
