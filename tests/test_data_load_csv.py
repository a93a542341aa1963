"""*load-csv against a real database: mapping, options, encodings, gzip, inference, bad input, batches."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK, EXIT_USAGE


def count(db, table: str) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


def table_exists(db, name: str) -> bool:
    return db.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


@pytest.fixture
def people(db):
    db.execute("create table people (id bigint primary key, name text not null, email text, "
               "born date, score numeric, created_at timestamptz default now())")
    return "people"


def run(make_session, db_url, line: str, **kw):
    session = make_session(db_url, yes=True, **kw)
    return session.run_line(line)


def test_happy_path_maps_header_case_insensitively(make_session, db_url, db, people, project):
    f = project / "people.csv"
    f.write_text("NAME,Id,Email\nAda,1,ada@example.com\n\"Lovelace, B\",2,\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert out.result.facts["rows"] == 2
    assert "Loaded 2 rows" in out.result.summary
    rows = db.execute("select id, name, email from people order by id").fetchall()
    assert rows == [(1, "Ada", "ada@example.com"), (2, "Lovelace, B", None)]
    mapping = out.result.tables[0]
    assert mapping.rows[0] == ["NAME", "name", "text"]


def test_relative_path_in_project_and_confirmation_required(make_session, db_url, db, people, project):
    (project / "p.csv").write_text("id,name\n1,a\n")
    out = make_session(db_url).run_line("*load-csv p.csv people")  # headless without --yes
    assert out.exit_code == EXIT_CONFIRM
    assert "--yes" in out.error
    assert count(db, "people") == 0
    out = run(make_session, db_url, "*load-csv p.csv people")
    assert out.exit_code == EXIT_OK
    assert count(db, "people") == 1


def test_delimiter_quote_and_null_marker(make_session, db_url, db, people, project):
    f = project / "semi.csv"
    f.write_text("id;name;email;score\n1;'O''Brien; Pat';NA;1.5\n2;'two';x@y;NA\n")
    out = run(make_session, db_url, f"*load-csv {f} people --delimiter semicolon --quote \"'\" --null NA")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    rows = db.execute("select id, name, email, score from people order by id").fetchall()
    assert rows == [(1, "O'Brien; Pat", None, pytest.approx(1.5)), (2, "two", "x@y", None)]


def test_tab_delimited_without_header_maps_by_position(make_session, db_url, db, people, project):
    f = project / "t.tsv"
    f.write_text("1\tAda\n2\tBob\n")
    out = run(make_session, db_url, f"*load-csv {f} people --delimiter tab --header=no")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert db.execute("select array_agg(name order by id) from people").fetchone()[0] == ["Ada", "Bob"]


def test_latin1_file(make_session, db_url, db, people, project):
    f = project / "latin1.csv"
    f.write_bytes("id,name\n1,José\n2,Müller\n".encode("latin-1"))
    out = run(make_session, db_url, f"*load-csv {f} people --encoding latin1")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert db.execute("select array_agg(name order by id) from people").fetchone()[0] == ["José", "Müller"]


def test_bad_encoding_reports_line_and_loads_nothing(make_session, db_url, db, people, project):
    f = project / "bad-enc.csv"
    f.write_bytes(b"id,name\n1,ok\n2,Jos\xe9\n3,fine\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1
    assert out.result.status == "failed"
    assert out.result.data["bad_rows"] == [{"line": 3, "reason": "byte 0xe9 at position 6 is not valid UTF8"}]
    assert count(db, "people") == 0


def test_gzip_file(make_session, db_url, db, people, project):
    f = project / "people.csv.gz"
    with gzip.open(f, "wt") as fh:
        fh.write("id,name\n")
        for i in range(1, 1001):
            fh.write(f"{i},name {i}\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert out.result.facts["gzip"] is True
    assert count(db, "people") == 1000


def test_create_table_with_inferred_types(make_session, db_url, db, project):
    f = project / "events.csv"
    f.write_text(
        "Event Id,Amount,Active,Day,At,Uid,Payload,Label,Zip\n"
        "1,1.5,true,2024-01-02,2024-01-02 10:00:00+00,3f2504e0-4f89-11d3-9a0c-0305e82c3301,\"{\"\"a\"\": 1}\",x,01234\n"
        "2,2,false,2024-02-03,2024-02-03T11:30:00Z,6ba7b810-9dad-11d1-80b4-00c04fd430c8,[1],y,02345\n"
        "3,,,,,,,,\n")
    out = run(make_session, db_url, f"*load-csv {f} events --create")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    types = dict(db.execute("select attname, format_type(atttypid, atttypmod) from pg_attribute "
                            "where attrelid = 'public.events'::regclass and attnum > 0").fetchall())
    assert types == {"event_id": "bigint", "amount": "numeric", "active": "boolean", "day": "date",
                     "at": "timestamp with time zone", "uid": "uuid", "payload": "jsonb", "label": "text",
                     "zip": "text"}
    assert count(db, "events") == 3
    assert db.execute("select payload->>'a' from events where event_id = 1").fetchone()[0] == "1"


def test_missing_table_without_create(make_session, db_url, db, project):
    f = project / "x.csv"
    f.write_text("a\n1\n")
    out = run(make_session, db_url, f"*load-csv {f} nosuch")
    assert out.exit_code == 2  # a decision nobody could make headless: the flag that makes it
    assert "table public.nosuch does not exist" in out.error and "--create" in out.error
    assert not table_exists(db, "public.nosuch")


def test_missing_file(make_session, db_url, people, project):
    out = run(make_session, db_url, "*load-csv nowhere.csv people")
    assert out.exit_code == EXIT_USAGE
    assert "file not found: nowhere.csv" in out.error


def test_empty_file_and_header_only(make_session, db_url, db, people, project):
    empty = project / "empty.csv"
    empty.write_text("")
    out = run(make_session, db_url, f"*load-csv {empty} people")
    assert out.exit_code == 1 and "is empty" in out.error
    only = project / "only.csv"
    only.write_text("id,name\n")
    out = run(make_session, db_url, f"*load-csv {only} people")
    assert out.exit_code == EXIT_OK and out.result.status == "warning"
    assert "no rows" in out.result.summary
    assert count(db, "people") == 0


def test_unknown_header_column_lists_expected(make_session, db_url, db, people, project):
    f = project / "u.csv"
    f.write_text("id,name,shoe_size\n1,a,42\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == EXIT_USAGE
    assert "'shoe_size' is not a column of public.people" in out.error
    assert "id, name, email, born, score, created_at" in out.error
    f.write_text("id,email\n1,a@b\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == EXIT_USAGE and "no column for name (NOT NULL" in out.error
    assert count(db, "people") == 0


def test_wrong_column_counts_report_lines_and_load_nothing(make_session, db_url, db, people, project):
    f = project / "counts.csv"
    f.write_text("id,name,email\n1,a,a@x\n2,b\n3,c,c@x,extra\n4,d,d@x\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1
    assert out.result.data["bad_rows"] == [{"line": 3, "reason": "expected 3 fields, found 2"},
                                           {"line": 4, "reason": "expected 3 fields, found 4"}]
    assert "line 3" in out.result.summary
    assert count(db, "people") == 0


def test_values_that_do_not_cast_write_a_reject_file(make_session, db_url, db, people, project):
    f = project / "casts.csv"
    f.write_text("id,name,born,score\n1,a,2020-01-01,1\n2,b,not a date,2\nthree,c,2020-01-03,3\n4,,2020-01-04,x\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1
    bad = {b["line"]: b["reason"] for b in out.result.data["bad_rows"]}
    assert set(bad) == {3, 4, 5}
    assert 'born (date)' in bad[3] and "not a date" in bad[3]
    assert "id (bigint)" in bad[4]
    assert bad[5].startswith("column name is NOT NULL") or "score (numeric)" in bad[5]
    reject = Path(out.result.data["reject_file"])
    assert reject.is_file() and reject.parent == project / "supabase" / ".sage" / "rejects"
    text = reject.read_text()
    assert text.startswith("line,reason,record") and "not a date" in text
    assert count(db, "people") == 0


def test_validate_first_refuses_before_loading(make_session, db_url, db, people, project):
    f = project / "v.csv"
    f.write_text("id,name\n1,a\nx,b\n")
    out = run(make_session, db_url, f"*load-csv {f} people --validate --max-errors 5")
    assert out.exit_code == 1 and out.result.summary.startswith("Validation found bad rows")
    assert out.result.data["bad_rows"][0]["line"] == 3
    assert count(db, "people") == 0


def test_constraint_violation_is_reported_with_line(make_session, db_url, db, people, project):
    f = project / "dup.csv"
    f.write_text("id,name\n1,a\n1,b\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1
    assert "duplicate key" in out.result.summary and "line 3" in out.result.summary
    assert count(db, "people") == 0


def test_100mb_single_line_is_refused_without_loading(make_session, db_url, db, people, project, tmp_path):
    f = tmp_path / "huge.csv"
    block = b"x" * (1 << 20)
    with f.open("wb") as fh:
        fh.write(b"id,name\n1,")
        for _ in range(100):
            fh.write(block)
        fh.write(b"\n")
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1
    assert "line 2 is longer than 64 MB" in out.error and "Nothing was loaded" in out.error
    assert count(db, "people") == 0
    f.write_bytes(b"y" * (2 << 20))  # no line break at all
    out = run(make_session, db_url, f"*load-csv {f} people")
    assert out.exit_code == 1 and "first line is longer than 1 MB" in out.error
    assert count(db, "people") == 0


def test_batched_mode_fails_midway_then_resumes(make_session, db_url, db, people, project):
    f = project / "batches.csv"
    lines = ["id,name"] + [f"{i},n{i}" for i in range(1, 101)]  # lines[k] is file line k + 1
    good = "\n".join(lines) + "\n"
    lines[55] = "x55,n55"  # file line 56 does not cast: the sixth batch (lines 52-61) fails
    f.write_text("\n".join(lines) + "\n")
    out = run(make_session, db_url, f"*load-csv {f} people --batch-rows 10")
    assert out.exit_code == 1
    assert count(db, "people") == 50  # five batches committed
    assert out.result.facts["resume_line"] == 52
    [bad] = out.result.data["bad_rows"]
    assert bad["line"] == 56 and "bigint" in bad["reason"]
    assert any("resumes at line 52" in n for n in out.result.notes)
    f.write_text(good)
    out = run(make_session, db_url, f"*load-csv {f} people --batch-rows 10")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert "resumed" in out.result.summary and out.result.facts["rows_this_run"] == 50
    assert count(db, "people") == 100
    assert db.execute("select count(distinct id) from people").fetchone()[0] == 100
    assert not list((project / "supabase" / ".sage" / "load-state").glob("*.json"))


def test_batched_resume_refuses_a_changed_prefix(make_session, db_url, db, people, project):
    f = project / "b2.csv"
    f.write_text("id,name\n1,a\n2,b\nx,c\n")
    out = run(make_session, db_url, f"*load-csv {f} people --batch-rows 2")
    assert out.exit_code == 1 and count(db, "people") == 2
    f.write_text("id,name\n1,A\n2,b\n3,c\n")
    out = run(make_session, db_url, f"*load-csv {f} people --batch-rows 2")
    assert out.exit_code == 1 and "changed before line 4" in out.error
    assert count(db, "people") == 2


def test_batched_mode_killed_midway_resumes_without_duplicates(run_sage, db_url, db, project):
    db.execute("create table big (id bigint primary key, payload text)")
    f = project / "big.csv"
    with f.open("w") as fh:
        fh.write("id,payload\n")
        for i in range(1, 200_001):
            fh.write(f"{i},{'p' * 20}\n")
    state_dir = project / "supabase" / ".sage" / "load-state"
    proc = subprocess.Popen([sys.executable, "-m", "sage_agent", "run", f"*load-csv {f} big --batch-rows 2000",
                             "--yes", "--db-url", db_url], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_sage_env())
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and proc.poll() is None:
        states = list(state_dir.glob("*.json")) if state_dir.is_dir() else []
        if states:
            try:
                if json.loads(states[0].read_text()).get("rows", 0) >= 10_000:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
            except (ValueError, OSError):
                pass
        time.sleep(0.01)
    proc.wait(timeout=30)
    partial = count(db, "big")
    assert killed, "the load finished before it could be killed"
    assert 0 < partial < 200_000
    out = run_sage("run", f"*load-csv {f} big --batch-rows 2000", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert count(db, "big") == 200_000
    assert db.execute("select count(distinct id) from big").fetchone()[0] == 200_000


def _sage_env() -> dict[str, str]:
    from conftest import sage_env

    return sage_env()


def test_progress_reports_rows_and_mb_per_second(make_session, db_url, db, people, project):
    f = project / "prog.csv"
    f.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(1, 5001)))
    session = make_session(db_url, yes=True)
    seen = []
    session.progress_sink = lambda desc, done, total, detail: seen.append((desc, done, total, detail))
    out = session.run_line(f"*load-csv {f} people")
    assert out.exit_code == EXIT_OK
    desc, done, total, detail = seen[-1]
    assert desc == "Loading prog.csv" and done == total == f.stat().st_size
    assert "5,000 rows" in detail and "rows/s" in detail and "MB/s" in detail


def test_headless_cli_load(run_sage, db_url, db, people, project):
    (project / "cli.csv").write_text("id,name\n1,a\n2,b\n")
    out = run_sage("run", "*load-csv cli.csv people", "--db-url", db_url, cwd=project)
    assert out.returncode == 3 and "--yes" in out.stderr
    out = run_sage("run", "*load-csv cli.csv people", "--db-url", db_url, "--yes", "--json", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["facts"]["rows"] == 2
    assert count(db, "people") == 2


def test_validate_pass_survives_an_overlong_line(make_session, db_url, db, people, project, monkeypatch):
    from sage_agent.ops.data import csvload as data_csv
    monkeypatch.setattr(data_csv, "MAX_LINE", 1 << 20)
    f = project / "long.csv"
    f.write_bytes(b"id,name\n1,a\nx,b\n3," + b"z" * (2 << 20) + b"\n4,d\n")
    out = run(make_session, db_url, f"*load-csv {f} people --validate")
    assert out.exit_code == 1
    reasons = {b["line"]: b["reason"] for b in out.result.data["bad_rows"]}
    assert "bigint" in reasons[3] and reasons[4] == "line 4 is longer than 1 MB"
    assert count(db, "people") == 0


def test_cast_errors_on_postgresql_15(make_session, pg15_url, project):
    import psycopg

    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute("create table m (id int primary key, at date not null, v numeric)")
    f = project / "m.csv"
    f.write_text("id,at,v\n1,2024-01-01,1\n2,2024-13-01,2\n3,,x\n")
    out = run(make_session, pg15_url, f"*load-csv {f} m")
    assert out.exit_code == 1
    reasons = {b["line"]: b["reason"] for b in out.result.data["bad_rows"]}
    assert set(reasons) == {3, 4}
    assert "at (date)" in reasons[3] and "out of range" in reasons[3]
    assert "NOT NULL" in reasons[4] or "numeric" in reasons[4]
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from m").fetchone()[0] == 0
