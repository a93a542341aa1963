"""Faults: the backend doing the work is terminated mid-way (seeded trials). After every trial the database is
fully before or fully after (schema + data fingerprint), the history agrees with the schema, nothing is left
locked or idle in a transaction, and the next run works.

The kill lands mid-work deterministically for *apply and *seed: a statement at a seeded random index waits on an
advisory lock the test holds; the test sees the wait in pg_locks and terminates that backend. *rollback --replace (a psql
restore of a pg_dump file) and the data commands are killed after a seeded random delay within the measured run
time, terminating every client backend on the database except the test's own.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time

import psycopg
import pytest
from rel_common import fingerprint, fresh_database, history, leftovers, record, terminate_others

from sage_agent.session.machine import EXIT_FAILED, EXIT_OK

TRIALS = int(os.environ.get("SAGE_REL_TRIALS", "50"))
LOCK_KEY = 4242
WAIT_SQL = f"select pg_advisory_xact_lock({LOCK_KEY});"

MIGRATIONS = {
    "20240101000000_a.sql": [
        "create table public.a (id int primary key, v text not null);",
        "insert into public.a select g, 'x' || g from generate_series(1, 20) g;",
        "create index a_v_idx on public.a (v);",
        "comment on table public.a is 'first';",
    ],
    "20240102000000_b.sql": [
        "create table public.b (id int primary key, a_id int references public.a (id));",
        "insert into public.b select g, g from generate_series(1, 10) g;",
        "alter table public.a add column w int;",
        "create view public.ab as select a.id, b.id as b_id from public.a join public.b on b.a_id = a.id;",
    ],
}


def write_migrations(project, wait_at: int | None) -> None:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    index = 0
    for name, statements in MIGRATIONS.items():
        lines = []
        for stmt in statements:
            if index == wait_at:
                lines.append(WAIT_SQL)
            lines.append(stmt)
            index += 1
        if wait_at is not None and wait_at == index and name == list(MIGRATIONS)[-1]:
            lines.append(WAIT_SQL)  # after the last statement, before the commit
        (folder / name).write_text("\n".join(lines) + "\n")


def kill_when_waiting(url: str, holder: psycopg.Connection, timeout: float = 60) -> int | None:
    """Wait until a backend waits for our advisory lock, terminate it, release the lock. Returns the pid."""
    pid = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = holder.execute("select l.pid from pg_locks l join pg_stat_activity a using (pid) "
                                 "where l.locktype = 'advisory' and not l.granted and l.objid = %s "
                                 "and a.datname = current_database()", (LOCK_KEY,)).fetchone()
            if row:
                pid = row[0]
                holder.execute("select pg_terminate_backend(%s)", (pid,))
                break
            time.sleep(0.01)
    finally:
        holder.execute("select pg_advisory_unlock_all()")
    return pid


def run_in_thread(session, line: str):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("out", session.run_line(line)))
    thread.start()
    return thread, box


def clean(url: str) -> None:
    for _ in range(50):  # terminated backends disappear asynchronously
        left = leftovers(url)
        if not left:
            return
        time.sleep(0.05)
    assert not left, f"left behind: {left}"


def check_failed(out) -> None:
    assert out.exit_code == EXIT_FAILED, (out.exit_code, out.error)
    message = out.error or (out.result.summary if out.result else "")
    assert message and "Traceback" not in message


@pytest.fixture(scope="module")
def states(pg_server, tmp_path_factory):
    """Reference fingerprints of the apply states: nothing, first file, both files (applied without faults)."""
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    project = tmp_path_factory.mktemp("ref")
    write_migrations(project, None)
    result = {}
    with fresh_database(pg_server.url()) as url:
        result[()] = fingerprint(url)
        with psycopg.connect(url, autocommit=True) as conn:  # the empty ledger (created before the first file)
            from sage_agent.ops.migrations.history import ensure_history_table

            ensure_history_table(conn)
            result["ledger"] = fingerprint(url)
        session = Session(project=project, target=Target("local", url, "test"), answers=FlagAnswers(yes=True))
        assert session.run_line("*apply 20240101000000 --snapshot=no").exit_code == EXIT_OK
        result[("20240101000000",)] = fingerprint(url)
        assert session.run_line("*apply --snapshot=no").exit_code == EXIT_OK
        result[("20240101000000", "20240102000000")] = fingerprint(url)
    return result


def test_apply_killed_mid_work(pg_server, states, make_session, tmp_path):
    total = sum(len(s) for s in MIGRATIONS.values())
    killed = 0
    outcomes: dict[tuple, int] = {}
    for trial in range(TRIALS):
        rng = random.Random(9000 + trial)
        wait_at = rng.randrange(total + 1)
        project = tmp_path / f"t{trial}"
        write_migrations(project, wait_at)
        with fresh_database(pg_server.url()) as url:
            holder = psycopg.connect(url, autocommit=True)
            holder.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            thread, box = run_in_thread(make_session(url, yes=True, project_dir=project), "*apply --snapshot=no")
            pid = kill_when_waiting(url, holder)
            holder.close()
            thread.join(120)
            assert pid, f"trial {trial}: the apply never reached statement {wait_at}"
            killed += 1
            check_failed(box["out"])
            applied = tuple(history(url))
            assert applied in states, f"trial {trial}: unexpected history {applied}"
            allowed = {states[applied], states["ledger"]} if not applied else {states[applied]}
            assert fingerprint(url) in allowed, f"trial {trial}: schema does not match history {applied}"
            outcomes[applied] = outcomes.get(applied, 0) + 1
            clean(url)
            again = make_session(url, yes=True, project_dir=project).run_line("*apply --snapshot=no")
            assert again.exit_code == EXIT_OK, f"trial {trial}: next run failed: {again.error}"
            assert fingerprint(url) == states[("20240101000000", "20240102000000")]
    record("faults", apply_trials=TRIALS, apply_killed=killed,
           apply_states={"+".join(k) or "before": v for k, v in outcomes.items()})


SEED_SCHEMA = """
create table public.items (id int primary key, name text not null);
create table public.tags (id int primary key, item int references public.items (id));
insert into public.items values (1, 'existing');
"""
SEED = [
    "insert into public.items select g, 'n' || g from generate_series(2, 30) g;",
    "copy public.tags (id, item) from stdin;\n1\t1\n2\t2\n3\t3\n\\.",
    "update public.items set name = upper(name) where id < 5;",
    "insert into public.tags select g, g from generate_series(4, 12) g;",
    "delete from public.items where id = 30;",
]


def seed_text(wait_at: int | None) -> str:
    out = []
    for i, stmt in enumerate(SEED):
        if i == wait_at:
            out.append(WAIT_SQL)
        out.append(stmt)
    if wait_at == len(SEED):
        out.append(WAIT_SQL)
    return "\n".join(out) + "\n"


def test_seed_killed_mid_work(pg_server, make_session, tmp_path):
    with fresh_database(pg_server.url()) as base:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(SEED_SCHEMA)
        before = fingerprint(base)
        ref = tmp_path / "ref"
        (ref / "supabase").mkdir(parents=True)
        (ref / "supabase" / "seed.sql").write_text(seed_text(None))
        with fresh_database(pg_server.url(), template=base.rsplit("/", 1)[-1].split("?")[0]) as url:
            assert make_session(url, yes=True, project_dir=ref).run_line("*seed --snapshot=no").exit_code == EXIT_OK
            after = fingerprint(url)
        assert after != before
        base_name = _dbname(base)
        counts = {"before": 0, "after": 0}
        for trial in range(TRIALS):
            rng = random.Random(7000 + trial)
            wait_at = rng.randrange(len(SEED) + 1)
            project = tmp_path / f"t{trial}"
            (project / "supabase").mkdir(parents=True)
            (project / "supabase" / "seed.sql").write_text(seed_text(wait_at))
            with fresh_database(pg_server.url(), template=base_name) as url:
                holder = psycopg.connect(url, autocommit=True)
                holder.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
                thread, box = run_in_thread(make_session(url, yes=True, project_dir=project), "*seed --snapshot=no")
                pid = kill_when_waiting(url, holder)
                holder.close()
                thread.join(120)
                assert pid, f"trial {trial}: the seed never reached statement {wait_at}"
                check_failed(box["out"])
                state = fingerprint(url)
                assert state == before, f"trial {trial}: a killed seed changed the database"
                counts["before"] += 1
                clean(url)
                again = make_session(url, yes=True, project_dir=project).run_line("*seed --snapshot=no")
                assert again.exit_code == EXIT_OK, f"trial {trial}: next run failed: {again.error}"
                assert fingerprint(url) == after
    record("faults", seed_trials=TRIALS, seed_killed=TRIALS)


def _dbname(url: str) -> str:
    from sage_agent.db.urls import conninfo_params

    return conninfo_params(url)["dbname"]


ROLLBACK_BASE = """
create schema supabase_migrations;
create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text);
insert into supabase_migrations.schema_migrations values ('20250101000000', '{"create table items"}', 'init');
create table public.items (id bigint generated by default as identity primary key, name text not null);
insert into public.items (name) select 'i' || g from generate_series(1, 20) g;
"""
ROLLBACK_CHANGE = """
insert into supabase_migrations.schema_migrations values ('20250202000000', '{"alter"}', 'second');
alter table public.items add column price numeric default 0;
create table public.orders (id int primary key, item bigint references public.items (id));
insert into public.orders values (1, 1);
delete from public.items where id > 15;
"""


def test_rollback_killed_at_random_points(pg_server, make_session, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    with fresh_database(pg_server.url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(ROLLBACK_BASE)
            session = make_session(url, confirm=("REPLACE",), project_dir=project)
            assert session.run_line("*snapshot base --mode with-data").exit_code == EXIT_OK
            snapshot_state = fingerprint(url)
            conn.execute(ROLLBACK_CHANGE)
            changed_state = fingerprint(url)
            t0 = time.monotonic()
            assert session.run_line("*rollback base --replace").exit_code == EXIT_OK
            span = time.monotonic() - t0
            assert fingerprint(url) == snapshot_state
            counts = {"before": 0, "after": 0, "no_backend_at_kill": 0}
            for trial in range(TRIALS):
                rng = random.Random(5000 + trial)
                conn.execute(ROLLBACK_CHANGE)
                _prune_safety_snapshots(project)
                delay = rng.uniform(0.0, span)
                thread, box = run_in_thread(session, "*rollback base --replace")
                time.sleep(delay)
                n = terminate_others(url)
                thread.join(120)
                out = box["out"]
                state = fingerprint(url)
                assert state in (changed_state, snapshot_state), f"trial {trial}: half-restored after kill at {delay:.2f}s"
                if state == changed_state:
                    counts["before"] += 1
                    assert out.exit_code != EXIT_OK or n == 0, f"trial {trial}: reported ok but nothing restored"
                    if out.exit_code != EXIT_OK:
                        check_failed(out)
                else:
                    counts["after"] += 1
                if n == 0:
                    counts["no_backend_at_kill"] += 1
                clean(url)
                if state == changed_state:
                    again = session.run_line("*rollback base --replace")
                    assert again.exit_code == EXIT_OK, f"trial {trial}: next run failed: {again.error}"
                assert fingerprint(url) == snapshot_state
    record("faults", rollback_trials=TRIALS, rollback_states=counts)


def _prune_safety_snapshots(project) -> None:
    for p in (project / "supabase" / "snapshots").glob("before_rollback_*"):
        p.unlink()


def _random_kill_trials(url, session, line, *, seed, reset, before_state, after_state, span, next_ok=True):
    """Shared loop: reset to `before`, start `line`, kill DB Sage's backends after a seeded random delay within
    `span`; the database must be fully before or fully after; the next run works."""
    counts = {"before": 0, "after": 0, "no_backend_at_kill": 0}
    for trial in range(TRIALS):
        rng = random.Random(seed + trial)
        reset()
        assert fingerprint(url) == before_state
        delay = rng.uniform(0.0, span)
        thread, box = run_in_thread(session, line)
        time.sleep(delay)
        n = terminate_others(url)
        thread.join(180)
        out = box["out"]
        state = fingerprint(url)
        assert state in (before_state, after_state), f"trial {trial}: partial state after a kill at {delay:.2f}s"
        if n == 0:
            counts["no_backend_at_kill"] += 1
        if state == before_state:
            counts["before"] += 1
            assert out.exit_code != EXIT_OK or n == 0, f"trial {trial}: reported ok but nothing changed"
            if out.exit_code != EXIT_OK:
                assert "Traceback" not in (out.error or "")
            clean(url)
            again = session.run_line(line)
            assert again.exit_code == EXIT_OK, f"trial {trial}: next run failed: {again.error}"
            assert fingerprint(url) == after_state
        else:
            counts["after"] += 1
            clean(url)
    return counts


def test_load_csv_killed_mid_copy(pg_server, make_session, tmp_path):
    """The kill lands mid-COPY deterministically: the test holds an uncommitted row with the key of a seeded random
    CSV row, so the COPY waits on that row's unique check; the test terminates the waiting backend."""
    project = tmp_path / "p"
    project.mkdir()
    rows = 3000
    (project / "people.csv").write_text("id,name,score\n" + "".join(f"{i},person {i},{i % 97}\n" for i in range(1, rows + 1)))
    with fresh_database(pg_server.url()) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table public.people (id int primary key, name text not null, score int)")
        conn.execute("insert into public.people values (0, 'existing', 0)")
        before = fingerprint(url)
        session = make_session(url, yes=True, project_dir=project)
        line = "*load-csv people.csv public.people"
        assert session.run_line(line).exit_code == EXIT_OK
        after = fingerprint(url)
        killed = 0
        for trial in range(TRIALS):
            conn.execute("delete from public.people where id > 0")
            rng = random.Random(3000 + trial)
            key = rng.randrange(1, rows + 1)
            holder = psycopg.connect(url)
            holder.execute("insert into public.people values (%s, 'blocker', 0)", (key,))
            thread, box = run_in_thread(session, line)
            pid = None
            for _ in range(3000):
                row = conn.execute("select l.pid from pg_locks l join pg_stat_activity a using (pid) where not l.granted "
                                   "and a.datname = current_database() and a.application_name like 'db-sage%%'"
                                   ).fetchone()
                if row:
                    pid = row[0]
                    conn.execute("select pg_terminate_backend(%s)", (pid,))
                    break
                time.sleep(0.01)
            holder.rollback()
            holder.close()
            thread.join(120)
            assert pid, f"trial {trial}: the load never waited on row {key}"
            killed += 1
            check_failed(box["out"])
            assert fingerprint(url) == before, f"trial {trial}: a killed load changed the database"
            clean(url)
            again = session.run_line(line)
            assert again.exit_code == EXIT_OK, f"trial {trial}: next run failed: {again.error}"
            assert fingerprint(url) == after
    record("faults", load_csv_trials=TRIALS, load_csv_states={"before (killed mid-COPY)": killed})


