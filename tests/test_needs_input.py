"""Ask, don't fail: an operation that needs a decision raises NeedsInput (key, prompt, choices from the database,
default); the REPL asks and runs it again with the answer, headless names the flag. Invalid answers are asked
again; answers survive a re-run and an error of the same command."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from sage_agent.catalog.tasks import parse_task
from sage_agent.db.env import Target
from sage_agent.ops import registry
from sage_agent.ops.registry import Operation
from sage_agent.ops.result import NeedsInput, OpError, OpResult
from sage_agent.session.answers import PromptAnswers
from sage_agent.session.machine import Session


def scripted(project, db_url, replies, prefilled=None):
    """A person at a prompt: `replies` in order; the prompts asked are kept (and prefills, when given)."""
    replies = list(replies)
    asked: list[str] = []

    def prompt(message):
        asked.append(message)
        return replies.pop(0)

    def prompt_prefilled(message, text):
        prefilled.append((message, text))
        return prompt(message)

    answers = PromptAnswers(prompt=prompt, prompt_prefilled=prompt_prefilled if prefilled is not None else None)
    return Session(project=project, target=Target("local", db_url, "test"), answers=answers), asked


def test_load_csv_asks_to_create_the_missing_table(project, db_url, db, make_session):
    (project / "people.csv").write_text("name,age\nada,36\ngrace,45\n")
    headless = make_session(db_url, yes=True).run_line("*load-csv people.csv people")
    assert headless.exit_code == 2
    assert "table public.people does not exist" in headless.error and "pass --create" in headless.error
    assert db.execute("select to_regclass('public.people')").fetchone()[0] is None
    session, asked = scripted(project, db_url, ["maybe", "", "y"])  # bad answer, Enter = the default (yes), load
    outcome = session.run_line("*load-csv people.csv people")
    assert outcome.exit_code == 0, outcome.error
    assert asked[0].startswith("Create public.people with column types inferred from people.csv? (yes/no, default yes)")
    assert asked[1] == asked[0]  # "maybe" was asked again, not the end of the command
    assert asked[2].endswith("[y/N]: ")  # then the plan's own confirmation
    assert db.execute("select name, age from public.people order by age").fetchall() == [("ada", 36), ("grace", 45)]


def test_declining_the_decision_changes_nothing(project, db_url, db):
    (project / "people.csv").write_text("name\nada\n")
    session, _ = scripted(project, db_url, ["no"])
    outcome = session.run_line("*load-csv people.csv people")
    assert outcome.exit_code == 2 and "pass --create" in outcome.error
    assert db.execute("select to_regclass('public.people')").fetchone()[0] is None


NOTES = """create table public.notes (id bigint generated always as identity primary key,
  author_id uuid not null references auth.users (id), editor_id uuid, body text not null);"""


def test_policy_apply_offers_the_tables_uuid_columns(project, db_url, db, make_session):
    db.execute(NOTES)
    headless = make_session(db_url, yes=True).run_line("*policy-apply notes")
    assert headless.exit_code == 2
    assert "has no owner column 'user_id'" in headless.error
    assert "uuid columns: author_id, editor_id; pass --owner-column NAME" in headless.error
    session, asked = scripted(project, db_url, ["body", "author_id"] + ["y"] * 4)
    outcome = session.run_line("*policy-apply notes")
    assert outcome.exit_code == 0, outcome.error
    assert asked[0] == "Owner column of public.notes (a uuid column) (author_id/editor_id, default author_id): "
    assert asked[1] == asked[0]  # "body" is not one of them: asked again
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] > 0
    assert "author_id" in db.execute("select string_agg(qual, ' ') from pg_policies where tablename = 'notes'"
                                     ).fetchone()[0]


def test_an_invalid_snapshot_name_is_asked_again(project, db_url, db, make_session):
    headless = make_session(db_url).run_line("*snapshot '*v1'")
    assert headless.exit_code == 2 and "invalid snapshot name '*v1'" in headless.error
    session, asked = scripted(project, db_url, ["v1"])
    outcome = session.run_line("*snapshot '*v1'")  # e.g. a `*` that Tab completion put there
    assert outcome.exit_code == 0, outcome.error
    assert asked == ["Snapshot name: "]
    assert (project / "supabase" / "snapshots" / "v1.sql").is_file()


def test_rollback_to_an_unknown_snapshot_offers_the_ones_that_exist(project, db_url, db, make_session):
    assert make_session(db_url).run_line("*snapshot base").exit_code == 0
    db.execute("create table public.extra (id int)")  # something to roll back (else: already at base, nothing asked)
    session, asked = scripted(project, db_url, ["", "no"])  # Enter: the newest snapshot; then refuse the word
    outcome = session.run_line("*rollback nope")
    assert asked[0] == "Snapshot (base, default base): "
    assert outcome.exit_code == 3  # it went on with `base` to the typed confirmation, which was refused


class TwoAsks(BaseModel):
    mode: str | None = None


def _demo_task(tmp_path: Path):
    path = tmp_path / "demo-ask.md"
    path.write_text("# Task: Demo\n\n## Purpose\nAsk things.\n\n## Activation\n`*demo-ask`\n\n## Elicitation\n"
                    "- [ ] Mode (`mode`): _____ (optional)\n\n## Execution\nx\n\n## Error Handling\nx\n\n## Output\nx\n")
    return parse_task(path)


def test_answers_survive_a_rerun_and_an_error(project, db_url, tmp_path):
    """The operation asks two questions of its own, then needs `mode`: the re-run replays both answers; a failure
    keeps every answer, pre-filled when the same command runs again."""
    runs = []

    def run(inputs: TwoAsks, ctx) -> OpResult:
        first = ctx.ask("Entity name")
        second = ctx.ask("Attributes")
        runs.append((first, second, inputs.mode))
        if inputs.mode is None:
            raise NeedsInput("mode", "Mode", choices=["a", "b"], reason="which mode?")
        if inputs.mode == "b":
            raise OpError("b is broken")
        return OpResult(operation="demo-ask", summary=f"{first} {second} {inputs.mode}")

    task = _demo_task(tmp_path)
    with registry.registered(Operation("demo-ask", run, TwoAsks, "read")):
        prefilled: list = []
        session, asked = scripted(project, db_url, ["todos", "title:text", "b", "todos", "title:text", "a"],
                                  prefilled)
        failed = session.run_task(task, {})
        assert failed.exit_code == 1 and "b is broken" in failed.error
        assert asked == ["Entity name: ", "Attributes: ", "Mode (a/b): "]  # asked once each, replayed on the re-run
        assert runs == [("todos", "title:text", None), ("todos", "title:text", "b")]
        done = session.run_task(task, {})
        assert done.exit_code == 0 and done.result.summary == "todos title:text a"
        assert prefilled == [("Entity name: ", "todos"), ("Attributes: ", "title:text"), ("Mode (a/b): ", "b")]


def test_headless_needs_input_names_the_flag(project, db_url, tmp_path, make_session):
    def run(inputs: TwoAsks, ctx) -> OpResult:
        raise NeedsInput("mode", "Mode", choices=["a", "b"], reason="this table has two candidates")

    task = _demo_task(tmp_path)
    with registry.registered(Operation("demo-ask", run, TwoAsks, "read")):
        outcome = make_session(db_url).run_task(task, {"mode": None})
    assert outcome.exit_code == 2
    assert outcome.error == "this table has two candidates\n  next: pass --mode a|b"


def test_the_repl_asks_in_a_real_terminal(project, db_url, db):
    pytest.importorskip("pexpect")
    from terminal import Terminal

    (project / "people.csv").write_text("name,age\nada,36\n")
    term = Terminal(project, db_url, columns=60)
    try:
        shown = term.type("*load-csv people.csv people", then="default yes):")  # the question wraps at 60 columns
        assert "table public.people does not exist" in shown
        shown = term.type("", then="[y/N]:")  # Enter keeps the default: create it
        assert "create table" in shown.lower()
        shown = term.type("y")
        assert "people" in shown
    finally:
        term.close()
    assert db.execute("select name from public.people").fetchall() == [("ada",)]
    history = (project / ".sage" / "history").read_text()
    assert "*load-csv people.csv people" in history and "\n+y\n" not in history
