"""*supabase-setup: real CLI init, seed paths, .env.example (never .env), Management API via respx, token redacted."""

from __future__ import annotations

import json
import tomllib

import httpx
import respx

TOKEN = "sbp_0123456789abcdef0123456789abcdef01234567"
ANON = "eyJhbGciOiJIUzI1NiJ9.anon-key-value-xyz"
SERVICE = "eyJhbGciOiJIUzI1NiJ9.service-role-secret-value"


def test_setup_with_real_cli_keeps_env(db_url, make_session, project, supabase_cli, monkeypatch):
    monkeypatch.setenv("SUPABASE_CLI", supabase_cli)
    monkeypatch.delenv("SUPABASE_ACCESS_TOKEN", raising=False)
    (project / ".env").write_text("SUPABASE_DB_URL=postgresql://u:secretpw@h/db\n")
    out = make_session(db_url, yes=True).run_line("*supabase-setup")
    assert out.exit_code == 0, out.error
    config = tomllib.loads((project / "supabase/config.toml").read_text())
    assert config["db"]["seed"]["sql_paths"] == ["./seed.sql"]
    assert "supabase init" in " ".join(r[1] for r in out.result.tables[0].rows)
    assert (project / ".env").read_text() == "SUPABASE_DB_URL=postgresql://u:secretpw@h/db\n"
    example = (project / ".env.example").read_text()
    for var in ("SUPABASE_DB_URL", "SUPABASE_DB_URL_DIRECT", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY",
                "SUPABASE_PROJECT_REF", "SUPABASE_LOCAL_DB_URL"):
        assert f"{var}=" in example
    # idempotent: a second run keeps everything
    again = make_session(db_url, yes=True).run_line("*supabase-setup")
    assert again.exit_code == 0 and again.result.artifacts == []


def test_seed_paths_added_to_existing_config(db_url, make_session, project, monkeypatch):
    monkeypatch.delenv("SUPABASE_ACCESS_TOKEN", raising=False)
    (project / "supabase").mkdir()
    (project / "supabase/config.toml").write_text('project_id = "x"\n\n[db]\nport = 54322\n\n[db.seed]\nenabled = true\n')
    out = make_session(db_url, yes=True).run_line("*supabase-setup --use-cli=no")
    assert out.exit_code == 0, out.error
    assert tomllib.loads((project / "supabase/config.toml").read_text())["db"]["seed"]["sql_paths"] == ["./seed.sql"]


@respx.mock
def test_management_api_projects_and_keys_redacted(db_url, make_session, project, monkeypatch):
    monkeypatch.setenv("SUPABASE_ACCESS_TOKEN", TOKEN)
    projects = respx.get("https://api.supabase.com/v1/projects").mock(return_value=httpx.Response(200, json=[
        {"id": "abcdefghijklmnopqrst", "ref": "abcdefghijklmnopqrst", "name": "shop", "region": "eu-west-1",
         "status": "ACTIVE_HEALTHY", "organization_id": "org1"}]))
    keys = respx.get("https://api.supabase.com/v1/projects/abcdefghijklmnopqrst/api-keys").mock(
        return_value=httpx.Response(200, json=[{"name": "anon", "api_key": ANON},
                                               {"name": "service_role", "api_key": SERVICE}]))
    out = make_session(db_url, yes=True).run_line("*supabase-setup --use-cli=no")
    assert out.exit_code == 0, out.error
    assert projects.called and keys.called
    assert projects.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert out.result.facts["api_url"] == "https://abcdefghijklmnopqrst.supabase.co"
    assert ["service_role", "legacy", "present (redacted)"] in out.result.tables[-1].rows
    from sage_agent.db.redact import redact

    dumped = redact(json.dumps(out.result.model_dump(mode="json")))
    assert TOKEN not in dumped and SERVICE not in dumped
    files = "".join(p.read_text() for p in project.rglob("*") if p.is_file())
    assert TOKEN not in files and SERVICE not in files and ANON not in files
    assert redact(f"token {TOKEN} key {SERVICE}") == "token *** key ***"  # remembered for every later output


@respx.mock
def test_management_api_token_rejected(db_url, make_session, project, monkeypatch):
    monkeypatch.setenv("SUPABASE_ACCESS_TOKEN", TOKEN)
    respx.get("https://api.supabase.com/v1/projects").mock(return_value=httpx.Response(401, json={"message": "bad"}))
    out = make_session(db_url, yes=True).run_line("*supabase-setup --use-cli=no")
    assert out.exit_code == 1 and "rejected SUPABASE_ACCESS_TOKEN (401)" in out.error
    assert TOKEN not in out.error


def test_setup_needs_confirmation(db_url, make_session, project):
    out = make_session(db_url).run_line("*supabase-setup --use-cli=no")
    assert out.exit_code == 3 and not (project / "supabase").exists() and not (project / ".env.example").exists()
