"""Templates and checklists parse; every SQL template renders to SQL that parses and applies on a shadow
database; every YAML template validates against its model; *create-doc and *kb."""

from __future__ import annotations


import pytest

from sage_agent.catalog.checklists import CHECK_IDS, list_checklists, parse_checklist
from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.templates import (TemplateError, ident, list_templates, parse_template, render_spec,
                                          render_template)
from sage_agent.ops.docs.docmodels import validate_document

TABLE = """create table public.docs (id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id), tenant_id uuid, body text)"""
SQL_VARS = {
    "rls-kiss-policy": {"table": "docs"},
    "rls-granular-policy": {"table": "docs", "tenant_column": "tenant_id", "commands": "select,update",
                            "admin_role_claim": "admin"},
    "migration-script": {"name": "add_flag", "description": "a flag",
                         "up_sql": "alter table public.docs add column flag boolean;"},
}


def test_every_checklist_parses_with_known_checks():
    found = list_checklists()
    assert set(found) == {"dba-predeploy", "dba-rollback", "database-design", "dba-team-workflow",
                          "security-audit", "compliance"}
    for path in found.values():
        cl = parse_checklist(path)
        assert cl.sections and all(s.items for s in cl.sections)
        assert all(i.check in CHECK_IDS for i in cl.items if i.check)
        assert any(i.check for i in cl.items)


def test_checklist_errors_point_at_the_line(tmp_path):
    bad = tmp_path / "x-checklist.md"
    bad.write_text("# Checklist: X\n\nIntro.\n\n## A\n- [ ] ok `check: primary_keys`\n- [ ] bad `check: nope`\n")
    with pytest.raises(CatalogError) as exc:
        parse_checklist(bad)
    assert exc.value.line == 7 and "unknown check id 'nope'" in exc.value.message
    bad.write_text("no title\n")
    with pytest.raises(CatalogError) as exc:
        parse_checklist(bad)
    assert exc.value.line == 1


def test_template_header_errors(tmp_path):
    bad = tmp_path / "x-tmpl.sql"
    bad.write_text("-- var: table | The table | required\n-- var: owner | missing rule\nselect 1;\n")
    with pytest.raises(CatalogError) as exc:
        parse_template(bad)
    assert exc.value.line == 2
    bad.write_text("-- var: Bad-Name | x | required\n")
    with pytest.raises(CatalogError) as exc:
        parse_template(bad)
    assert exc.value.line == 1 and "bad variable name" in exc.value.message


def test_missing_required_variable_is_named():
    with pytest.raises(TemplateError, match="missing required variable.*table"):
        render_template("rls-kiss-policy", {})
    with pytest.raises(TemplateError, match="unknown variable.*colour"):
        render_template("rls-kiss-policy", {"table": "t", "colour": "red"})


def test_ident_quotes_safely():
    assert ident("todos") == '"todos"'
    assert ident('we"ird; drop table x') == '"we""ird; drop table x"'
    out = render_template("rls-kiss-policy", {"table": 'a"b'})
    assert '"a""b"' in out


@pytest.mark.parametrize("name", sorted(SQL_VARS))
def test_sql_template_parses_and_applies_on_a_shadow_database(name, db):
    from sage_agent.sqlkit.split import split_sql

    db.execute(TABLE)
    sql = render_template(name, SQL_VARS[name])
    assert split_sql(sql, f"{name}.sql")
    with db.transaction():
        db.execute(sql)
    if name.startswith("rls-"):
        assert db.execute("select relrowsecurity from pg_class where oid = 'public.docs'::regclass").fetchone()[0]
        assert db.execute("select count(*) from pg_policies where tablename = 'docs'").fetchone()[0] >= 2


def test_every_template_is_covered():
    kinds = {name: parse_template(path).kind for name, path in list_templates().items()}
    assert {n for n, k in kinds.items() if k == "sql"} == set(SQL_VARS)
    assert len(kinds) == 9


@pytest.mark.parametrize("name", ["schema-design", "rls-policies", "migration-plan", "index-strategy",
                                  "db-runbook", "smoke-test-suite"])
def test_yaml_template_validates(name):
    spec = parse_template(list_templates()[name])
    values = {v.name: ("todos" if v.name == "table" else "demo") for v in spec.variables if v.required}
    doc = validate_document(name, render_spec(spec, values))
    assert doc.template.id == name


def test_schema_design_model_rejects_a_bad_document():
    text = render_template("schema-design", {"project": "demo"})
    import yaml

    data = yaml.safe_load(text)
    data["tables"][0]["rls"]["owner_column"] = "nope"
    with pytest.raises(ValueError, match="rls.owner_column 'nope' is not a column of"):
        validate_document("schema-design", yaml.safe_dump(data))
    # one model for the document: what *create-migration-from-design refuses, *create-doc refuses too
    data = yaml.safe_load(text)
    data["tables"][0]["columns"][0]["colour"] = "blue"
    with pytest.raises(ValueError, match="unknown field"):
        validate_document("schema-design", yaml.safe_dump(data))
    data = yaml.safe_load(text)
    for column in data["tables"][0]["columns"]:
        column["primary_key"] = False
    with pytest.raises(ValueError, match="no primary key column"):
        validate_document("schema-design", yaml.safe_dump(data))


def test_create_doc_writes_and_validates(make_session, db_url, project):
    out = make_session(db_url).run_line('*create-doc migration-plan --vars "name=add_flag;description=Add a flag, safely"')
    assert out.exit_code == 0, out.error
    path = project / "docs" / "db" / "migration-plan.yaml"
    assert path.exists() and "add_flag" in path.read_text()
    # the same content again: nothing to confirm; different content needs a confirmation
    assert make_session(db_url).run_line('*create-doc migration-plan --vars "name=add_flag;description=Add a flag, safely"').exit_code == 0
    out = make_session(db_url).run_line('*create-doc migration-plan --vars "name=other;description=x"')
    assert out.exit_code == 3 and "add_flag" in path.read_text()


def test_create_doc_asks_missing_variables_interactively(make_session, db_url, project):
    out = make_session(db_url, answers=["docs"]).run_line("*create-doc rls-kiss-policy --output rls_docs")
    assert out.exit_code == 0, out.error
    assert '"public"."docs"' in (project / "docs" / "db" / "rls_docs.sql").read_text()


def test_create_doc_bad_input_writes_nothing(make_session, db_url, project):
    for line, code, message in (("*create-doc rls-kiss-policy", 2, "missing required input 'table'"),
                                ("*create-doc nosuch", 2, "unknown template 'nosuch'; available:"),
                                ('*create-doc rls-kiss-policy --vars "table=t;colour=red"', 2, "no variable(s) colour")):
        out = make_session(db_url).run_line(line)
        assert out.exit_code == code, (line, out.error)
        assert message in out.error, (line, out.error)
    assert not (project / "docs").exists()


def test_kb_lists_and_searches(make_session, db_url):
    out = make_session(db_url).run_line("*kb")
    assert out.exit_code == 0 and len(out.result.data["topics"]) > 20
    out = make_session(db_url).run_line("*kb initplan")
    assert out.exit_code == 0 and out.result.data["matches"]
    out = make_session(db_url).run_line('*kb "zzqx nothing"')
    assert out.result.status == "warning" and "nothing in the knowledge base" in out.result.summary
