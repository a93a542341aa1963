"""*create-migration-from-design and *model-domain: design -> SQL proved on a shadow database, bad designs."""

from __future__ import annotations

from pathlib import Path

import yaml

DESIGN = {
    "schema": "public",
    "tables": [
        {"name": "customers", "description": "People who buy", "columns": [
            {"name": "id", "type": "uuid", "nullable": False, "default": "gen_random_uuid()", "primary_key": True},
            {"name": "user_id", "type": "uuid", "nullable": False, "default": "auth.uid()",
             "references": {"table": "auth.users", "column": "id", "on_delete": "cascade"}},
            {"name": "email", "type": "text", "nullable": False},
        ], "rls": {"enabled": True, "owner_column": "user_id"}},
        {"name": "orders", "description": "", "columns": [
            {"name": "id", "type": "bigint generated always as identity", "nullable": False, "primary_key": True},
            {"name": "customer_id", "type": "uuid", "nullable": False},
            {"name": "user_id", "type": "uuid", "nullable": False, "default": "auth.uid()"},
            {"name": "total", "type": "numeric(12,2)", "nullable": False, "default": 0},
        ], "indexes": [{"columns": ["user_id"], "unique": False}], "rls": {"enabled": True, "owner_column": "user_id"}},
    ],
    "relationships": [{"from": "orders.customer_id", "to": "customers.id", "type": "many-to-one",
                       "on_delete": "restrict"}],
}


def write(project: Path, doc, rel="docs/architecture/schema-design.yaml") -> str:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return rel


def written(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and not str(p.relative_to(project)).startswith(".sage/"))  # the audit trail records refusals


def test_design_to_migration_proved_and_applies(db_url, db, make_session, project):
    write(project, DESIGN)
    out = make_session(db_url, yes=True).run_line("*create-migration-from-design")
    assert out.exit_code == 0, out.error
    mig = project / out.result.data["migration"]
    rls = project / out.result.data["rls"]
    assert out.result.data["order"] == ["customers", "orders"]
    assert (project / out.result.data["plan"]).read_text().startswith("# Implementation plan")
    # the written files also apply on the test's own database
    db.execute(mig.read_text())
    db.execute(rls.read_text())
    pols = db.execute("select count(*) from pg_policies where tablename in ('customers','orders')").fetchone()[0]
    assert pols == 8
    fk = db.execute("select confdeltype from pg_constraint where conname = 'orders_customer_id_fkey'").fetchone()
    assert fk == ("r",)


def test_nullable_cycle_created_then_fk_added(db_url, make_session, project):
    doc = {"tables": [
        {"name": "a", "columns": [{"name": "id", "type": "bigint", "primary_key": True, "nullable": False},
                                  {"name": "b_id", "type": "bigint", "references": {"table": "b", "column": "id"}}]},
        {"name": "b", "columns": [{"name": "id", "type": "bigint", "primary_key": True, "nullable": False},
                                  {"name": "a_id", "type": "bigint", "nullable": False,
                                   "references": {"table": "a", "column": "id"}}]}]}
    write(project, doc)
    out = make_session(db_url, yes=True).run_line("*create-migration-from-design --name cycle")
    assert out.exit_code == 0, out.error
    text = (project / out.result.data["migration"]).read_text()
    assert "alter table" in text and "add constraint" in text


def test_bad_designs_clear_errors_nothing_written(db_url, db, make_session, project):
    cases = {
        "cycle": ({"tables": [
            {"name": "a", "columns": [{"name": "id", "type": "int", "primary_key": True, "nullable": False},
                                      {"name": "b_id", "type": "int", "nullable": False, "references": {"table": "b"}}]},
            {"name": "b", "columns": [{"name": "id", "type": "int", "primary_key": True, "nullable": False},
                                      {"name": "a_id", "type": "int", "nullable": False, "references": {"table": "a"}}]}]},
                  "foreign key cycle"),
        "type": ({"tables": [{"name": "t", "columns": [{"name": "id", "type": "strng"}]}]}, "unknown type 'strng'"),
        "field": ({"tables": [{"name": "t", "colums": []}]}, "unknown field"),
        "ref": ({"tables": [{"name": "t", "columns": [{"name": "x", "type": "int", "references": {"table": "nope"}}]}]},
                "unknown table nope"),
    }
    for key, (doc, message) in cases.items():
        rel = write(project, doc, f"design-{key}.yaml")
        before = written(project)
        out = make_session(db_url, yes=True).run_line(f"*create-migration-from-design {rel}")
        assert out.exit_code == 2, (key, out.error)
        assert message in out.error, (key, out.error)
        assert written(project) == before
    assert not (project / "supabase").exists()


def test_model_domain_headless_spec(db_url, make_session, project):
    spec = {"project": "shop", "tenancy": {"table": "organizations", "column": "org_id"},
            "entities": [{"name": "organizations", "tenant": False, "attributes": ["name!:text"]},
                         {"name": "projects", "owner": "user_id", "attributes": ["title!:text", "budget:numeric(12,2)"]},
                         {"name": "tasks", "key": "bigint", "owner": "user_id",
                          "relationships": [{"column": "project_id", "to": "projects", "on_delete": "cascade"}]}]}
    (project / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = make_session(db_url, yes=True).run_line("*model-domain spec.yaml")
    assert out.exit_code == 0, out.error
    design = yaml.safe_load((project / "docs/architecture/schema-design.yaml").read_text())
    assert [t["name"] for t in design["tables"]] == ["organizations", "projects", "tasks"]
    assert design["document"]["project"] == "shop"
    assert out.result.data["order"] == ["organizations", "projects", "tasks"]


def test_model_domain_interactive(db_url, make_session, project):
    answers = ["", "notes", "body!:text, pinned:boolean", "uuid", "user_id", "", "", "y"]
    out = make_session(db_url, answers=answers).run_line("*model-domain")
    assert out.exit_code == 0, out.error
    assert (project / "docs/architecture/schema-design.yaml").exists()


def test_model_domain_unknown_type(db_url, make_session, project):
    (project / "spec.yaml").write_text(yaml.safe_dump({"entities": [{"name": "x", "attributes": ["a:bogus_t"]}]}))
    out = make_session(db_url, yes=True).run_line("*model-domain spec.yaml")
    assert out.exit_code == 2 and "unknown type 'bogus_t'" in out.error
    assert not (project / "docs").exists()
