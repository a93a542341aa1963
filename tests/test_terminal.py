"""The REPL in a real pseudo-terminal at 60 and 160 columns: tables that fit, a spinner on slow statements,
and a history of commands only. Plus the renderer at both widths and piped."""

import io
import os
import time
from pathlib import Path

import pytest

from sage_agent.frontends.render import make_console, render_text
from sage_agent.ops.result import Finding, OpResult, Table

pexpect = pytest.importorskip("pexpect")  # installed with the test extras (pyproject [test])
from terminal import PROMPT_START, UP, Terminal, plain  # noqa: E402


@pytest.fixture
def migrations_project(project):
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20261201000000_add_todos.sql").write_text("create table public.todos (id int primary key);\n")
    (folder / "20261201000100_add_tags.sql").write_text("alter table public.todos add column tags text[];\n")
    return project


def test_narrow_terminal_spinner_and_history(migrations_project, db_url, db):
    term = Terminal(migrations_project, db_url, columns=60)
    try:
        shown = term.type("*migrations")
        assert "-[ RECORD 1 ]" in shown  # does not fit in 60 columns: vertical records, nothing cut
        assert "local      | 20261201000000" in shown and "name       | add_todos" in shown
        assert "20261201..." not in shown and "…" not in shown
        record = shown[shown.index("-[ RECORD 1 ]"):]
        assert [x for x in record.splitlines() if x != x.rstrip()] == [], record  # no padding after the text
        shown = term.type("*run-sql select pg_sleep(2)")
        assert "*run-sql" in shown and "s  (Ctrl-C cancels)" in shown  # the spinner with the elapsed time
        assert "1 row(s)" in shown
        # a yes/no question: answered; then Up inside the next question recalls nothing (no answer history)
        term.type("*run-sql --write -- create table a1 (id int)", then="[y/N]:")
        term.type("y")
        term.type("*run-sql --write -- create table a2 (id int)", then="[y/N]:")
        term.child.send(UP)
        term.type("y")
    finally:
        term.close()
    assert db.execute("select to_regclass('public.a2') is not null").fetchone()[0]  # Up added nothing to "y"
    history = (migrations_project / ".sage" / "history").read_text()
    commands = [line[1:] for line in history.splitlines() if line.startswith("+")]
    assert commands == ["*migrations", "*run-sql select pg_sleep(2)", "*run-sql --write -- create table a1 (id int)",
                        "*run-sql --write -- create table a2 (id int)", "*exit"]


def test_wide_terminal_shows_the_table(migrations_project, db_url):
    term = Terminal(migrations_project, db_url, columns=160)
    try:
        shown = term.type("*migrations")
    finally:
        term.close()
    assert "RECORD" not in shown
    assert "│ 20261201000000 │" in shown and "add_todos" in shown


def _render(width, result, monkeypatch, expanded="auto"):
    monkeypatch.setenv("SAGE_EXPANDED", expanded)
    out = io.StringIO()
    console = make_console(width=width)
    console.file = out
    render_text(result, console)
    return out.getvalue()


WIDE = OpResult(operation="x", summary="tables", tables=[Table(
    title="Objects", columns=["table", "rows", "size", "comment"],
    rows=[["public.a_rather_long_table_name_that_matters", 10, "16 kB", "a comment that is long enough to wrap"]])])


def test_first_column_is_never_cut(monkeypatch):
    for width in (60, 160):
        text = _render(width, WIDE, monkeypatch, expanded="off")
        assert "public.a_rather_long_table_name_that_matters" in text
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= width


def test_expanded_auto_on_and_off(monkeypatch):
    assert "RECORD" in _render(60, WIDE, monkeypatch)
    assert "RECORD" not in _render(160, WIDE, monkeypatch)
    assert "-[ RECORD 1 ]" in _render(160, WIDE, monkeypatch, expanded="on")
    assert "RECORD" not in _render(60, WIDE, monkeypatch, expanded="off")
    text = _render(60, WIDE, monkeypatch)
    assert "table   | public.a_rather_long_table_name_that_matters" in text
    assert max(len(line) for line in text.splitlines()) <= 60


