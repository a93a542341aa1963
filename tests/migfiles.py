"""Writing migration files into a test project, the way a person saves them in supabase/migrations/, and reading
what *apply reports and records."""

from __future__ import annotations

from pathlib import Path


def write_migration(project: Path, filename: str, text: str) -> Path:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text, encoding="utf-8")
    return path


def failure(outcome) -> str:
    """What a person reads about a failed *apply: the summary, the error finding and the notes."""
    if outcome.result is None:
        return outcome.error or ""
    r = outcome.result
    return "\n".join([r.summary] + [f.message for f in r.findings] + list(r.notes))


def history(conn) -> list[str]:
    """The versions in the Supabase CLI's history table (empty before it exists)."""
    if not conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0]:
        return []
    return [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations order by 1")]
