"""`sage ide sync` / `sage ide check`: files written, idempotent, user edits kept with a diff, .mcp.json merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import sage_env


def test_sync_check_idempotent_and_never_clobbers(project, run_sage, supabase_cli):
    env = {"SUPABASE_CLI": supabase_cli}
    # before sync: check fails with a reason
    before = run_sage("ide", "check", cwd=project, env=env)
    assert before.returncode == 1 and "FAIL Agent file" in before.stdout
    # a user's existing MCP configuration
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"github": {"command": "gh-mcp"}}}))
    first = run_sage("ide", "sync", cwd=project, env=env)
    assert first.returncode == 0, first.stderr
    agent = (project / ".aios-core/agents/db-sage.md").read_text()
    assert "id: db-sage" in agent and "*create-migration-from-design" in agent
    assert "schema-design-tmpl.yaml" in agent and "dba-predeploy-checklist.md" in agent
    assert (project / ".claude/commands/db-sage.md").read_text() == agent
    assert (project / ".cursor/rules/db-sage.mdc").read_text().startswith("---\ndescription: DB Sage")
    assert (project / ".aios-core/templates/schema-design-tmpl.yaml").is_file()
    mcp = json.loads((project / ".mcp.json").read_text())
    assert mcp["mcpServers"]["github"] == {"command": "gh-mcp"}  # merged, not replaced
    assert mcp["mcpServers"]["db-sage"]["args"][-1] == "mcp"
    assert json.loads((project / ".cursor/mcp.json").read_text())["mcpServers"]["db-sage"]
    ok = run_sage("ide", "check", cwd=project, env=env)
    assert ok.returncode == 0, ok.stdout
    import subprocess

    from conftest import sage_env

    script = subprocess.run([str(project / ".aios-core/scripts/validate-db-sage.sh")], cwd=project,
                            env=sage_env(env), capture_output=True, text=True)
    assert script.returncode == 0 and "DB Sage installation OK" in script.stdout, script.stdout + script.stderr
    assert "OK   Templates found: 9/9" in ok.stdout and "OK   MCP configured" in ok.stdout
    # idempotent
    snap = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    again = run_sage("ide", "sync", "--json", cwd=project, env=env)
    report = json.loads(again.stdout)
    assert report["written"] == report["updated"] == report["kept"] == []
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == snap
    # a user edit is kept and the diff shown
    cursor = project / ".cursor/rules/db-sage.mdc"
    cursor.write_text(cursor.read_text().replace("alwaysApply: false", "alwaysApply: true"))
    edited = cursor.read_text()
    third = run_sage("ide", "sync", cwd=project, env=env)
    assert third.returncode == 0
    assert "kept      .cursor/rules/db-sage.mdc: you edited it" in third.stdout
    assert "-alwaysApply: true" in third.stdout and "+alwaysApply: false" in third.stdout
    assert cursor.read_text() == edited
    # the user changed our MCP entry: kept too
    doc = json.loads((project / ".mcp.json").read_text())
    doc["mcpServers"]["db-sage"]["args"] = ["mcp", "--read-only"]
    (project / ".mcp.json").write_text(json.dumps(doc))
    fourth = run_sage("ide", "sync", cwd=project, env=env)
    assert "kept      .mcp.json" in fourth.stdout
    assert json.loads((project / ".mcp.json").read_text())["mcpServers"]["db-sage"]["args"] == ["mcp", "--read-only"]


def test_check_reports_missing_pieces(project, run_sage):
    (project / ".aios-core/agents").mkdir(parents=True)
    (project / ".aios-core/agents/db-sage.md").write_text("x")
    res = run_sage("ide", "check", "--json", cwd=project, env={"SUPABASE_CLI": "/nonexistent", "PATH": "/usr/bin:/bin"})
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["ok"] is False
    checks = {c["check"]: c for c in doc["checks"]}
    assert checks["Agent file"]["ok"] and not checks["Tasks found"]["ok"] and not checks["MCP configured"]["ok"]


def _install_without_supabase_cli(tmp_path):
    """A copy of this checkout's package and catalog where no Supabase CLI can be found (no .tools/ beside it)."""
    import shutil

    from conftest import REPO

    root = tmp_path / "install"
    for part in ("sage_agent", "personas", "tasks", "knowledge"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    return {"PYTHONPATH": str(root), "SUPABASE_CLI": "/nonexistent", "PATH": "/usr/bin:/bin"}


def test_check_separates_required_from_optional(project, run_sage, tmp_path):
    env = _install_without_supabase_cli(tmp_path)
    assert run_sage("ide", "sync", cwd=project, env=env).returncode == 0
    ok = run_sage("ide", "check", cwd=project, env=env)
    # the optional Supabase CLI is missing: reported with how to add it, and the installation is still OK
    assert ok.returncode == 0, ok.stdout + ok.stderr
    required, optional = ok.stdout.split("Optional:")
    assert "Required:" in required and "Supabase CLI" not in required and "FAIL" not in ok.stdout
    assert "--   Supabase CLI: not installed\n         next: npm install supabase (or set SUPABASE_CLI)" in optional
    assert ok.stdout.rstrip().endswith("DB Sage installation OK (1 optional piece(s) missing: Supabase CLI)")
    doc = json.loads(run_sage("ide", "check", "--json", cwd=project, env=env).stdout)
    cli = next(c for c in doc["checks"] if c["check"] == "Supabase CLI")
    assert doc["ok"] is True and cli["required"] is False and cli["ok"] is False
    assert cli["next_step"].startswith("npm install supabase")
    # a required piece missing: FAIL, exit 1, and the next step is the command that fixes it
    (project / ".aios-core/tasks/help.md").unlink()
    broken = run_sage("ide", "check", cwd=project, env=env)
    assert broken.returncode == 1
    from sage_agent.catalog.paths import tasks_dir

    want = len(list(tasks_dir().glob("*.md")))
    assert f"FAIL Tasks found: {want - 1}/{want}\n         next: sage ide sync" in broken.stdout
    assert broken.stdout.rstrip().endswith("1 required check(s) failed; next: sage ide sync")
    assert run_sage("ide", "sync", cwd=project, env=env).returncode == 0  # and it does help
    assert run_sage("ide", "check", cwd=project, env=env).returncode == 0


def test_mcp_json_names_this_installation_and_starts_without_path(project, run_sage):
    """.mcp.json has the absolute command of this installation: an IDE with no venv on its PATH starts it."""
    import anyio

    from conftest import sage_env

    assert run_sage("ide", "sync", cwd=project).returncode == 0
    entry = json.loads((project / ".mcp.json").read_text())["mcpServers"]["db-sage"]
    command = Path(entry["command"])
    assert command.is_absolute() and command.is_file(), entry
    assert entry["args"][-1] == "mcp" and command.parent == Path(sys.executable).parent

    async def start() -> str:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                       env=sage_env({"PATH": "/nonexistent"}), cwd=str(project))
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    tools = await session.list_tools()
                    return f"{init.server_info.name} {len(tools.tools)}"

    name, count = anyio.run(start).split()
    assert name == "db-sage" and int(count) > 20
    # a hand-written bare `sage` is what check flags, with the line to put there
    doc = json.loads((project / ".mcp.json").read_text())
    doc["mcpServers"]["db-sage"]["command"] = "sage"
    (project / ".mcp.json").write_text(json.dumps(doc))
    res = run_sage("ide", "check", cwd=project)
    assert res.returncode == 1
    assert "FAIL MCP command: .mcp.json: command 'sage' is not an absolute path" in res.stdout
    assert f'set "command": "{entry["command"]}"' in res.stdout


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          env=sage_env({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                                        "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(repo)}))


def test_pre_commit_hook_resyncs_ide_files_and_adds_them(project, run_sage):
    assert _git(project, "init", "-q").returncode == 0
    hooks = project / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    # the user's own hook: kept, run first, and still able to stop a commit
    (hooks / "pre-commit").write_text("#!/bin/sh\necho own-hook-ran >> \"$(git rev-parse --git-dir)/own.log\"\n"
                                      "[ ! -e STOP ] || { echo 'own hook: STOP present' >&2; exit 1; }\n")
    (hooks / "pre-commit").chmod(0o755)
    own = (hooks / "pre-commit").read_text()
    first = run_sage("ide", "sync", "--hook", cwd=project)
    assert first.returncode == 0, first.stderr
    assert f"pre-commit hook installed: {hooks / 'pre-commit'}; your existing hook is kept as pre-commit.pre-db-sage" \
           in first.stdout
    assert (hooks / "pre-commit.pre-db-sage").read_text() == own
    again = run_sage("ide", "sync", "--hook", cwd=project)
    assert f"pre-commit hook already installed: {hooks / 'pre-commit'}" in again.stdout  # idempotent
    assert (hooks / "pre-commit.pre-db-sage").read_text() == own and not (hooks / "pre-commit.pre-db-sage.2").exists()
    assert _git(project, "add", "-A").returncode == 0
    commit = _git(project, "commit", "-q", "-m", "ide files")
    assert commit.returncode == 0, commit.stderr
    # the person edits the agent file and commits only it: the hook re-syncs the IDE files into the same commit
    agent = project / ".aios-core/agents/db-sage.md"
    agent.write_text(agent.read_text() + "\n## Team rule\nAlways *dry-run before *apply.\n")
    _git(project, "add", ".aios-core/agents/db-sage.md")
    commit = _git(project, "commit", "-m", "agent: team rule")
    assert commit.returncode == 0, commit.stderr
    assert "re-synced and added to the commit: .claude/commands/db-sage.md, .cursor/rules/db-sage.mdc" in commit.stderr
    files = _git(project, "show", "--name-only", "--format=", "HEAD").stdout.split()
    assert sorted(files) == [".aios-core/.db-sage-manifest.json", ".aios-core/agents/db-sage.md",
                             ".claude/commands/db-sage.md", ".cursor/rules/db-sage.mdc"]
    committed = _git(project, "show", "HEAD:.claude/commands/db-sage.md").stdout
    assert committed.endswith("Always *dry-run before *apply.\n")
    assert _git(project, "show", "HEAD:.cursor/rules/db-sage.mdc").stdout.endswith("Always *dry-run before *apply.\n")
    assert _git(project, "status", "--porcelain").stdout == ""  # nothing left behind unstaged
    assert (project / ".git/own.log").read_text().count("own-hook-ran") == 2  # chained on both commits
    # a commit that does not touch the agent file changes nothing else
    (project / "notes.txt").write_text("n\n")
    _git(project, "add", "notes.txt")
    assert _git(project, "commit", "-q", "-m", "notes").returncode == 0
    assert _git(project, "show", "--name-only", "--format=", "HEAD").stdout.split() == ["notes.txt"]
    # the user's hook still stops a commit
    (project / "STOP").write_text("x")
    _git(project, "add", "STOP")
    stopped = _git(project, "commit", "-q", "-m", "stop")
    assert stopped.returncode != 0 and "own hook: STOP present" in stopped.stderr


def test_hook_outside_git_is_a_clear_error(project, run_sage):
    res = run_sage("ide", "sync", "--hook", cwd=project, env={"GIT_CEILING_DIRECTORIES": str(project.parent)})
    assert res.returncode == 1 and "is not in a git repository" in res.stderr and "git init" in res.stderr
    res = run_sage("ide", "check", "--hook", cwd=project)
    assert res.returncode == 2 and "--hook goes with sync" in res.stderr
