"""`sage mcp` over the real stdio protocol: one connection per MCP session for read calls, each in a READ ONLY
transaction, a fresh connection after a failure; the handshake, ping, unknown methods and the tool-list cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import psycopg

from conftest import sage_env


def _params(project: Path, cache: Path, *args: str):
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "sage_agent", "mcp", *args],
                                 env=sage_env({"XDG_CACHE_HOME": str(cache)}), cwd=str(project))


def _run(project: Path, cache: Path, args: list[str], body):
    async def main():
        from mcp.client.session import ClientSession
        from mcp.client.stdio import stdio_client

        with open(os.devnull, "w") as errlog:
            async with stdio_client(_params(project, cache, *args), errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await body(session)

    return anyio.run(main)


def _value(result):
    assert not result.is_error, result.content
    return result.structured_content["tables"][0]["rows"][0][0]


def test_read_calls_share_one_connection_in_read_only_transactions(db_url, db, project, tmp_path):
    async def body(session):
        pids = [_value(await session.call_tool("run-sql", {"sql": "select pg_backend_pid()"})) for _ in range(5)]
        read_only = _value(await session.call_tool("run-sql", {"sql": "select current_setting('transaction_read_only')"}))
        # set with set_config(..., true) right after BEGIN READ ONLY, in the same round trip: seen only inside it
        in_tx = _value(await session.call_tool("run-sql", {"sql": "select current_setting("
                                                                  "'idle_in_transaction_session_timeout')"}))
        other_tool = await session.call_tool("env-check", {})
        assert not other_tool.is_error
        after = _value(await session.call_tool("run-sql", {"sql": "select pg_backend_pid()"}))
        return pids, read_only, in_tx, after

    pids, read_only, in_tx, after = _run(project, tmp_path / "cache", ["--db-url", db_url], body)
    assert len(set(pids)) == 1 and after == pids[0], pids  # one backend served every read call
    assert read_only == "on"
    assert in_tx == "1min"  # inside the transaction (BEGIN READ ONLY) that set it locally
    # the connection left behind between calls is idle, not idle in transaction
    state = db.execute("select state from pg_stat_activity where pid = %s", (pids[0],)).fetchone()
    assert state is None or state[0] == "idle"


def test_a_failed_call_gets_a_fresh_connection(db_url, db, project, tmp_path):
    async def body(session):
        first = _value(await session.call_tool("run-sql", {"sql": "select pg_backend_pid()"}))
        bad = await session.call_tool("run-sql", {"sql": "select 1 / 0"})
        second = _value(await session.call_tool("run-sql", {"sql": "select pg_backend_pid()"}))
        # the backend is killed between two calls (a restart, an idle timeout, a DBA): the next call still answers
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (second,))
        third = await session.call_tool("run-sql", {"sql": "select pg_backend_pid()"})
        return first, bad, second, third

    first, bad, second, third = _run(project, tmp_path / "cache", ["--db-url", db_url, "--read-only"], body)
    assert bad.is_error and "division by zero" in "".join(c.text for c in bad.content)
    assert second != first  # after the failure: a new connection
    assert _value(third) not in (first, second)


def test_handshake_ping_unknown_method_and_bad_json(db_url, project, tmp_path):
    """The transport itself, spoken by hand: what any MCP client sends, and what a broken one might."""
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "ping"},
             {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
             "this is not json",
             {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nosuch", "arguments": {}}},
             {"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}}]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    proc = subprocess.run([sys.executable, "-m", "sage_agent", "mcp", "--db-url", db_url], input=stdin, cwd=project,
                          env=sage_env({"XDG_CACHE_HOME": str(tmp_path / "cache")}), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    by_id = {m.get("id"): m for m in out}
    assert by_id[1]["result"]["protocolVersion"] == "2025-06-18"
    assert by_id[1]["result"]["serverInfo"]["name"] == "db-sage"
    assert by_id[1]["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert by_id[2]["result"] == {}
    assert by_id[3]["error"]["code"] == -32601 and "resources/list" in by_id[3]["error"]["message"]
    assert by_id[None]["error"]["code"] == -32700
    assert by_id[4]["result"]["isError"] is True and "unknown tool 'nosuch'" in by_id[4]["result"]["content"][0]["text"]
    assert by_id[5]["result"]["protocolVersion"] == "2025-11-25"  # an unknown version gets our newest
    assert len(out) == 6  # the notification got no answer


def test_tool_list_cache_is_the_registry(db_url, project, tmp_path):
    """The cached tools/list (second start) is exactly what the registry builds; it is written once per key."""
    from sage_agent.db.env import Target
    from sage_agent.frontends.mcp_server import McpSage
    from sage_agent.frontends.mcp_stdio import build_tool_list

    cache = tmp_path / "cache"

    async def body(session):
        return [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in (await session.list_tools()).tools]

    cold = _run(project, cache, ["--db-url", db_url], body)
    files = list((cache / "db-sage").glob("mcp-tools-*.json"))
    assert len(files) == 1
    warm = _run(project, cache, ["--db-url", db_url], body)
    assert list((cache / "db-sage").glob("mcp-tools-*.json")) == files
    built = build_tool_list(McpSage(project, Target("local", db_url, "test")))
    simplify = lambda tools: {t["name"]: (t["description"], t["inputSchema"], t["annotations"]) for t in tools}  # noqa: E731
    assert simplify(cold) == simplify(warm) == simplify(built)
    assert "bootstrap" in simplify(warm)
    read_only = _run(project, cache, ["--db-url", db_url, "--read-only"], body)  # its own key: no write tools
    assert "bootstrap" not in simplify(read_only) and len(list((cache / "db-sage").glob("mcp-tools-*.json"))) == 2
