"""`sage run` in a subprocess: exit codes, --json, redaction, every connection failure class."""

import json
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_env_check_json_against_a_real_server(run_sage, project, db_url):
    proc = run_sage("run", "*env-check", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["operation"] == "db-env-check" and doc["facts"]["connected"] is True
    assert doc["facts"]["server_version"].startswith("18")
    assert doc["facts"]["supabase"] == "compatible roles"
    assert doc["facts"]["method"].startswith("ENV")


def test_planted_password_never_printed(run_sage, project, pg_server, db):
    secret = "Plant3d-S3cret-xyz"
    db.execute(f"create role planted login password '{secret}'")
    try:
        url = pg_server.url().replace("postgres:postgres@", f"planted:{secret}@")
        for fmt in ([], ["--json"], ["--markdown"]):
            proc = run_sage("run", "*env-check", "--db-url", url, *fmt, cwd=project)
            assert proc.returncode == 0, proc.stderr
            assert secret not in proc.stdout + proc.stderr
            assert "planted" in proc.stdout
        bad = url.replace(secret, secret + "-wrong")
        proc = run_sage("run", "*env-check", "--db-url", bad, cwd=project)
        assert proc.returncode == 1
        assert secret not in proc.stdout + proc.stderr
        assert "wrong password" in proc.stdout
    finally:
        db.execute("drop role planted")


def test_env_check_offers_bootstrap_only_before_it(run_sage, project, db_url):
    """*env-check's next step was `*bootstrap, *snapshot baseline` in every project, also one bootstrapped with a
    baseline taken: it offers what is still to do."""
    def next_line() -> str:
        proc = run_sage("run", "*env-check", "--db-url", db_url, cwd=project)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[-1]

    assert next_line() == "Next: *bootstrap, *snapshot baseline"
    assert run_sage("run", "*bootstrap", "--db-url", db_url, cwd=project).returncode == 0
    assert next_line() == "Next: *migrations, *snapshot baseline"
    assert run_sage("run", "*snapshot baseline", "--db-url", db_url, cwd=project).returncode == 0
    assert next_line() == "Next: *migrations"


@pytest.mark.parametrize("url, kind", [
    ("postgresql://u:p@host.invalid:5432/db", "unknown host"),
    ("postgresql://u:p@127.0.0.1:{free}/db", "refused"),
    ("postgresql://postgres:postgres@127.0.0.1:{port}/no_such_db", "missing database"),
    ("postgresql://postgres:nope-nope@127.0.0.1:{port}/postgres", "wrong password"),
])
def test_connection_failures_are_classified(run_sage, project, pg_server, url, kind):
    url = url.format(free=free_port(), port=pg_server.port)
    proc = run_sage("run", "*env-check", "--db-url", url, cwd=project)
    assert proc.returncode == 1
    assert kind in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "nope-nope" not in proc.stdout + proc.stderr


def test_timeout_is_classified(run_sage, project):
    # a listening socket that never answers the startup packet
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        proc = run_sage("run", "*env-check", "--db-url", f"postgresql://u:p@127.0.0.1:{port}/db",
                        cwd=project, env={"PGCONNECT_TIMEOUT": "2"})
    assert proc.returncode == 1
    assert "timeout" in proc.stdout


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "not a url", "postgresql://u:p@h:99999999/db"])
def test_bad_urls_exit_2_with_the_expected_form(run_sage, project, url):
    proc = run_sage("run", "*env-check", "--db-url", url, cwd=project)
    assert proc.returncode == 2
    assert "postgresql://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_exit_codes_and_json_errors(run_sage, project, db_url):
    proc = run_sage("run", "*no-such-command", "--json", cwd=project)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["exit_code"] == 2
    proc = run_sage("run", "*help", "--set", "nope=1", cwd=project)
    assert proc.returncode == 2 and "no input nope" in proc.stderr
    proc = run_sage("run", "*help", "--env", "moon", cwd=project)
    assert proc.returncode == 2


def test_remote_env_without_configuration_says_what_to_set(run_sage, project):
    proc = run_sage("run", "*env-check", "--env", "staging", cwd=project)
    assert proc.returncode == 2
    assert "SAGE_STAGING_DB_URL" in proc.stderr


