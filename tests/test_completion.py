"""Completion like pgcli: per prompt from its input (choices, snapshot names, tables, columns, SQL keywords), from
a catalog of the real database read once and refreshed after DDL; never the command list inside a prompt."""

import pytest
from prompt_toolkit.document import Document

from sage_agent.catalog.tasks import load_tasks
from sage_agent.frontends.completion import CatalogCache, CatalogNames, InputCompleters, read_catalog
from sage_agent.frontends.repl import CommandCompleter


def words(completer, text):
    return [c.text for c in completer.get_completions(Document(text), None)]


@pytest.fixture
def line(project, db_url, db):
    db.execute("create table public.people (id bigint primary key, full_name text, owner_id uuid);"
               "create schema app; create table app.orders (id int, total numeric);")
    snaps = project / "supabase" / "snapshots"
    snaps.mkdir(parents=True)
    for name in ("base", "before_x"):
        (snaps / f"{name}.json").write_text("{}")
    migs = project / "supabase" / "migrations"
    migs.mkdir(parents=True)
    (migs / "20261201000000_add_todos.sql").write_text("select 1;")
    cache = CatalogCache(lambda: db_url)
    return CommandCompleter(sorted(__import__("sage_agent.catalog.tasks", fromlist=["x"]).command_index(load_tasks())),
                            InputCompleters(project, cache)), cache


def test_catalog_from_the_real_database(db_url, db):
    db.execute("create table public.people (id int, full_name text)")
    names = read_catalog(db_url)
    assert names.tables["public.people"] == ["id", "full_name"]
    assert "auth.users" in names.tables and "public" in names.schemas and "auth.uid" in names.functions
    assert not any(t.startswith(("pg_catalog.", "information_schema.")) for t in names.tables)


def test_sql_completes_tables_columns_keywords_and_functions(line):
    completer, _ = line
    assert words(completer, "*run-sql select * from peo") == ["people"]
    assert words(completer, "*run-sql select people.fu") == ["full_name"]
    assert words(completer, "*run-sql select * from app.") == ["orders"]
    assert words(completer, "*run-sql SEL") == ["SELECT"]
    assert "uid" in words(completer, "*run-sql select auth.u")
    assert "people.csv" not in words(completer, "*run-sql select * from peo")  # not a file path
    assert words(completer, "*explain --analyze -- select * from peo") == ["people"]


def at(completer, before, after=""):
    """Completions with the cursor between `before` and `after` (a person who moved back into the line)."""
    return [c.text for c in completer.get_completions(Document(before + after, len(before)), None)]


def test_sql_completes_by_context(line):
    """pgcli's rule: after FROM/JOIN/UPDATE/INTO tables, after SELECT/WHERE/ON/SET/BY the columns of the tables the
    statement names (aliases resolved), after `alias.` its columns, after `schema.` that schema's objects."""
    completer, _ = line
    tables = words(completer, "*run-sql select * from ")
    assert "people" in tables and "app.orders" in tables and "auth.users" in tables  # public bare, others qualified
    assert "orders" not in tables and "public.people" not in tables and "full_name" not in tables
    assert "select" not in tables and "app" in tables  # a schema to qualify with; no keywords
    assert words(completer, "*run-sql select * from people p join app.or") == ["orders"]
    assert words(completer, "*run-sql select * from people, ") == tables  # a second table of the FROM list
    # the statement's columns only, not every column of the catalog
    where = words(completer, "*run-sql select * from app.orders o where ")
    assert where[:2] == ["id", "total"] and "full_name" not in where and "select" not in where
    assert words(completer, "*run-sql select * from people p where p.") == ["id", "full_name", "owner_id"]
    assert words(completer, "*run-sql select * from people p join app.orders o on o.") == ["id", "total"]
    on = words(completer, "*run-sql select * from people p join app.orders o on p.id = ")
    assert on[:4] == ["id", "full_name", "owner_id", "total"]
    assert at(completer, "*run-sql select o.", " from app.orders o") == ["id", "total"]  # FROM after the cursor
    assert at(completer, "*run-sql select fu", " from people") == ["full_name", "full", "function"]
    assert "total" not in at(completer, "*run-sql select ", " from people")
    update = words(completer, "*run-sql update app.orders set t")
    assert update[0] == "total" and "id" not in update and "total" not in update[1:]
    assert words(completer, "*run-sql select * from people order by ow") == ["owner_id"]
    assert words(completer, '*run-sql select * from "people" as "P" where "P".f') == ["full_name"]
    # right after a table name: the next clause's keywords; inside a string literal: nothing
    assert words(completer, "*run-sql select * from people wh") == ["where", "when"]
    assert words(completer, "*run-sql select * from people where full_name = 'fu") == []
    # a semicolon ends the statement: the second one's tables only
    assert "id" not in words(completer, "*run-sql select id from people; select * from app.orders where ow")
    assert words(completer, "*run-sql select * from app.orders; select * from people where ow") == ["owner_id"]


