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


def test_squawk_toml_included_rules(run_sage, project):
    (project / "a.sql").write_text("create table t (id bigint);\n")
    (project / ".squawk.toml").write_text('included_rules = ["require-table-schema"]\n')
    proc = run_sage("lint", "--reporter", "json", "a.sql", cwd=project)
    assert "require-table-schema" in [f["rule_name"] for f in json.loads(proc.stdout)], proc.stderr
    (project / ".squawk.toml").write_text('included_rules = ["require-table-shema"]\n')
    proc = run_sage("lint", "a.sql", cwd=project)
    assert proc.returncode == 2 and "require-table-shema" in proc.stderr and "Traceback" not in proc.stderr


def test_files_are_linted_as_one_chain(run_sage, project):
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_check.sql").write_text(
        "alter table public.t add constraint t_a_nn check (a is not null) not valid;\n")
    (folder / "20240102000000_validate.sql").write_text("alter table public.t validate constraint t_a_nn;\n")
    (folder / "20240103000000_not_null.sql").write_text("alter table public.t alter column a set not null;\n")
    proc = run_sage("lint", "--all", "--reporter", "json", cwd=project)
    assert "adding-not-nullable-field" not in [f["rule_name"] for f in json.loads(proc.stdout)], proc.stderr
    proc = run_sage("lint", "--reporter", "json", "supabase/migrations/20240103000000_not_null.sql", cwd=project)
    assert "adding-not-nullable-field" in [f["rule_name"] for f in json.loads(proc.stdout)], proc.stderr
