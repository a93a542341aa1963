"""Writing migration files into a test project, the way a person saves them in supabase/migrations/."""

from __future__ import annotations

from pathlib import Path


def write_migration(project: Path, filename: str, text: str) -> Path:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text, encoding="utf-8")
    return path
