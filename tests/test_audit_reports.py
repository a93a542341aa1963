"""*rls-audit and *schema-audit leave a report in supabase/tests/ (beside the dry-run and smoke-test reports),
recorded as their artifact, so a *handoff afterwards carries it with its checksum."""

from __future__ import annotations

import hashlib

import yaml


def test_audits_write_reports_that_a_handoff_carries(db_url, db, make_session, project):
    db.execute("create table public.open_notes (id bigint primary key, body text)")  # no RLS: an advisor error
    db.execute("create table public.orders (id bigint primary key, customer_id bigint)")  # FK-less, no index
    run = lambda line: make_session(db_url, yes=True).run_line(line)  # noqa: E731
    rls = run("*rls-audit")
    assert rls.exit_code == 0, rls.error
    assert rls.result.artifacts == ["supabase/tests/rls-audit.md"]
    assert rls.result.facts["report"] == "supabase/tests/rls-audit.md"
    report = (project / "supabase/tests/rls-audit.md").read_text()
    assert report.startswith("# RLS audit\n")
    assert "open_notes" in report and "rls_disabled_in_public" in report
    assert "postgres:postgres@" not in report and "Status: **warning**" in report

    schema = run("*schema-audit")
    assert schema.exit_code == 0, schema.error
    assert schema.result.artifacts == ["supabase/tests/schema-audit.md"]
    text = (project / "supabase/tests/schema-audit.md").read_text()
    assert text.startswith("# Schema audit\n") and f"score {schema.result.facts['score']}/100" in text
    for finding in schema.result.data["findings"]:
        assert finding["message"] in text  # every finding, not only those shown

    out = run("*handoff dev")
    assert out.exit_code == 0, out.error
    doc = yaml.safe_load((project / out.result.data["handoff"]).read_text())
    for rel in ("supabase/tests/rls-audit.md", "supabase/tests/schema-audit.md"):
        assert rel in doc["artifacts"], doc["artifacts"]
        assert doc["checksums"][rel] == "sha256:" + hashlib.sha256((project / rel).read_bytes()).hexdigest()
    shown = {row[0]: row[1] for row in out.result.tables[-1].rows}
    assert shown["supabase/tests/rls-audit.md"] == "*rls-audit"
    assert shown["supabase/tests/schema-audit.md"] == "*schema-audit"


def test_an_unwritable_project_keeps_the_audit(db_url, db, make_session, project):
    (project / "supabase").mkdir()
    (project / "supabase" / "tests").write_text("not a folder")  # the report cannot be written
    out = make_session(db_url, yes=True).run_line("*schema-audit")
    assert out.exit_code == 0, out.error
    assert out.result.artifacts == [] and "report" not in out.result.facts
    assert any(n.startswith("report not written:") for n in out.result.notes)
