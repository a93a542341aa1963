"""*test-suite: native assertions on the embedded PG18 (no pgTAP there), pgTAP + pg_prove on Debian PG15."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import psycopg
import pytest

SCHEMA = """
create table public.notes (id bigint generated always as identity primary key, owner uuid not null,
                           body text);
alter table public.notes enable row level security;
create policy own_notes on public.notes for select to authenticated using ((select auth.uid()) = owner);
create table public.tags (name text primary key);
"""


def _junit(project):
    return ET.parse(project / "supabase" / "tests" / "results" / "junit.xml").getroot()


def test_native_generate_and_run(make_session, db_url, db, project):
    db.execute(SCHEMA)
    out = make_session(db_url, yes=True).run_line("*test-suite --generate")
    assert out.exit_code == 0, (out.error, out.result and out.result.findings)
    res = out.result
    assert res.facts["pgtap"] is False
    tests = project / "supabase" / "tests"
    assert (tests / "public_notes.test.sql").is_file() and (tests / "public_tags.test.sql").is_file()
    text = (tests / "public_notes.test.sql").read_text()
    assert "set local role anon" in text and "relrowsecurity" in text
    assert res.facts["failed"] == 0 and res.facts["tests"] >= 8
    root = _junit(project)
    assert root.get("failures") == "0" and len(root.findall("testsuite")) == 2
    # rolled back: no leftover settings or rows, nothing created
    assert db.execute("select count(*) from public.notes").fetchone()[0] == 0


def test_native_failures_are_reported(make_session, db_url, db, project):
    db.execute(SCHEMA)
    tests = project / "supabase" / "tests"
    tests.mkdir(parents=True)
    (tests / "custom.test.sql").write_text(
        "-- test: insert works\ninsert into public.tags values ('a');\n"
        "-- test: one tag\nselect count(*) = 1 from public.tags;\n"
        "-- test: wrong expectation\nselect count(*) = 5 from public.tags;\n"
        "set local role anon;\n"
        "-- expect-error: 42501\ninsert into public.notes (owner) values (gen_random_uuid());\n"
        "reset role;\n"
        "-- test: broken sql\nselect * from nowhere;\n")
    out = make_session(db_url, yes=True).run_line("*test-suite")
    assert out.exit_code == 1
    res = out.result
    assert res.status == "failed"
    failed = {f.message for f in res.findings}
    assert failed == {"wrong expectation", "broken sql"}
    root = _junit(project)
    suite = root.find("testsuite")
    assert suite.get("failures") == "2"
    names = [c.get("name") for c in suite.findall("testcase")]
    assert "one tag" in names and "wrong expectation" in names
    # the insert was rolled back
    assert db.execute("select count(*) from public.tags").fetchone()[0] == 0


def test_no_tests_is_a_clear_error(make_session, db_url, project):
    out = make_session(db_url, yes=True).run_line("*test-suite")
    assert out.exit_code == 1
    assert "no test files" in out.error and "generate" in out.error


def _pgtap_installed(url: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            conn.execute("create extension if not exists pgtap")
            return True
        except psycopg.Error:
            return False
        finally:
            conn.rollback()


def test_pgtap_on_pg15(make_session, pg15_url, project):
    if not _pgtap_installed(pg15_url):
        pytest.skip("pgTAP not installed for PostgreSQL 15 (apt-get install postgresql-15-pgtap)")
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    tests = project / "supabase" / "tests"
    tests.mkdir(parents=True)
    (tests / "zz_failing.sql").write_text(
        "begin;\nselect plan(2);\nselect ok(true, 'truth');\nselect is(1, 2, 'one is two');\n"
        "select * from finish();\nrollback;\n")
    out = make_session(pg15_url, yes=True).run_line("*test-suite --generate")
    assert out.result is not None, out.error
    res = out.result
    assert res.facts["pgtap"] is True
    assert (tests / "public_notes.sql").is_file()
    rows = {r[0]: r for r in res.tables[0].rows}
    assert rows["public_notes.sql"][2] == 0 and rows["public_notes.sql"][1] >= 8
    assert rows["zz_failing.sql"][2] == 1
    assert rows["public_notes.sql"][3] == ("pg_prove" if shutil.which("pg_prove") else "psql")
    assert [f.message for f in res.findings] == ["one is two"]
    assert out.exit_code == 1
    # pgTAP was only ever installed inside rolled-back transactions
    with psycopg.connect(pg15_url) as conn:
        assert conn.execute("select count(*) from pg_extension where extname = 'pgtap'").fetchone()[0] == 0


def test_native_syntax_error_fails_that_file_only(make_session, db_url, db, project):
    db.execute(SCHEMA)
    tests = project / "supabase" / "tests"
    tests.mkdir(parents=True)
    (tests / "a_bad.test.sql").write_text("select true;\nselec oops;\n")
    (tests / "b_good.test.sql").write_text("-- test: tags table exists\nselect to_regclass('public.tags') is not null;\n")
    out = make_session(db_url, yes=True).run_line("*test-suite")
    assert out.exit_code == 1
    res = out.result
    rows = {r[0]: r for r in res.tables[0].rows}
    assert rows["a_bad.test.sql"][2] == 1 and rows["b_good.test.sql"][2] == 0
    assert "a_bad.test.sql:2" in res.findings[0].detail


def test_pgtap_installed_in_extensions_schema(make_session, pg15_url, project):
    if not _pgtap_installed(pg15_url):
        pytest.skip("pgTAP not installed for PostgreSQL 15 (apt-get install postgresql-15-pgtap)")
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute("create schema if not exists extensions; create extension pgtap with schema extensions")
    tests = project / "supabase" / "tests"
    tests.mkdir(parents=True)
    (tests / "smoke.sql").write_text("begin;\nselect plan(1);\nselect ok(1 = 1, 'arithmetic');\n"
                                     "select * from finish();\nrollback;\n")
    out = make_session(pg15_url, yes=True).run_line("*test-suite")
    assert out.exit_code == 0, (out.error, out.result and out.result.findings)
    assert out.result.facts["tests"] == 1