# A table created after the backup that references a backed-up table (FK) would make pg_restore --clean fail; *restore
# now names such objects before it does anything (tests/test_data_backup_restore.py). The kill trials need a restore
# that runs, so they use a change without such a reference.
RESTORE_CHANGE = ROLLBACK_CHANGE.replace("item bigint references public.items (id)", "item bigint")


def test_restore_killed_at_random_points(pg_server, make_session, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    with fresh_database(pg_server.url()) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ROLLBACK_BASE)
        assert make_session(url, project_dir=project).run_line("*backup base").exit_code == EXIT_OK

        def reset():
            conn.execute("drop table if exists public.orders")  # kept (emptied) by a restore: not in the backup
            conn.execute(RESTORE_CHANGE)
            for p in (project / "supabase" / "backups").glob("before-restore-*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()

        reset()
        changed = fingerprint(url)
        session = make_session(url, confirm=("RESTORE",), project_dir=project)
        t0 = time.monotonic()
        out = session.run_line("*restore base")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        span = time.monotonic() - t0
        restored = fingerprint(url)
        with psycopg.connect(url, autocommit=True) as check:
            assert check.execute("select count(*) from public.items").fetchone()[0] == 20
            assert check.execute("select count(*) from supabase_migrations.schema_migrations").fetchone()[0] == 1

        counts = _random_kill_trials(url, session, "*restore base", seed=4000, before_state=changed,
                                     after_state=restored, span=span, reset=reset)
    record("faults", restore_trials=TRIALS, restore_states=counts)


def test_two_restores_in_the_same_second_each_get_a_safety_backup(pg_server, make_session, tmp_path):
    """Was: the retry right after a failed restore stopped with "a backup named before-restore-<second> already
    exists" (the safety backup name had one-second resolution)."""
    project = tmp_path / "p"
    project.mkdir()
    with fresh_database(pg_server.url()) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table public.t (id int primary key); insert into public.t values (1)")
        assert make_session(url, project_dir=project).run_line("*backup b").exit_code == EXIT_OK
        session = make_session(url, confirm=("RESTORE",), project_dir=project)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        (project / "supabase" / "backups" / f"before-restore-{stamp}.json").write_text("{}")  # same second, taken
        out = session.run_line("*restore b")
        assert out.exit_code == EXIT_OK, out.error
        assert out.result.data["safety_backup"].startswith("before-restore-")
        assert out.result.data["safety_backup"] != f"before-restore-{stamp}"
        assert session.run_line("*restore b").exit_code == EXIT_OK
