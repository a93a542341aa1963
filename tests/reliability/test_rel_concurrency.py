"""Concurrency: 8 `sage run "*apply"` processes on the same pending set apply every file exactly once and leave
no lock, no waiting or idle-in-transaction session behind; 4 *load-csv into different tables at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
from conftest import sage_env
from rel_common import fresh_database, history, leftovers, record

PROCS = 8


def start(project, url, line, *extra):
    return subprocess.Popen([sys.executable, "-m", "sage_agent", "run", line, "--yes", "--json", "--db-url", url,
                             "--project", str(project), *extra], cwd=project, env=sage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def finish(procs, timeout=240):
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def wait_clean(url):
    for _ in range(100):
        left = leftovers(url)
        if not left:
            return []
        time.sleep(0.05)
    return left


def write(project, name, text):
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_eight_appliers_apply_each_file_exactly_once(pg_server, project):
    write(project, "20240101000000_hits.sql", "create table public.hits (n int not null);\ninsert into public.hits values (1);\n")
    write(project, "20240102000000_more.sql", "insert into public.hits values (2);\ncreate index hits_n on public.hits (n);\n")
    write(project, "20240103000000_slow.sql", "select pg_sleep(0.3);\ninsert into public.hits values (3);\n")
    rounds = []
    with fresh_database(pg_server.url()) as url:
        for round_no in range(2):
            if round_no == 1:
                write(project, "20240104000000_next.sql", "insert into public.hits values (4);\n")
                write(project, "20240105000000_last.sql", "alter table public.hits add column at timestamptz;\n"
                                                         "insert into public.hits (n) values (5);\n")
            results = finish([start(project, url, "*apply --snapshot=no") for _ in range(PROCS)])
            applied = 0
            for code, out, err in results:
                assert "Traceback" not in err and "Traceback" not in out, err
                doc = json.loads(out)
                assert code == 0, (code, doc.get("error") or doc.get("summary"), err)
                applied += int(doc.get("facts", {}).get("applied", 0) or 0)
            expected = 3 if round_no == 0 else 2
            assert applied == expected, f"round {round_no}: {applied} files applied in total, expected {expected}"
            with psycopg.connect(url, autocommit=True) as conn:
                rows = [r[0] for r in conn.execute("select n from public.hits order by n")]
            assert rows == list(range(1, 3 + round_no * 2 + 1)), rows
            assert len(history(url)) == 3 + round_no * 2
            assert wait_clean(url) == []
            rounds.append(applied)
    record("concurrency", apply_processes=PROCS, apply_rounds=len(rounds), apply_files_applied=sum(rounds),
           apply_duplicates=0, apply_leftover_locks=0)


def test_four_load_csv_into_different_tables(pg_server, project):
    with fresh_database(pg_server.url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(4):
                conn.execute(f"create table public.t{i} (id int primary key, name text)")
        for i in range(4):
            (project / f"t{i}.csv").write_text("id,name\n" + "".join(f"{n},row{n}\n" for n in range(1, 201 + i)))
        results = finish([start(project, url, f"*load-csv t{i}.csv public.t{i}") for i in range(4)])
        for code, out, err in results:
            assert "Traceback" not in err
            assert code == 0, (out, err)
        with psycopg.connect(url, autocommit=True) as conn:
            counts = [conn.execute(f"select count(*) from public.t{i}").fetchone()[0] for i in range(4)]
        assert counts == [200 + i for i in range(4)]
        assert wait_clean(url) == []
    record("concurrency", load_csv_processes=4, load_csv_rows=sum(counts))
