"""Reading plain pg_dump output as an inventory of objects: (type, schema, name) -> normalized definition.

pg_dump heads every entry with `-- Name: N; Type: T; Schema: S; Owner: O` (data entries with
`-- Data for Name: ...`), so two dumps compare object by object without parsing SQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

_HEADER = re.compile(r"^-- (?P<data>Data for )?Name: (?P<name>.*); Type: (?P<type>[^;]*); Schema: (?P<schema>[^;]*);")
_VOLATILE = re.compile(r"^\\(un)?restrict\b|^-- Dumped (from|by) |^SELECT pg_catalog\.setval\(")

ObjectKey = tuple[str, str, str]  # (type, schema, name)


def inventory(lines: Iterable[str], *, with_data: bool = False) -> dict[ObjectKey, str]:
    """Objects of a plain dump with their SQL (comments and blank lines dropped). Data entries only if asked."""
    objects: dict[ObjectKey, list[str]] = {}
    current: list[str] | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        match = _HEADER.match(line)
        if match:
            is_data = bool(match["data"]) or match["type"].strip() == "SEQUENCE SET"
            if is_data and not with_data:
                current = None
                continue
            key = (("DATA " if is_data else "") + match["type"].strip(), match["schema"].strip(),
                   match["name"].strip())
            current = objects.setdefault(key, [])
            continue
        if current is None or not line.strip() or (line.startswith("--") and not line.startswith("--\t")):
            continue
        if _VOLATILE.match(line):
            continue
        current.append(line)
    return {k: "\n".join(v) for k, v in objects.items()}


def inventory_file(path: Path, *, with_data: bool = False) -> dict[ObjectKey, str]:
    # losslessly (a LATIN1 or SQL_ASCII dump is not UTF-8): with replacement, two definitions that differ only in
    # one accented letter read the same and the change went unseen
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return inventory(fh, with_data=with_data)


def describe(key: ObjectKey) -> str:
    kind, schema, name = (_shown(part) for part in key)
    where = f"{schema}." if schema and schema != "-" else ""
    if kind in ("ACL", "COMMENT") and " " in name:  # e.g. name 'TABLE "orders"'
        what, _, obj = name.partition(" ")
        label = "grants on" if kind == "ACL" else "comment on"
        return f"{label} {what.lower()} {where}{obj.strip(chr(34))}"
    return f"{kind.lower()} {where}{name}"


def _shown(text: str) -> str:
    """Printable: a byte of the dump that is not UTF-8 (kept as a surrogate) as the replacement character."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def compare(before: dict[ObjectKey, str], after: dict[ObjectKey, str]) -> dict[str, list[ObjectKey]]:
    """Keys only in `before` (removed), only in `after` (added), in both with another definition (changed)."""
    return {
        "added": sorted(k for k in after if k not in before),
        "removed": sorted(k for k in before if k not in after),
        "changed": sorted(k for k in after if k in before and before[k] != after[k]),
    }


def normalize_dump(text: str) -> str:
    """A dump with volatile lines (restrict keys, versions, comments) removed: for equality checks."""
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--") or _VOLATILE.match(line):
            continue
        keep.append(line)
    return "\n".join(keep)
