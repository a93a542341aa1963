"""Snapshot retention: the automatic snapshots (`before_*`, taken by *apply, *seed and *rollback) are kept to a
count and, optionally, an age; snapshots a person named are never pruned, nor the newest automatic snapshot of
each database (a fleet `*apply --targets` over many databases keeps every one's rollback point). Also removes what a killed process
left behind (older than an hour): `.NAME.sql.partial` files and a `NAME.sql` without its `NAME.json`.

Settings (sage_agent.config): SAGE_SNAPSHOT_KEEP (default 30 automatic snapshots; 0 keeps all) and
SAGE_SNAPSHOT_MAX_AGE_DAYS (0 or unset: no age limit).
"""

from __future__ import annotations

import calendar
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sage_agent.config import settings
from sage_agent.ops.snapshots.store import TMP_SUFFIX, list_snapshots, snapshot_dir

AUTO_PREFIX = "before_"
DEFAULT_KEEP = 30
STALE_S = 3600  # leftovers younger than this may belong to a snapshot being written right now


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)  # snapshot names
    leftovers: list[str] = field(default_factory=list)  # file names of partial or orphaned files
    kept_auto: int = 0
    keep: int = DEFAULT_KEEP
    max_age_days: float | None = None


def retention_settings() -> tuple[int, float | None]:
    """(keep, max_age_days) from SAGE_SNAPSHOT_KEEP and SAGE_SNAPSHOT_MAX_AGE_DAYS (sage_agent.config)."""
    current = settings()
    keep = max(0, current.snapshot_keep)
    age = current.snapshot_max_age_days
    return keep, (age if age > 0 else None)


def _created_epoch(created_at: str) -> float | None:
    try:
        return calendar.timegm(time.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, OverflowError):
        return None


def _remove(folder: Path, name: str) -> None:
    for suffix in (".sql", ".json"):
        (folder / f"{name}{suffix}").unlink(missing_ok=True)
    data = folder / f"{name}.data"
    if data.is_dir():
        shutil.rmtree(data, ignore_errors=True)


def prune_snapshots(project: Path, keep: int | None = None, max_age_days: float | None = None, *,
                    protect: frozenset[str] = frozenset(), now: float | None = None) -> PruneReport:
    """Delete automatic snapshots beyond the newest `keep` or older than `max_age_days`, and stale leftovers.
    `protect` names are never removed (e.g. the snapshot just taken)."""
    default_keep, default_age = retention_settings()
    keep = default_keep if keep is None else keep
    max_age_days = default_age if max_age_days is None else max_age_days
    report = PruneReport(keep=keep, max_age_days=max_age_days)
    folder = snapshot_dir(project)
    if not folder.is_dir():
        return report
    now = time.time() if now is None else now
    auto = [m for m in list_snapshots(project) if m.name.startswith(AUTO_PREFIX)]  # oldest first
    # The newest automatic snapshot of each database stays whatever the count: a fleet *apply over more databases
    # than `keep` must not prune the rollback point of the first ones (snapshots record which database they are of).
    newest_per_db = {m.database_id: m.name for m in auto if m.database_id}
    protect = protect | frozenset(newest_per_db.values())
    doomed: list[str] = []
    if keep > 0 and len(auto) > keep:
        doomed += [m.name for m in auto[: len(auto) - keep]]
    if max_age_days is not None:
        for meta in auto:
            created = _created_epoch(meta.created_at)
            if created is not None and now - created > max_age_days * 86400 and meta.name not in doomed:
                doomed.append(meta.name)
    for name in doomed:
        if name not in protect:
            _remove(folder, name)
            report.removed.append(name)
    report.kept_auto = len(auto) - len(report.removed)
    for path in sorted(folder.iterdir()):
        if not path.is_file() or time.time() - path.stat().st_mtime < STALE_S:
            continue
        partial = path.name.endswith(TMP_SUFFIX)  # a write that never completed
        orphan = path.suffix == ".sql" and not path.with_suffix(".json").exists()  # killed between the renames
        if (partial or orphan) and path.stem not in protect:
            path.unlink(missing_ok=True)
            report.leftovers.append(path.name)
    return report
