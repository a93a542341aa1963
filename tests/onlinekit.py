"""What the tests of *apply --online share: the orders table they change, the workload threads that write and read
it while *apply runs, the proof (the plain file's normalized pg_dump on a fresh database) and the steps each round
trip repeats (the dry-run's plan, apply again and --complete, the confirmation plans a person reads)."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Callable

import psycopg
from conftest import new_database
from migfiles import failure, write_migration

from sage_agent.session.machine import EXIT_OK

V1 = "20240101000000"
SEED = """
create table public.users (id bigint primary key);
insert into public.users select g from generate_series(1, 50) g;
create table public.orders (id bigint primary key, user_id int, note text, amount int not null default 7);
create index orders_amount_idx on public.orders (amount);
create index orders_big_idx on public.orders (user_id, amount) where amount > 10;
comment on column public.orders.amount is 'cents';
insert into public.orders select g, g % 50, 'n' || g, g % 1000 from generate_series(1, 4000) g;
"""
TWO = ("alter table public.orders alter column user_id type bigint using user_id::bigint * 2;\n"
       "alter table public.orders alter column amount type bigint;\n")


def online_rows(conn) -> list[tuple]:
    """(version, status) of each file the online state table holds (empty before it exists)."""
    if not conn.execute("select to_regclass('supabase_migrations.sage_online')").fetchone()[0]:
        return []
    return conn.execute("select version, status from supabase_migrations.sage_online").fetchall()


def type_of(conn, column: str) -> str:
    """The type of a column of public.orders."""
    return conn.execute("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = "
                        "'public.orders'::regclass and attname = %s", (column,)).fetchone()[0]


def column_order_free(dump: list[str]) -> list[str]:
    """The dump with each CREATE TABLE's column lines sorted: expand/contract moves the column to the end."""
    out = []
    for stmt in dump:
        if stmt.startswith("CREATE TABLE") and "(\n" in stmt:
            head, body = stmt.split("(\n", 1)
            body, tail = body.rsplit("\n)", 1)
            stmt = head + "(\n" + "\n".join(sorted(line.rstrip(",") for line in body.split("\n"))) + "\n)" + tail
        out.append(stmt)
    return sorted(out)


def plain_dump_of(project: Path, make_session, admin: str, seed: str, text: str,
                  major: int | None = None) -> list[str]:
    """The same file applied plainly (UNSAFE typed) to a fresh database with `seed`: the target of the proof."""
    from sage_agent.db.shadow import drop_database
    from sage_agent.ops.schema.compare import normalized_dump

    name, url = new_database(admin)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(seed)
        other = project.parent / f"plain_{name}"
        write_migration(other, f"{V1}_change.sql", text)
        done = make_session(url, yes=True, confirm=("UNSAFE",), project_dir=other).run_line("*apply --snapshot=no")
        assert done.exit_code == EXIT_OK, failure(done)
        return normalized_dump(url, major)
    finally:
        drop_database(admin, name)


def online_plan(make_session, url: str):
    """`*dry-run V1 --online`, which must find an online form for every statement: its result."""
    plan = make_session(url).run_line(f"*dry-run {V1} --online")
    assert plan.result is not None, plan.error
    assert not [f for f in plan.result.findings if f.rule == "online.no_form"], plan.result.findings
    return plan.result


def apply_and_complete(make_session, url: str) -> None:
    """*apply --online again (after a rollback) and --complete (typed COMPLETE): both succeed."""
    again = make_session(url, yes=True).run_line("*apply --online --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    done = make_session(url, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert done.exit_code == EXIT_OK, failure(done)


def recording_session(project: Path, url: str):
    """A Session that answers yes (typed words refused) and keeps each confirmation plan a person would read."""
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    plans: list[str] = []

    class Recorded(FlagAnswers):
        def confirm(self, request):
            plans.append(request.plan)
            return super().confirm(request)

    return Session(project=project, target=Target("local", url, "test"), answers=Recorded(yes=True)), plans


class Background:
    """A loop on a connection of its own while *apply runs (a writer, a reader, an application client): `step`
    once a turn; a failed statement is kept in `errors` (what the tests look for) and the loop goes on."""

    pause = 0.003  # seconds between turns

    def __init__(self, url: str):
        self.url, self.errors = url, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def step(self, conn: psycopg.Connection, n: int) -> None:
        raise NotImplementedError

    def error_text(self, exc: psycopg.Error) -> str:
        return str(exc)

    def run(self) -> None:
        with self.connect() as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    self.step(conn, n)
                except psycopg.Error as exc:  # a failed statement is what the test looks for
                    self.errors.append(self.error_text(exc))
                self.stop.wait(self.pause)

    def wait_until(self, done: Callable[[], bool]) -> None:
        """Until `done()`, five errors, or the loop's end (an unexpected exception)."""
        while not done() and len(self.errors) < 5 and self.thread.is_alive():
            self.stop.wait(0.01)

    def start(self):
        self.thread.start()
        return self

    def end(self) -> None:
        self.stop.set()
        self.thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.end()


class Writer(Background):
    """Inserts and updates public.orders (`column`) with random values; remembers what it wrote."""

    def __init__(self, url: str, column: str = "amount"):
        super().__init__(url)
        self.column, self.written = column, {}
        self.rng, self.next_id = random.Random(3), 100_000

    def step(self, conn, n: int) -> None:
        value = self.rng.randrange(1, 2_000_000_000)
        if self.rng.random() < 0.5:
            self.next_id += 1
            conn.execute(f"insert into public.orders (id, note, {self.column}) values (%s, 'w', %s)",
                         (self.next_id, value))
            self.written[self.next_id] = value
        else:
            key = self.rng.randrange(1, 4001)
            conn.execute(f"update public.orders set {self.column} = %s where id = %s", (value, key))
            self.written[key] = value


def kept(conn, written: dict, column: str = "amount") -> bool:
    """Every value the Writer wrote is the row's."""
    rows = dict(conn.execute(f"select id, {column} from public.orders where id = any(%s)",
                             (list(written),)).fetchall())
    return rows == written
