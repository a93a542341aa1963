"""`sage lint` through the real CLI in a subprocess: file selection, reporters (checked structurally),
exit codes, settings from flags / sage.toml / .squawk.toml, and bad input (never a traceback)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

UNSAFE = "alter table public.t add column x int not null;\n"  # adding-required-field: error
INDEX = "create index if not exists t_x_idx on public.t (x);\n"  # require-concurrent-index-creation: warning
SAFE = "set lock_timeout = '2s';\nset statement_timeout = '5s';\nselect 1;\n"


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _mig(project: Path, name: str, text: str | bytes) -> Path:
    return _write(project / "supabase" / "migrations" / name, text)


def _lint(run_sage, project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    proc = run_sage("lint", *args, cwd=project, env=env, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def _rules(proc) -> list[str]:
    return [f["rule_name"] for f in json.loads(proc.stdout)]


# --- selection and exit codes ----------------------------------------------------------------------------------
def test_default_lints_every_migration_without_a_database_and_says_so(run_sage, project):
    _mig(project, "20240101000000_a.sql", UNSAFE)
    _mig(project, "20240102000000_b.sql", INDEX)
    proc = _lint(run_sage, project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "supabase/migrations/20240101000000_a.sql:1:" in proc.stdout
    assert "adding-required-field" in proc.stdout
    assert "supabase/migrations/20240102000000_b.sql:1:1: warning require-concurrent-index-creation" in proc.stdout
    assert "no database configured" in proc.stdout
    assert "linting all 2 file(s)" in proc.stdout


def test_exit_code_follows_fail_on(run_sage, project):
    path = _write(project / "only_warning.sql", INDEX)
    assert _lint(run_sage, project, str(path.name)).returncode == 0
    assert _lint(run_sage, project, path.name, "--fail-on", "warning").returncode == 1
    assert _lint(run_sage, project, path.name, "--fail-on", "info").returncode == 1
    clean = _write(project / "clean.sql", SAFE)
    assert _lint(run_sage, project, clean.name, "--fail-on", "info").returncode == 0
    bad = _lint(run_sage, project, clean.name, "--fail-on", "fatal")
    assert bad.returncode == 2 and "choose one of info, warning, error" in bad.stderr


def test_pending_files_only_when_the_database_has_a_history(run_sage, project, db_url, db):
    _mig(project, "20240101000000_applied.sql", UNSAFE)
    _mig(project, "20240102000000_pending.sql", INDEX)
    db.execute("create schema supabase_migrations")
    db.execute("create table supabase_migrations.schema_migrations (version text primary key, statements text[], "
               "name text)")
    db.execute("insert into supabase_migrations.schema_migrations values ('20240101000000', '{}', 'applied')")
    proc = _lint(run_sage, project, "--db-url", db_url, "--reporter", "json")
    assert proc.returncode == 0, proc.stderr
    files = {f["file"] for f in json.loads(proc.stdout)}
    assert files == {"supabase/migrations/20240102000000_pending.sql"}
    assert "1 pending of 2 file(s)" in proc.stderr
    every = _lint(run_sage, project, "--db-url", db_url, "--all", "--reporter", "json")
    assert {f["file"] for f in json.loads(every.stdout)} == {"supabase/migrations/20240101000000_applied.sql",
                                                              "supabase/migrations/20240102000000_pending.sql"}
    assert every.returncode == 1


def test_unreachable_database_lints_everything_and_says_why(run_sage, project):
    _mig(project, "20240101000000_a.sql", INDEX)
    proc = _lint(run_sage, project, "--db-url", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert proc.returncode == 0
    assert "could not read the migration history" in proc.stdout
    assert "secret" not in proc.stdout + proc.stderr
    assert "require-concurrent-index-creation" in proc.stdout


def test_folders_and_globs(run_sage, project):
    _write(project / "db" / "one.sql", INDEX)
    _write(project / "db" / "sub" / "two.sql", UNSAFE)
    _write(project / "db" / "notes.txt", "not sql")
    proc = _lint(run_sage, project, "db", "--reporter", "json")
    assert sorted({f["file"] for f in json.loads(proc.stdout)}) == ["db/one.sql", "db/sub/two.sql"]
    proc = _lint(run_sage, project, "db/*.sql", "--reporter", "json")
    assert {f["file"] for f in json.loads(proc.stdout)} == {"db/one.sql"}
    proc = _lint(run_sage, project, "db", "--exclude-path", "two.sql", "--reporter", "json")
    assert {f["file"] for f in json.loads(proc.stdout)} == {"db/one.sql"}


# --- reporters -------------------------------------------------------------------------------------------------
@pytest.fixture
def two_files(project) -> Path:
    _write(project / "m" / "a.sql", "create table public.t (id bigint);\n" + UNSAFE)
    _write(project / "m" / "b.sql", "select 1;\n" + INDEX)
    return project


def test_json_reporter_has_squawks_keys_and_one_based_positions(run_sage, two_files):
    proc = _lint(run_sage, two_files, "m", "--reporter", "json", "--no-assume-in-transaction")
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list) and findings
    for f in findings:
        assert {"file", "line", "column", "level", "message", "help", "rule_name", "severity"} <= set(f)
        assert f["line"] >= 1 and f["column"] >= 1
        assert f["level"] in ("Error", "Warning", "Info")
    by_rule = {f["rule_name"]: f for f in findings}
    required = by_rule["adding-required-field"]
    assert (required["file"], required["line"], required["severity"]) == ("m/a.sql", 2, "error")
    index = by_rule["require-concurrent-index-creation"]
    assert (index["file"], index["line"], index["column"]) == ("m/b.sql", 2, 1)
    assert index["lock"] == "SHARE"


def test_gcc_reporter_lines(run_sage, two_files):
    proc = _lint(run_sage, two_files, "m", "--reporter", "gcc")
    lines = proc.stdout.splitlines()
    assert lines
    pattern = re.compile(r"^(m/[ab]\.sql):(\d+):(\d+): (error|warning|info): ([a-z0-9-]+) (.+)$")
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    assert ("m/b.sql", "2", "1", "warning", "require-concurrent-index-creation") in \
        [m.groups()[:5] for m in parsed]


def test_github_reporter_prints_workflow_commands(run_sage, two_files):
    proc = _lint(run_sage, two_files, "m", "--reporter", "github")
    assert proc.returncode == 1
    commands = [line for line in proc.stdout.splitlines() if line.startswith("::")]
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]+),line=(\d+),col=(\d+),title=([a-z0-9-]+)::(.+)$")
    parsed = [pattern.match(line) for line in commands]
    assert parsed and all(parsed), commands
    assert ("error", "m/a.sql", "2", "adding-required-field") in \
        [(m.group(1), m.group(2), m.group(3), m.group(5)) for m in parsed]
    assert ("warning", "m/b.sql", "2", "1", "require-concurrent-index-creation") in \
        [m.groups()[:5] for m in parsed]


def test_github_reporter_escapes_newlines_and_commas(run_sage, project):
    _write(project / "odd, name.sql", "select from where;\n")
    proc = _lint(run_sage, project, "odd, name.sql", "--reporter", "github")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("::error"))
    assert "file=odd%2C name.sql,line=1," in line
    assert "\n" not in line and line.count("::") == 2


def test_gitlab_reporter_is_code_quality_json(run_sage, two_files):
    proc = _lint(run_sage, two_files, "m", "--reporter", "gitlab")
    issues = json.loads(proc.stdout)
    assert isinstance(issues, list) and issues
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["severity"] in ("info", "minor", "major", "critical", "blocker")
        assert isinstance(issue["location"]["path"], str) and issue["location"]["lines"]["begin"] >= 1
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    required = next(i for i in issues if i["check_name"] == "adding-required-field")
    assert (required["severity"], required["location"]) == ("major", {"path": "m/a.sql", "lines": {"begin": 2}})
    again = json.loads(_lint(run_sage, two_files, "m", "--reporter", "gitlab").stdout)
    assert [i["fingerprint"] for i in again] == [i["fingerprint"] for i in issues]


def _check_sarif(doc: dict) -> None:
    """The required properties of the SARIF 2.1.0 schema for what we emit, plus what GitHub code scanning
    needs on top (a ruleId, a location with a file and a start line)."""
    assert doc["version"] == "2.1.0"
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    rule_ids = []
    for rule in driver.get("rules", []):
        assert isinstance(rule["id"], str)
        if "defaultConfiguration" in rule:
            assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
        for key in ("shortDescription", "help"):
            if key in rule:
                assert isinstance(rule[key]["text"], str)
        rule_ids.append(rule["id"])
    assert len(rule_ids) == len(set(rule_ids))
    for result in run["results"]:
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        assert result["level"] in ("none", "note", "warning", "error")
        assert result["ruleId"] in rule_ids
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert isinstance(loc["artifactLocation"]["uri"], str)
        assert not loc["artifactLocation"]["uri"].startswith("/")
        assert loc["artifactLocation"]["uriBaseId"] in run["originalUriBaseIds"]
        assert loc["region"]["startLine"] >= 1 and loc["region"]["startColumn"] >= 1
        for value in result.get("partialFingerprints", {}).values():
            assert isinstance(value, str)


def test_sarif_reporter_is_valid_for_code_scanning(run_sage, two_files):
    _write(two_files / "m" / "c.sql", "select 1;\nselect from where;\n")
    proc = _lint(run_sage, two_files, "m", "--reporter", "sarif")
    doc = json.loads(proc.stdout)
    _check_sarif(doc)
    results = doc["runs"][0]["results"]
    where = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
              r["locations"][0]["physicalLocation"]["region"]["startLine"], r["level"]) for r in results}
    assert ("adding-required-field", "m/a.sql", 2, "error") in where
    assert ("require-concurrent-index-creation", "m/b.sql", 2, "warning") in where
    assert ("syntax-error", "m/c.sql", 2, "error") in where


def test_text_reporter_respects_no_color_and_colors_a_terminal_only(run_sage, two_files):
    proc = _lint(run_sage, two_files, "m")
    assert "\033[" not in proc.stdout
    assert "2 file(s) linted:" in proc.stdout


# --- settings --------------------------------------------------------------------------------------------------
def test_exclude_include_and_unknown_rules(run_sage, two_files):
    assert "adding-required-field" not in _rules(_lint(run_sage, two_files, "m", "--reporter", "json",
                                                       "--exclude", "adding-required-field,prefer-robust-stmts"))
    proc = _lint(run_sage, two_files, "m", "-e", "adding-requird-field")
    assert proc.returncode == 2
    assert "unknown rule 'adding-requird-field'" in proc.stderr and "did you mean adding-required-field" in proc.stderr
    proc = _lint(run_sage, two_files, "m", "--include", "no-such-rule")
    assert proc.returncode == 2 and "unknown rule 'no-such-rule' in --include" in proc.stderr


def test_squawk_toml_is_honoured_and_flags_win(run_sage, two_files):
    _write(two_files / ".squawk.toml", 'excluded_rules = ["adding-required-field"]\npg_version = "10.0"\n'
                                       "assume_in_transaction = true\n")
    _write(two_files / "m" / "d.sql", "alter table public.t add column y bigint default 0;\n"
                                      "create index concurrently if not exists t_y on public.t (y);\n")
    rules = _rules(_lint(run_sage, two_files, "m", "--reporter", "json"))
    assert "adding-required-field" not in rules
    assert "adding-field-with-default" in rules  # pg_version 10: any default rewrites
    assert "ban-concurrent-index-creation-in-transaction" in rules  # assume_in_transaction
    flags = _rules(_lint(run_sage, two_files, "m", "--reporter", "json", "--pg-version", "15",
                         "--no-assume-in-transaction", "--exclude", "prefer-robust-stmts"))
    assert "adding-required-field" in flags  # --exclude replaces the file's list
    assert "adding-field-with-default" not in flags and "ban-concurrent-index-creation-in-transaction" not in flags
    _write(two_files / ".squawk.toml", 'excluded_rules = ["no-such-rule"]\n')
    bad = _lint(run_sage, two_files, "m")
    assert bad.returncode == 2 and "unknown lint rule 'no-such-rule'" in bad.stderr and ".squawk.toml" in bad.stderr
    _write(two_files / ".squawk.toml", "excluded_rules = [\n")
    broken = _lint(run_sage, two_files, "m")
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr


def test_squawk_toml_included_rules_turn_on_opt_in_rules(run_sage, project):
    _write(project / "m" / "a.sql", "create table if not exists t (id bigint);\n")
    assert "require-table-schema" not in _rules(_lint(run_sage, project, "m", "--reporter", "json"))
    _write(project / ".squawk.toml", 'included_rules = ["require-table-schema"]\n')
    assert "require-table-schema" in _rules(_lint(run_sage, project, "m", "--reporter", "json"))


def test_default_migrations_are_one_chain_explicit_files_stand_alone(run_sage, project):
    """A constraint validated by an earlier migration makes a later SET NOT NULL safe (the pattern DB Sage
    suggests); files given by name are linted each on its own, as squawk does."""
    _mig(project, "20240101000000_check.sql", "alter table public.t add constraint t_x_nn check (x is not null) "
                                               "not valid;\nalter table public.t validate constraint t_x_nn;\n")
    _mig(project, "20240102000000_not_null.sql", "alter table public.t alter column x set not null;\n")
    chained = _lint(run_sage, project, "--reporter", "json")
    assert "adding-not-nullable-field" not in _rules(chained)
    alone = _lint(run_sage, project, "supabase/migrations", "--reporter", "json")
    assert ("supabase/migrations/20240102000000_not_null.sql", "adding-not-nullable-field") in \
        [(f["file"], f["rule_name"]) for f in json.loads(alone.stdout)]


def test_squawk_toml_found_from_a_parent_folder_or_given(run_sage, two_files):
    _write(two_files / ".squawk.toml", 'excluded_rules = ["adding-required-field"]\n')
    proc = run_sage("lint", "a.sql", "--reporter", "json", cwd=two_files / "m")
    assert "adding-required-field" not in [f["rule_name"] for f in json.loads(proc.stdout)]
    other = _write(two_files / "other.toml", 'excluded_rules = ["require-concurrent-index-creation"]\n')
    rules = _rules(_lint(run_sage, two_files, "m", "--reporter", "json", "--config", str(other)))
    assert "require-concurrent-index-creation" not in rules and "adding-required-field" in rules
    missing = _lint(run_sage, two_files, "m", "--config", "nope.toml")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_sage_toml_lint_section_over_squawk_toml(run_sage, two_files):
    _write(two_files / ".squawk.toml", 'excluded_rules = ["adding-required-field"]\n')
    _write(two_files / "sage.toml", '[lint]\nexclude = ["require-concurrent-index-creation"]\nfail_on = "warning"\n')
    proc = _lint(run_sage, two_files, "m", "--reporter", "json")
    rules = _rules(proc)
    assert "require-concurrent-index-creation" not in rules and "adding-required-field" in rules
    assert "settings from" in proc.stderr and "sage.toml [lint]" in proc.stderr
    _write(two_files / "m" / "a.sql", "select 1;\n")
    _write(two_files / "m" / "b.sql", "create table public.t (id bigint);\n")  # prefer-robust-stmts: info only
    assert _lint(run_sage, two_files, "m").returncode == 0
    _write(two_files / "sage.toml", '[lint]\nfail_on = "info"\n')
    assert _lint(run_sage, two_files, "m").returncode == 1
    _write(two_files / "sage.toml", '[lint]\nexlude = ["x"]\n')
    bad = _lint(run_sage, two_files, "m")
    assert bad.returncode == 2 and "unknown key(s) exlude" in bad.stderr
    _write(two_files / "sage.toml", '[lint]\ninclude = ["not-a-rule"]\n')
    bad = _lint(run_sage, two_files, "m")
    assert bad.returncode == 2 and "unknown rule 'not-a-rule'" in bad.stderr


def test_list_rules(run_sage, project):
    proc = _lint(run_sage, project, "--list-rules")
    assert proc.returncode == 0
    assert re.search(r"^adding-required-field +error +on ", proc.stdout, re.M)
    off = _lint(run_sage, project, "--list-rules", "-e", "adding-required-field")
    assert re.search(r"^adding-required-field +error +off ", off.stdout, re.M)


# --- bad input -------------------------------------------------------------------------------------------------
def test_non_utf8_file_exits_2_with_its_position_and_lints_the_others(run_sage, project):
    _write(project / "m" / "a_latin1.sql", "select 1;\nselect 'caf".encode() + b"\xe9';\n")
    _write(project / "m" / "b.sql", UNSAFE)
    proc = _lint(run_sage, project, "m", "--reporter", "gcc")
    assert proc.returncode == 2
    assert "m/a_latin1.sql:2:12: error: unreadable-file not UTF-8: byte 0xe9" in proc.stdout
    assert "m/b.sql:1:" in proc.stdout and "adding-required-field" in proc.stdout


def test_empty_and_comment_only_files_pass(run_sage, project):
    _write(project / "m" / "empty.sql", "")
    _write(project / "m" / "blank.sql", "\n\n  \n")
    _write(project / "m" / "comments.sql", "-- nothing yet\n/* later */\n")
    proc = _lint(run_sage, project, "m")
    assert proc.returncode == 0, proc.stdout
    assert "m/empty.sql: empty file" in proc.stdout
    assert "3 file(s) linted: no findings" in proc.stdout


def test_a_folder_without_sql_files_and_a_missing_path_are_usage_errors(run_sage, project):
    _write(project / "docs" / "readme.md", "# hi\n")
    proc = _lint(run_sage, project, "docs")
    assert proc.returncode == 2 and "docs: no .sql files in this folder" in proc.stderr
    proc = _lint(run_sage, project, "nope.sql")
    assert proc.returncode == 2 and "nope.sql: no such file or folder" in proc.stderr
    proc = _lint(run_sage, project, "*.sql")
    assert proc.returncode == 2 and "matches no file" in proc.stderr
    proc = _lint(run_sage, project)
    assert proc.returncode == 2 and "no supabase/migrations/ folder" in proc.stderr
    proc = _lint(run_sage, project, "--reporter", "xml")
    assert proc.returncode == 2 and "invalid choice: 'xml'" in proc.stderr


def test_syntax_error_mid_file_reports_line_and_column_and_others_are_linted(run_sage, project):
    _write(project / "m" / "a.sql", "create table if not exists public.a (id bigint);\n\n"
                                    "alter table public.a add column b int not nul;\nselect 1;\n")
    _write(project / "m" / "b.sql", UNSAFE)
    proc = _lint(run_sage, project, "m", "--reporter", "json")
    assert proc.returncode == 1
    findings = json.loads(proc.stdout)
    syntax = [f for f in findings if f["rule_name"] == "syntax-error"]
    assert [(f["file"], f["line"], f["column"]) for f in syntax] == [("m/a.sql", 3, 43)]
    assert 'syntax error at or near "nul"' in syntax[0]["message"]
    assert ("m/b.sql", "adding-required-field") in [(f["file"], f["rule_name"]) for f in findings]


def test_fifty_megabyte_file(run_sage, project):
    """A seed-style dump: a few statements and 50 MB of COPY data. Linted, not refused, no traceback."""
    row = "42\tsome text that is long enough to fill the file quickly\t2024-01-01\n"
    with (project / "big.sql").open("w", encoding="utf-8") as fh:
        fh.write("create table if not exists public.big (id bigint, note text, day date);\n")
        fh.write("copy public.big (id, note, day) from stdin;\n")
        fh.write(row * (50 * 1024 * 1024 // len(row) + 1))
        fh.write("\\.\n")
        fh.write(UNSAFE.replace("public.t", "public.big"))
    assert (project / "big.sql").stat().st_size > 50 * 1024 * 1024
    proc = _lint(run_sage, project, "big.sql", "--reporter", "json", timeout=300)
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)
    assert [(f["rule_name"], f["line"]) for f in findings if f["severity"] == "error"] == \
        [("adding-required-field", sum(1 for _ in (project / "big.sql").open()))]


def test_many_files_in_workers_give_the_same_report_in_order(run_sage, project):
    for i in range(12):
        body = INDEX if i % 2 else UNSAFE
        _write(project / "many" / f"{i:02d}.sql", body.replace("public.t", f"public.t{i}"))
    _write(project / "many" / "05.sql", "select from where;\n")
    pooled = _lint(run_sage, project, "many", "--reporter", "json")
    single = _lint(run_sage, project, "many", "--reporter", "json", env={"SAGE_LINT_JOBS": "1"})
    assert pooled.returncode == single.returncode == 1
    assert json.loads(pooled.stdout) == json.loads(single.stdout)
    files = [f["file"] for f in json.loads(pooled.stdout)]
    assert files == sorted(files) and len(set(files)) == 12
    assert ("many/05.sql", "syntax-error") in [(f["file"], f["rule_name"]) for f in json.loads(pooled.stdout)]


def test_lint_imports_nothing_of_the_session_machinery(project):
    """Fast start: no pydantic, psycopg, rich, prompt-toolkit, session or registry on the lint path."""
    import subprocess
    import sys

    from conftest import sage_env

    _write(project / "a.sql", UNSAFE)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sage_agent", "lint", "a.sql"], cwd=project,
                          env=sage_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "adding-required-field" in proc.stdout
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "sage_agent.sqlkit.lint.engine" in modules
    heavy = {m for m in modules if m.split(".")[0] in ("pydantic", "psycopg", "rich", "prompt_toolkit", "anthropic")
             or m.startswith(("sage_agent.session", "sage_agent.ops.registry", "sage_agent.catalog"))}
    assert heavy == set()
    # only what a small file without a config needs: no second process, no TOML, no database settings
    needless = {m for m in modules if m.split(".")[0] in ("multiprocessing", "tomllib", "hashlib", "pickle")
                or m.startswith(("sage_agent.db", "sage_agent.config"))}
    assert needless == set()
    # and only the rules that look at its statement types (ALTER TABLE) or at every statement: no DROP rule,
    # no opt-in rule
    rules = {m.rsplit(".", 1)[1] for m in modules if m.startswith("sage_agent.sqlkit.lint.rules.")}
    assert {"adding_required_field", "changing_column_type", "require_lock_timeout", "identifier_too_long"} <= rules
    assert not rules & {"ban_drop_table", "ban_drop_database", "require_concurrent_index_creation", "ban_add_column",
                        "renaming_table", "prefer_repack"}
    assert len(rules) < 40


def test_lint_ends_its_process_with_the_whole_report_and_exit_code(project):
    """`sage lint` ends its process without the interpreter's teardown (sage_agent/cli.py _end): the report
    still arrives whole through a pipe and a file, with the exit code, and exit handlers still run."""
    import subprocess
    import sys

    from conftest import sage_env

    body = "".join(f"alter table public.t{i} add column x int not null;\n" for i in range(3_000))
    _write(project / "a.sql", body)
    piped = subprocess.run([sys.executable, "-m", "sage_agent", "lint", "--reporter", "json", "a.sql"], cwd=project,
                           env=sage_env(), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 1, piped.stderr
    assert len([f for f in json.loads(piped.stdout) if f["rule_name"] == "adding-required-field"]) == 3_000
    with open(project / "out.txt", "w") as out:
        to_file = subprocess.run([sys.executable, "-m", "sage_agent", "lint", "--reporter", "json", "a.sql"],
                                 cwd=project, env=sage_env(), stdout=out, stderr=subprocess.PIPE, timeout=120)
    assert to_file.returncode == 1 and (project / "out.txt").read_text() == piped.stdout
    hook = ("import atexit, sys; atexit.register(lambda: print('exit handler ran', file=sys.stderr)); "
            "from sage_agent.cli import main; sys.argv = ['sage', 'lint', 'a.sql']; raise SystemExit(main())")
    handled = subprocess.run([sys.executable, "-c", hook], cwd=project, env=sage_env(), capture_output=True,
                             text=True, timeout=120)
    assert handled.returncode == 1 and handled.stderr.strip() == "exit handler ran"
    assert "adding-required-field" in handled.stdout


def test_a_big_file_in_two_processes_gives_the_one_process_report(run_sage, project):
    """Over 400 KB a file is split between two processes (sqlkit/lint/parallel.py); the report is the same."""
    shapes = ["begin;", "alter table public.t{i} add constraint c{i} check (x is not null) not valid;",
              "create table public.n{i} (id int, code varchar(5));", "alter table public.t{i} alter column x type int;",
              "commit;",
              "alter table public.t{i} validate constraint c{i};", "alter table public.t{i} alter column x set not null;",
              "alter table public.n{i} alter column code type text;", "create index t{i}_idx on public.t{i} (x);",
              "-- squawk-ignore prefer-robust-stmts", "drop table public.n{i};"]
    text = "".join(s.format(i=i) + "\n" for i in range(2_000) for s in shapes)
    assert len(text) > 400_000
    _write(project / "big.sql", text)
    two = _lint(run_sage, project, "big.sql", "--reporter", "json", env={"SAGE_LINT_JOBS": "2"})
    one = _lint(run_sage, project, "big.sql", "--reporter", "json", env={"SAGE_LINT_JOBS": "1"})
    assert two.returncode == one.returncode == 1
    assert two.stdout == one.stdout
    findings = json.loads(two.stdout)
    rules = {f["rule_name"] for f in findings}
    assert {"changing-column-type", "require-concurrent-index-creation", "ban-drop-table"} <= rules
    assert "adding-not-nullable-field" not in rules  # validated in an earlier statement, also across the cut
    drops = {f["line"] for f in findings if f["rule_name"] == "ban-drop-table"}
    assert len(drops) == 2_000 and all(line % len(shapes) == 0 for line in drops)
    robust = {f["line"] for f in findings if f["rule_name"] == "prefer-robust-stmts"}
    assert robust and not robust & drops  # the ignore comment above each DROP holds in both parts
    # varchar(5) -> text is known to be free only from the CREATE TABLE statements before: memory across the cut
    assert {f["line"] % len(shapes) for f in findings if f["rule_name"] == "changing-column-type"} == {4}


def test_json_reporter_writes_what_json_dumps_would():
    from sage_agent.ops.lint.reporters import as_json
    from sage_agent.ops.lint.runner import FileReport, LintRun
    from sage_agent.sqlkit.lint import LintFinding

    odd = ['quote " backslash \\ tab \t', "new\nline", "é ü 中文 \u2028", "\x01 control", ""]
    findings = [LintFinding(rule="r", severity=sev, line=i + 1, message=m, table=None if i % 2 else "public.t",
                            lock="SHARE" if i % 3 else None, rewrites=bool(i % 2), scans=not i % 2,
                            safe_alternative=m if i % 2 else "", column=None if i == 1 else i + 3,
                            filename=f"m/{m[:3]}.sql")
                for i, (m, sev) in enumerate(zip(odd, ["error", "warning", "info", "error", "info"]))]
    run = LintRun([FileReport(Path("m"), findings)])
    rows = [{"file": f.filename, "line": f.line, "column": f.column or 1, "level": f.severity.capitalize(),
             "severity": f.severity, "message": f.message, "help": f.safe_alternative or None,
             "rule_name": f.rule, "table": f.table, "lock": f.lock, "rewrites": f.rewrites, "scans": f.scans,
             "blocks": f.blocks} for f in findings]
    assert as_json(run) == json.dumps(rows, ensure_ascii=False) + "\n"
    assert as_json(LintRun([])) == "[]\n"


def test_a_missing_path_names_where_it_looked_and_what_to_run_instead(run_sage, project):
    """`sage lint nosuchdir` said only "no such file or folder": it names the path it looked for and the next
    step (how to pass files; `sage lint` / `--all` for the project's migrations; a migration of that name)."""
    proc = _lint(run_sage, project, "nosuchdir")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[-2:] == [
        f"sage lint: error: nosuchdir: no such file or folder (looked for {project / 'nosuchdir'})",
        "  next: give .sql files or folders of them (`sage lint path/to/migrations/`); `sage lint` alone lints "
        "supabase/migrations/ when run from the project folder"]
    _mig(project, "20240101000000_add_todos.sql", SAFE)
    proc = _lint(run_sage, project, "nosuchdir")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "  next: give .sql files or folders of them (`sage lint supabase/migrations/`); `sage lint` alone lints "
        "the pending files of supabase/migrations/, `sage lint --all` every file there")
    named = _lint(run_sage, project, "add_todos")  # a migration's name, as *dry-run takes it
    assert named.returncode == 2
    assert named.stderr.splitlines()[-1] == \
        "  next: did you mean `sage lint supabase/migrations/20240101000000_add_todos.sql`?"
    (project / "docs").mkdir()
    empty = _lint(run_sage, project, "docs")
    assert empty.returncode == 2
    assert empty.stderr.splitlines()[-2:] == [
        "sage lint: error: docs: no .sql files in this folder",
        "  next: give .sql files or folders of them (`sage lint supabase/migrations/`); `sage lint` alone lints "
        "the pending files of supabase/migrations/, `sage lint --all` every file there"]


def test_lint_in_the_repl_words_the_next_step_as_a_repl_command(run_sage, project):
    _mig(project, "20240101000000_add_todos.sql", SAFE)
    proc = run_sage("run", "*lint nosuchdir", cwd=project)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"nosuchdir: no such file or folder (looked for {project / 'nosuchdir'})" in proc.stderr
    assert ("next: give .sql files or folders of them (`*lint supabase/migrations/`); `*lint` alone lints the "
            "pending files of supabase/migrations/, `*lint --all` every file there") in proc.stderr
