"""One argument grammar for every command: positionals take their documented values, `--set` works for every
input, free SQL is quoted or after `--` (with a hint when it is not), and `*help CMD` shows the flag spelling."""

import pytest

from sage_agent.catalog.tasks import load_tasks
from sage_agent.session.parse import CommandLineError, bind_values, flag_usage, split_command


def task(task_id):
    return load_tasks()[task_id]


def bind(task_id, line):
    return bind_values(task(task_id), split_command(line))


def test_optional_positionals_take_their_documented_values():
    assert bind("db-test-suite", "*test-suite generate") == {"generate": "yes"}
    assert bind("db-snapshot", "*snapshot with-data") == {"mode": "with-data"}
    assert bind("db-snapshot", "*snapshot v1 with-data") == {"name": "v1", "mode": "with-data"}
    assert bind("db-snapshot", "*snapshot v1") == {"name": "v1"}
    assert bind("db-seed", "*seed truncate-first") == {"mode": "truncate-first"}
    assert bind("db-backup", "*backup plain") == {"format": "plain"}
    # a required positional is never skipped: the value is its own
    assert bind("db-repair", "*repair 20240101000000 applied") == {"version": "20240101000000", "status": "applied"}


def test_a_word_that_is_not_a_documented_value_is_still_refused_by_its_input(make_session, db_url):
    outcome = make_session(db_url).run_line("*test-suite later")
    assert outcome.exit_code == 2
    assert "generate: answer yes or no (got 'later')" in outcome.error


def test_set_works_for_every_input_in_the_line():
    assert bind("db-snapshot", "*snapshot --set name=v2 --set mode=with-data") == {"name": "v2", "mode": "with-data"}
    assert bind("db-policy-apply", "*policy-apply todos --set owner_column=author_id") == {
        "table": "todos", "owner_column": "author_id"}
    with pytest.raises(CommandLineError, match="has no input nope"):
        bind("db-snapshot", "*snapshot --set nope=1")
    with pytest.raises(CommandLineError, match="needs key=value"):
        bind("db-snapshot", "*snapshot --set name")


def test_set_gives_template_variables_to_create_doc(make_session, db_url, project):
    assert bind("create-doc", "*create-doc db-runbook --set operation=vacuum") == {
        "template": "db-runbook", "vars": "operation=vacuum"}
    session = make_session(db_url)
    outcome = session.run_line("*create-doc migration-plan", {"nope": "x"})
    assert outcome.exit_code == 2
    assert "has no variable(s) nope" in outcome.error  # the template's own check, not "has no input"


def test_free_sql_after_double_dash_keeps_quotes_and_spaces():
    assert bind("db-run-sql", "*run-sql --write -- update t set a = 'x  y' where b = \"c\"") == {
        "write": "yes", "sql": "update t set a = 'x  y' where b = \"c\""}
    assert bind("db-run-sql", "*run-sql -- select 1") == {"sql": "select 1"}
    # a SQL comment is not a separator: bare SQL is the whole rest of the line
    assert bind("db-run-sql", "*run-sql select 1 -- one") == {"sql": "select 1 -- one"}
    assert bind("db-run-sql", "*run-sql 'select 1' --limit 5") == {"sql": "select 1", "limit": "5"}


def test_bare_sql_with_options_gets_a_hint():
    with pytest.raises(CommandLineError) as exc:
        bind("db-run-sql", "*run-sql insert into t values ('a') --write")
    assert "too many arguments for *run-sql" in str(exc.value)
    assert "*run-sql --option -- select ..." in str(exc.value)
    with pytest.raises(CommandLineError, match="put it last after `--`"):
        bind("db-explain", "*explain select * from t where a = 1 --analize")


def test_help_shows_the_exact_flag_spelling(make_session, db_url):
    outcome = make_session(db_url).run_line("*help policy-apply")
    assert outcome.exit_code == 0
    table = outcome.result.tables[0]
    assert table.columns[:2] == ["key", "how to pass"]
    how = {row[0]: row[1] for row in table.rows}
    assert how["table"] == "1st argument (TABLE) or --table TABLE"
    assert how["mode"] == "2nd argument (MODE) or --mode kiss|granular"
    assert how["owner_column"] == "--owner-column OWNER_COLUMN"
    assert any("--set KEY=VALUE" in n for n in outcome.result.notes)
    how = {r[0]: r[1] for r in make_session(db_url).run_line("*help test-suite").result.tables[0].rows}
    assert how["generate"] == "1st argument (generate) or --generate (or --generate no)"
    notes = make_session(db_url).run_line("*help run-sql").result.notes
    assert any("after `--`" in n for n in notes)


def test_every_flag_spelling_reads_back():
    """What *help prints for each input is what the parser accepts, for every command."""
    for t in load_tasks().values():
        for spec in t.user_inputs():
            how = flag_usage(spec)
            flag = how.split()[0]
            value = "yes" if spec.kind == "bool" else (spec.choices[0] if spec.choices else "x")
            line = f"*{t.command} {flag}" + ("" if spec.kind == "bool" else f" {value}")
            assert bind_values(t, split_command(line)) == {spec.key: value}, line


def test_plain_language_without_a_model_suggests_by_intent():
    from sage_agent.frontends.repl import suggest_commands

    assert suggest_commands("why is my query slow?") == ["*explain", "*optimize", "*hotpaths"]
    assert suggest_commands("what is blocking my update")[0] == "*locks"
    assert "*query" not in suggest_commands("which query is slow")
    assert suggest_commands("zzzz qqqq") == []
