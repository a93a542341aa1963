"""The agent's `run_sql` tool: the read-only path of `*run-sql` (ops/observe/sqlexec.run_read_only), nothing else.

One gate decides what is read-only, for the person and the model alike: parsed with PostgreSQL's grammar,
exactly one statement, no writable CTE, SELECT INTO, FOR UPDATE/SHARE or side-effect function, run inside
`BEGIN READ ONLY` with server-side timeouts and always rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sage_agent.ops.observe.sqlexec import run_read_only


@dataclass
class SqlRows:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    total_rows: int | None
    statement: str = ""
    notes: list[str] = field(default_factory=list)


def run_sql(ctx, sql_text: str, *, limit: int = 50, timeout_ms: int = 15_000) -> SqlRows:
    """Run one read-only statement. Raises OpError (exit_code 2 = refused, nothing sent; 1 = server error)."""
    res = run_read_only(ctx, sql_text, row_limit=limit, timeout_ms=timeout_ms)
    return SqlRows(list(res.columns), [list(r) for r in res.rows], bool(res.truncated), res.total_rows,
                   res.statement)
