"""`sage mcp` tool results are bounded (SAGE_MCP_RESULT_BYTES, default 100 KB) over the real MCP protocol on a
real PostgreSQL whose *rls-audit is four times that: the summary and the most severe findings stay, the reply
says how many were left out and where the whole result is; a server error reaches the client redacted."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import anyio

from conftest import sage_env


def _call(project: Path, db_url: str, tool: str, args: dict, env: dict[str, str] | None = None):
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "sage_agent", "mcp", "--db-url", db_url],
                                   env=sage_env(env), cwd=str(project))

    async def main():
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await session.call_tool(tool, args)

    return anyio.run(main)


def _text(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def _size(result) -> int:
    return len(_text(result).encode()) + len(json.dumps(result.structured_content, ensure_ascii=False,
                                                        separators=(",", ":")).encode())


def test_a_big_rls_audit_comes_back_bounded_with_the_errors_first_and_says_what_was_left_out(db_url, db, project):
    db.execute("do $$ begin for i in 1..400 loop execute format("
               "'create table t_%s (id int primary key, owner_id uuid, note text)', i); end loop; end $$")
    # five tables with RLS on and no policy: INFO lints
    db.execute("do $$ begin for i in 1..5 loop execute format("
               "'create table a_%s (id int primary key); alter table a_%s enable row level security', i, i); "
               "end loop; end $$")

    res = _call(project, db_url, "rls-audit", {})
    text, doc = _text(res), res.structured_content
    assert _size(res) <= 100_000, _size(res)
    full = json.loads((project / ".sage" / "mcp" / "rls-audit.json").read_text())["structured"]
    assert len(full["findings"]) == 200 and len(full["data"]["lints"]) == 405  # the whole audit
    assert _size(res) * 3 < len(json.dumps(full))  # it was cut: the audit is 4x the limit

    # the summary first, then the most severe findings
    assert text.startswith("# db-rls-audit\n\n**WARNING** - 405 advisor findings on 405 tables in public")
    assert doc["summary"] == full["summary"] and doc["facts"] == full["facts"]
    shown = doc["findings"]
    assert 20 < len(shown) < 200
    assert {f["severity"] for f in shown} == {"error"}
    assert {lint["level"] for lint in doc["data"]["lints"]} == {"ERROR"}  # the five INFO lints were left out
    left = 200 - len(shown)
    assert doc["truncated"]["left_out"]["findings"] == left
    assert doc["truncated"]["left_out"]["data.lints"] == 405 - len(doc["data"]["lints"])
    assert doc["truncated"]["full_result"] == ".sage/mcp/rls-audit.json"
    note = text.splitlines()[-1]
    assert note.startswith("RESULT CUT to 100 KB (the whole result is ")
    assert f"{left} of 200 findings" in note and f"{405 - len(doc['data']['lints'])} of 405 data.lints" in note
    assert note.endswith("To get all: the whole result is in .sage/mcp/rls-audit.json or run "
                         "`sage run '*rls-audit' --json --env local --db-url URL`.")
    assert text.count("- **error** `rls_disabled_in_public`") == len(shown)

    # the limit is a setting
    small = _call(project, db_url, "rls-audit", {}, env={"SAGE_MCP_RESULT_BYTES": "20000"})
    assert _size(small) <= 20_000
    assert _text(small).splitlines()[-1].startswith("RESULT CUT to 20 KB")
    assert len(small.structured_content["findings"]) < len(shown)


def test_a_small_result_is_untouched(db_url, project):
    res = _call(project, db_url, "env-check", {})
    assert not res.is_error, _text(res)
    assert "RESULT CUT" not in _text(res) and "truncated" not in res.structured_content
    assert not (project / ".sage" / "mcp").exists()


def test_an_internal_error_reaches_the_client_redacted(project):
    """A request the server fails on (here tools/list): the JSON-RPC error hides the password of a URL."""
    from sage_agent.db.env import Target
    from sage_agent.frontends.mcp_stdio import StdioServer

    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                          "capabilities": {}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}]
    out = io.BytesIO()
    server = StdioServer(project, Target("prod", "postgresql://app:Sup3rSecret@db.example.com/prod", "--db-url"),
                         stdin=io.BytesIO(b"".join(json.dumps(m).encode() + b"\n" for m in lines)), stdout=out)

    def broken():
        raise RuntimeError("could not reach postgresql://app:Sup3rSecret@db.example.com:5432/prod")

    server.tool_list = broken
    server.serve()
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert replies[1] == {"jsonrpc": "2.0", "id": 2, "error": {"code": -32603, "message": (
        "internal error: RuntimeError: could not reach postgresql://app:***@db.example.com:5432/prod")}}
    assert b"Sup3rSecret" not in out.getvalue()


def test_a_cut_list_keeps_its_most_severe_items_first(tmp_path):
    from sage_agent.frontends.mcp_server import bound_result

    findings = [{"rule": f"r{i}", "severity": ("info", "warning", "error")[i % 3], "message": "x" * 200}
                for i in range(600)]
    doc = {"operation": "lint", "status": "failed", "summary": "600 findings", "findings": findings}
    text, cut = bound_result("lint", "# lint\n", doc, limit=40_000, project=tmp_path)
    severities = [f["severity"] for f in cut["findings"]]
    assert 10 < len(severities) < 200 and set(severities) == {"error"}
    assert cut["truncated"]["left_out"] == {"findings": 600 - len(severities)}
    assert f"{600 - len(severities)} of 600 findings" in text.splitlines()[-1]


def test_a_huge_plan_a_person_confirms_through_elicitation_is_bounded_and_says_where_the_whole_plan_is(db_url, db,
                                                                                                       project):
    """*run-sql --write of a 300 KB statement: the elicitation's message is at most SAGE_MCP_RESULT_BYTES, keeps the
    prompt, the plan's start and the target, says what was cut and where the whole plan is."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    db.execute("create table big (v text)")
    sql = "insert into big (v) values " + ", ".join(f"('{'x' * 40}{i}')" for i in range(6000))
    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": False})

    params = StdioServerParameters(command=sys.executable, args=["-m", "sage_agent", "mcp", "--db-url", db_url],
                                   env=sage_env({"SAGE_MCP_RESULT_BYTES": "20000"}), cwd=str(project))

    async def main():
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, elicitation_callback=elicit) as session:
                    await session.initialize()
                    return await session.call_tool("run-sql", {"sql": sql, "write": True})

    res = anyio.run(main)
    assert "Not confirmed by the person" in _text(res)
    assert db.execute("select count(*) from big").fetchone()[0] == 0
    assert len(asked) == 1
    message = asked[0]
    assert len(message.encode()) <= 20_000, len(message.encode())
    assert message.startswith("CONFIRMATION REQUIRED: Run run-sql (write) on local ")
    assert "insert into big (v) values ('" + "x" * 40 + "0')" in message  # the plan's start
    assert "[... 2" in message and " KB of the plan cut here: the whole plan is in .sage/mcp/run-sql.plan.txt ...]" \
        in message
    assert message.endswith("the whole plan is in .sage/mcp/run-sql.plan.txt. Confirming runs the whole plan.")
    assert "PLAN CUT to 20 KB (the whole plan is 299 KB; SAGE_MCP_RESULT_BYTES sets the limit)" in message
    whole = (project / ".sage" / "mcp" / "run-sql.plan.txt").read_text()
    assert sql in whole and whole.startswith("CONFIRMATION REQUIRED: Run run-sql (write)")