def test_a_record_label_that_wraps_keeps_the_bar_on_each_line(monkeypatch):
    """*rls-audit at 60 columns: `policies authenticated (S/I/U/D)` wrapped and its second and third lines sat at
    the left edge with no `|`, reading as a field of their own. Each line of a field now has the bar."""
    coverage = OpResult(operation="x", summary="s", tables=[Table(
        title="RLS coverage", columns=["table", "rls", "policies anon (S/I/U/D)", "policies authenticated (S/I/U/D)",
                                       "grants anon", "grants authenticated", "a note"],
        rows=[["public.todos", "on", "0/0/0/0", "1/1/1/1", "SIUD", "SIUD", "x" * 70]])])
    text = _render(60, coverage, monkeypatch)
    record = text[text.index("-[ RECORD 1 ]"):].splitlines()[1:]
    assert record == ["table                | public.todos",
                      "rls                  | on",
                      "policies anon        | 0/0/0/0",
                      "(S/I/U/D)            |",
                      "policies             | 1/1/1/1",
                      "authenticated        |",
                      "(S/I/U/D)            |",
                      "grants anon          | SIUD",
                      "grants authenticated | SIUD",
                      "a note               | " + "x" * 37,
                      "                     | " + "x" * 33]


def test_no_line_ends_with_spaces_but_a_prompt_keeps_its_own(monkeypatch):
    """rich pads wrapped text, facts and table cells to the width: every finished line is trimmed, in records,
    tables, findings and notes, at 60 and 160 columns. A question still ends with its space before the answer."""
    for width in (60, 160):
        for result in (WIDE, LONG, STEPS):
            text = _render(width, result, monkeypatch)
            assert [x for x in text.splitlines() if x != x.rstrip()] == [], (width, text)
    console = make_console(width=60)
    console.file = io.StringIO()
    console.print("Type ROLLBACK to confirm: ", end="")
    assert console.file.getvalue() == "Type ROLLBACK to confirm: "


def test_long_next_steps_are_whole_lines(monkeypatch):
    step = "*explain 'select column_name, data_type from information_schema.columns where table_schema = ''public'''"
    text = _render(60, OpResult(operation="x", summary="s", next_steps=[step, "*hotpaths"]), monkeypatch)
    lines = [line.strip() for line in text.split("Next:")[1].splitlines() if line.strip()]
    assert lines[0].startswith("*explain 'select") and lines[-1] == "*hotpaths"  # each step starts its own line
    assert " ".join(lines[:-1]) == step  # wrapped at spaces, never cut
    raw = text.split("Next:")[1].splitlines()[1:]
    assert all(line.startswith("  ") for line in raw if line.strip()), raw  # under its own text, not at the edge


