"""`*lint` headless (`sage run`) and as an MCP tool: the same files, settings and findings as `sage lint`."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from test_integration_mcp import _session_run, text


def _mig(project: Path, name: str, body: str) -> None:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")


def test_lint_headless_json_lists_findings_and_fails_on_error(run_sage, project):
    _mig(project, "20240101000000_a.sql", "alter table public.t add column x int not null;\n")
    _mig(project, "20240102000000_b.sql", "create index if not exists i on public.t (x);\n")
    proc = run_sage("run", "*lint", "--json", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    where = {(f["rule"], f["location"]) for f in doc["findings"]}
    assert ("adding-required-field", "supabase/migrations/20240101000000_a.sql:1:33") in where
    assert ("require-concurrent-index-creation", "supabase/migrations/20240102000000_b.sql:1:1") in where
    assert any("no database configured" in n for n in doc["notes"])
    ok = run_sage("run", "*lint supabase/migrations/20240102000000_b.sql", "--json", cwd=project)
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["status"] == "warning"
    strict = run_sage("run", "*lint supabase/migrations/20240102000000_b.sql --fail_on warning", "--json",
                      cwd=project)
    assert strict.returncode == 1
    bad = run_sage("run", "*lint --exclude no-such-rule", "--json", cwd=project)
    assert bad.returncode == 2 and "unknown rule 'no-such-rule'" in json.loads(bad.stdout)["error"]


def test_lint_is_an_mcp_tool(project):
    _mig(project, "20240101000000_a.sql", "alter table public.t add column x int not null;\n")

    async def body(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "lint" in tools
        assert "paths" in tools["lint"].input_schema["properties"]
        return await session.call_tool("lint", {})

    result = anyio.run(_session_run, project, [], body)
    assert "adding-required-field" in text(result)
    assert "20240101000000_a.sql:1:33" in text(result)
