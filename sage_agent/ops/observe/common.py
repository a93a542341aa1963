"""Small helpers shared by the observability operations."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from sage_agent.db.redact import redact
from sage_agent.ops.result import OpError
from sage_agent.errors import NotUtf8, read_utf8


def sql_from_input(ctx, value: str) -> tuple[str, str]:
    """The SQL text and where it came from: a `.sql` file path (absolute or in the project) or the text itself."""
    raw = (value or "").strip()
    if raw.lower().endswith(".sql") and "\n" not in raw and ";" not in raw and " " not in raw.strip():
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path(ctx.project) / path
        if not path.is_file():
            raise OpError(f"SQL file not found: {raw}", "give an existing .sql file or the SQL text itself (quoted)",
                          exit_code=2)
        try:
            return read_utf8(path), str(path)
        except NotUtf8:
            raise OpError(f"{raw} is not UTF-8 text", "give a SQL text file", exit_code=2) from None
    return raw, "<sql>"


def seconds(value: Any) -> str:
    """A duration in seconds as 1h02m, 3m05s, 4.2s."""
    if value is None:
        return ""
    s = float(value)
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.1f}s"


def short(text: Any, width: int = 120) -> str:
    """One line of at most `width` characters, redacted before it is cut (a secret cut in half is not found)."""
    flat = " ".join(redact(str(text or "")).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def command_line(command: str, text: str, *options: str) -> str | None:
    """`*command 'text' [options]` quoted so that DB Sage's command-line parser reads back exactly `text`;
    None when `text` is not exactly one parseable statement (never suggest a command that cannot run)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import parse_sql
    from pglast.parser import ParseError

    body = str(text or "").strip()
    if not body:
        return None
    try:
        if len(parse_sql(body)) != 1:
            return None
    except ParseError:
        return None
    if not re.search(r"['\"]|\$[A-Za-z_]*\$", body):  # no literal, quoted name or $$ body whose spaces matter
        body = " ".join(body.split())
    return " ".join([f"*{command}", shlex.quote(body), *options])
