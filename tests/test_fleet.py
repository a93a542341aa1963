"""Fleets: `sage run "*cmd" --targets FILE` on several real databases of the embedded server, plus an unreachable
target and a bad URL: the JSON document, the table, exit codes, redaction, --only, and *apply with and without
confirmation."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import psycopg
import pytest

from sage_agent.ops.fleet.targets import TargetsFileError, load_targets, select

SECRET = "fleet-Secret-8812"  # the unreachable target's password: must never be printed
BAD_SECRET = "mysqlPw-4471"  # the bad URL's password (not a postgres scheme): must never be printed either


@pytest.fixture
def fleet(pg_server):
    """Three databases: `a` has a table without RLS and without a primary key, `b` and `c` are clean."""
    from sage_agent.db.shadow import create_database, drop_database

    names = {key: f"t_fleet_{key}_{secrets.token_hex(3)}" for key in ("a", "b", "c")}
    urls = {key: create_database(pg_server.url(), name) for key, name in names.items()}
    with psycopg.connect(urls["a"], autocommit=True) as conn:
        conn.execute("create table public.open_notes (body text)")
    yield urls
    for name in names.values():
        drop_database(pg_server.url(), name)


def write_targets(project: Path, urls: dict[str, str], *, broken: bool = True) -> Path:
    lines = [f"- name: tenant-a\n  url: {urls['a']}\n  tags: [eu, paying]",
             f"- name: tenant-b\n  url: {urls['b']}\n  tags: [us]",
             f"- name: tenant-c\n  url: {urls['c']}\n  tags: eu"]
    if broken:
        lines += [f"- name: down\n  url: postgresql://sage:{SECRET}@127.0.0.1:1/app\n  tags: [us]",
                  f"- name: bad-url\n  url: mysql://sage:{BAD_SECRET}@db.example/app"]
    path = project / "targets.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_commands_on_a_fleet_json(fleet, project, run_sage):
    write_targets(project, fleet)
    proc = run_sage("run", "*rls-audit", "*schema-audit", "--targets", "targets.yaml", "--parallel", "3", "--json",
                    cwd=project)
    assert SECRET not in proc.stdout + proc.stderr and BAD_SECRET not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    by_name = {t["name"]: t for t in doc["targets"]}
    assert [t["name"] for t in doc["targets"]] == ["tenant-a", "tenant-b", "tenant-c", "down", "bad-url"]
    # the unreachable target and the bad URL stopped nobody: every reachable target ran both audits
    for name in ("tenant-a", "tenant-b", "tenant-c"):
        assert by_name[name]["exit_code"] == 0 and by_name[name]["status"] == "ok"
        assert [r["operation"] for r in by_name[name]["results"]] == ["db-rls-audit", "schema-audit"]
    rules_a = {f["rule"] for r in by_name["tenant-a"]["results"] for f in r["findings"]}
    assert {"rls_disabled_in_public", "no_primary_key"} <= rules_a
    assert not [f for r in by_name["tenant-b"]["results"] for f in r["findings"]]
    down = by_name["down"]
    assert down["exit_code"] == 1 and down["status"] == "failed"
    assert "cannot connect" in down["results"][0]["error"] and down["skipped"] == ["*schema-audit"]
    assert down["target"] == "postgresql://sage:***@127.0.0.1:1/app"
    bad = by_name["bad-url"]
    assert bad["exit_code"] == 2 and bad["status"] == "invalid" and bad["results"] == []
    assert bad["error"].startswith("targets.yaml:13: target bad-url: bad database URL")
    assert "mysql://sage:***@db.example/app" in bad["error"]
    summary = doc["summary"]
    assert summary["targets"] == 5 and summary["ok"] == 3 and summary["failed"] == 1 and summary["invalid"] == 1
    assert summary["by_exit_code"] == {"0": 3, "1": 1, "2": 1}
    # the worst target decides: failed (1) ranks above a usage problem (2); the summary says which
    assert summary["exit_code"] == doc["exit_code"] == proc.returncode == 1
    assert summary["worst_target"] == "down"
    assert summary["commands"] == ["*rls-audit", "*schema-audit"] and summary["writes"] is False
    assert summary["parallel"] == 3 and summary["stop_on_failure"] is False


def test_fleet_table_and_only(fleet, project, run_sage, sage_in_process):
    write_targets(project, fleet)
    proc = run_sage("run", "*rls-audit", "--targets", "targets.yaml", "--only", "eu", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["tenant-a", "tenant-c"]
    assert "1 error: rls_disabled_in_public x1" in rows[0]
    assert "2 target(s): 2 ok; exit 0" in proc.stdout
    code, out, err = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--only", "down", "--json")
    assert code == 1 and [t["name"] for t in json.loads(out)["targets"]] == ["down"]
    assert SECRET not in out + err
    code, out, err = sage_in_process("run", "*schema-audit", "--targets", "targets.yaml", "--only", "bad-url,tenant-b",
                                     "--json")
    doc = json.loads(out)
    assert code == 2 and doc["summary"]["worst_target"] == "bad-url" and doc["summary"]["ok"] == 1
    assert BAD_SECRET not in out + err
    code, out, _ = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--only", "eu", "--markdown")
    assert code == 0 and "| tenant-a | *rls-audit | warning | 0 | 1 error: rls_disabled_in_public x1 |" in out
    assert "2 target(s): 2 ok; exit 0" in out
    code, _, err = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--only", "asia")
    assert code == 2 and "--only asia: no target has that tag or name (tags: eu, paying, us)" in err


def _migration(project: Path) -> None:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_todos.sql").write_text("create table public.todos (id bigint primary key);\n")


def _has_todos(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select to_regclass('public.todos') is not null").fetchone()[0]


def test_apply_on_a_fleet_needs_confirmation(fleet, project, run_sage):
    _migration(project)
    write_targets(project, fleet, broken=False)
    refused = run_sage("run", "*apply", "--targets", "targets.yaml", cwd=project)
    assert refused.returncode == 3
    assert "*apply changes each of 3 target(s): tenant-a, tenant-b, tenant-c" in refused.stderr
    assert "Nothing was run. Re-run with --yes" in refused.stderr
    assert not any(_has_todos(u) for u in fleet.values())
    assert not (project / "supabase" / "snapshots").exists()

    # fewer automatic snapshots kept than targets: still every target keeps its own rollback point
    applied = run_sage("run", "*apply", "--targets", "targets.yaml", "--yes", "--json", cwd=project,
                       env={"SAGE_SNAPSHOT_KEEP": "2"})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    doc = json.loads(applied.stdout)
    assert [t["results"][0]["facts"]["applied"] for t in doc["targets"]] == [1, 1, 1]
    assert doc["summary"]["writes"] is True and doc["summary"]["parallel"] == 1
    assert all(_has_todos(u) for u in fleet.values())
    snapshots = {t["results"][0]["data"]["snapshot"] for t in doc["targets"]}
    assert len(snapshots) == 3  # each target's own snapshot, none overwritten by the next
    kept = {p.stem for p in (project / "supabase" / "snapshots").glob("*.json")}
    assert snapshots <= kept


def test_apply_stops_at_the_first_failed_target_unless_told(fleet, project, run_sage):
    _migration(project)
    write_targets(project, fleet, broken=False)
    with psycopg.connect(fleet["a"], autocommit=True) as conn:  # the migration fails on tenant-a
        conn.execute("create table public.todos (id int)")
    stopped = run_sage("run", "*apply --snapshot no", "--targets", "targets.yaml", "--yes", "--json", cwd=project)
    doc = json.loads(stopped.stdout)
    assert stopped.returncode == 1
    assert [(t["name"], t["status"], t["exit_code"]) for t in doc["targets"]] == [
        ("tenant-a", "failed", 1), ("tenant-b", "skipped", 1), ("tenant-c", "skipped", 1)]
    assert doc["targets"][1]["error"].startswith("not started: an earlier target failed")
    assert not _has_todos(fleet["b"]) and not _has_todos(fleet["c"])

    kept_on = run_sage("run", "*apply --snapshot no", "--targets", "targets.yaml", "--yes", "--continue-on-failure",
                       "--json", cwd=project)
    doc = json.loads(kept_on.stdout)
    assert kept_on.returncode == 1 and doc["summary"]["worst_target"] == "tenant-a"
    assert [t["exit_code"] for t in doc["targets"]] == [1, 0, 0]
    assert _has_todos(fleet["b"]) and _has_todos(fleet["c"])


def test_apply_confirmed_target_by_target(fleet, project):
    """A person at a terminal answers for each target: yes on tenant-a, no on tenant-b, yes on tenant-c."""
    from sage_agent.frontends.fleet import load_fleet
    from sage_agent.ops.fleet.runner import plan_lines, run_fleet
    from sage_agent.session.answers import PromptAnswers

    _migration(project)
    write_targets(project, fleet, broken=False)
    entries = load_fleet(project / "targets.yaml", None, project)
    replies = {"tenant-a": "y", "tenant-b": "n", "tenant-c": "yes"}
    asked: list[str] = []

    def answers_for(entry):
        def prompt(message: str) -> str:
            asked.append(entry.name)
            return replies[entry.name]
        return PromptAnswers(prompt=prompt)

    runs = run_fleet(entries, plan_lines(["*apply --snapshot no"], {}, project), project=project, answers_for=answers_for,
                     parallel=4, stop_on_failure=True)
    assert asked == ["tenant-a", "tenant-b", "tenant-c"]  # one target at a time, in file order
    assert [r.exit_code for r in runs] == [0, 3, 0]  # a person's "no" is not a failure: tenant-c still ran
    assert runs[1].outcomes[0].result.status == "cancelled"
    assert [_has_todos(fleet[k]) for k in ("a", "b", "c")] == [True, False, True]


def test_targets_file_errors_name_the_line(tmp_path):
    def problem(text: str) -> str:
        path = tmp_path / "t.yaml"
        path.write_text(text)
        with pytest.raises(TargetsFileError) as info:
            load_targets(path)
        return str(info.value)

    where = str(tmp_path / "t.yaml")
    assert problem("- name: a\n  url: postgresql://x@h/d\n- url: postgresql://y@h/d\n") == f"{where}:3: missing 'name'"
    assert problem("- name: a\n") == f"{where}:1: give a url, or an env (local, dev, staging, prod) to resolve"
    assert problem("- name: a\n  env: dev\n  colour: red\n") == \
        f"{where}:3: unknown key 'colour' (keys: name, url, env, direct_url, tags)"
    assert problem("- name: a\n  env: qa\n") == f"{where}:2: env: choose one of local, dev, staging, prod"
    assert problem("- name: a\n  env: dev\n- name: a\n  env: prod\n") == \
        f"{where}:3: the name 'a' is already used on line 1; every target needs its own name"
    assert problem("- name: has space\n  env: dev\n").startswith(f"{where}:1: name: a name is 1-63 letters")
    assert problem("- name: a\n  env: [dev\n").startswith(f"{where}:3: not valid YAML")
    assert problem("name: a\nenv: dev\n") == (f"{where}:1: expected a list of targets (or one key `targets:` "
                                              "holding it), found the keys name, env")
    assert problem("just text\n") == f"{where}:1: expected a YAML list of targets (`- name: ...`), not a single value"
    assert problem("") == f"{where}: the targets file is empty; list at least one `- name: ...` with `url:` or `env:`"
    assert problem("- postgresql://u:pw@h/d\n").startswith(f"{where}:1: each target is a mapping")
    assert "pw@" not in problem("- postgresql://u:pw12@h/d\n")
    assert problem("- name: a\n  direct_url: postgresql://u@h/d\n  env: dev\n") == \
        f"{where}:1: direct_url goes beside a url (an env brings its own direct URL variable)"
    assert problem("- name: a\n  url: postgresql://u@h/d\n  tags: {x: 1}\n").startswith(f"{where}:3: tags:")
    with pytest.raises(TargetsFileError, match="no such targets file"):
        load_targets(tmp_path / "missing.yaml")
    path = tmp_path / "ok.yaml"
    path.write_text("targets:\n  - name: a\n    env: dev\n    tags: one\n  - name: b\n    url: postgresql://u@h/d\n")
    targets = load_targets(path)
    assert [(t.name, t.tags, t.line) for t in targets] == [("a", ["one"], 2), ("b", [], 5)]
    assert [t.name for t in select(targets, ["one"])] == ["a"]


@pytest.fixture
def sage_in_process(monkeypatch, project, capsys):
    """`sage ARGS` in this process (the same code path as the console script), from the project folder."""
    from sage_agent import cli
    from sage_agent.frontends import headless

    monkeypatch.chdir(project)
    monkeypatch.setattr(headless, "_tune_gc", lambda: None)  # keep this test process's collector as it is

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_bad_input_on_the_command_line(fleet, project, sage_in_process):
    write_targets(project, fleet, broken=False)
    (project / "broken.yaml").write_text("- name: a\n  url: postgresql://u@h/d\n  tag: [x]\n")
    code, _, err = sage_in_process("run", "*rls-audit", "--targets", "broken.yaml")
    assert code == 2 and "broken.yaml:3: unknown key 'tag'" in err
    code, out, _ = sage_in_process("run", "*rls-audti", "--targets", "targets.yaml", "--json")
    assert code == 2
    assert json.loads(out)["summary"]["error"].startswith("unknown command *rls-audti. Did you mean *rls-audit")
    code, _, err = sage_in_process("run", "*explain", "--targets", "targets.yaml")
    assert code == 2 and "missing required input 'query'" in err and "Nothing was run" in err
    code, _, err = sage_in_process("run", "*rls-audit", "--only", "eu")
    assert code == 2 and "go with --targets FILE" in err
    code, _, err = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--parallel", "0")
    assert code == 2 and "--parallel 0: give 1 or more" in err
    code, _, err = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--db-url", fleet["a"])
    assert code == 2 and "drop --db-url" in err
    code, _, err = sage_in_process("run", "*rls-audit", "--targets", "targets.yaml", "--set", "colour=red")
    assert code == 2 and "--set colour: not an input of any of these commands. Nothing was run." in err


def test_url_variables_come_from_the_environment(fleet, project, sage_in_process, monkeypatch):
    (project / "targets.yaml").write_text("- name: a\n  url: ${TENANT_A_URL}\n- name: b\n  url: ${NOT_SET_URL}\n")
    monkeypatch.setenv("TENANT_A_URL", fleet["a"])
    monkeypatch.delenv("NOT_SET_URL", raising=False)
    code, out, _ = sage_in_process("run", "*env-check", "--targets", "targets.yaml", "--json")
    doc = json.loads(out)
    assert code == 2
    assert [t["exit_code"] for t in doc["targets"]] == [0, 2]
    assert doc["targets"][1]["error"].endswith("target b: ${NOT_SET_URL} is not set (export it or put it in .env)")


def test_fleet_as_an_mcp_tool(fleet, project):
    """The MCP server's `fleet` tool, over stdio with the SDK's client: listed, read commands run, writes refused."""
    from test_integration_mcp import run, text

    write_targets(project, fleet)
    _migration(project)
    (project.parent / "outside.yaml").write_text(f"- name: x\n  url: {fleet['a']}\n")

    async def body(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert tools["fleet"].annotations.read_only_hint is False  # writes, each target confirmed
        assert set(tools["fleet"].input_schema["properties"]) == {"commands", "targets_file", "only", "parallel",
                                                                  "stop_on_failure", "confirmation_token"}
        read = await session.call_tool("fleet", {"commands": ["*rls-audit"], "targets_file": "targets.yaml",
                                                 "only": ["eu", "down"]})
        doc = read.structured_content
        assert [(t["name"], t["exit_code"]) for t in doc["targets"]] == [("tenant-a", 0), ("tenant-c", 0), ("down", 1)]
        assert read.is_error and doc["summary"]["worst_target"] == "down"
        assert "| tenant-a | *rls-audit | warning | 0 | 1 error: rls_disabled_in_public x1 |" in text(read)
        assert SECRET not in text(read) + str(doc)
        token = await session.call_tool("fleet", {"commands": ["*rls-audit"], "targets_file": "targets.yaml",
                                                  "confirmation_token": "abc"})
        assert token.is_error and "read commands take no confirmation_token" in text(token)
        outside = await session.call_tool("fleet", {"commands": ["*rls-audit"], "targets_file": "../outside.yaml"})
        assert outside.is_error and "targets_file must be inside the project folder" in text(outside)
        bad = await session.call_tool("fleet", {"commands": [], "targets_file": "targets.yaml"})
        assert bad.is_error and "commands" in text(bad) and "Nothing was done" in text(bad)

    run(project, [], body)
    assert not any(_has_todos(u) for u in fleet.values())


def test_ctrl_c_cancels_every_running_target(fleet, project, pg_server):
    """Ctrl-C during a fleet run: the statement running on each target is cancelled on its server, the targets not
    started yet are skipped, and every target says interrupted (130)."""
    import _thread
    import threading

    from sage_agent.frontends.fleet import load_fleet
    from sage_agent.ops.fleet.runner import plan_lines, run_fleet, worst
    from sage_agent.session.answers import FlagAnswers

    write_targets(project, fleet, broken=False)
    entries = load_fleet(project / "targets.yaml", None, project)
    plans = plan_lines(["*run-sql 'select pg_sleep(60)'", "*rls-audit"], {}, project)

    def sleepers() -> int:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            # *run-sql reads through a server-side cursor: the active query is its FETCH, the wait is pg_sleep's
            return conn.execute("select count(*) from pg_stat_activity where wait_event = 'PgSleep' and datname = "
                                "any(%s)", ([u.rsplit("/", 1)[1] for u in fleet.values()],)).fetchone()[0]

    def interrupt_when_both_sleep() -> None:
        for _ in range(600):
            if sleepers() == 2:
                break
            threading.Event().wait(0.1)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_both_sleep, daemon=True).start()
    runs = run_fleet(entries, plans, project=project, answers_for=lambda e: FlagAnswers(), parallel=2)
    assert sleepers() == 0  # cancelled on the server, not left running
    assert [(r.entry.name, r.status, r.exit_code) for r in runs] == [
        ("tenant-a", "ran", 130), ("tenant-b", "ran", 130), ("tenant-c", "skipped", 130)]
    assert runs[0].error.startswith("interrupted: the running statement was cancelled on the server")
    assert all("SQLSTATE 57014" in r.outcomes[0].error for r in runs[:2])  # query_canceled, not run to its end
    assert runs[0].skipped == ["*rls-audit"] and runs[2].error.startswith("not started: interrupted")
    assert worst(runs) == (130, "tenant-a")


def test_apply_in_a_terminal_asks_each_target(fleet, project):
    """In a terminal (stdin a tty) without --yes, each target asks its own question; no skips one target only."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import sage_env

    _migration(project)
    write_targets(project, fleet, broken=False)
    master, slave = pty.openpty()
    try:
        os.write(master, b"y\nn\ny\n")  # the terminal's line discipline hands them out one line per read
        proc = subprocess.run([sys.executable, "-m", "sage_agent", "run", "*apply --snapshot no", "--targets",
                               "targets.yaml", "--json"], cwd=project, env=sage_env(), stdin=slave,
                              capture_output=True, text=True, timeout=300)
    finally:
        os.close(slave)
        os.close(master)
    doc = json.loads(proc.stdout)
    assert [(t["name"], t["exit_code"]) for t in doc["targets"]] == [("tenant-a", 0), ("tenant-b", 3), ("tenant-c", 0)]
    assert proc.returncode == 3 and doc["summary"]["worst_target"] == "tenant-b"
    asked = [line.split("]")[0] + "]" for line in proc.stderr.splitlines() if line.startswith("[tenant-")]
    assert asked == ["[tenant-a]", "[tenant-b]", "[tenant-c]"]
    assert [_has_todos(fleet[k]) for k in ("a", "b", "c")] == [True, False, True]


