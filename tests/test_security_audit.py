"""*schema-audit findings and *execute-checklist with automatic checks on a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

SCHEMA = """
create table public.parent (id serial primary key, "createdAt" timestamp, code varchar(10));
create table public.child (id bigint generated always as identity primary key, parent_id int references public.parent (id));
create index child_a on public.child (id, parent_id);
create index child_b on public.child (id, parent_id);
create table public.nopk (x int);
create sequence public.hot_seq as integer;
select setval('public.hot_seq', 2000000000);
create table public.hot (id integer primary key default nextval('public.hot_seq'));
alter sequence public.hot_seq owned by public.hot.id;
"""


def test_schema_audit_findings_and_fixes(make_session, db_url, db):
    db.execute(SCHEMA)
    out = make_session(db_url).run_line("*schema-audit")
    assert out.exit_code == 0, out.error
    by_rule: dict[str, list] = {}
    for f in out.result.findings:
        by_rule.setdefault(f.rule, []).append(f)
    assert by_rule["no_primary_key"][0].location == "public.nopk"
    assert "create index concurrently" in by_rule["unindexed_foreign_keys"][0].fix
    assert '"child_b"' in by_rule["duplicate_index"][0].fix
    assert {f.location for f in by_rule["unused_index"]} == {"public.child"}
    assert by_rule["timestamp_without_time_zone"][0].location == "public.parent.createdAt"
    assert "timestamptz" in by_rule["timestamp_without_time_zone"][0].fix
    assert by_rule["varchar_n"][0].location == "public.parent.code"
    assert by_rule["nullable_foreign_key"][0].location == "public.child.parent_id"
    assert "public.parent.id" in {f.location for f in by_rule["prefer_bigint_ids"]}
    hot = by_rule["int_id_near_overflow"][0]
    assert hot.location == "public.hot.id" and hot.severity == "error" and "93%" in hot.message
    assert any(f.location == "public.parent.createdAt" for f in by_rule["naming_not_snake_case"])
    assert 0 <= out.result.data["score"] < 100


def test_schema_audit_clean_schema_scores_100(make_session, db_url, db):
    db.execute("create table public.items (id bigint generated always as identity primary key, name text not null)")
    out = make_session(db_url).run_line("*schema-audit public")
    assert out.exit_code == 0 and out.result.data["score"] == 100 and out.result.findings == []
    bad = make_session(db_url).run_line("*schema-audit nosuch")
    assert bad.exit_code == 2 and "unknown schema: nosuch" in bad.error


def test_checklist_automatic_checks_and_answers(make_session, db_url, db, project):
    db.execute("create table public.open_t (id int primary key); create table public.nopk (x int)")
    snaps = project / "supabase" / "snapshots"
    snaps.mkdir(parents=True)
    (snaps / "s.json").write_text(json.dumps({"created_at": datetime.now(timezone.utc).isoformat()}))
    backups = project / "supabase" / "backups"
    backups.mkdir(parents=True)
    (backups / "b.json").write_text(json.dumps({"created_at": (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()}))
    out = make_session(db_url).run_line('*execute-checklist dba-predeploy --answers "1.3=pass,1.4=partial"')
    assert out.exit_code == 1 and out.result.status == "failed", out.error  # failed items fail the run (CI)
    assert "FAILED:" in out.result.summary
    items = out.result.data["items"]
    by_check = {}
    from sage_agent.catalog.checklists import list_checklists, parse_checklist

    for item in parse_checklist(list_checklists()["dba-predeploy"]).items:
        if item.check:
            by_check[item.check] = items[item.id]
    assert by_check["rls_enabled_public"]["status"] == "fail" and "public.open_t" in by_check["rls_enabled_public"]["evidence"]
    assert by_check["snapshot_recent"]["status"] == "pass"
    assert by_check["backup_recent"]["status"] == "fail"
    assert by_check["no_idle_in_transaction"]["status"] == "pass"
    assert by_check["wraparound_ok"]["status"] == "pass"
    assert by_check["migrations_lint_clean"]["status"] == "pass"
    assert items["1.3"]["status"] == "pass" and items["1.4"]["status"] == "partial"
    assert out.result.facts["not answered"] > 0  # headless: manual items are reported, not failed
    report = project / out.result.artifacts[0]
    assert report.exists() and "Pass rate" in report.read_text()
    assert report.parent == project / "supabase" / "tests"


def test_checklist_migration_checks(make_session, db_url, db, project):
    mig = project / "supabase" / "migrations"
    mig.mkdir(parents=True)
    (mig / "20240101000000_a.sql").write_text("create table public.a (id int primary key);\n")
    (mig / "20240102000000_b.sql").write_text("alter table public.a add column b int not null default random();\n"
                                              "create index a_b on public.a (b);\n")
    db.execute("create schema supabase_migrations; create table supabase_migrations.schema_migrations "
               "(version text primary key, statements text[], name text);"
               "insert into supabase_migrations.schema_migrations values ('20240103000000', null, 'c')")
    from sage_agent.ops.docs.checks import CheckEnv, run_check

    env = CheckEnv(db, project, 18)
    status, evidence = run_check("migrations_applied_in_order", env)
    assert status == "fail" and "20240101000000_a.sql" in evidence and "20240103000000" in evidence
    status, evidence = run_check("migrations_lint_clean", env)
    assert status in ("pass", "fail") and evidence
    for check in ("no_invalid_indexes", "no_not_valid_constraints", "sequences_headroom", "timestamptz_only",
                  "pg_stat_statements_enabled", "no_long_running_queries", "rls_policy_uses_initplan",
                  "no_user_metadata_in_policies", "function_search_path_set", "no_extension_in_public",
                  "no_auth_users_exposed", "no_security_definer_views", "primary_keys", "fk_indexes",
                  "no_duplicate_indexes", "no_rls_enabled_no_policy"):
        status, evidence = run_check(check, env)
        assert status in ("pass", "fail", "n/a") and evidence, check
    db.execute("create table public.a (id int); alter table public.a add constraint c check (id > 0) not valid")
    assert run_check("no_not_valid_constraints", env)[0] == "fail"


def test_checklist_interactive_answers(make_session, db_url, project):
    from sage_agent.catalog.checklists import list_checklists, parse_checklist

    cl = parse_checklist(list_checklists()["dba-rollback"])
    manual = [i for i in cl.items if not i.check]
    replies = ["pass", "fail", "n/a"] + [""] * len(manual)
    out = make_session(db_url, answers=replies).run_line("*execute-checklist dba-rollback --fail-on never")
    assert out.exit_code == 0, out.error
    items = out.result.data["items"]
    assert [items[i.id]["status"] for i in manual[:3]] == ["pass", "fail", "n/a"]
    assert items[manual[3].id]["status"] == "not answered"


def test_checklist_exit_code_follows_fail_on(db_url, db, project, run_sage):
    """CI gates on a checklist: exit 1 names the failed items; --fail-on sets how strict; the report is kept."""
    db.execute("create table public.open_t (id int primary key)")  # RLS off on an exposed table: 2.x fails
    base = ["run", "--db-url", db_url, "--json"]
    failed = run_sage(*base, "*execute-checklist dba-predeploy", cwd=project)
    doc = json.loads(failed.stdout)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    failing = doc["data"]["failing"]
    assert failing and all(doc["data"]["items"][i]["status"] == "fail" for i in failing)
    assert any(n.startswith(f"failed (--fail-on fail): {len(failing)} item(s): {failing[0]} (fail)") for n in doc["notes"])
    assert doc["next_steps"] == ["*execute-checklist dba-predeploy", "*execute-checklist dba-predeploy --fail-on never"]
    assert (project / doc["artifacts"][0]).is_file()
    lenient = run_sage(*base, "*execute-checklist dba-predeploy --fail-on never", cwd=project)
    assert lenient.returncode == 0 and json.loads(lenient.stdout)["status"] == "warning", lenient.stdout
    # all automatic checks pass and every manual item is answered pass: 0 even at the strictest level
    db.execute("alter table public.open_t enable row level security; "
               "create policy p on public.open_t for select to authenticated using (true)")
    for folder in ("snapshots", "backups"):  # a fresh snapshot and backup, as the checks look for them
        (project / "supabase" / folder).mkdir(parents=True, exist_ok=True)
        (project / "supabase" / folder / "x.json").write_text(json.dumps({"created_at": datetime.now(timezone.utc).isoformat()}))
    from sage_agent.catalog.checklists import list_checklists, parse_checklist

    items = parse_checklist(list_checklists()["dba-predeploy"]).items
    answers = ",".join(f"{i.id}=pass" for i in items if not i.check)
    strict = run_sage(*base, f'*execute-checklist dba-predeploy --answers "{answers}" --fail-on unanswered',
                      cwd=project)
    sdoc = json.loads(strict.stdout)
    fails = {k: v for k, v in sdoc["data"]["items"].items() if v["status"] in ("fail", "partial", "not answered")}
    assert strict.returncode == 0 and fails == {} and sdoc["status"] == "ok", (strict.returncode, fails)
    unanswered = run_sage(*base, "*execute-checklist dba-predeploy --fail-on unanswered", cwd=project)
    udoc = json.loads(unanswered.stdout)
    assert unanswered.returncode == 1 and any(udoc["data"]["items"][i]["status"] == "not answered"
                                              for i in udoc["data"]["failing"])
    bad = run_sage(*base, "*execute-checklist dba-predeploy --fail-on sometimes", cwd=project)
    assert bad.returncode == 2 and "choose one of fail, partial, unanswered, never" in bad.stdout + bad.stderr


def test_checklist_bad_input(make_session, db_url, project):
    out = make_session(db_url).run_line("*execute-checklist nosuch")
    assert out.exit_code == 2 and "unknown checklist 'nosuch'" in out.error and "dba-predeploy" in out.error
    out = make_session(db_url).run_line('*execute-checklist dba-predeploy --answers "9.9=pass"')
    assert out.exit_code == 2 and "no item '9.9'" in out.error
    out = make_session(db_url).run_line('*execute-checklist dba-predeploy --answers "1.1=maybe"')
    assert out.exit_code == 2 and "use one of pass, fail, partial, n/a" in out.error
    assert not (project / "supabase").exists()
