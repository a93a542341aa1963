""".squawk.toml loading, rule selection errors, migration chains and size-aware severity."""
import pytest

from sage_agent.sqlkit.lint import UnknownRuleError, lint_files, lint_sql, select_rules
from sage_agent.sqlkit.lint.config import LintConfigError, load_config
from sage_agent.sqlkit.lint.sizing import SizePolicy, TableFacts, apply_table_facts


def test_squawk_toml_keys(tmp_path):
    (tmp_path / ".squawk.toml").write_text(
        'pg_version = "19.1"\nexcluded_rules = ["ban-drop-table", "prefer-timestamptz"]\n'
        'included_rules = ["require-table-schema"]\nassume_in_transaction = true\n'
        'excluded_paths = ["old/*.sql"]\n[upload_to_github]\nfail_on_violations = true\n')
    (tmp_path / "sub").mkdir()
    cfg = load_config(start=tmp_path / "sub")  # found by walking up, as squawk does
    assert (cfg.pg_version, cfg.assume_in_transaction, cfg.excluded_paths) == (19, True, ["old/*.sql"])
    ids = {r.id for r in cfg.rules()}
    assert "require-table-schema" in ids and "ban-drop-table" not in ids and "prefer-timestamp-tz" not in ids
    assert cfg.merged(exclude=[]).excluded_rules == []  # a command-line list replaces the file's


def test_unknown_rule_is_a_clear_error(tmp_path):
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["ban-drop-tabel"]\n')
    with pytest.raises(LintConfigError, match="ban-drop-tabel"):
        load_config(tmp_path / ".squawk.toml")
    with pytest.raises(UnknownRuleError, match="no-such-rule"):
        select_rules(exclude=["no-such-rule"])
    (tmp_path / "bad.toml").write_text("pg_version = [")
    with pytest.raises(LintConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_alias_excludes_both_timeout_rules():
    ids = {r.id for r in select_rules(exclude=["require-timeout-settings"])}
    assert "require-lock-timeout" not in ids and "require-statement-timeout" not in ids


def test_validate_in_an_earlier_file_of_the_chain():
    files = [("1.sql", "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"),
             ("2.sql", "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn;\n"),
             ("3.sql", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n")]
    found = lint_files(files)
    assert "adding-not-nullable-field" not in [f.rule for f in found["3.sql"]]
    alone = lint_sql(files[2][1])  # without the chain the scan is real
    assert "adding-not-nullable-field" in [f.rule for f in alone]


def test_timeouts_skip_tables_created_in_the_file_but_not_referenced_ones():
    rules = [f.rule for f in lint_sql("CREATE TABLE t (id bigint);\nCREATE INDEX t_i ON t (id);\n")]
    assert "require-lock-timeout" not in rules and "require-statement-timeout" not in rules
    (f,) = [f for f in lint_sql("CREATE TABLE m (id bigint, team bigint REFERENCES team (id));\n")
            if f.rule == "require-lock-timeout"]
    assert (f.table, f.lock) == ("public.team", "SHARE ROW EXCLUSIVE")


def test_repack_suggestion_follows_the_version():
    assert [f.rule for f in lint_sql("VACUUM FULL t;", server_major=18) if "repack" in f.rule] == ["sage-prefer-pg-repack"]
    assert [f.rule for f in lint_sql("VACUUM FULL t;", server_major=19) if "repack" in f.rule] == ["prefer-repack"]


def test_severity_follows_table_size():
    sql = "ALTER TABLE big ALTER COLUMN a TYPE bigint;\nALTER TABLE empty ALTER COLUMN a TYPE bigint;\n"
    found = [f for f in lint_sql(sql) if f.rule == "changing-column-type"]
    facts = {"public.big": TableFacts(rows=2_000_000, bytes=4 * 1024 ** 3), "empty": TableFacts(rows=0, bytes=8192)}
    big, empty = apply_table_facts(found, facts, SizePolicy(error_bytes=1024 ** 3, bytes_per_second=100 * 1024 ** 2))
    assert (big.severity, big.table_rows, big.estimated_seconds) == ("error", 2_000_000, 41.0)
    assert "ACCESS EXCLUSIVE" in big.message and empty.severity == "info" and "empty" in empty.message
    assert found[0].severity == "error" and found[0].estimated_seconds is None  # inputs are not changed


def test_table_created_in_the_file_is_info():
    sql = "BEGIN;\nCREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a TYPE bigint;\nCOMMIT;\n"
    (f,) = [f for f in lint_sql(sql) if f.rule == "changing-column-type"]
    assert f.new_table
    (g,) = apply_table_facts([f], {})
    assert g.severity == "info"