def test_fleet_writes_over_mcp_need_each_targets_own_token(fleet, project):
    """*apply through the MCP `fleet` tool (real stdio, the SDK's client, no elicitation): the first call runs
    nothing and returns one plan and token per target; a call runs only the targets whose token it carries;
    a forged token runs nothing; no password appears anywhere."""
    from test_integration_mcp import run, text

    write_targets(project, fleet)
    _migration(project)
    args = {"commands": ["*apply --snapshot no"], "targets_file": "targets.yaml", "only": ["tenant-a", "tenant-b",
                                                                                           "down", "bad-url"]}
    seen: list[str] = []

    async def body(session):
        first = await session.call_tool("fleet", args)
        doc = first.structured_content
        seen.append(text(first) + str(doc))
        assert not first.is_error and doc["status"] == "confirmation_required"
        assert [p["target"] for p in doc["pending"]] == ["tenant-a", "tenant-b", "down"]  # bad-url: not usable
        assert "bad-url" in doc["summary"]["not_usable"]
        tokens = {p["target"]: p["confirmation_token"] for p in doc["pending"]}
        assert len(set(tokens.values())) == 3  # one token per target: none stands for another
        assert "target: tenant-b" in doc["pending"][1]["plan"] and "CONFIRMATION REQUIRED" in text(first)
        assert not any(_has_todos(u) for u in fleet.values())

        forged = await session.call_tool("fleet", {**args, "confirmation_token": "0" * 32})
        assert forged.is_error and "matches no target's plan" in text(forged)
        other = await session.call_tool("fleet", {**args, "commands": ["*apply"], "confirmation_token": tokens["tenant-b"]})
        assert other.is_error and "matches no target's plan" in text(other)  # bound to the exact commands
        assert not any(_has_todos(u) for u in fleet.values())

        token = tokens["tenant-b"]
        for _ in range(3):  # the target's own plan (its migrations) may need its next token
            call = await session.call_tool("fleet", {**args, "confirmation_token": token})
            doc = call.structured_content
            seen.append(text(call) + str(doc))
            assert [t["name"] for t in doc["targets"]] == ["tenant-b"] and doc["not_chosen"] == ["tenant-a", "down"]
            if not doc.get("pending"):
                break
            assert [p["target"] for p in doc["pending"]] == ["tenant-b"]
            token = doc["pending"][0]["confirmation_token"]
        assert not call.is_error and doc["targets"][0]["results"][0]["facts"]["applied"] == 1, text(call)
        assert [_has_todos(fleet[k]) for k in ("a", "b", "c")] == [False, True, False]

        down = await session.call_tool("fleet", {**args, "confirmation_token": tokens["down"]})
        seen.append(text(down) + str(down.structured_content))
        assert down.is_error and down.structured_content["targets"][0]["exit_code"] != 0

    run(project, [], body)
    assert not any(SECRET in s or BAD_SECRET in s for s in seen)


