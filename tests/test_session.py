"""The session state machine with scripted answers: elicitation, confirmation, exit codes."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from sage_agent.catalog.tasks import TaskSpec, parse_task
from sage_agent.ops.registry import Operation
from sage_agent.ops.result import OpResult
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK, EXIT_USAGE, State


class DemoInput(BaseModel):
    name: str
    mode: str = "schema-only"
    snapshot: bool = True


def demo_task(tmp_path: Path) -> TaskSpec:
    path = tmp_path / "demo-drop.md"
    path.write_text("""# Task: Demo

## Purpose
Drop things, for tests.

## Activation
`*demo-drop {name} [mode]`

## Elicitation
- [ ] Table name (`name`): _____ (required)
- [ ] Mode (`mode`): (schema-only/with-data - default schema-only)
- [ ] Snapshot first (`snapshot`): (yes/no - default yes)
- [ ] Type "DROP" to confirm (`confirm`): _____

## Execution
x

## Error Handling
x

## Output
x
""")
    return parse_task(path)


def drop_op(db_url):
    import psycopg
    from psycopg import sql

    def run(inputs: DemoInput, ctx) -> OpResult:
        ctx.confirm_destructive(f"drop table {inputs.name}", plan=f"DROP TABLE {inputs.name};")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier(inputs.name)))
        return OpResult(operation="demo-drop", summary=f"dropped {inputs.name}", facts=inputs.model_dump())

    return Operation("demo-drop", run, DemoInput, "destructive")


@pytest.fixture
def with_demo(monkeypatch, db_url, tmp_path):
    from sage_agent.ops import registry

    with registry.registered(drop_op(db_url)):
        yield demo_task(tmp_path)


def table_exists(db, name: str) -> bool:
    return db.execute("select to_regclass(%s) is not null", (f"public.{name}",)).fetchone()[0]


def test_missing_input_is_elicited_then_typed_word_confirms(make_session, db_url, db, with_demo):
    db.execute("create table victims (id int)")
    session = make_session(db_url, answers=["victims", "DROP"])
    outcome = session.run_task(with_demo, {})
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert outcome.result.facts == {"name": "victims", "mode": "schema-only", "snapshot": True}
    assert not table_exists(db, "victims")
    assert session.history == [State.ELICITING, State.EXECUTING, State.CONFIRMING, State.EXECUTING,
                               State.REPORTING, State.IDLE]


def test_wrong_typed_word_changes_nothing(make_session, db_url, db, with_demo):
    db.execute("create table keepme (id int)")
    session = make_session(db_url, answers=["drop"])  # lower case is not the word
    outcome = session.run_task(with_demo, {"name": "keepme"})
    assert outcome.exit_code == EXIT_CONFIRM
    assert outcome.result.status == "cancelled"
    assert table_exists(db, "keepme")


def test_headless_missing_input_exits_2_naming_the_flag(make_session, db_url, with_demo):
    outcome = make_session(db_url).run_task(with_demo, {})
    assert outcome.exit_code == EXIT_USAGE
    assert "'name'" in outcome.error and "--set name=VALUE" in outcome.error


def test_headless_yes_never_satisfies_a_typed_word(make_session, db_url, db, with_demo):
    db.execute("create table keep2 (id int)")
    outcome = make_session(db_url, yes=True).run_task(with_demo, {"name": "keep2"})
    assert outcome.exit_code == EXIT_CONFIRM
    assert "--confirm DROP" in outcome.error
    assert table_exists(db, "keep2")
    outcome = make_session(db_url, confirm=("DROP",)).run_task(with_demo, {"name": "keep2"})
    assert outcome.exit_code == EXIT_OK
    assert not table_exists(db, "keep2")


def test_production_asks_its_own_confirmation(make_session, db_url, db, with_demo):
    db.execute("create table prodtab (id int)")
    outcome = make_session(db_url, confirm=("DROP",), env="prod").run_task(with_demo, {"name": "prodtab"})
    assert outcome.exit_code == EXIT_CONFIRM and "PRODUCTION" in outcome.error
    assert table_exists(db, "prodtab")
    outcome = make_session(db_url, confirm=("DROP", "PRODUCTION"), env="prod").run_task(with_demo, {"name": "prodtab"})
    assert outcome.exit_code == EXIT_OK


def test_invalid_choice_is_refused_before_anything_runs(make_session, db_url, db, with_demo):
    db.execute("create table keep3 (id int)")
    outcome = make_session(db_url, confirm=("DROP",)).run_task(with_demo, {"name": "keep3", "mode": "everything"})
    assert outcome.exit_code == EXIT_USAGE and "schema-only, with-data" in outcome.error
    assert table_exists(db, "keep3")


def test_interactive_bad_choice_is_asked_again(make_session, db_url, db, with_demo, tmp_path):
    db.execute("create table t4 (id int)")
    task = with_demo
    # make mode required for this run by asking through the elicitation path
    session = make_session(db_url, answers=["t4", "DROP"])
    outcome = session.run_task(task, {"mode": "with-data"})
    assert outcome.exit_code == EXIT_OK and outcome.result.facts["mode"] == "with-data"


def test_unknown_command_suggests_the_closest(make_session, db_url):
    outcome = make_session(db_url).run_line("*env-chek")
    assert outcome.exit_code == EXIT_USAGE
    assert "*env-check" in outcome.error


def test_command_line_errors(make_session, db_url):
    session = make_session(db_url)
    assert session.run_line("*help a b c").exit_code == EXIT_USAGE
    assert "no option --nope" in session.run_line("*help --nope").error
    assert session.run_line('*help "unterminated').exit_code == EXIT_USAGE


def test_single_argument_commands_take_the_rest_of_the_line(make_session, db_url, db):
    db.execute("create table t (id int, name text)")
    db.execute("insert into t values (1, 'a b')")
    outcome = make_session(db_url).run_line("*run-sql select name from t where name = 'a b'")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result.tables[0].rows == [["a b"]]
    # with options present, the usual parsing applies and extra words are an error
    assert make_session(db_url).run_line("*help a b --command c").exit_code == 2


def test_bool_flags_accept_a_following_yes_or_no(make_session, db_url):
    from sage_agent.session.parse import bind_values, split_command

    task = make_session(db_url).resolve("bootstrap")
    assert bind_values(task, split_command("*bootstrap --use-cli no")) == {"use_cli": "no"}
    assert bind_values(task, split_command("*bootstrap --use-cli")) == {"use_cli": "yes"}
    assert bind_values(task, split_command("*bootstrap --use-cli=no --example-migration yes")) == {
        "use_cli": "no", "example_migration": "yes"}


def test_production_wrong_word_in_the_repl_changes_nothing(make_session, db_url, db, with_demo):
    """A person who does not type PRODUCTION exactly stops the run; the operation never starts."""
    db.execute("create table prod_keep (id int)")
    session = make_session(db_url, answers=["production", "DROP"], env="prod")
    outcome = session.run_task(with_demo, {"name": "prod_keep"})
    assert outcome.exit_code == EXIT_CONFIRM and "PRODUCTION" in outcome.error
    assert table_exists(db, "prod_keep")


def test_production_word_comes_first_for_any_operation_that_confirms(make_session, db_url, db):
    """*run-sql is registered as read, yet writing on production asks for PRODUCTION before its own question."""
    db.execute("create table pw (id int)")
    outcome = make_session(db_url, yes=True, env="prod").run_line("*run-sql \"insert into pw values (1)\" --write")
    assert outcome.exit_code == EXIT_CONFIRM and "PRODUCTION" in outcome.error
    assert db.execute("select count(*) from pw").fetchone()[0] == 0
    outcome = make_session(db_url, yes=True, confirm=("PRODUCTION",), env="prod").run_line(
        "*run-sql \"insert into pw values (1)\" --write")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert db.execute("select count(*) from pw").fetchone()[0] == 1
