"""Secrets: a role with a long random password in --db-url, a planted SUPABASE_SERVICE_ROLE_KEY and
ANTHROPIC_API_KEY in the environment, a representative run of every command (headless, in-process and through
real processes) and the agent loop over the scripted Messages API. Every output, every file written under the
project and every recorded model request is scanned: zero occurrences."""

from __future__ import annotations

import secrets as pysecrets

import psycopg
import pytest
from agent_scripted import ScriptedAPI, make_agent, message, text, tool
from rel_common import fresh_database, record

from sage_agent.db.urls import conninfo_params, to_url

PASSWORD = "Pw" + pysecrets.token_hex(24)
SERVICE_KEY = "eyJhbGciOiJIUzI1NiJ9." + pysecrets.token_urlsafe(48) + ".sig" + pysecrets.token_hex(8)
MODEL_KEY = "sk-ant-api03-" + pysecrets.token_urlsafe(40)
PLANTED = (PASSWORD, SERVICE_KEY, MODEL_KEY)

MIGRATION = ("create table public.items (id bigint primary key, name text not null, owner uuid);\n"
             "insert into public.items values (1, 'a', null);\n")


def commands(url_with_password: str) -> list[tuple[str, dict]]:
    """(line, options) covering every command; some succeed, some fail (failures must not leak either)."""
    from rel_corpus import free_port

    params = conninfo_params(url_with_password)
    params.update(host="127.0.0.1", port=str(free_port()))
    refused = to_url(params)
    run = [
        ("*help", {}), ("*env-check", {}), ("*bootstrap", {}), ("*migrations", {}),
        ("*migration-new add_things", {"sets": ["sql=create table public.things (id int primary key);"]}),
        ("*dry-run 20240101000000", {}), ("*apply", {}), ("*migrations", {}),
        ("*snapshot s1 --mode with-data", {}), ("*seed", {}), ("*smoke-test v1", {}),
        ("*rls-audit", {}), ("*schema-audit", {}), ("*policy-apply public.items", {}),
        ("*run-sql \"select current_user, version()\"", {}),
        ("*run-sql \"insert into public.items values (2, 'b', null)\" --write", {}),
        ("*explain \"select * from public.items where name = 'a'\"", {}),
        ("*optimize \"select * from public.items where name = 'a'\"", {}),
        ("*hotpaths", {}), ("*monitor", {}), ("*locks", {}), ("*vacuum", {}),
        ("*compare-schemas local migrations", {}), ("*test-suite --generate=yes", {}), ("*test-suite", {}),
        ("*execute-checklist dba-predeploy", {}), ("*create-doc db-runbook", {}), ("*kb rls", {}),
        ("*repair 20240101000000 applied", {}), ("*rollback s1", {"confirm": ["ROLLBACK"]}),
        ("*usage", {}), ("*resume", {}),
        ("*env-check", {"db_url": refused}),
        ("*apply", {"db_url": refused}),
        ("*snapshot s2", {"db_url": refused}),
        ("*run-sql \"select 'x' || \"", {}),
        ("*run-sql \"select * from pg_stat_activity\"", {"output": "json"}),
        ("*env-check", {"output": "json"}), ("*env-check", {"output": "markdown"}),
    ]
    for line in ("*load-csv data.csv public.items_csv", "*backup b1", "*restore b1"):
        run.append((line, {"confirm": ["RESTORE"]}))
    return run


@pytest.fixture
def secret_world(pg_server, project, monkeypatch):
    with fresh_database(pg_server.url()) as url:
        role = "sage_secret_" + pysecrets.token_hex(3)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"create role {role} login superuser password '{PASSWORD}'")
        params = conninfo_params(url)
        params.update(user=role, password=PASSWORD)
        secret_url = to_url(params)
        with psycopg.connect(secret_url) as conn:  # the planted URL works
            assert conn.execute("select current_user").fetchone()[0] == role
        (project / "supabase" / "migrations").mkdir(parents=True)
        (project / "supabase" / "migrations" / "20240101000000_items.sql").write_text(MIGRATION)
        (project / "supabase" / "seed.sql").write_text("insert into public.items values (10, 'seeded', null);\n")
        (project / "data.csv").write_text("id,name\n1,a\n2,b\n")
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
        monkeypatch.setenv("ANTHROPIC_API_KEY", MODEL_KEY)
        monkeypatch.chdir(project)
        yield project, secret_url, role
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{role}'")