def test_fleet_writes_over_mcp_with_elicitation_ask_the_person_per_target(fleet, project):
    """A client with MCP elicitation: the person is asked once per target (and again for a target's own plan);
    yes on tenant-a and tenant-c, no on tenant-b: only those two change."""
    import anyio
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client
    from test_integration_mcp import _params, text

    write_targets(project, fleet, broken=False)
    _migration(project)
    asked: list[str] = []

    async def elicit(context, params):
        target = params.message.split("\n", 1)[0].removeprefix("Target ").rstrip(":")
        asked.append(target)
        return types.ElicitResult(action="accept", content={"confirm": target != "tenant-b"})

    async def main():
        import os

        with open(os.devnull, "w") as errlog:
            async with stdio_client(_params(project), errlog=errlog) as (read, write):
                async with ClientSession(read, write, elicitation_callback=elicit) as session:
                    await session.initialize()
                    return await session.call_tool("fleet", {"commands": ["*apply --snapshot no"],
                                                             "targets_file": "targets.yaml"})

    result = anyio.run(main)
    doc = result.structured_content
    assert not result.is_error, text(result)
    assert asked[:3] == ["tenant-a", "tenant-b", "tenant-c"] and "tenant-b" not in asked[3:]
    assert [t["name"] for t in doc["targets"]] == ["tenant-a", "tenant-c"] and doc["declined"] == ["tenant-b"]
    assert [t["results"][0]["facts"]["applied"] for t in doc["targets"]] == [1, 1]
    assert "confirmation_token" not in str(doc)  # the model never holds a token: the person answered
    assert "Not confirmed by the person (nothing ran on them): tenant-b" in text(result)
    assert [_has_todos(fleet[k]) for k in ("a", "b", "c")] == [True, False, True]