def test_env_file_and_seed_variables(run_sage, project, db_url):
    (project / ".env").write_text(f'SUPABASE_DB_URL="{db_url}"\n')
    proc = run_sage("run", "*env-check", "--env", "dev", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["facts"]["source"] == "SUPABASE_DB_URL"


def test_help_for_one_command(run_sage, project):
    proc = run_sage("run", "*help bootstrap", "--json", cwd=project)
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["tables"][0]["rows"][0][0] == "use_cli"



def test_a_mistyped_command_suggests_only_what_it_was_close_to(run_sage, project):
    """`*boostrap` suggested `*bootstrap, *cost`; `*help boostrap` suggested nothing at all."""
    proc = run_sage("run", "*boostrap", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown command *boostrap. Did you mean *bootstrap? Type *help for the list."
    proc = run_sage("run", "*help boostrap", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: unknown command *boostrap",
                                                "  next: did you mean *help bootstrap? *help lists every command"]
    proc = run_sage("run", "*rls", cwd=project)  # the commands a word starts, an alias and its command once
    assert proc.stderr.strip() == "error: unknown command *rls. Did you mean *rls-apply, *rls-audit? Type *help for the list."
    proc = run_sage("run", "*help zzzz", cwd=project)
    assert proc.stderr.strip().splitlines() == ["error: unknown command *zzzz", "  next: type *help for the list"]


@pytest.mark.parametrize("args, code", [(["*help"], 0), (["*help", "--json"], 0), (["*help", "--markdown"], 0),
                                        (["*boostrap"], 2)])
def test_a_reader_that_stops_early_keeps_the_exit_code(project, args, code):
    """`sage run "*snapshot" | head -1` exited 1 ("the operation failed") after the snapshot was made: rich exits
    with 1 when the pipe's reader has gone. The exit code is now the command's, with nothing on stderr."""
    import os
    import subprocess
    import sys

    from conftest import sage_env

    read, write = os.pipe()
    os.close(read)  # the reader left before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "sage_agent", "run", *args], cwd=project, env=sage_env(),
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        os.close(write)
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr

def test_embedded_default_and_db_subcommands(run_sage, project):
    proc = run_sage("run", "*env-check", "--json", cwd=project, timeout=180)
    try:
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["facts"]["method"].startswith("EMBEDDED")
        assert (project / ".sage" / "pg" / "data" / "PG_VERSION").exists()
        status = json.loads(run_sage("db", "status", "--json", cwd=project).stdout)
        assert status["running"] is True and status["port"] == int(doc["facts"]["port"])
        shown = run_sage("db", "url", cwd=project)
        url = shown.stdout.strip()
        assert url.endswith(f":{status['port']}/postgres") and ":***@" in url
        # sage log named the target "(embedded, not started)": the server starts during the command
        assert json.loads(run_sage("log", "--json", cwd=project).stdout)[-1]["target"] == url
        assert "the password is hidden; `sage db url --show-password` prints it" in shown.stderr  # the way to it
        full = run_sage("db", "url", "--show-password", cwd=project)
        assert full.stdout.strip() == url.replace(":***@", ":postgres@") and full.stderr == ""
        text = run_sage("db", "status", cwd=project).stdout.splitlines()  # in words, not Python's True
        assert text[0] == "running       yes" and f"url           {url}" in text
        # reused across runs: same port, no second cluster
        again = json.loads(run_sage("run", "*env-check", "--json", cwd=project).stdout)
        assert again["facts"]["port"] == doc["facts"]["port"]
    finally:
        assert run_sage("db", "stop", cwd=project).returncode == 0
    assert json.loads(run_sage("db", "status", "--json", cwd=project).stdout)["running"] is False
    text = run_sage("db", "status", cwd=project).stdout.splitlines()  # `running False` and an empty `url` before
    assert text[0] == "running       no (sage db start starts it, and so does any command that needs the database)"
    assert not [line for line in text if line.startswith("url")]


def test_bootstrap_is_idempotent_and_never_overwrites(run_sage, project):
    (project / ".gitignore").write_text("node_modules/\n")
    (project / "supabase").mkdir()
    (project / "supabase" / "README.md").write_text("mine\n")
    proc = run_sage("run", "*bootstrap", "--set", "use_cli=no", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    for sub in ("migrations", "tests", "snapshots", "backups"):
        assert (project / "supabase" / sub).is_dir()
    assert (project / "supabase" / "README.md").read_text() == "mine\n"
    gitignore = (project / ".gitignore").read_text()
    assert gitignore.startswith("node_modules/") and "supabase/snapshots/" in gitignore
    second = json.loads(run_sage("run", "*bootstrap", "--set", "use_cli=no", "--json", cwd=project).stdout)
    assert second["facts"]["created"] == 0
    assert (project / ".gitignore").read_text() == gitignore


def test_bootstrap_uses_the_real_supabase_cli(run_sage, project, supabase_cli):
    proc = run_sage("run", "*bootstrap", "--json", cwd=project, env={"SUPABASE_CLI": supabase_cli})
    assert proc.returncode == 0, proc.stderr
    assert (project / "supabase" / "config.toml").is_file()
    assert "supabase init" in " ".join(json.loads(proc.stdout)["notes"])


def test_several_commands_in_one_run_print_one_json_document(run_sage, project, db_url):
    proc = run_sage("run", "*bootstrap", "*env-check", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["operation"] for r in doc["results"]] == ["db-bootstrap", "db-env-check"]
    assert doc["skipped"] == [] and doc["exit_code"] == 0
    assert (project / "supabase" / "migrations").is_dir()


def test_several_commands_stop_at_the_first_failure(run_sage, project, pg_server):
    bad = f"postgresql://postgres:postgres@127.0.0.1:{pg_server.port}/no_such_db"
    proc = run_sage("run", "*env-check", "*bootstrap", "--db-url", bad, "--json", cwd=project)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [r["operation"] for r in doc["results"]] == ["db-env-check"]
    assert doc["results"][0]["status"] == "failed" and doc["skipped"] == ["*bootstrap"]
    assert not (project / "supabase").exists()
    # text: each result under its command line, the skipped ones named on stderr
    proc = run_sage("run", "*env-check", "*bootstrap", "--db-url", bad, cwd=project)
    assert proc.returncode == 1
    assert "$ sage run '*env-check'" in proc.stdout and "missing database" in proc.stdout
    assert "skipped after a failure: *bootstrap" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["*bootstrap", "*no-such-command"], "unknown command *no-such-command"),
    (["*bootstrap", "*help", "--set", "nope=1"], "--set nope: not an input of any of these commands"),
    (["*bootstrap", "v1.0"], 'quote each command line'),
])
def test_several_commands_are_all_checked_before_any_runs(run_sage, project, args, message):
    proc = run_sage("run", *args, cwd=project)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (project / "supabase").exists()


