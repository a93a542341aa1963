"""`sage lint` knows every rule of the engine: squawk's opt-in rules by --include, squawk's alias
require-timeout-settings for both timeout rules, and --list-rules shows the opt-in ones."""
import json


def test_include_opt_in_and_exclude_alias(run_sage, project):
    (project / "a.sql").write_text("create table t (id bigint);\nalter table public.other add column c text;\n")
    proc = run_sage("lint", "--reporter", "json", "--include", "require-table-schema", "a.sql", cwd=project)
    rules = [f["rule_name"] for f in json.loads(proc.stdout)]
    assert "require-table-schema" in rules and "require-lock-timeout" in rules, proc.stderr
    proc = run_sage("lint", "--reporter", "json", "--exclude", "require-timeout-settings", "a.sql", cwd=project)
    rules = [f["rule_name"] for f in json.loads(proc.stdout)]
    assert "require-table-schema" not in rules  # opt-in: off unless included
    assert not {"require-lock-timeout", "require-statement-timeout"} & set(rules), proc.stderr
    listing = run_sage("lint", "--list-rules", cwd=project).stdout
    assert "ban-revoke" in listing and "opt-in" in listing
