"""Benchmark (not a test): DB Sage's MCP server vs the peer @modelcontextprotocol/server-postgres, side by side.

Both over stdio with the SDK's client, same database: server start + initialize + tools/list, then N read
queries (`run-sql` for DB Sage: parsed, READ ONLY, timeouts; `query` for the peer: READ ONLY transaction).
Also the design generator: a 40-table design -> migration + RLS, proved on a shadow database.
Writes bench/results/integration.md.   python bench/integration_mcp.py
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _migrations_common import REPO, new_db, sage_env, start_server  # noqa: E402

N = 30
PEER = REPO / ".tools/node_modules/@modelcontextprotocol/server-postgres/dist/index.js"


async def measure(command: str, args: list[str], env: dict, tool: str, arguments: dict) -> tuple[float, list[float]]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    t0 = time.perf_counter()
    with open(os.devnull, "w") as errlog:
        async with stdio_client(StdioServerParameters(command=command, args=args, env=env), errlog=errlog) as (r, w):
            async with ClientSession(r, w) as session:
                await session.initialize()
                await session.list_tools()
                start = time.perf_counter() - t0
                times = []
                for _ in range(N):
                    t = time.perf_counter()
                    res = await session.call_tool(tool, arguments)
                    assert not res.is_error, res.content
                    times.append(time.perf_counter() - t)
    return start, times


def bench_design(server) -> tuple[float, int]:
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session
    import tempfile
    import yaml

    os.environ["SAGE_SHADOW_URL"] = server.url()
    tables = [{"name": f"t{i}", "columns": [
        {"name": "id", "type": "bigint generated always as identity", "nullable": False, "primary_key": True},
        {"name": "user_id", "type": "uuid", "nullable": False, "default": "auth.uid()",
         "references": {"table": "auth.users", "column": "id", "on_delete": "cascade"}},
        {"name": "parent_id", "type": "bigint", "references": {"table": f"t{i - 1}" if i else "t0", "column": "id"}},
        {"name": "title", "type": "text", "nullable": False}], "rls": {"enabled": True, "owner_column": "user_id"}}
        for i in range(40)]
    project = Path(tempfile.mkdtemp(prefix="sage-bench-design-"))
    (project / "d.yaml").write_text(yaml.safe_dump({"tables": tables}))
    session = Session(project=project, target=Target("local", new_db(server, "design"), "bench"),
                      answers=FlagAnswers(yes=True))
    t = time.perf_counter()
    out = session.run_line("*create-migration-from-design d.yaml")
    assert out.exit_code == 0, out.error
    return time.perf_counter() - t, len(tables)


def main() -> None:
    import anyio

    server = start_server("integ")
    try:
        url = new_db(server, "mcp")
        env = sage_env({"SAGE_SHADOW_URL": server.url()})
        sage_start, sage_times = anyio.run(measure, sys.executable, ["-m", "sage_agent", "mcp", "--read-only",
                                                                     "--db-url", url], env, "run-sql",
                                           {"sql": "select count(*) from pg_class"})
        peer = None
        node = shutil.which("node")
        if node and PEER.is_file():
            peer = anyio.run(measure, node, [str(PEER), url], dict(os.environ), "query",
                             {"sql": "select count(*) from pg_class"})
        design_s, ntables = bench_design(server)
    finally:
        server.stop()
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    lines = ["# Integration benchmarks", "", f"Machine: {os.cpu_count()} cores, {platform.platform()}, "
             f"Python {platform.python_version()}. {N} calls per server, medians.", "",
             "| measure | DB Sage `sage mcp` | peer server-postgres | ratio (sage/peer) | target |",
             "|---|---|---|---|---|"]
    if peer:
        lines.append(f"| start + initialize + tools/list | {sage_start * 1000:.0f} ms | {peer[0] * 1000:.0f} ms | "
                     f"{sage_start / peer[0]:.1f}x | < 3 s |")
        lines.append(f"| read query (tool call) | {med(sage_times):.1f} ms | {med(peer[1]):.1f} ms | "
                     f"{med(sage_times) / med(peer[1]):.1f}x | < 100 ms |")
    else:
        lines.append(f"| start + initialize + tools/list | {sage_start * 1000:.0f} ms | (peer not installed) | - | < 3 s |")
        lines.append(f"| read query (tool call) | {med(sage_times):.1f} ms | (peer not installed) | - | < 100 ms |")
    lines += ["", "DB Sage's run-sql parses the SQL, opens a READ ONLY transaction with server-side timeouts and "
              "a fresh connection per call; the peer keeps a pool and only wraps the query in READ ONLY.", "",
              f"Design generator: {ntables}-table design -> migration + RLS (4 policies each), type check and "
              f"apply on a shadow database: {design_s:.2f} s (target < 10 s; no peer tool does this).", ""]
    out = REPO / "bench" / "results" / "integration.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
