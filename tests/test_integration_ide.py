"""`sage ide sync` / `sage ide check`: files written, idempotent, user edits kept with a diff, .mcp.json merged."""

from __future__ import annotations

import json



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
