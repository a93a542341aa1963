"""*bootstrap as a person reads it: every path it created or kept is listed once (it printed the created ones
twice: in its table and again as the files it wrote)."""

from __future__ import annotations

import json
import re


def _path_lines(stdout: str, path: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.search(rf"(^|\s){re.escape(path)}(\s|$)", line)]


def test_bootstrap_lists_each_path_once(run_sage, project):
    proc = run_sage("run", "*bootstrap --example-migration --use-cli no", cwd=project)
    assert proc.returncode == 0, proc.stderr
    (example,) = [p.relative_to(project).as_posix() for p in (project / "supabase" / "migrations").glob("*.sql")]
    for path in ("supabase/migrations/", "supabase/tests/", "supabase/README.md", "supabase/seed.sql", example):
        assert _path_lines(proc.stdout, path) == [f"📄 {path}"], proc.stdout
    assert "• wrote 6 line(s) to .gitignore: supabase/snapshots/, supabase/backups/" in proc.stdout
    assert "(+6 lines)" not in proc.stdout

    (project / "supabase" / "README.md").unlink()
    again = run_sage("run", "*bootstrap --use-cli no", cwd=project)
    assert again.returncode == 0, again.stderr
    assert "Already in place (kept as they are)" in again.stdout
    assert _path_lines(again.stdout, "supabase/README.md") == ["📄 supabase/README.md"]
    for path in ("supabase/migrations/", "supabase/seed.sql"):
        (line,) = _path_lines(again.stdout, path)
        assert not line.startswith("📄"), again.stdout
    doc = json.loads(run_sage("run", "*bootstrap --use-cli no", "--json", cwd=project).stdout)
    assert doc["summary"] == "Project layout already in place; nothing changed"
    assert doc["facts"] == {"created": 0, "kept": 8} and doc["artifacts"] == []
