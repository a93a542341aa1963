"""DB Sage's own generated migrations lint clean under its own linter, in the mode `*apply` runs
them (each file in one transaction): *policy-apply's rendered RLS SQL and
*create-migration-from-design's migration + RLS files."""
import pytest

from sage_agent.catalog.templates import render_template
from sage_agent.ops.design.generate import generate_rls, generate_sql, parse_design, render_template_file
from sage_agent.sqlkit.lint import lint_files, lint_sql

# the prefix *policy-apply puts before the rendered template
POLICY_PREFIX = "set lock_timeout = '5s';\nset statement_timeout = '60s';\n"

DESIGN = {
    "schema": "public",
    "tables": [
        {"name": "teams", "columns": [
            {"name": "id", "type": "uuid", "nullable": False, "default": "gen_random_uuid()", "primary_key": True},
            {"name": "owner_id", "type": "uuid", "nullable": False, "default": "auth.uid()",
             "references": {"table": "auth.users", "column": "id", "on_delete": "cascade"}},
        ], "rls": {"enabled": True, "owner_column": "owner_id"}},
        {"name": "tasks", "columns": [
            {"name": "id", "type": "bigint generated always as identity", "nullable": False, "primary_key": True},
            {"name": "team_id", "type": "uuid", "nullable": False},
            {"name": "owner_id", "type": "uuid", "nullable": False, "default": "auth.uid()"},
            {"name": "title", "type": "text", "nullable": False},
        ], "indexes": [{"columns": ["title"], "unique": False}], "rls": {"enabled": True, "owner_column": "owner_id"}},
        {"name": "audit", "columns": [{"name": "id", "type": "bigint", "primary_key": True, "nullable": False}],
         "rls": {"enabled": True}},
    ],
    "relationships": [{"from": "tasks.team_id", "to": "teams.id", "type": "many-to-one", "on_delete": "restrict"}],
}


@pytest.mark.parametrize("template,variables", [
    ("rls-kiss-policy", {"schema": "public", "table": "notes", "owner_column": "user_id"}),
    ("rls-granular-policy", {"schema": "public", "table": "notes", "owner_column": "user_id",
                             "tenant_column": "org_id", "roles": "authenticated",
                             "commands": "select,insert,update,delete"}),
    ("rls-granular-policy", {"schema": "app", "table": "docs", "owner_column": "author_id", "tenant_column": "",
                             "roles": "authenticated,anon", "commands": "select"}),
])
def test_policy_apply_sql_lints_clean(template, variables):
    sql = POLICY_PREFIX + render_template(template, variables)
    assert [(f.line, f.rule) for f in lint_sql(sql, "rls.sql", assume_in_transaction=True)] == []


def test_design_migrations_lint_clean():
    design = parse_design(DESIGN, "design.yaml")
    schema_sql, _order = generate_sql(design, "design.yaml")
    rls_sql, _notes = generate_rls(design, render_template_file)
    found = lint_files([("1_schema.sql", schema_sql), ("2_rls.sql", rls_sql)], assume_in_transaction=True)
    assert {name: [(f.line, f.rule) for f in fs] for name, fs in found.items()} == {
        "1_schema.sql": [], "2_rls.sql": []}


def test_the_ignore_in_the_template_is_needed():
    """Without its squawk-ignore comment the template's index would be flagged (the test above is not vacuous)."""
    sql = POLICY_PREFIX + render_template("rls-kiss-policy", {"schema": "public", "table": "notes",
                                                              "owner_column": "user_id"})
    stripped = "\n".join(line for line in sql.splitlines() if "squawk-ignore" not in line)
    assert "require-concurrent-index-creation" in [f.rule for f in lint_sql(stripped, assume_in_transaction=True)]
