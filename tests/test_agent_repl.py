"""The real REPL (prompt-toolkit pipe input) with a model configured: plain language goes to the agent, and
the person -- not the model -- answers the typed confirmation at the prompt."""

from __future__ import annotations

import io

import pytest
from agent_scripted import LoopbackAPI, message, text, tool
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from sage_agent.db.env import Target
from sage_agent.frontends.render import make_console


@pytest.mark.parametrize("typed,dropped", [("DROP", True), ("yes", False)])
def test_repl_agent_asks_the_person_for_the_word(project, db_url, db, demo_drop, monkeypatch, typed, dropped):
    from sage_agent.agent.loop import set_agent_factory, set_current_agent
    from sage_agent.frontends.repl import Repl

    db.execute("create table r2 (id int)")
    script = [message(text("Dropping it."), tool("demo_drop", {"name": "r2", "confirm": "DROP"})),
              message(text("Finished."))]
    with LoopbackAPI(script) as api, create_pipe_input() as pipe:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-repl-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        monkeypatch.delenv("SAGE_PROVIDER", raising=False)
        out = io.StringIO()
        console = make_console(width=160)
        console.file = out
        repl = Repl(project, Target("local", db_url, "test"), input=pipe, output=DummyOutput(), console=console)
        try:
            pipe.send_text(f"please drop the r2 table\r{typed}\r*usage\r*exit\r")
            assert repl.run() == 0
        finally:
            set_agent_factory(None)
            set_current_agent(None)
    shown = out.getvalue()
    assert "Dropping it." in shown and "Finished." in shown and "demo_drop" in shown
    assert "DROP TABLE r2;" in shown  # the plan, shown to the person before the question
    assert (db.execute("select to_regclass('public.r2')").fetchone()[0] is None) is dropped
    assert "2 model request(s)" in shown  # *usage
    assert len(api.bodies) == 2
