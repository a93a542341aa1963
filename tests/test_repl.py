"""The REPL driven through prompt-toolkit's pipe input, against a real database."""

import io

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from sage_agent.db.env import Target
from sage_agent.frontends.render import make_console
from sage_agent.frontends.repl import CommandCompleter, Repl


@pytest.fixture
def repl_factory(project):
    made = []

    def make(url: str, env: str = "local"):
        pipe_cm = create_pipe_input()
        pipe = pipe_cm.__enter__()
        made.append(pipe_cm)
        out = io.StringIO()
        console = make_console(width=160)
        console.file = out
        repl = Repl(project, Target(env, url, "test"), input=pipe, output=DummyOutput(), console=console,
                    history_file=project / ".sage" / "history")
        return repl, pipe, out

    yield make
    for cm in made:
        cm.__exit__(None, None, None)


def test_greets_runs_commands_and_exits(repl_factory, db_url):
    repl, pipe, out = repl_factory(db_url)
    pipe.send_text("*help\r*env-check\r*exit\r")
    assert repl.run() == 0
    text = out.getvalue()
    assert text.startswith("🗄️ Hello, I'm DB Sage")
    assert "*help" in text.splitlines()[0]
    assert "Getting started" in text and "*env-check" in text
    assert "Connected to" in text and "PostgreSQL 18" in text
    assert "signing off" in text
    assert [o.task_id for o in repl.outcomes] == ["help", "db-env-check", "exit"]


def test_elicits_missing_input_one_at_a_time(repl_factory, db_url):
    repl, pipe, out = repl_factory(db_url)
    # *help with an option that needs a value is refused; then a free-text line without a model
    pipe.send_text("*help --command\rhow do I check my env\r*exit\r")
    repl.run()
    text = out.getvalue()
    assert "--command needs a value" in text
    assert "set ANTHROPIC_API_KEY" in text and "*env-check" in text


def test_history_persists_and_multiline_input(repl_factory, db_url, project):
    repl, pipe, out = repl_factory(db_url)
    pipe.send_text("*help \\\rbootstrap\r*exit\r")
    repl.run()
    assert "use_cli" in out.getvalue()
    history = (project / ".sage" / "history").read_text()
    assert "*exit" in history


def test_prod_toolbar_stands_out(repl_factory, db_url):
    repl, _, _ = repl_factory(db_url, env="prod")
    html = repl.toolbar().value
    assert "ansired" in html and "PROD" in html
    assert "postgres:***@" in html
    local, _, _ = repl_factory(db_url)
    assert "ansired" not in local.toolbar().value


def test_completion_of_commands_and_aliases():
    from prompt_toolkit.document import Document

    completer = CommandCompleter(["env-check", "check-env", "help"])
    words = [c.text for c in completer.get_completions(Document("*ch"), None)]
    assert words == ["*check-env"]
    assert {c.text for c in completer.get_completions(Document(""), None)} == {"*env-check", "*check-env", "*help"}


def test_typed_confirmation_in_the_repl(repl_factory, db_url, db, monkeypatch, tmp_path):
    """A destructive op asks the person for its typed word; a wrong word changes nothing."""
    from tests.test_session import demo_task, drop_op
    from sage_agent.ops import registry
    from sage_agent.catalog import tasks as tasks_mod

    task = demo_task(tmp_path)
    with registry.registered(drop_op(db_url)):
        real = tasks_mod.load_tasks()
        monkeypatch.setattr("sage_agent.catalog.tasks.load_tasks", lambda directory=None: {**real, "demo-drop": task})
        db.execute("create table r1 (id int)")
        repl, pipe, out = repl_factory(db_url)
        pipe.send_text("*demo-drop r1\rdrop\r*demo-drop r1\rDROP\r*exit\r")
        repl.run()
        text = out.getvalue()
        assert "DROP TABLE r1;" in text  # the plan is shown before the question
        assert "not confirmed" in text
        assert db.execute("select to_regclass('public.r1')").fetchone()[0] is None
        assert [o.exit_code for o in repl.outcomes] == [3, 0, 0]
