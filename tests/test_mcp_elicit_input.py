"""MCP elicitation of NeedsInput over the real stdio protocol: a client that declares the `elicitation`
capability is asked the question an operation stopped at and the call runs again with the answer (the audit trail
says the person answered through elicitation); a client that declines changes nothing; a client without the
capability gets today's error naming the flag. An answer is only a tool argument: the plan's own confirmation is
still asked."""

from __future__ import annotations

import json
import os

import anyio

from test_integration_mcp import _params, text

NOTES = """create table public.notes (id bigint generated always as identity primary key,
  author_id uuid not null references auth.users (id), editor_id uuid, body text not null);"""


def _client(project, db_url, elicit, body):
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    async def main():
        with open(os.devnull, "w") as errlog:
            async with stdio_client(_params(project, "--db-url", db_url), errlog=errlog) as (read, write):
                kwargs = {"elicitation_callback": elicit} if elicit else {}
                async with ClientSession(read, write, **kwargs) as session:
                    await session.initialize()
                    return await body(session)

    return anyio.run(main)


def _audit(project):
    lines = [json.loads(x) for x in (project / ".sage" / "audit.jsonl").read_text().splitlines()]
    return [x for x in lines if x.get("event") == "finished"]


def test_accepting_the_question_runs_the_read_tool_again_with_the_answer(project, db_url, db):
    import mcp_types as types

    asked = []

    async def elicit(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"name": "before_v2"})

    async def body(session):
        return await session.call_tool("snapshot", {"name": "*v1"})

    res = _client(project, db_url, elicit, body)
    assert not res.is_error, text(res)
    assert (project / "supabase/snapshots/before_v2.sql").is_file()
    assert not list((project / "supabase/snapshots").glob("*v1*"))
    assert len(asked) == 1
    assert "invalid snapshot name '*v1'" in asked[0].message
    schema = asked[0].requested_schema
    assert schema["required"] == ["name"] and schema["properties"]["name"]["type"] == "string"
    done = _audit(project)
    assert done[-1]["status"] == "ok" and done[-1]["answered_by"] == {"name": "elicitation"}
    assert done[0]["exit_code"] == 2 and "answered_by" not in done[0]  # the first run stopped at the question


def test_a_choice_answer_still_needs_the_plans_confirmation(project, db_url, db):
    """policy-apply (a write): the person picks the owner column from the table's uuid columns; the changed plan is
    then confirmed in its own form: declining that leaves the table without policies."""
    import mcp_types as types

    db.execute(NOTES)
    asked = []

    async def elicit(context, params):
        asked.append(params)
        if "owner_column" in params.requested_schema["properties"]:
            return types.ElicitResult(action="accept", content={"owner_column": "editor_id"})
        return types.ElicitResult(action="accept", content={"confirm": len(asked) > 1})  # the first plan: no

    async def body(session):
        first = await session.call_tool("policy-apply", {"table": "notes"})
        policies = db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0]
        second = await session.call_tool("policy-apply", {"table": "notes"})
        return first, policies, second

    first, policies_after_first, second = _client(project, db_url, elicit, body)
    # call 1: confirm the call's plan (no), nothing asked further
    assert "Not confirmed" in text(first) and policies_after_first == 0
    owner = [p for p in asked if "owner_column" in p.requested_schema["properties"]]
    assert len(owner) == 1
    field = owner[0].requested_schema["properties"]["owner_column"]
    assert field["enum"] == ["author_id", "editor_id"] and field["default"] == "author_id"
    assert "has no owner column 'user_id'" in owner[0].message
    # call 2: plan (yes) -> the question -> the new plan with editor_id is confirmed again (yes) -> runs
    confirm_plans = [p.message for p in asked if "confirm" in p.requested_schema["properties"]]
    assert any('"owner_column": "editor_id"' in m for m in confirm_plans)
    assert not second.is_error, text(second)
    quals = db.execute("select string_agg(qual, ' ') from pg_policies where tablename = 'notes'").fetchone()[0]
    assert "editor_id" in quals and "author_id" not in quals
    assert _audit(project)[-1]["answered_by"] == {"owner_column": "elicitation"}


def test_declining_the_question_changes_nothing(project, db_url, db):
    import mcp_types as types

    db.execute(NOTES)
    actions = []

    async def elicit(context, params):
        if "owner_column" in params.requested_schema["properties"]:
            actions.append("decline")
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"confirm": True})

    async def body(session):
        return await session.call_tool("policy-apply", {"table": "notes"})

    res = _client(project, db_url, elicit, body)
    assert actions == ["decline"]
    assert res.is_error and "Not answered by the person: nothing was done" in text(res)
    assert "--owner-column" in text(res)
    assert res.structured_content["status"] == "cancelled" and res.structured_content["key"] == "owner_column"
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] == 0


def test_a_client_without_elicitation_gets_the_flag_to_pass(project, db_url, db):
    async def body(session):
        return await session.call_tool("snapshot", {"name": "*v1"})

    res = _client(project, db_url, None, body)
    assert res.is_error
    assert "invalid snapshot name '*v1'" in text(res) and "e.g. before_v2" in text(res)
    doc = res.structured_content
    assert doc["status"] == "needs_input" and doc["key"] == "name" and doc["flag"] == "--name"
    assert not (project / "supabase/snapshots").exists() or not list((project / "supabase/snapshots").iterdir())


def test_a_yes_no_question_is_a_boolean_field(project, db_url, db):
    """*load-csv of a missing table: the person is asked "create it?" as a boolean; yes creates and loads it (after
    the plan's own confirmation), no leaves the database alone and says which flag would do it."""
    import mcp_types as types

    (project / "people.csv").write_text("name,age\nada,36\ngrace,45\n")
    fields = []
    answers = [False, True]

    async def elicit(context, params):
        props = params.requested_schema["properties"]
        if "create" in props:
            fields.append(props["create"])
            return types.ElicitResult(action="accept", content={"create": answers.pop(0)})
        return types.ElicitResult(action="accept", content={"confirm": True})

    async def body(session):
        no = await session.call_tool("load-csv", {"file": "people.csv", "table": "people"})
        missing = db.execute("select to_regclass('public.people')").fetchone()[0]
        yes = await session.call_tool("load-csv", {"file": "people.csv", "table": "people"})
        return no, missing, yes

    no, missing_after_no, yes = _client(project, db_url, elicit, body)
    assert fields[0]["type"] == "boolean" and fields[0]["default"] is True
    assert no.is_error and "pass --create" in text(no) and missing_after_no is None
    assert not yes.is_error, text(yes)
    assert db.execute("select name, age from public.people order by age").fetchall() == [("ada", 36), ("grace", 45)]
    assert _audit(project)[-1]["answered_by"] == {"create": "elicitation"}
