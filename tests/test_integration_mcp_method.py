"""MCP as a database method: *env-check through the real npm server @modelcontextprotocol/server-postgres."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO

PKG = "node_modules/@modelcontextprotocol/server-postgres/dist/index.js"


@pytest.fixture(scope="module")
def pg_mcp_server() -> str:
    node = shutil.which("node")
    script = REPO / ".tools" / PKG
    if node and script.is_file():
        return f"{node} {script}"
    pytest.skip("@modelcontextprotocol/server-postgres not installed: npm install --prefix .tools "
                "@modelcontextprotocol/server-postgres (done by .ci/run)")


def test_env_check_method_mcp(db_url, project, run_sage, pg_mcp_server):
    res = run_sage("run", "*env-check", "--json", cwd=project,
                   env={"SAGE_DB_MCP_COMMAND": f"{pg_mcp_server} {db_url}"})
    assert res.returncode == 0, res.stderr + res.stdout
    doc = json.loads(res.stdout)
    assert doc["facts"]["method"] == "MCP"
    assert doc["facts"]["query_tool"] == "query"
    assert doc["facts"]["server_version"].startswith("PostgreSQL 18")
    assert "postgres:postgres@" not in res.stdout  # the URL in the command is redacted


def test_env_check_mcp_bad_database_clear_error(db_url, project, run_sage, pg_mcp_server):
    bad = db_url.rsplit("/", 1)[0] + "/no_such_db"
    res = run_sage("run", "*env-check", "--json", cwd=project, env={"SAGE_DB_MCP_COMMAND": f"{pg_mcp_server} {bad}"})
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["facts"]["method"] == "MCP" and doc["findings"][0]["rule"] == "mcp.unavailable"
    assert "postgres:postgres@" not in res.stdout


def test_env_check_mcp_command_missing(project, run_sage):
    res = run_sage("run", "*env-check", "--json", cwd=project, env={"SAGE_DB_MCP_COMMAND": "/nonexistent/mcp-server"})
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert "cannot use the MCP server" in doc["findings"][0]["message"]