def test_the_agent_loop_runs_a_fleet_and_the_person_confirms_each_target(fleet, project, db_url):
    """The model's `fleet` tool (scripted Messages API over a mock transport): *apply on three targets, the
    person at the prompt says yes to tenant-a and no to tenant-b (each question names its target); the
    unreachable target fails without a question; no password reaches the model."""
    from agent_scripted import ScriptedAPI, make_agent, message, result_text, tool

    from sage_agent.agent.tools import FLEET_TOOL, build_tools, command_tool, estimate_tokens, fleet_tool
    from sage_agent.db.env import Target
    from sage_agent.session.answers import PromptAnswers
    from sage_agent.session.machine import Session

    write_targets(project, fleet)
    _migration(project)
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return "y" if question.startswith("[tenant-a]") else "n"

    session = Session(project=project, target=Target("local", db_url, "test"), answers=PromptAnswers(prompt=prompt))
    api = ScriptedAPI([
        message(tool(FLEET_TOOL, {"lines": ["*apply --snapshot no"], "targets_file": "targets.yaml",
                                  "only": ["tenant-a", "tenant-b", "down"]})),
        message(tool(FLEET_TOOL, {"lines": ["*apply"], "targets_file": "../elsewhere.yaml"})),
        message({"type": "text", "text": "tenant-a has the migration; tenant-b was not confirmed."}),
    ])
    agent = make_agent(session, api)
    assert FLEET_TOOL in {t.name for t in agent.tools}
    answer = agent.ask("apply the pending migration on the tenants")
    assert answer.error is None
    body = result_text(api.tool_results(1)[0])
    assert [q.split("]")[0] + "]" for q in asked] == ["[tenant-a]", "[tenant-b]"]
    doc = json.loads(body.split("<untrusted-data", 1)[1].split(">", 1)[1].split("</untrusted-data>", 1)[0])
    assert [(t["name"], t["exit_code"]) for t in doc["targets"]] == [("tenant-a", 0), ("tenant-b", 3), ("down", 1)]
    assert "NOT CONFIRMED by the person" in body and SECRET not in body
    assert [_has_todos(fleet[k]) for k in ("a", "b", "c")] == [True, False, False]
    outside = result_text(api.tool_results(2)[0])
    assert "targets_file must be a file inside the project folder" in outside

    # the tool only comes when it fits: a budget that just holds every command's own tool leaves it out
    tools, overflow = build_tools()
    room = (sum(estimate_tokens(t.to_api()) for t in tools) - estimate_tokens(fleet_tool().to_api())
            + estimate_tokens(command_tool().to_api()))  # the budget keeps room for run_command
    tight, overflow = build_tools(budget=room)
    assert not overflow and FLEET_TOOL not in {t.name for t in tight}
    assert {t.name for t in tight} == {t.name for t in tools} - {FLEET_TOOL}


def test_one_command_at_60_columns_is_the_title_and_names_stay_whole(fleet, project, run_sage):
    """At 60 columns the command column cut '*schema-audit' into '*sche' 'ma-au' 'dit' on every row: one command
    is the table's title, and the targets and the finding names read whole; at 160 columns, the same table."""
    write_targets(project, fleet, broken=False)
    for width in ("60", "160"):
        proc = run_sage("run", "*schema-audit", "--targets", "targets.yaml", cwd=project, env={"COLUMNS": width})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "Fleet: *schema-audit"
        assert "command" not in lines[2]
        assert [line.split("│")[1].strip() for line in lines if line.startswith("│ tenant-")] == \
            ["tenant-a", "tenant-b", "tenant-c"]
        assert "1 info: no_primary_key x1" in proc.stdout
        assert max(len(line) for line in lines) <= int(width)