def test_piped_output_is_not_cut_at_80(migrations_project, run_sage, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    proc = run_sage("run", "*help policy-apply", cwd=migrations_project, env={"COLUMNS": ""})  # no width given
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "RECORD" not in proc.stdout
    assert any("2nd argument (MODE) or --mode kiss|granular" in line for line in lines)
    assert max(len(line) for line in lines) > 80


STEPS = OpResult(operation="x", summary="steps", tables=[Table(
    title="Online steps", columns=["step", "line", "kind", "lock", "runs"],
    rows=[[7, 3, "expand_check", "ACCESS EXCLUSIVE on public.big briefly (catalog only, no scan)",
           "[transaction] " + "ALTER TABLE public.big RENAME COLUMN n TO n_sage_old; " * 6]])])


def test_a_long_cell_is_a_record_not_a_thin_strip(monkeypatch):
    """At 60 columns every column but the first would get 12 characters: the plan step would be 30 lines."""
    narrow = _render(60, STEPS, monkeypatch)
    assert "-[ RECORD 1 ]" in narrow and "runs | [transaction] ALTER TABLE public.big RENAME" in narrow
    assert len(narrow.splitlines()) < 20
    assert "RECORD" not in _render(160, STEPS, monkeypatch)  # wide enough: a table whose cells wrap a little


LONG = OpResult(operation="x", summary="s", notes=["online: 8 step(s), each its own transaction or CONCURRENTLY; "
                                                   "the history row is written with the last one"],
                findings=[Finding(rule="changing-column-type", severity="error", location="f.sql:3",
                                  message="Changing the type of public.big.n rewrites the table under a lock.",
                                  detail="ACCESS EXCLUSIVE, rewrites", fix="Add a new column, backfill in batches")])


def test_a_long_finding_or_note_wraps_under_its_own_text(monkeypatch):
    lines = _render(60, LONG, monkeypatch).splitlines()
    start = lines.index("Findings")
    finding = lines[start + 1:lines.index(next(x for x in lines if x.startswith("•")))]
    assert finding[0].startswith("  ERROR   changing-column-type [f.sql:3]: Changing")
    assert len(finding) > 3 and all(x.startswith(" " * 10) and x[10] != " " for x in finding[1:])
    note = lines[lines.index(next(x for x in lines if x.startswith("•"))):]
    assert len(note) > 1 and all(x.startswith("  ") and x[2] != " " for x in note[1:])
    assert max(len(x) for x in lines) <= 60
    wide = _render(160, LONG, monkeypatch).splitlines()  # fits: one line each, nothing padded
    assert "  ERROR   changing-column-type [f.sql:3]: Changing the type of public.big.n rewrites the table under " \
           "a lock." in wide
    assert "          ACCESS EXCLUSIVE, rewrites" in wide and all(x == x.rstrip() for x in wide[1:])


def test_a_long_plan_step_wraps_under_its_own_text():
    from rich.panel import Panel

    from sage_agent.frontends.render import plan_lines

    plan = ("f.sql: ONLINE, 2 step(s)\n  1. line 1 [concurrently] CREATE INDEX CONCURRENTLY big_n_idx ON public.big "
            "(n); lock: SHARE UPDATE EXCLUSIVE on public.big for the build: reads and writes go on\n  2. short")
    console = make_console(width=60)
    console.file = io.StringIO()
    console.print(Panel(plan_lines(plan, 60), title="plan", expand=False))
    lines = console.file.getvalue().splitlines()
    step = [x for x in lines if "1. line 1" in x][0]
    after = lines[lines.index(step) + 1:lines.index(next(x for x in lines if "2. short" in x))]
    assert len(after) >= 2 and all(x.startswith("│      ") and x[7] != " " for x in after)
    assert max(len(x) for x in lines) <= 60


def test_fleet_table_at_60_columns_never_cuts_a_target_name(monkeypatch):
    from sage_agent.frontends.fleet import render_fleet

    monkeypatch.setenv("SAGE_EXPANDED", "auto")
    error = "fleet.yaml:4: target tenant-with-a-long-name-b: ${TENANT_B_URL} is not set (export it or put it in .env)"
    doc = {"targets": [{"name": "tenant-with-a-long-name-b", "skipped": ["*rls-audit", "*schema-audit"],
                        "results": [], "status": "invalid", "exit_code": 2, "error": error}],
           "summary": {"commands": ["*rls-audit", "*schema-audit"], "targets": 1, "ok": 0, "drift": 0, "failed": 0,
                       "invalid": 1, "skipped": 0, "worst_target": "tenant-with-a-long-name-b", "duration_ms": 12,
                       "parallel": 2, "exit_code": 2}}
    for width in (60, 160):
        console = make_console(width=width)
        console.file = io.StringIO()
        render_fleet(doc, console)
        text = console.file.getvalue()
        assert "tenant-with-a-long-name-b" in text and "*schema-audit" in text and "…" not in text
        words = " ".join(text.replace("│", " ").replace(" | ", " ").split())  # table cells and record fields
        assert words.count("is not set (export it or put it in .env)") == 1
        assert max(len(line) for line in text.splitlines()) <= width


def test_repl_progress_shows_every_5_percent_whatever_the_batch_size(project):
    """A backfill advances by batches (700 rows of 3,000 land on no 5% boundary): the REPL drew no line
    before the end when each update had to fall exactly on a boundary."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from sage_agent.db.env import Target
    from sage_agent.frontends.repl import Repl

    console = make_console(width=100)
    console.file = io.StringIO()
    with create_pipe_input() as pipe:
        repl = Repl(project, Target("local", "postgresql://u:p@127.0.0.1:1/x", "test"), input=pipe,
                    output=DummyOutput(), console=console, history_file=project / "history")
        for done in range(700, 3001, 700):
            repl._progress("backfill t", done, 3000, f"{done} rows")
        repl._progress("backfill t", 3000, 3000, "done")
    lines = console.file.getvalue().splitlines()
    assert lines == ["  backfill t  23.3% 700 rows", "  backfill t  46.7% 1400 rows", "  backfill t  70.0% 2100 rows",
                     "  backfill t  93.3% 2800 rows", "  backfill t 100.0% done"]
    assert repl.session.progress_sink.draws is True  # so the backfill leaves out its own news lines


def test_a_statement_keeps_its_short_tail_when_a_long_text_beside_it_can_give_room(monkeypatch):
    """At 160 columns rich shares the width by cutting the widest columns to the same size, which broke
    `... where id = 1` before its last three characters while the lock text beside it wrapped anyway: that text
    now gives up those characters, and the statement stays on one line. Nothing gets taller or wider."""
    statement = "select count(*) from public.todos t join users u where id = 1"
    tree = OpResult(operation="x", summary="s", tables=[Table(
        title="Blocking tree", columns=["pid", "state", "waiting / holding", "for", "application", "statement"],
        rows=[["14548", "active", "blocks 1 session(s)", "3.0s", "psql", "update public.todos set done = true"],
              ["└─ 14587", "active", "wants AccessShareLock on table todos; 14548 holds AccessExclusiveLock which "
               "conflicts", "2.0s", "psql", statement]])])
    text = _render(160, tree, monkeypatch)
    lines = text.splitlines()
    assert any(statement in line for line in lines), text
    assert max(len(line) for line in lines) <= 160
    assert len([line for line in lines if line.startswith("│")]) == 3  # row 2 still takes two lines
    assert "AccessExclusiveLock which conflicts" in text


def test_a_start_up_warning_wraps_at_spaces_on_a_terminal():
    """The REPL's and `sage db status`'s warnings (e.g. the PostgreSQL major the project wants) went out as one
    long line that the terminal cut mid-word ("ot" / "her majors"); on a terminal they wrap at spaces, piped they
    stay one line."""
    import subprocess
    import sys

    message = ("the local server runs PostgreSQL 18 but the project wants 17 (supabase/config.toml): install it "
               "with `apt-get install postgresql-17` (Debian/Ubuntu; other majors come from the PGDG apt repository, "
               "apt.postgresql.org), then `sage db switch-major 17`")
    code = f"from sage_agent.cli import warn; warn({message!r})"
    child = pexpect.spawn(sys.executable, ["-c", code], dimensions=(24, 60), encoding="utf-8", timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    child.expect(pexpect.EOF)
    lines = child.before.replace("\r", "").splitlines()
    assert len(lines) > 3 and all(len(line) <= 60 for line in lines), lines
    assert " ".join(line.strip() for line in lines) == f"warning: {message}"  # every word whole
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert piped.stderr == f"warning: {message}\n"



def _tmux_screen(project, db_url, columns: int) -> str:
    """The screen of `sage` in tmux (a terminal emulator that answers prompt-toolkit's cursor-position request,
    which draws the bottom toolbar: a bare pty does not) once the first prompt is up."""
    import shutil
    import subprocess
    import sys
    import time

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    socket = f"sage-test-{os.getpid()}-{columns}"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "NO_COLOR": "1", "TERM": "xterm"}
    command = ["env", "-u", "COLUMNS", "-u", "ANTHROPIC_API_KEY", *(f"{k}={v}" for k, v in env.items()),
               sys.executable, "-m", "sage_agent", "--db-url", db_url]
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-x", str(columns), "-y", "20", "-c", str(project),
                    *command], check=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p"], capture_output=True,
                                    text=True).stdout
            if "sage>" in screen and "*exit" in screen:
                return screen
            time.sleep(0.2)
        return screen
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def test_toolbar_fits_sixty_columns_and_keeps_the_hint(project, db_url):
    """At 60 columns the toolbar was the whole URL cut at the edge (`postgresql://postgres:***@127.0.`), and the
    `*help *exit` hint was gone: it shows host:port/database instead, hint kept; at 160 the redacted URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    narrow = _tmux_screen(project, db_url, 60).rstrip("\n").splitlines()[-1]
    assert narrow.rstrip() == f" local  {parts.hostname}:{parts.port}{parts.path}  |  *help  *exit"
    wide = _tmux_screen(project, db_url, 160).rstrip("\n").splitlines()[-1]
    assert wide.rstrip() == (f" local  postgresql://{parts.username}:***@{parts.hostname}:{parts.port}{parts.path}"
                             "  |  *help  *exit")


def test_ctrl_c_at_the_repl_says_the_statement_was_cancelled(project, db_url, db):
    """Ctrl-C on a slow *run-sql printed a bare `error: interrupted`: whether the server still ran it was left to
    guess. It says the statement was cancelled on the server and rolled back, and the server runs nothing."""
    term = Terminal(project, db_url, columns=60)
    try:
        term.child.send("*run-sql select pg_sleep(30)\r")
        term.child.expect_exact("(Ctrl-C cancels)")
        deadline = time.monotonic() + 30  # Ctrl-C once the statement runs on the server (not while connecting)
        while time.monotonic() < deadline and not db.execute(
                "select count(*) from pg_stat_activity where query like '%select pg_sleep(30)%' "
                "and state = 'active' and pid <> pg_backend_pid()").fetchone()[0]:
            time.sleep(0.05)
        term.child.send("\x03")
        term.child.expect_exact(PROMPT_START)
        shown = " ".join(plain(term.child.before).split())
    finally:
        term.close()
    assert ("error: interrupted: the running statement was cancelled on the server and its transaction rolled back"
            in shown)
    busy = db.execute("select count(*) from pg_stat_activity where query like '%select pg_sleep(30)%' "
                      "and state = 'active' and pid <> pg_backend_pid()").fetchone()[0]
    assert busy == 0


def test_help_at_60_columns_cuts_no_word_that_could_fit(run_sage, project):
    """*help at 60 columns cut words in two (`(basic/standard/comprehe` / `nsive)`, `schema-design.y` / `aml`):
    the command column kept its whole width. Its cells now wrap between their words to keep such words whole."""
    shown = run_sage("run", "*help", cwd=project, env={"COLUMNS": "60"}).stdout
    assert max(len(line) for line in shown.splitlines()) <= 60
    assert "│ (basic/standard/comprehensive), │" in shown
    assert "│ schema-design.yaml," in shown
    assert "│ *smoke-test {version}  │" in shown and "│ [suite]                │" in shown
    assert "│ *create-migration-from-design      │" in shown  # the longest command name whole
    wide = run_sage("run", "*help", cwd=project, env={"COLUMNS": "160"}).stdout
    assert "│ *smoke-test {version} [suite]" in wide  # room enough: one line


@pytest.mark.parametrize("columns, expanded", [(60, "auto"), (160, "on")])
def test_long_record_values_wrap_under_their_own_column(run_sage, project, db_url, columns, expanded):
    """*run-sql with values of 60 to 200 characters shown as records: every line of a value continues under the
    value (after the label's width and its `|`), never at the left edge, and no line is wider than the terminal."""
    sql = ("select repeat('abcdefghij', 20) as long_token, repeat('word ', 40) as words, "
           "'public.customer_orders_archive_2024_with_a_very_long_name_xx' as relation, 42 as n")
    proc = run_sage("run", f"*run-sql \"{sql}\"", "--db-url", db_url, cwd=project,
                    env={"COLUMNS": str(columns), "SAGE_EXPANDED": expanded})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-[ RECORD 1 ]"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Next"))
    record = lines[start + 1:end]
    assert [line.split(" | ")[0].strip() for line in record if line[0] != " "] == [
        "long_token", "words", "relation", "n"], record
    assert all(line.startswith("           | ") for line in record if line[0] == " "), record
    assert all(len(line) <= columns for line in lines), [line for line in lines if len(line) > columns]
    parts: dict[str, list[str]] = {}
    label = ""
    for line in record:
        head, _, rest = line.partition(" | ")
        label = head.strip() or label
        parts.setdefault(label, []).append(rest)
    assert "".join(parts["long_token"]) == "abcdefghij" * 20
    assert " ".join(parts["words"]).split() == ["word"] * 40
    assert "".join(parts["relation"]) == "public.customer_orders_archive_2024_with_a_very_long_name_xx"