def scan_files(root) -> dict[str, list[str]]:
    leaks = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found = [s[:6] for s in PLANTED if s.encode() in data]
            if found:
                leaks[str(path.relative_to(root))] = found
    return leaks


def test_no_secret_in_any_output_or_file(secret_world, capsys):
    from sage_agent.frontends.headless import run_headless

    project, url, role = secret_world
    leaks, ran, codes = [], 0, {}
    for line, opts in commands(url):
        capsys.readouterr()
        code = run_headless(line, project=project, db_url=opts.get("db_url", url), yes=True,
                            sets=opts.get("sets"), confirm=opts.get("confirm"), output=opts.get("output", "text"))
        out, err = capsys.readouterr()
        ran += 1
        codes.setdefault(line.split()[0], []).append(code)
        for s in PLANTED:
            if s in out or s in err:
                leaks.append(f"{line}: {s[:6]}... in {'stdout' if s in out else 'stderr'}")
    print(codes, sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()))
    assert codes["*apply"][0] == 0 and codes["*snapshot"][0] == 0 and codes["*rollback"] == [0]
    file_leaks = scan_files(project)
    written = sum(1 for p in project.rglob("*") if p.is_file())
    record("secrets", headless_commands=ran, files_scanned=written, leaks=len(leaks) + len(file_leaks))
    assert not leaks, leaks
    assert not file_leaks, file_leaks
    assert written > 10  # snapshots, reports, logs were written and scanned


def test_no_secret_through_real_processes(secret_world, run_sage):
    project, url, role = secret_world
    env = {"SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY, "ANTHROPIC_API_KEY": MODEL_KEY}
    outputs = []
    for line, extra in [("*env-check", []), ("*apply", ["--yes"]), ("*snapshot p1", []),
                        ("*run-sql \"select 1/0\"", []), ("*migrations", ["--json"])]:
        proc = run_sage("run", line, "--db-url", url, *extra, cwd=project, env=env)
        outputs.append(proc.stdout + proc.stderr)
    proc = run_sage("run", "*env-check", cwd=project, env={**env, "DATABASE_URL": url})
    outputs.append(proc.stdout + proc.stderr)
    text_all = "\n".join(outputs)
    assert not [s[:6] for s in PLANTED if s in text_all]
    assert not scan_files(project)
    record("secrets", subprocess_commands=len(outputs))


def test_no_secret_in_model_requests_or_transcripts(secret_world, make_session):
    project, url, role = secret_world
    api = ScriptedAPI([
        message(text("Checking."), tool("db_env_check", {})),
        message(tool("run_sql", {"sql": "select current_user, inet_server_port()"})),
        message(tool("run_sql", {"sql": "select usename, application_name from pg_stat_activity"})),
        message(tool("run_sql", {"sql": "select setting from pg_settings where name = 'port'"})),
        message(text("All fine.")),
    ])
    session = make_session(url, answers=[], project_dir=project)
    agent = make_agent(session, api, api_key=MODEL_KEY)
    answer = agent.ask(f"my service key is {SERVICE_KEY} and my url is {url}; is the database ok?")
    assert answer.error is None, answer.error
    bodies = api.all_bodies()
    assert len(api.requests) == 5
    found = [s[:6] for s in PLANTED if s in bodies]
    file_leaks = scan_files(project)
    transcripts = list((project / ".sage" / "sessions").glob("*.jsonl"))
    record("secrets", model_requests=len(api.requests), transcripts=len(transcripts),
           model_request_leaks=len(found))
    assert transcripts
    assert not found, f"planted secrets in model requests: {found}"
    assert not file_leaks, file_leaks
