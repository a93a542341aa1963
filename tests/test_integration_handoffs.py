"""Handoffs: the seed's four flows end to end against a real database, the queue, the REPL offer, bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from test_integration_design import DESIGN

from sage_agent.frontends.handoff import act_on
from sage_agent.ops.integration.handoff_files import HandoffError, load_handoff


def put(project: Path, name: str, doc: dict) -> Path:
    path = project / ".aios" / "handoffs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def handoffs(project: Path) -> list[str]:
    folder = project / ".aios" / "handoffs"
    return sorted(p.name for p in folder.glob("*.yaml")) if folder.exists() else []


def test_from_architect_design_to_migration_cli(db_url, db, project, run_sage):
    (project / "docs/architecture").mkdir(parents=True)
    (project / "docs/architecture/schema-design.yaml").write_text(yaml.safe_dump(DESIGN))
    put(project, "001-architect.yaml", {
        "from": "@architect", "to": "@db-sage",
        "story": {"id": "1.2", "path": "docs/stories/1.2.md", "status": "ready", "branch": "feat/orders"},
        "request": "*create-migration-from-design docs/architecture/schema-design.yaml",
        "artifacts": ["docs/architecture/schema-design.yaml"], "decisions": ["owner-only RLS"],
        "next_action": "implement the schema"})
    listed = run_sage("handoff", "list", cwd=project)
    assert "pending" in listed.stdout and "@architect -> @db-sage" in listed.stdout
    # without --yes nothing is written and the handoff stays pending
    no = run_sage("handoff", "receive", ".aios/handoffs/001-architect.yaml", "--db-url", db_url, cwd=project)
    assert no.returncode == 3, no.stderr
    assert not (project / "supabase").exists()
    assert "not consumed" in no.stdout
    res = run_sage("handoff", "receive", ".aios/handoffs/001-architect.yaml", "--yes", "--db-url", db_url, cwd=project)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "reply handoff: .aios/handoffs/" in res.stdout
    consumed = yaml.safe_load((project / ".aios/handoffs/001-architect.yaml").read_text())
    assert consumed["consumed"] is True and consumed["result"]["exit_code"] == 0
    migs = sorted((project / "supabase/migrations").glob("*.sql"))
    assert len(migs) == 2
    reply_name = next(n for n in handoffs(project) if "db-sage-to-architect" in n)
    reply = yaml.safe_load((project / ".aios/handoffs" / reply_name).read_text())
    assert reply["to"] == "@architect" and reply["story"]["id"] == "1.2"
    assert any(a.startswith("supabase/migrations/") for a in reply["artifacts"])
    assert any(a.endswith("implementation-plan.md") for a in reply["artifacts"])
    for m in migs:  # the produced migrations apply on the real database
        db.execute(m.read_text())
    assert db.execute("select count(*) from pg_policies where tablename = 'orders'").fetchone()[0] == 4
    assert "consumed" in run_sage("handoff", "list", cwd=project).stdout


def test_from_dev_change_request(db_url, db, make_session, project):
    db.execute("create table public.profiles (id uuid primary key, name text); "
               "alter table public.profiles enable row level security; "
               "create policy profiles_read on public.profiles for select to authenticated using (true)")
    make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no")
    path = put(project, "002-dev.yaml", {
        "from": "@dev", "to": "db-sage", "request": "add a nickname to profiles",
        "inputs": {"sql": "alter table public.profiles add column nickname text;", "name": "profiles_nickname",
                   "version": "v1.1"}})
    session = make_session(db_url, yes=True)
    report = act_on(session, path, load_handoff(path, project))
    steps = {s["step"].split()[0]: s["status"] for s in report["steps"]}
    assert report["exit_code"] == 0, report["steps"]
    assert steps == {"*snapshot": "ok", "*migration-new": "ok", "*dry-run": "ok", "*apply": "ok",
                     "*smoke-test": "ok"}, report["steps"]
    cols = [r[0] for r in db.execute("select column_name from information_schema.columns "
                                     "where table_name = 'profiles'").fetchall()]
    assert "nickname" in cols


def test_to_qa(db_url, make_session, project):
    make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no")
    out = make_session(db_url, yes=True).run_line("*handoff qa --version v1.0")
    assert out.exit_code == 0, out.error
    doc = yaml.safe_load((project / out.result.data["handoff"]).read_text())
    assert doc["from"] == "@db-sage" and doc["to"] == "@qa"
    assert any("smoke-test-v1.0" in a for a in doc["artifacts"])


def test_to_devops(db_url, make_session, project):
    make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no --example-migration=yes")
    out = make_session(db_url, yes=True).run_line("*handoff devops")
    assert out.exit_code == 0, out.error
    doc = yaml.safe_load((project / out.result.data["handoff"]).read_text())
    assert doc["to"] == "@devops"
    runbook = yaml.safe_load((project / "docs/deploy/runbook-production-deploy.yaml").read_text())
    assert runbook["document"]["title"] == "Runbook: production-deploy (production)"
    assert "docs/deploy/runbook-production-deploy.yaml" in doc["artifacts"]
    assert "docs/deploy/rollback-plan.md" in doc["artifacts"]
    assert any("checklist" in a for a in doc["artifacts"])
    plan = (project / "docs/deploy/rollback-plan.md").read_text()
    assert "example_profiles.sql" in plan
    for a in doc["artifacts"]:
        assert (project / a).exists(), a
    # the handoff's own snapshot comes first, so only the missing backup (4.2) is a failed pre-deploy item
    assert doc["blockers"] == ["pre-deploy checklist: 1 item(s) failed (4.2): see the checklist report"]
    assert out.result.status == "warning"


def test_handoff_write_needs_confirmation(db_url, make_session, project):
    out = make_session(db_url).run_line("*handoff devops")
    assert out.exit_code == 3
    assert not (project / "docs").exists() and handoffs(project) == []


def test_bad_handoffs_clear_errors_nothing_written(db_url, make_session, project, run_sage):
    (project / "ok.md").write_text("x")
    cases = {
        "unknown.yaml": ({"from": "@dev", "to": "@db-sage", "request": "*help", "priority": "high"},
                         "unknown field 'priority'"),
        "types.yaml": ({"from": "@dev", "to": "@db-sage", "request": "*help", "artifacts": "ok.md",
                        "consumed": "maybe"}, "'artifacts'"),
        "other.yaml": ({"from": "@dev", "to": "@qa", "request": "*help"}, "addressed to @qa, not @db-sage: refused"),
        "missing.yaml": ({"from": "@architect", "to": "@db-sage", "request": "*help",
                          "artifacts": ["ok.md", "docs/nope.yaml"]}, "do not exist: docs/nope.yaml"),
        "noreq.yaml": ({"from": "@dev", "to": "@db-sage"}, "missing field 'request'"),
    }
    for name, (doc, message) in cases.items():
        path = put(project, name, doc)
        before = path.read_text()
        with pytest.raises(HandoffError, match=message.replace("(", r"\(").replace("'", "'")):
            load_handoff(path, project)
        res = run_sage("handoff", "receive", f".aios/handoffs/{name}", "--yes", "--db-url", db_url, cwd=project)
        assert res.returncode == 2 and message in res.stderr, (name, res.stderr)
        assert path.read_text() == before
    assert handoffs(project) == sorted(cases)  # no replies written
    listed = run_sage("handoff", "list", "--json", cwd=project)
    rows = json.loads(listed.stdout)
    assert {r["status"] for r in rows} == {"invalid", "pending"}
    # inputs that the command does not take are refused before anything runs
    path = put(project, "badinput.yaml", {"from": "@dev", "to": "@db-sage", "request": "*bootstrap",
                                          "inputs": {"colour": "red"}})
    report = act_on(make_session(db_url, yes=True), path, load_handoff(path, project))
    assert report["exit_code"] == 2 and "colour" in report["blockers"][0] and not report["consumed"]
    assert not (project / "supabase").exists()
    # unknown recipient for an outgoing handoff
    out = make_session(db_url, yes=True).run_line("*handoff @nobody")
    assert out.exit_code == 2 and "unknown recipient @nobody" in out.error


def test_repl_offers_newest_pending_handoff(db_url, project):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from sage_agent.db.env import Target
    from sage_agent.frontends.render import make_console
    from sage_agent.frontends.repl import Repl

    put(project, "003-old.yaml", {"from": "@dev", "to": "@db-sage", "request": "*help", "consumed": True})
    put(project, "004-new.yaml", {"from": "@architect", "to": "@db-sage", "request": "*bootstrap --use-cli=no"})
    with create_pipe_input() as pipe:
        console = make_console(width=160)
        console.file = io.StringIO()
        repl = Repl(project, Target("local", db_url, "test"), input=pipe, output=DummyOutput(), console=console)
        pipe.send_text("y\ry\r*exit\r")
        assert repl.run() == 0
    text = console.file.getvalue()
    assert "Handoff waiting (.aios/handoffs/004-new.yaml): @architect -> @db-sage: *bootstrap" in text
    assert (project / "supabase/migrations").is_dir()
    assert yaml.safe_load((project / ".aios/handoffs/004-new.yaml").read_text())["consumed"] is True


def test_handoff_send_cli(db_url, make_session, project, run_sage):
    make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no --example-migration=yes")
    res = run_sage("handoff", "send", "dev", "--yes", "--json", "--db-url", db_url, cwd=project)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    written = yaml.safe_load((project / doc["data"]["handoff"]).read_text())
    assert written["to"] == "@dev" and any(a.endswith("_example_profiles.sql") for a in written["artifacts"])
    listed = run_sage("handoff", "list", cwd=project)
    assert "@db-sage -> @dev" in listed.stdout


def test_handoff_carries_the_sessions_work_with_checksums(db_url, db, make_session, project):
    """*handoff qa after a working session names the migration, dry-run report, apply log, JUnit file and
    runbook it produced (from .sage/audit.jsonl), each with its sha256; an empty seed is not attached."""
    import hashlib

    run = lambda line: make_session(db_url, yes=True).run_line(line)  # noqa: E731
    assert run("*bootstrap --use-cli=no").exit_code == 0
    new = run("*migration-new add_items --sql 'create table public.items (id bigint primary key, name text);'")
    migration = new.result.data["path"]
    dry = run("*dry-run add_items")
    assert dry.exit_code == 0, dry.error
    assert run("*apply").exit_code == 0
    suite = run("*test-suite --generate")
    runbook = run('*create-doc db-runbook --vars "operation=deploy-items;environment=staging"')
    assert runbook.exit_code == 0, runbook.error
    out = run("*handoff qa --version v1.0")
    assert out.exit_code == 0, out.error
    doc = yaml.safe_load((project / out.result.data["handoff"]).read_text())
    arts = doc["artifacts"]
    for produced in (migration, dry.result.artifacts[0], "supabase/.sage/migration-log.jsonl",
                     "supabase/tests/results/junit.xml", runbook.result.artifacts[0], "supabase/tests/smoke-test-v1.0.md"):
        assert produced in arts, (produced, arts)
    assert [a for a in suite.result.artifacts if a.endswith(".xml")]
    assert arts.index(migration) < arts.index(dry.result.artifacts[0])  # in the order they were produced
    assert set(doc["checksums"]) == set(arts)
    for a in arts:
        assert doc["checksums"][a] == "sha256:" + hashlib.sha256((project / a).read_bytes()).hexdigest()
    assert "supabase/seed.sql" not in arts  # bootstrap's seed holds only a comment
    assert any("supabase/seed.sql holds no statements: not attached" in d for d in doc["decisions"])
    shown = {row[0]: row for row in out.result.tables[-1].rows}
    assert shown[migration][1] == "*migration-new" and len(shown[migration][2]) == 16
    # the next handoff to @qa carries only what was produced since: the new smoke test
    again = run("*handoff qa --version v1.1")
    doc2 = yaml.safe_load((project / again.result.data["handoff"]).read_text())
    assert doc2["artifacts"] == ["supabase/tests/smoke-test-v1.1.md"], doc2["artifacts"]
    # @dev has had no handoff yet: it gets the whole session's files, the qa handoffs' smoke tests included
    dev = run("*handoff dev")
    doc3 = yaml.safe_load((project / dev.result.data["handoff"]).read_text())
    assert migration in doc3["artifacts"] and "supabase/tests/smoke-test-v1.1.md" in doc3["artifacts"]
    assert not any(a.startswith(".aios/") for a in doc3["artifacts"])
    # a file changed after the handoff was written is refused when the handoff is read
    (project / migration).write_text("-- edited afterwards\n")
    with pytest.raises(HandoffError, match=f"changed since the handoff was written .*{migration}"):
        load_handoff(project / dev.result.data["handoff"], project, for_agent="dev")


def test_handoff_attaches_a_seed_with_rows(db_url, make_session, project):
    make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no")
    (project / "supabase/seed.sql").write_text("-- seed\ninsert into public.t values (1);\n")
    out = make_session(db_url, yes=True).run_line("*handoff qa --version v1.0")
    doc = yaml.safe_load((project / out.result.data["handoff"]).read_text())
    assert "supabase/seed.sql" in doc["artifacts"] and "seed data: supabase/seed.sql" in doc["decisions"]


def test_handoff_list_shows_an_invalid_file_as_its_name_and_why_not_none_values(project, run_sage):
    put(project, "001-ok.yaml", {"from": "@architect", "to": "@db-sage", "request": "*help"})
    put(project, "002-noto.yaml", {"from": "@architect", "request": "*help"})
    (project / ".aios/handoffs/003-broken.yaml").write_text("from: [architect\n")
    listed = run_sage("handoff", "list", cwd=project)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[1]: line for line in listed.stdout.splitlines()}
    assert "None" not in listed.stdout, listed.stdout
    assert lines[".aios/handoffs/002-noto.yaml"].startswith(
        "invalid   .aios/handoffs/002-noto.yaml  missing field 'to' (fields: from, to,"), listed.stdout
    assert lines[".aios/handoffs/003-broken.yaml"].startswith(
        "invalid   .aios/handoffs/003-broken.yaml  not valid YAML: "), listed.stdout
    assert lines[".aios/handoffs/001-ok.yaml"] == "pending   .aios/handoffs/001-ok.yaml  @architect -> @db-sage: *help"
    rows = {r["file"]: r for r in json.loads(run_sage("handoff", "list", "--json", cwd=project).stdout)}
    assert rows[".aios/handoffs/002-noto.yaml"]["reason"].startswith("missing field 'to'")
