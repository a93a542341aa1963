"""`sage mcp` end to end with the SDK's stdio client: list tools, a read, writes with no/valid/forged tokens."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from conftest import sage_env


def _params(project: Path, *args: str):
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "sage_agent", "mcp", *args],
                                 env=sage_env(), cwd=str(project))


async def _session_run(project: Path, args: list[str], body):
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as errlog:
        async with stdio_client(_params(project, *args), errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)


def run(project, args, body):
    return anyio.run(_session_run, project, args, body)


def text(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def test_mcp_tools_read_and_tokens(db_url, project):
    async def body(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"env-check", "bootstrap", "create-migration-from-design"} <= set(tools)
        assert "exit" not in tools
        assert tools["env-check"].description.startswith("Validate the database connection")
        assert "confirmation_token" in tools["bootstrap"].input_schema["properties"]
        assert "use_cli" in tools["bootstrap"].input_schema["properties"]
        assert "confirmation_token" not in tools["env-check"].input_schema["properties"]

        read = await session.call_tool("env-check", {})
        assert not read.is_error, text(read)
        assert "Connected to" in text(read) and "PostgreSQL 18" in text(read)
        assert "postgres:postgres@" not in text(read)  # redacted

        bad = await session.call_tool("bootstrap", {"colour": "red"})
        assert bad.is_error and "unknown argument(s) colour" in text(bad)
        bad_type = await session.call_tool("bootstrap", {"use_cli": "perhaps"})
        assert not (project / "supabase").exists()

        first = await session.call_tool("bootstrap", {"use_cli": False})
        assert not first.is_error
        assert "CONFIRMATION REQUIRED" in text(first) and '"use_cli": false' in text(first) and '"example_migration": false' in text(first)
        token = first.structured_content["confirmation_token"]
        assert not (project / "supabase").exists()

        forged = await session.call_tool("bootstrap", {"use_cli": False, "confirmation_token": "0" * 32})
        assert forged.is_error and "forged or stale" in text(forged)
        assert not (project / "supabase").exists()

        # the token is bound to the plan: other arguments -> a different plan -> refused
        other = await session.call_tool("bootstrap", {"use_cli": False, "example_migration": True,
                                                      "confirmation_token": token})
        assert other.is_error and "forged or stale" in text(other)
        assert not (project / "supabase").exists()

        ok = await session.call_tool("bootstrap", {"use_cli": False, "confirmation_token": token})
        assert not ok.is_error, text(ok)
        assert (project / "supabase" / "migrations").is_dir()
        return bad_type

    bad_type = run(project, ["--db-url", db_url], body)
    assert bad_type.is_error and "use_cli" in text(bad_type)


def test_mcp_op_level_plan_needs_its_own_token(db_url, db, project):
    """An operation that confirms an exact plan (files) gets a second token for that plan."""
    import yaml

    from test_integration_design import DESIGN

    (project / "d.yaml").write_text(yaml.safe_dump(DESIGN))

    async def body(session):
        args = {"design": "d.yaml", "name": "orders"}
        first = await session.call_tool("create-migration-from-design", args)
        t1 = first.structured_content["confirmation_token"]
        second = await session.call_tool("create-migration-from-design", {**args, "confirmation_token": t1})
        assert not second.is_error, text(second)
        assert "write supabase/migrations/" in second.structured_content["plan"]
        assert not (project / "supabase").exists()
        both = second.structured_content["confirmation_token"]
        assert both.startswith(t1 + ",")
        done = await session.call_tool("create-migration-from-design", {**args, "confirmation_token": both})
        assert not done.is_error, text(done)
        assert len(list((project / "supabase/migrations").glob("*.sql"))) == 2

    run(project, ["--db-url", db_url], body)


def test_mcp_read_only_hides_writes(db_url, project):
    async def body(session):
        names = {t.name for t in (await session.list_tools()).tools}
        assert "env-check" in names and "bootstrap" not in names and "handoff" not in names
        res = await session.call_tool("bootstrap", {})
        assert res.is_error and "read-only" in text(res)
        assert not (project / "supabase").exists()
        # a read tool that can write after a confirmation (run-sql --write) is stopped at the confirmation
        res = await session.call_tool("run-sql", {"sql": "create table sneaky (id int)", "write": True})
        assert res.is_error and "read-only" in text(res)

    run(project, ["--db-url", db_url, "--read-only"], body)
    import psycopg

    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('public.sneaky')").fetchone()[0] is None


def test_mcp_client_elicitation_confirms(db_url, project):
    """A client with MCP elicitation: its person sees each exact plan; yes runs it, no leaves everything alone."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    seen: list[str] = []
    replies: list[bool] = [False, True]

    async def elicit(context, params):
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": replies.pop(0)})

    async def main():
        with open(os.devnull, "w") as errlog:
            async with stdio_client(_params(project, "--db-url", db_url), errlog=errlog) as (read, write):
                async with ClientSession(read, write, elicitation_callback=elicit) as session:
                    await session.initialize()
                    no = await session.call_tool("bootstrap", {"use_cli": False})
                    assert "Not confirmed" in text(no) and not (project / "supabase").exists()
                    yes = await session.call_tool("bootstrap", {"use_cli": False})
                    assert not yes.is_error, text(yes)
                    assert (project / "supabase" / "migrations").is_dir()

    anyio.run(main)
    assert len(seen) == 2 and all("*bootstrap" in m for m in seen)


def test_mcp_typed_words_only_from_a_person(db_url, db, project):
    """A model with a valid token still cannot pass a typed confirmation: no token is ever issued for one.
    Through elicitation, the person's typed word (and only the exact word) runs it."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    db.execute("create table keep_me (id int)")
    drop = {"sql": "drop table keep_me", "write": True}

    async def model_only(session):
        gate = await session.call_tool("run-sql", drop)  # --write makes this call a write: the plan first
        assert gate.structured_content["status"] == "confirmation_required" and not gate.structured_content["word"]
        first = await session.call_tool("run-sql", {**drop, "confirmation_token": gate.structured_content[
            "confirmation_token"]})
        assert first.structured_content["status"] == "confirmation_required"
        assert first.structured_content["word"] == "EXECUTE"
        assert "confirmation_token" not in first.structured_content
        assert "A model cannot confirm it" in text(first)
        for claim in ("EXECUTE", first.structured_content["plan_hash"], "0" * 32):
            again = await session.call_tool("run-sql", {**drop, "confirmation_token": claim})
            assert again.structured_content.get("status") != "ok", text(again)

    run(project, ["--db-url", db_url], model_only)
    assert db.execute("select to_regclass('public.keep_me')").fetchone()[0] is not None

    words = ["execute", "EXECUTE"]  # first a wrong word (lower case), then the right one

    async def elicit(context, params):
        word = words[0] if "EXECUTE" in params.message and "typed word" in params.message else None
        content = {"confirm": True}
        if word:
            content["word"] = words.pop(0)
        return types.ElicitResult(action="accept", content=content)

    async def person():
        with open(os.devnull, "w") as errlog:
            async with stdio_client(_params(project, "--db-url", db_url), errlog=errlog) as (read, write):
                async with ClientSession(read, write, elicitation_callback=elicit) as session:
                    await session.initialize()
                    wrong = await session.call_tool("run-sql", drop)
                    assert "Not confirmed" in text(wrong)
                    assert db.execute("select to_regclass('public.keep_me')").fetchone()[0] is not None
                    right = await session.call_tool("run-sql", drop)
                    assert not right.is_error, text(right)

    anyio.run(person)
    assert db.execute("select to_regclass('public.keep_me')").fetchone()[0] is None
