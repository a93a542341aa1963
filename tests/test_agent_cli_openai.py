"""`sage ask` headless, and the OpenAI-compatible provider (plain httpx, intercepted with respx)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from agent_scripted import ScriptedAPI, message, text, tool


@pytest.fixture
def ask(monkeypatch, project, capsys):
    import sage_agent.agent.cli as cli

    def run(api: ScriptedAPI | None, *argv: str, env: dict | None = None):
        for key in ("SAGE_PROVIDER", "SAGE_MODEL", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(key, raising=False)
        for key, value in (env if env is not None else {"ANTHROPIC_API_KEY": "sk-ant-test-key-0000"}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(cli, "HTTP_CLIENT_FACTORY", api.client if api else None)
        code = cli.ask_main(list(argv), project=project)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_sage_ask_streams_the_answer(ask, db_url):
    api = ScriptedAPI([message(tool("db_env_check", {})), message(text("Your database is healthy."))])
    code, out, err = ask(api, "is my database ok?", "--db-url", db_url)
    assert code == 0, err
    assert out.strip() == "Your database is healthy."
    assert "db_env_check" in err and "Connected to" in err


def test_sage_ask_json_and_the_model_setting(ask, db_url):
    api = ScriptedAPI([message(text("Fine."))])
    code, out, _ = ask(api, "hello", "--db-url", db_url, "--json",
                       env={"ANTHROPIC_API_KEY": "sk-ant-test-key-0000", "SAGE_MODEL": "claude-opus-5-5"})
    doc = json.loads(out)
    assert code == 0 and doc["answer"] == "Fine." and doc["usage"]["requests"] == 1
    assert api.requests[0]["model"] == "claude-opus-5-5"
    api = ScriptedAPI([message(text("Fine."))])
    ask(api, "hello", "--db-url", db_url, "--json")
    from sage_agent.agent.config import DEFAULT_MODEL

    assert api.requests[0]["model"] == DEFAULT_MODEL


def test_sage_ask_write_without_flags_exits_3_and_changes_nothing(ask, db_url, db, demo_drop):
    db.execute("create table keep (id int)")
    api = ScriptedAPI([message(tool("demo_drop", {"name": "keep", "confirm": "DROP"})),
                       message(text("I need your confirmation: re-run with --confirm DROP."))])
    code, out, err = ask(api, "drop keep", "--db-url", db_url, "--yes")
    assert code == 3
    assert db.execute("select to_regclass('public.keep')").fetchone()[0] is not None
    assert "--confirm DROP" in err


def test_sage_ask_without_a_key_points_at_commands(run_sage, project):
    proc = run_sage("ask", "run the env check please", cwd=project, env={"ANTHROPIC_API_KEY": ""})
    assert proc.returncode == 2
    assert "ANTHROPIC_API_KEY" in proc.stderr and "*env-check" in proc.stderr and "*help" in proc.stderr
    # options before the question reach `sage ask`'s own parser (global --project first)
    proc = run_sage("--project", str(project), "ask", "--json", "--yes", "hi", cwd=project,
                    env={"ANTHROPIC_API_KEY": ""})
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["exit_code"] == 2 and "need a model" in doc["error"]


def test_a_question_without_a_key_gets_real_commands_at_both_doors(run_sage, project, db_url):
    """`sage ask` offered `*query` (an alias nobody finds in *help) for a slow query; the REPL said *explain.
    Both now show one message: the reason with the variable to set, and the commands the question is about."""
    expected = ("Plain-language requests need a model: set ANTHROPIC_API_KEY (or SAGE_PROVIDER=openai with "
                "SAGE_OPENAI_BASE_URL for a self-hosted model). Closest commands: *explain, *optimize, *hotpaths. "
                "Every *command works without one; type *help.")
    proc = run_sage("ask", "why is my query slow?", cwd=project, env={"ANTHROPIC_API_KEY": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {expected}"
    pytest.importorskip("pexpect")
    from terminal import Terminal

    term = Terminal(project, db_url, columns=160)
    try:
        shown = term.type("why is my query slow?")
    finally:
        term.close()
    assert expected in " ".join(shown.split())  # the same words, wrapped at the terminal's width


def test_sage_ask_bad_key_is_explained(ask, db_url):
    from agent_scripted import error

    code, _, err = ask(ScriptedAPI([error(401, "authentication_error", "invalid x-api-key")]), "hi",
                       "--db-url", db_url)
    assert code == 1 and "refused the key (401)" in err


# --- the OpenAI-compatible provider -------------------------------------------------------------
BASE = "http://llm.local:11434/v1"


def chat(content: str | None = None, calls: list[tuple[str, dict]] | None = None, usage: dict | None = None):
    msg: dict = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                              "function": {"name": n, "arguments": json.dumps(a)}} for i, (n, a) in enumerate(calls)]
    return {"id": "x", "object": "chat.completion", "model": "qwen3",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": usage or {"prompt_tokens": 500, "completion_tokens": 20}}


@respx.mock
def test_openai_compatible_provider_runs_tools(make_session, db_url, db, monkeypatch):
    from sage_agent.agent.config import load_config
    from sage_agent.agent.loop import Agent

    db.execute("create table t (id int)")
    monkeypatch.setenv("SAGE_OPENAI_API_KEY", "local-key-123456")
    config = load_config({"SAGE_PROVIDER": "openai", "SAGE_OPENAI_BASE_URL": BASE + "/",
                          "SAGE_OPENAI_MODEL": "qwen3", "SAGE_OPENAI_API_KEY": "local-key-123456"})
    assert config.configured and config.base_url == BASE
    route = respx.post(f"{BASE}/chat/completions").mock(side_effect=[
        httpx.Response(503, json={"error": "loading model"}, headers={"retry-after": "0"}),
        httpx.Response(200, json=chat(None, [("run_sql", {"sql": "select count(*) as n from t"}),
                                             ("run_sql", {"sql": "drop table t"})])),
        httpx.Response(200, json=chat("t is empty.", usage={"prompt_tokens": 900, "completion_tokens": 5,
                                                            "prompt_tokens_details": {"cached_tokens": 600}})),
    ])
    agent = Agent(make_session(db_url, answers=[]), config)
    answer = agent.ask("how many rows in t?")
    assert answer.text == "t is empty." and answer.error is None
    assert route.call_count == 3
    second = json.loads(route.calls[2].request.content)
    assert route.calls[2].request.headers["authorization"] == "Bearer local-key-123456"
    assert second["model"] == "qwen3" and second["messages"][0]["role"] == "system"
    assert {t["function"]["name"] for t in second["tools"]} >= {"run_sql", "db_env_check"}
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_msgs) == 2 and "<untrusted-data" in tool_msgs[0]["content"]
    assert "not read-only" in tool_msgs[1]["content"] or "refused" in tool_msgs[1]["content"].lower()
    assert db.execute("select to_regclass('public.t')").fetchone()[0] is not None
    totals = agent.ledger.totals()
    assert totals["cache_read_input_tokens"] == 600 and totals["cost_usd"] is None  # self-hosted: no price


@respx.mock
def test_openai_provider_errors(make_session, db_url):
    from sage_agent.agent.config import load_config
    from sage_agent.agent.loop import Agent

    config = load_config({"SAGE_PROVIDER": "openai", "SAGE_OPENAI_BASE_URL": BASE, "SAGE_OPENAI_MODEL": "nope",
                          "SAGE_MAX_RETRIES": "0"})
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(404, json={"error": "model not found"}))
    answer = Agent(make_session(db_url, answers=[]), config).ask("hi")
    assert "unknown model 'nope'" in answer.error
    respx.post(f"{BASE}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    answer = Agent(make_session(db_url, answers=[]), config).ask("hi")
    assert "cannot reach" in answer.error and "*command" in answer.error


def test_sage_ask_subprocess_against_a_loopback_api(run_sage, project, db_url):
    """The whole program, over a real socket: `sage ask` -> SDK -> loopback Messages API (SSE) -> tool -> answer."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from agent_scripted import sse

    script = [message(tool("run_sql", {"sql": "select 40 + 2 as answer"})), message(text("The answer is 42."))]
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            payload = sse(script.pop(0))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = run_sage("ask", "what is forty plus two?", "--db-url", db_url, cwd=project,
                        env={"ANTHROPIC_API_KEY": "sk-ant-loopback", "ANTHROPIC_BASE_URL":
                             f"http://127.0.0.1:{server.server_address[1]}"})
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "The answer is 42."
    assert "run_sql" in proc.stderr
    assert '[[42]]' in json.dumps(bodies[1]["messages"][-1]).replace(" ", "")
    assert list((project / ".sage" / "sessions").glob("*.jsonl"))
