"""Redaction, environment resolution and connection-string helpers."""

import pytest

from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.db.redact import redact, register_secret
from sage_agent.db.urls import describe, replace_dbname


def test_redacts_url_and_kv_passwords():
    assert redact("postgresql://me:s3cr3t@h:5432/db") == "postgresql://me:***@h:5432/db"
    assert "s3cr3t" not in redact("host=h password=s3cr3t dbname=x")
    assert "s3cr3t" not in redact("postgresql://h/db?password=s3cr3t&sslmode=require")


def test_registered_secrets_are_hidden_anywhere():
    register_secret("eyJhbGciOiJIUzI1NiJ9.service-role-planted")
    assert "planted" not in redact("key: eyJhbGciOiJIUzI1NiJ9.service-role-planted!")


def test_resolution_order(tmp_path):
    env = {"SUPABASE_LOCAL_DB_URL": "postgresql://a@l/x", "SUPABASE_DB_URL": "postgresql://a@pool/x",
           "SUPABASE_DB_URL_DIRECT": "postgresql://a@direct/x", "SAGE_STAGING_DB_URL": "postgresql://a@stg/x"}
    assert resolve_target(tmp_path, "local", environ=env).url.endswith("@l/x")
    prod = resolve_target(tmp_path, "prod", environ=env)
    assert prod.url.endswith("@pool/x") and prod.migration_url.endswith("@direct/x") and prod.is_production
    assert resolve_target(tmp_path, "staging", environ=env).url.endswith("@stg/x")
    assert resolve_target(tmp_path, "dev", db_url="postgresql://a@flag/x", environ=env).source == "--db-url"
    assert resolve_target(tmp_path, "local", environ={}).embedded
    assert resolve_target(tmp_path, "local", environ={"PGHOST": "h", "PGDATABASE": "d"}).url == "host=h dbname=d"
    with pytest.raises(ConfigError):
        resolve_target(tmp_path, "prod", environ={})


def test_url_helpers():
    url = "postgresql://u:p%40ss@h:6543/postgres?sslmode=require"
    assert describe(url) == {"host": "h", "port": "6543", "database": "postgres", "user": "u", "sslmode": "require"}
    swapped = replace_dbname(url, "other")
    assert "/other?" in swapped and "p%40ss" in swapped


def test_version_imports_nothing_heavy():
    """`sage --version` must stay fast: no database driver, parser, UI or model library on the way."""
    import subprocess
    import sys

    code = ("import sys\nfrom sage_agent.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('psycopg', 'pglast', 'sqlglot', 'rich', 'prompt_toolkit', 'anthropic', 'pydantic', "
            "'yaml', 'jinja2', 'mcp') if m in sys.modules]\nprint(','.join(heavy) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip().splitlines()
    assert out[-1] == "none"


def test_json_output_hides_secrets_with_characters_json_escapes():
    from sage_agent.frontends.render import to_json

    secret = 'pa"ss\\word-with-quote'
    register_secret(secret)
    out = to_json({"error": f"password authentication failed for {secret}", "nested": [{"x": secret}]})
    assert "pa\\\"ss" not in out and "word-with-quote" not in out


def test_text_rendering_never_interprets_markup():
    """Usage lines like `*backup [name] [format]` and database values like `[bold]x` print as they are."""
    import io

    from sage_agent.frontends.render import make_console, render_text
    from sage_agent.ops.result import OpResult, Table

    console = make_console(width=200)
    console.file = io.StringIO()
    render_text(OpResult(operation="t", summary="s [x]", facts={"k": "[red]v"},
                         tables=[Table(title="[t]", columns=["[c]"], rows=[["*backup [name] [format]"]])]), console)
    out = console.file.getvalue()
    for text in ("*backup [name] [format]", "[red]v", "[t]", "[c]", "s [x]"):
        assert text in out


@pytest.mark.parametrize("value", [
    "postgresql://app:hunter2@db.example.com:5432/app",
    "postgres+psycopg://u:p%40ss@h/db",
    "host=h password='it''s' user=u",
    "PASSWORD = topsecret",
    "x password\n= on-the-next-line",
    "pwd\t=\x0bz",
    "pa\u017f\u017fword=long-s",  # (?i) matches the long s
    "?sslmode=require&password=q1",
    "nothing to hide: password is a column name",
    "create role r password 'pw' and {\"q\": 1}",
    'quote " and backslash \\ and \u2028 line separator',
    "ok",
])
def test_compact_json_redacts_exactly_like_the_per_string_walk(value):
    """The fast path (serialize first, walk only when the text could hold a secret) prints what the walk prints."""
    import json

    from sage_agent.db.redact import redact_obj
    from sage_agent.frontends.render import to_json

    doc = {"k": value, "nested": [{"v": value}, value, 3, None], value[:20]: True}
    slow = json.dumps(redact_obj(doc), separators=(",", ":"), ensure_ascii=False, default=str)
    assert to_json(doc, pretty=False) == slow
    assert json.loads(to_json(doc, pretty=True)) == json.loads(slow)


def test_registered_secret_is_found_by_the_fast_path():
    from sage_agent.db.redact import json_may_need_redaction, register_secret
    from sage_agent.frontends.render import to_json

    assert not json_may_need_redaction('{"a":"Zq9-unregistered"}')
    register_secret("Zq9-registered")
    assert json_may_need_redaction('{"a":"x Zq9-registered y"}')
    assert "Zq9-registered" not in to_json({"a": "x Zq9-registered y"}, pretty=False)


def test_a_state_file_is_written_whole_and_a_torn_one_starts_afresh(tmp_path):
    """supabase/.sage/'s JSON state (load progress, scan rates, closure templates): one way to keep it."""
    from sage_agent.ops import artifacts
    from sage_agent.ops.migrations import blockers, closure

    folder = artifacts.sage_dir(tmp_path)
    assert folder == tmp_path / "supabase" / ".sage" and (folder / ".gitignore").read_text() == "*\n"
    path = folder / "x.json"
    artifacts.write_state(path, {"a": [1, 2]})
    assert artifacts.read_state(path) == {"a": [1, 2]} and sorted(p.name for p in folder.iterdir()) == \
        [".gitignore", "x.json"]  # no temporary file left
    (tmp_path / closure.COVERS_PATH).write_text('{"sage_tpl_1": {"fingerp', encoding="utf-8")  # a crash mid-write
    assert closure._read_covers(tmp_path) == {}
    (tmp_path / closure.COVERS_PATH).write_text("[1, 2]", encoding="utf-8")  # not what DB Sage writes
    assert closure._read_covers(tmp_path) == {}
    (tmp_path / blockers.RATES_PATH).write_text('{"scan": "fast"}', encoding="utf-8")
    assert blockers.load_rates(tmp_path) == blockers.Rates()
    assert artifacts.read_state(folder / "missing.json") is None

def test_sql_password_literals_are_redacted_even_when_cut_short():
    """*hotpaths, *monitor and the watch show other sessions' SQL: a role's password there never reaches the user."""
    from sage_agent.ops.observe.common import short

    assert redact("create role app login password 'Zq9-sql-pw'") == "create role app login password '***'"
    assert "Zq9" not in redact("ALTER USER w WITH PASSWORD 'it''s Zq9'")
    assert "Zq9-cut" not in short("create role app login password 'Zq9-cut-secret-value'", 40)
    register_secret("Zq9-registered-cut")
    assert "Zq9-reg" not in short("select 'x' || 'Zq9-registered-cut'", 24)