def test_arguments_and_flags_complete_by_what_they_hold(line):
    completer, _ = line
    assert words(completer, "*rollback ") == ["before_x", "base"]  # snapshot names, newest name order
    assert words(completer, "*rollback b") == ["before_x", "base"]
    assert words(completer, "*policy-apply peo") == ["people"]
    assert words(completer, "*policy-apply people k") == ["kiss"]
    assert words(completer, "*policy-apply people --owner") == ["--owner-column"]
    assert "owner_id" in words(completer, "*policy-apply people --owner-column ow")
    assert words(completer, "*dry-run 2026") == ["20261201000000_add_todos.sql"]
    assert words(completer, "*dry-run add") == ["add_todos"]
    assert words(completer, "*snapshot v1 w") == ["with-data"]
    assert "--set" in words(completer, "*snapshot --s")
    assert words(completer, "*ch") == ["*check-env", "*checklist"] or all(
        w.startswith("*ch") for w in words(completer, "*ch"))


def test_prompt_completers_never_offer_commands(line, project):
    completer, cache = line
    inputs = completer.inputs
    tasks = load_tasks()
    rollback = tasks["db-rollback"]
    snap = inputs.for_input(rollback, rollback.input("snapshot"))
    assert words(snap, "") == ["before_x", "base"]
    assert not any(w.startswith("*") for w in words(snap, ""))
    policy = tasks["db-policy-apply"]
    assert words(inputs.for_input(policy, policy.input("mode")), "") == ["kiss", "granular"]
    from sage_agent.catalog.tasks import InputSpec

    yes_no = InputSpec(key="create", label="Create?", kind="bool", required=False, default="yes", line=0)
    assert words(inputs.for_input(tasks["db-load-csv"], yes_no), "") == ["yes", "no"]
    needs = InputSpec(key="owner_column", label="Owner", kind="choice", required=False, choices=["a_id", "b_id"],
                      line=0)
    assert words(inputs.for_input(policy, needs), "b") == ["b_id"]


def test_the_cache_is_read_once_and_refreshed_after_invalidate():
    reads = []

    def reader(url):
        reads.append(url)
        return CatalogNames(tables={f"public.t{len(reads)}": []})

    cache = CatalogCache(lambda: "postgresql://x", reader=reader)
    assert cache.get().table_names() == ["public.t1", "t1"]
    assert cache.get().table_names() == ["public.t1", "t1"]
    cache.invalidate()
    assert cache.get().table_names() == ["public.t2", "t2"]
    assert len(reads) == 2


def test_an_unreachable_database_completes_nothing_and_never_raises():
    cache = CatalogCache(lambda: "postgresql://nobody@127.0.0.1:1/none")
    assert cache.get().table_names() == []


def test_tab_in_a_real_terminal(project, db_url, db):
    pytest.importorskip("pexpect")
    from terminal import Terminal

    db.execute("create table public.people (id int, full_name text); insert into people values (7, 'Ada')")
    term = Terminal(project, db_url, columns=60)
    try:
        term.tab("*run-sql select full_name from peo", "people")  # Tab completes the table
        shown = term.type("")
        assert "Ada" in shown, shown
        term.type("*run-sql --write -- create table newer (id int)", then="[y/N]:")
        term.type("y")
        term.tab("*run-sql select count(*) from new", "newer")  # the catalog was refreshed after the DDL
        shown = term.type("")
        assert "error" not in shown.lower() and "1 row(s)" in shown
        # in context: after JOIN the tables, after `alias.` the columns of the table the alias names
        term.tab("*run-sql select * from newer n join peo", "people")
        term.child.send(" p on p.i\t")
        term.child.expect_exact("d")
        term.child.send(" = n.i\t")
        term.child.expect_exact("d")
        shown = term.type("")
        assert "error" not in shown.lower() and "0 row(s)" in shown, shown  # p.id = n.id: both completed
        term.tab("*run-sql select * from people p where p.ful", "p.full_name")
        shown = term.type(" = 'Ada'")
        assert "Ada" in shown and "error" not in shown.lower(), shown
        # a question: Tab offers the input's values (here yes/no), never the command list
        (project / "p.csv").write_text("a\n1\n")
        term.type("*load-csv p.csv pp", then="default yes):")  # the question wraps at 60 columns
        term.child.send("\t")
        shown = term.type("", then="[y/N]:")
        answer = "\n".join(line for line in shown.split("default yes):")[-1].splitlines()
                           if "(Ctrl-C cancels)" not in line)  # the spinner of a slow machine names the command
        assert "*help" not in shown and "*" not in answer
        term.type("no")
    finally:
        term.close()
    history = (project / ".sage" / "history").read_text()
    assert "+*run-sql select full_name from people\n" in history
    assert "+*run-sql select count(*) from newer\n" in history
    assert "+*run-sql select * from newer n join people p on p.id = n.id\n" in history
    assert "+*run-sql select * from people p where p.full_name = 'Ada'\n" in history