def test_a_sage_run_flag_inside_the_quotes_says_where_it_goes(run_sage, project):
    """`sage run "*apply --yes"` (the flag typed inside the quoted line) listed *apply's options and stopped there;
    it now gives the line to copy. A typo'd option gets the option it looks like. Nothing runs: exit 2."""
    proc = run_sage("run", "*rollback v1 --confirm ROLLBACK", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "--confirm is an option of `sage run`, not of *rollback: put it after the quoted command: "
        'sage run "*rollback v1" --confirm ROLLBACK; at the REPL, leave it out and answer the question')
    proc = run_sage("run", "*migrations --json", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith('put it after the quoted command: sage run "*migrations" --json')
    proc = run_sage("run", "*apply --onlin", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("--versioned). Did you mean --online?")
    assert not (project / ".sage").exists()  # no audit line: nothing started


def test_a_refused_connection_gives_steps_to_run_not_a_sentence(run_sage, project):
    """*env-check on a local URL nothing listens on: Next names the command that starts the local server, the
    setting the URL came from and what in it to check, and *env-check again (the prose stays in the finding's fix)."""
    port = free_port()
    proc = run_sage("run", "*env-check", "--db-url", f"postgresql://u:p@127.0.0.1:{port}/db", cwd=project)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == f"Next: sage db start, check --db-url: nothing listens on 127.0.0.1:{port}, " \
                                           "*env-check", proc.stdout
    doc = json.loads(run_sage("run", "*env-check", "--json", cwd=project,
                              env={"SAGE_DEV_DB_URL": f"postgresql://u:p@127.0.0.1:{port}/db", "SAGE_ENV": "dev"}).stdout)
    assert doc["next_steps"] == [f"check SAGE_DEV_DB_URL: nothing listens on 127.0.0.1:{port}", "*env-check"]
    assert doc["findings"][0]["fix"].startswith("Nothing listens there")