def test_bare_exit_quit_and_help_do_what_they_say(project, db_url):
    """`exit`, `quit` or `\\q` (psql, a shell) and `help` got "Plain-language requests need a model: set
    ANTHROPIC_API_KEY ..." and the REPL went on: each now runs the command it means."""
    for word in ("exit", "quit", "\\q"):
        term = Terminal(project, db_url, columns=60)
        try:
            if word == "exit":
                shown = term.type("help")
                assert "Getting started" in shown and "*bootstrap" in shown and "need a model" not in shown
            term.child.send(word + "\r")
            term.child.expect(pexpect.EOF, timeout=30)
            shown = plain(term.child.before)
            assert "signing off" in shown and "need a model" not in shown, shown
        finally:
            term.close()


def test_a_question_breaks_between_words_at_60_columns(migrations_project, db_url, db):
    """At 60 columns the terminal broke a question anywhere: `...to postgresql://postgres:***@127.0.0.1:` and
    `54582/postgres? [y/N]:` on the next line, `rever|se change` in *rollback's. The question is now broken between
    its words, the URL whole on a line, and the last line leaves room for the answer."""
    from sage_agent.db.redact import redact

    term = Terminal(migrations_project, db_url, columns=60)
    try:
        term.child.send("*apply\r")
        term.child.expect_exact("[y/N]:")
        question = plain(term.child.before + term.child.after)
        question = question[question.index("Apply 2 migration(s)"):]
        assert [line for line in question.splitlines() if line] == [
            "Apply 2 migration(s) to", redact(db_url) + "?", "[y/N]:"], question
        term.type("n")
        term.child.send("*migration-new\r")
        term.child.expect_exact("underscores:")
        question = plain(term.child.before + term.child.after)
        assert [line for line in question[question.index("Migration name"):].splitlines() if line] == [
            "Migration name, lowercase letters, digits and", "underscores:"]
        term.type("\x03")
    finally:
        term.close()
    assert db.execute("select to_regclass('public.todos')").fetchone()[0] is None  # n applied nothing


def test_a_yes_no_fact_reads_yes_or_no_not_python(monkeypatch):
    """*env-check showed `connected  True`, `superuser  True`, `standby  False`; *run-sql `truncated  False`. Facts
    that are booleans read yes/no in the text and the markdown; a query's own cells are left as they are."""
    from sage_agent.frontends.render import render_markdown

    result = OpResult(operation="x", summary="s", facts={"connected": True, "standby": False, "port": 5432},
                      tables=[Table(title="Result", columns=["t"], rows=[[True]])])
    for width in (60, 160):
        lines = _render(width, result, monkeypatch).splitlines()
        assert lines[1:4] == ["connected  yes", "standby    no", "port       5432"], lines
        assert "│ True │" in lines
    markdown = render_markdown(result)
    assert "- **connected**: yes" in markdown and "- **standby**: no" in markdown and "| True |" in markdown
