"""The project's audit trail, `.sage/audit.jsonl`: one "started" and one "finished" line per operation.

Each line is one `os.write` on an O_APPEND descriptor, so concurrent sessions never interleave inside a line, and
a killed process leaves its operation with a "started" line and no "finished" one (shown as unfinished), never a
half-written file. Everything is redacted before it is written."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sage_agent.db.redact import redact, redact_obj

AUDIT_FILE = Path(".sage") / "audit.jsonl"
SECRET_KEYS = ("password", "secret", "token", "key")


def audit_path(project: Path) -> Path:
    return project / AUDIT_FILE


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def redact_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """Inputs as given, with connection strings redacted and secret-named inputs masked."""
    clean = redact_obj({k: v for k, v in values.items()})
    return {k: ("***" if any(s in k.lower() for s in SECRET_KEYS) and v not in (None, "") else v)
            for k, v in clean.items()}


def append(project: Path, entry: dict[str, Any]) -> bool:
    """Write one line. An unwritable project (read-only checkout) must not stop the command: False then."""
    line = json.dumps(redact_obj(entry), default=str, ensure_ascii=False)
    data = (redact(line) + "\n").encode()
    path = audit_path(project)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def read(project: Path) -> list[dict[str, Any]]:
    """One record per operation, oldest first: the started line merged with its finished line; an operation
    with no finished line has status "unfinished". Lines that do not parse are skipped."""
    path = audit_path(project)
    if not path.exists():
        return []
    started: dict[str, dict[str, Any]] = {}
    finished: dict[str, dict[str, Any]] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and "id" in line:
            (started if line.pop("event", None) == "started" else finished)[str(line["id"])] = line
    return [{**line, "status": "unfinished", **finished.get(key, {})} for key, line in started.items()]
