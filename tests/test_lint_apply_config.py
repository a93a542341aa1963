"""*dry-run and *apply lint with the project's lint settings, as `sage lint` does: a rule `.squawk.toml` or
`sage.toml [lint]` excludes stays out (and no longer stops *apply), an opt-in rule they include runs, and a bad
setting (an unknown rule) is the same clear error, exit 2, before anything runs."""

from __future__ import annotations

import json

from sage_agent.db.shadow import SHADOW_PREFIX
from sage_agent.ops.snapshots.store import snapshot_dir
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK, EXIT_USAGE
from migfiles import history, write_migration as write

DROP = "alter table public.items drop column name;\n"  # ban-drop-column: an error, *apply stops on it


def _shadows(db) -> set[str]:
    return {r[0] for r in db.execute("select datname from pg_database where datname like %s",
                                     (SHADOW_PREFIX + "%",))}


def _items(db) -> None:
    db.execute("create table public.items (id bigint primary key, name text)")
    db.execute("insert into public.items select g, 'n' || g from generate_series(1, 100) g")


def _lint_rules(run_sage, project, path) -> set[str]:
    proc = run_sage("lint", str(path.relative_to(project)), "--reporter", "json", cwd=project)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    return {f["rule_name"] for f in json.loads(proc.stdout)}


def _dry_run(run_sage, project, db_url, name: str) -> dict:
    proc = run_sage("run", f"*dry-run {name}", "--db-url", db_url, "--json", cwd=project)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def _rules(doc: dict) -> dict[str, str]:
    return {f["rule"]: f["severity"] for f in doc["findings"]}


def _excluded_rule_is_left_out_everywhere(run_sage, project, db_url, db, settings_file: str, text: str) -> None:
    _items(db)
    path = write(project, "20240101000000_drop.sql", DROP)
    # without the setting: the finding is there in all three, and *apply stops on it
    assert "ban-drop-column" in _lint_rules(run_sage, project, path)
    doc = _dry_run(run_sage, project, db_url, path.name)
    assert _rules(doc)["ban-drop-column"] == "error" and doc["data"]["verdict"] == "unsafe"
    stopped = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert stopped.returncode == EXIT_CONFIRM, stopped.stdout + stopped.stderr
    assert "ban-drop-column" in json.loads(stopped.stdout)["error"]

    (project / settings_file).write_text(text, encoding="utf-8")
    assert "ban-drop-column" not in _lint_rules(run_sage, project, path)
    doc = _dry_run(run_sage, project, db_url, path.name)
    assert "ban-drop-column" not in _rules(doc)
    assert doc["data"]["verdict"] != "unsafe", doc
    assert any(n.startswith("lint settings from ") and settings_file in n for n in doc["notes"]), doc["notes"]
    applied = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert applied.returncode == EXIT_OK, applied.stdout + applied.stderr
    assert "ban-drop-column" not in _rules(json.loads(applied.stdout))
    assert history(db) == ["20240101000000"]
    assert db.execute("select count(*) from information_schema.columns where table_name = 'items' "
                      "and column_name = 'name'").fetchone()[0] == 0


def test_a_rule_squawk_toml_excludes_is_left_out_of_lint_dry_run_and_apply(run_sage, project, db_url, db):
    _excluded_rule_is_left_out_everywhere(run_sage, project, db_url, db, ".squawk.toml",
                                          'excluded_rules = ["ban-drop-column"]\n')


def test_a_rule_sage_toml_lint_excludes_is_left_out_of_lint_dry_run_and_apply(run_sage, project, db_url, db):
    _excluded_rule_is_left_out_everywhere(run_sage, project, db_url, db, "sage.toml",
                                          '[lint]\nexclude = ["ban-drop-column"]\n')


def test_an_opt_in_rule_the_settings_include_fires_in_dry_run_and_apply(run_sage, project, db_url, db):
    _items(db)
    path = write(project, "20240101000000_price.sql", "alter table public.items add column price bigint;\n")
    doc = _dry_run(run_sage, project, db_url, path.name)
    assert "ban-add-column" not in _rules(doc)  # opt-in: off by default
    (project / ".squawk.toml").write_text('included_rules = ["ban-add-column"]\n', encoding="utf-8")
    assert "ban-add-column" in _lint_rules(run_sage, project, path)
    doc = _dry_run(run_sage, project, db_url, path.name)
    assert _rules(doc)["ban-add-column"] == "warning"
    assert doc["data"]["verdict"] == "caution"
    (project / ".squawk.toml").unlink()
    (project / "sage.toml").write_text('[lint]\ninclude = ["ban-add-column"]\n', encoding="utf-8")
    applied = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert applied.returncode == EXIT_OK, applied.stdout + applied.stderr
    assert _rules(json.loads(applied.stdout))["ban-add-column"] == "warning"


def test_an_unknown_rule_in_the_settings_stops_dry_run_and_apply_with_exit_2_before_anything_runs(
        run_sage, project, db_url, db):
    _items(db)
    path = write(project, "20240101000000_drop.sql", DROP)
    (project / ".squawk.toml").write_text('excluded_rules = ["ban-drop-colum"]\n', encoding="utf-8")
    lint = run_sage("lint", str(path.relative_to(project)), cwd=project)
    assert lint.returncode == 2, lint.stderr
    said = lint.stderr.strip().splitlines()[0].removeprefix("sage lint: error: ")
    assert said.startswith(f"{project / '.squawk.toml'}: unknown lint rule 'ban-drop-colum'"), said

    shadows = _shadows(db)
    dry = run_sage("run", f"*dry-run {path.name}", "--db-url", db_url, "--json", cwd=project)
    assert dry.returncode == EXIT_USAGE == 2, dry.stdout + dry.stderr
    error = json.loads(dry.stdout)["error"]
    assert error == f"lint settings: {said}", error  # the same error as `sage lint`
    assert _shadows(db) == shadows  # no shadow database was made

    applied = run_sage("run", "*apply --snapshot=yes", "--yes", "--allow-unsafe", "--db-url", db_url, "--json",
                       cwd=project)
    assert applied.returncode == 2, applied.stdout + applied.stderr
    assert json.loads(applied.stdout)["error"] == f"lint settings: {said}"
    assert history(db) == []  # nothing applied, no history table made
    assert db.execute("select count(*) from information_schema.columns where table_name = 'items' "
                      "and column_name = 'name'").fetchone()[0] == 1
    assert list(snapshot_dir(project).glob("before_*")) == []  # no snapshot taken


def test_dry_run_lints_for_the_target_version_not_the_settings_pg_version_and_says_so(run_sage, project, db_url,
                                                                                       db):
    """pg_version is for `sage lint` without a database; *dry-run knows the server (here PostgreSQL 11+, where
    ADD COLUMN ... DEFAULT no longer rewrites the table)."""
    _items(db)
    major = int(db.execute("show server_version_num").fetchone()[0]) // 10000
    path = write(project, "20240101000000_n.sql", "alter table public.items add column n bigint default 0;\n")
    (project / ".squawk.toml").write_text('pg_version = "10"\n', encoding="utf-8")
    assert "adding-field-with-default" in _lint_rules(run_sage, project, path)
    doc = _dry_run(run_sage, project, db_url, path.name)
    assert "adding-field-with-default" not in _rules(doc)
    assert (f"linted for PostgreSQL {major}, the target's version (pg_version = 10 in the lint settings is for "
            "`sage lint` without a database)") in doc["notes"]
