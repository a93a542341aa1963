"""What every area needs for the files it writes: one checksum (snapshots, backups, reports), and the project's
working folder supabase/.sage/ with its JSON state files (load progress, measured scan rates, closure templates),
so each area keeps its state the same way: in one folder kept out of git, written whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

STATE_DIR = Path("supabase") / ".sage"


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (dumps can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sage_dir(project: Path) -> Path:
    """supabase/.sage/: DB Sage's working files, kept out of git (a `*` .gitignore where DB Sage makes the folder)."""
    folder = Path(project) / STATE_DIR
    if not folder.is_dir():
        folder.mkdir(parents=True)
        (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    return folder


def read_state(path: Path) -> Any | None:
    """A state file's JSON, or None where it is missing or unreadable (the caller starts afresh)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(path: Path, state: Any) -> None:
    """Write a state file whole: a reader (or a crash) finds the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
