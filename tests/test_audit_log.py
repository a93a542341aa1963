"""Every operation leaves a started and a finished line in .sage/audit.jsonl; `sage log` reads them back."""

from __future__ import annotations

import json

from sage_agent.session import audit


def lines(project) -> list[dict]:
    return [json.loads(raw) for raw in (project / ".sage" / "audit.jsonl").read_text().splitlines()]


def test_headless_run_writes_started_and_finished_with_the_url_redacted(run_sage, project, db_url):
    proc = run_sage("run", "*run-sql 'select 1 as one'", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    raw = (project / ".sage" / "audit.jsonl").read_text()
    assert ":postgres@" not in raw  # the password of db_url
    started, finished = lines(project)
    assert started["event"] == "started" and finished["event"] == "finished" and started["id"] == finished["id"]
    assert started["front_door"] == "headless" and started["command"] == "run-sql"
    assert started["target"].startswith("postgresql://postgres:") and "@127.0.0.1" in started["target"]
    assert started["inputs"]["sql"] == "select 1 as one"
    assert finished["status"] == "ok" and finished["exit_code"] == 0 and finished["risk"] == "read"
    assert finished["confirmed_by"] == [] and isinstance(finished["duration_ms"], int)


def test_a_failed_command_is_recorded_as_failed(run_sage, project, db_url):
    proc = run_sage("run", "*run-sql 'select * from no_such_table'", "--db-url", db_url, cwd=project)
    assert proc.returncode == 1
    (record,) = audit.read(project)
    assert record["status"] == "failed" and record["exit_code"] == 1 and "no_such_table" in record["error"]


def test_confirm_flag_is_recorded_as_the_flag(run_sage, project, db_url, db):
    db.execute("create table public.gone (id int)")
    proc = run_sage("run", "*run-sql 'drop table public.gone' --write", "--confirm", "EXECUTE",
                    "--db-url", db_url, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = audit.read(project)
    assert record["confirmed_by"] == ["flag --confirm EXECUTE"] and record["status"] == "ok"
    proc = run_sage("run", "*run-sql 'create table public.t2 (id int)' --write", "--db-url", db_url, cwd=project)
    assert proc.returncode == 3  # no --yes: refused, and recorded with nobody confirming
    record = audit.read(project)[-1]
    assert record["confirmed_by"] == [] and record["exit_code"] == 3 and record["status"] == "failed"


def test_a_killed_run_shows_unfinished_and_a_torn_line_is_skipped(project):
    audit.append(project, {"id": "a1", "event": "started", "time": audit.now(), "command": "apply",
                           "target": "postgresql://u:s3cret@h/db"})
    with open(project / ".sage" / "audit.jsonl", "a") as f:
        f.write('{"id": "b2", "event": "sta')  # not something append() writes, but never fatal to read
    (record,) = audit.read(project)
    assert record["status"] == "unfinished" and record["command"] == "apply"
    assert "s3cret" not in (project / ".sage" / "audit.jsonl").read_text()


def test_sage_log_table_and_filters(run_sage, project, db_url):
    assert run_sage("run", "*run-sql 'select 1'", "--db-url", db_url, cwd=project).returncode == 0
    assert run_sage("run", "*run-sql 'select * from nope'", "--db-url", db_url, cwd=project).returncode == 1
    assert run_sage("run", "*env-check", "--db-url", db_url, cwd=project).returncode in (0, 1)

    proc = run_sage("log", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert [r["command"] for r in json.loads(proc.stdout)] == ["run-sql", "run-sql", "env-check"]

    failed = json.loads(run_sage("log", "--status", "failed", "--json", cwd=project).stdout)
    assert [(r["command"], r["status"]) for r in failed] == [("run-sql", "failed")]
    only = json.loads(run_sage("log", "--command", "*env-check", "--json", cwd=project).stdout)
    assert [r["command"] for r in only] == ["env-check"]

    table = run_sage("log", "--command", "run-sql", cwd=project, env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert table.returncode == 0 and "*run-sql" in table.stdout and "*env-check" not in table.stdout
    assert "failed" in table.stdout and "headless" in table.stdout

    bad = run_sage("log", "--status", "bogus", cwd=project)
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stderr


def test_sage_log_with_no_trail_says_so(run_sage, project):
    proc = run_sage("log", cwd=project)
    assert proc.returncode == 0 and "no operations recorded in" in proc.stdout
