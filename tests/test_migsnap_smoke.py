"""*smoke-test: suites, pass and fail cases, report file, exit codes."""

import json

from sage_agent.session.machine import EXIT_FAILED, EXIT_OK

GOOD = """
create table public.items (id bigint generated always as identity primary key, name text);
alter table public.items enable row level security;
create policy "read" on public.items for select to authenticated using (true);
create table public.tags (id int primary key, item bigint references public.items (id));
alter table public.tags enable row level security;
create policy "read" on public.tags for select to authenticated using (true);
create function public.ok_fn() returns int language plpgsql as $$ begin return 1; end $$;
create function public.ok_sql() returns bigint language sql as $$ select count(*) from public.items $$;
create trigger t before insert on public.tags for each row execute function suppress_redundant_updates_trigger();
"""


def statuses(out):
    return {c["name"]: c["status"] for c in out.result.data["checks"]}


def test_comprehensive_passes_and_writes_report(make_session, db_url, db, project):
    db.execute(GOOD)
    out = make_session(db_url).run_line("*smoke-test v1.0 comprehensive")
    assert out.exit_code == EXIT_OK, (out.error, out.result and out.result.data)
    assert out.result.status == "ok", statuses(out)
    report = (project / "supabase/tests/smoke-test-v1.0.md").read_text()
    assert "# Smoke Test Report - v1.0" in report and "PASSED" in report and "**Test Suite**: comprehensive" in report
    assert "functions compile" in report and "2 functions compile" in report


def test_table_without_pk_fails_standard_not_basic(make_session, db_url, db, project):
    db.execute(GOOD + "create table public.loose (x int); alter table public.loose enable row level security;"
               "create policy p on public.loose for select using (true);")
    out = make_session(db_url).run_line("*smoke-test v2 basic")
    assert out.exit_code == EXIT_OK
    out = make_session(db_url).run_line("*test v2")  # alias, default suite standard
    assert out.exit_code == EXIT_FAILED
    assert out.result.status == "failed"
    assert statuses(out)["primary keys"] == "fail"
    assert "public.loose" in out.result.summary or "primary keys" in out.result.summary
    report = (project / "supabase/tests/smoke-test-v2.md").read_text()
    assert "FAILED" in report and "public.loose" in report


def test_rls_off_fails(make_session, db_url, db):
    db.execute("create table public.open (id int primary key)")
    out = make_session(db_url).run_line("*smoke-test rls")
    assert out.exit_code == EXIT_FAILED
    assert statuses(out)["RLS enabled on public tables"] == "fail"


def test_invalid_index_and_more_fail_comprehensive(make_session, db_url, db):
    db.execute(GOOD)
    db.execute("insert into public.items (name) values ('a'), ('a')")
    try:
        db.execute("create unique index concurrently items_name_uq on public.items (name)")
    except Exception:
        pass
    db.execute("""
        create table public.child (id int primary key, item bigint);
        alter table public.child enable row level security;
        create policy p on public.child for select using (true);
        insert into public.child values (1, 999);
        alter table public.child add constraint child_item_fk foreign key (item) references public.items (id) not valid;
        create sequence public.almost maxvalue 100;
        select setval('public.almost', 80);
        set check_function_bodies = off;
        create function public.broken() returns int language plpgsql as $$ begin retrun 1; end $$;
        create function public.broken_sql() returns int language sql as $$ select count(*) from public.nope $$;
    """)
    out = make_session(db_url).run_line("*smoke-test v3 standard")
    assert statuses(out)["foreign key integrity"] == "fail"  # an orphan row behind a NOT VALID FK
    out = make_session(db_url).run_line("*smoke-test v3 comprehensive")
    assert out.exit_code == EXIT_FAILED
    st = statuses(out)
    assert st["invalid indexes"] == "fail"
    assert st["NOT VALID constraints"] == "warn"
    assert st["sequences near their maximum"] == "warn"
    assert st["functions compile"] == "fail"
    detail = {c["name"]: c["detail"] for c in out.result.data["checks"]}
    assert "items_name_uq" in detail["invalid indexes"]
    assert "broken()" in detail["functions compile"] and "broken_sql()" in detail["functions compile"]
    assert "ok_fn" not in detail["functions compile"]
    # the compile check changed nothing
    assert db.execute("select prosrc from pg_proc where proname = 'broken'").fetchone()[0].strip().startswith("begin retrun")


def test_headless_exit_code_and_bad_version(run_sage, project, db_url, db):
    db.execute("create table public.open (id int)")
    proc = run_sage("run", "*smoke-test v9", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["facts"]["report"] == "supabase/tests/smoke-test-v9.md"
    proc = run_sage("run", "*smoke-test ../../x", "--db-url", db_url, cwd=project)
    assert proc.returncode == 2 and "invalid version" in proc.stdout + proc.stderr
    assert not (project / "supabase/tests").exists() or not list((project / "supabase/tests").glob("*x*"))
