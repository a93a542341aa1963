"""MCP as a database method: when the user only has an MCP server for the database (the seed's
`mcp__supabase__*` style), DB Sage talks to it with the MCP client.

Configure the server command with SAGE_DB_MCP_COMMAND (environment or the project's .env), e.g.
`npx -y @modelcontextprotocol/server-postgres postgresql://...`. The command is redacted in every output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

from sage_agent.config import settings
from sage_agent.db.env import merged_environ
from sage_agent.db.redact import redact
from sage_agent.ops.result import Finding, OpResult

ENV_VAR = "SAGE_DB_MCP_COMMAND"
QUERY_TOOLS = ("query", "execute_sql", "run_sql", "sql")


class McpMethodError(RuntimeError):
    pass


def configured_command(project: Path) -> list[str] | None:
    raw = settings(merged_environ(project)).db_mcp_command
    return shlex.split(raw) if raw else None


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def probe(command: list[str], sql: str = "select version()", timeout: float = 60) -> dict[str, Any]:
    """Start the server, list its tools, run `sql` through its query tool. Returns tools, tool used, rows/text."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    import anyio

    async def run() -> dict[str, Any]:
        # lazy: the HTTP client loads only when it is used
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=command[0], args=command[1:])
        with open(os.devnull, "w") as errlog, anyio.fail_after(timeout):
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    tools = [t.name for t in (await session.list_tools()).tools]
                    tool = next((t for t in QUERY_TOOLS if t in tools), None)
                    if tool is None:
                        return {"server": getattr(init.server_info, "name", "?"), "tools": tools, "tool": None}
                    result = await session.call_tool(tool, {"sql": sql})
                    text = _text(result)
                    if result.is_error:
                        raise McpMethodError(f"the MCP server's {tool} tool failed: {text[:300]}")
                    try:
                        rows = json.loads(text)
                    except json.JSONDecodeError:
                        rows = text
                    return {"server": getattr(init.server_info, "name", "?"), "tools": tools, "tool": tool,
                            "rows": rows}

    try:
        return anyio.run(run)
    except McpMethodError:
        raise
    except TimeoutError:
        raise McpMethodError(f"the MCP server did not answer within {timeout:.0f}s") from None
    except BaseException as exc:  # noqa: BLE001 - spawn errors, closed connections, exception groups
        if isinstance(exc, KeyboardInterrupt):
            raise
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        raise McpMethodError(f"cannot use the MCP server: {type(inner).__name__}: {inner}") from None


def env_check_mcp(command: list[str], ctx):
    """*env-check when the database method is MCP."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.supabase_cli import find_cli

    shown = redact(" ".join(shlex.quote(c) for c in command))
    facts: dict[str, Any] = {"environment": ctx.target.env, "method": "MCP", "source": ENV_VAR, "mcp_command": shown}
    started = time.perf_counter()
    try:
        info = probe(command)
    except McpMethodError as exc:
        return OpResult(operation="db-env-check", status="failed", summary="MCP database server unusable",
                        facts=facts, findings=[Finding(rule="mcp.unavailable", severity="error",
                                                       message=redact(str(exc)),
                                                       fix=f"check {ENV_VAR} (the server command and its URL)")],
                        next_steps=[f"fix {ENV_VAR}"])
    facts.update({"mcp_server": info["server"], "mcp_tools": ", ".join(info["tools"]),
                  "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
    findings = []
    if info["tool"] is None:
        findings.append(Finding(rule="mcp.no_query_tool", severity="warning",
                                message=f"no query tool among {', '.join(info['tools'])}",
                                fix="DB Sage needs a tool named query/execute_sql"))
        version = None
    else:
        rows = info["rows"]
        text = json.dumps(rows) if not isinstance(rows, str) else rows
        match = re.search(r"PostgreSQL \d+(\.\d+)?", text)
        version = match.group(0) if match else None
        facts.update({"connected": True, "query_tool": info["tool"], "server_version": version or "unknown"})
    cli = find_cli(ctx.project)
    facts["supabase_cli"] = cli.version if cli else "not found"
    status = "warning" if findings else "ok"
    return OpResult(operation="db-env-check", status=status,
                    summary=f"Connected through MCP ({info['server']}, {version or 'version unknown'}, "
                            f"{ctx.target.env})", facts=facts, findings=findings,
                    notes=["Method MCP: reads go through the server's query tool; migrations need a direct URL "
                           "(SUPABASE_DB_URL / DATABASE_URL)"], next_steps=["*bootstrap"])
