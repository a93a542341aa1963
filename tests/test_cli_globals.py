"""Global options (--env, --db-url, --project) reach every subcommand, before or after its name."""

from __future__ import annotations

import pytest

from sage_agent.cli import main

# subcommand argv, and the exit code with an unknown environment (the same in both orders)
CASES = {
    "mcp": (["mcp"], 2),
    "ask": (["ask", "hello"], 2),
    "handoff": (["handoff", "receive", "x.yaml"], 2),
    "run": (["run", "*help"], 2),
    "ide": (["ide", "check"], 1),  # IDE files need no database: the environment is accepted, unused
    "db": (["db", "status"], 0),  # the embedded server of the project: no environment involved
    "validate": (["validate"], 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("order", ["before", "after"])
def test_env_reaches_the_subcommand(name, order, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv, code = CASES[name]
    line = ["--env", "bogus", *argv] if order == "before" else [*argv, "--env", "bogus"]
    assert main(line) == code
    if code == 2:
        assert "unknown environment 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("order", ["before", "after"])
def test_db_url_and_project_reach_the_subcommand(order, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "elsewhere"
    project.mkdir()
    opts = ["--db-url", "mysql://nope", "--project", str(project)]
    line = [*opts, "mcp"] if order == "before" else ["mcp", *opts]
    assert main(line) == 2
    assert "postgres" in capsys.readouterr().err.lower()  # the URL was checked, so it arrived


@pytest.mark.parametrize("order", ["before", "after"])
def test_project_reaches_run(order, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "p"
    project.mkdir()
    line = ["--project", str(project), "--env", "local", "run", "*bootstrap --use-cli=no", "--yes"]
    if order == "after":
        line = ["run", "*bootstrap --use-cli=no", "--yes", "--project", str(project), "--env", "local"]
    assert main(line) == 0, capsys.readouterr().err
    assert (project / "supabase" / "migrations").is_dir() and not (tmp_path / "supabase").exists()
