"""*snapshot and *rollback vs the raw tools they wrap (pg_dump; psql --single-transaction), same server, one run.

Data: 40 tables x 5,000 rows (200k rows, FKs, indexes) for with-data; 500 tables for schema-only.
The Supabase CLI's `db dump` needs Docker (absent here), so the peer is plain pg_dump / psql with the same
arguments. *snapshot adds exact row counts and metadata; *rollback adds the plan (a schema dump and object diff),
a safety snapshot with data, and verification (exact counts), so its target is a multiple of the bare restore.

Targets (2 cores): *snapshot within 1.5x of pg_dump; *rollback within 3x of the bare restore.
Run: python bench/migsnap_snapshot_rollback.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "migrations-snapshots.md"


def timed(fn, runs: int = 1) -> float:
    """Median of `runs` timings."""
    import statistics

    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i) if fn.__code__.co_argcount else fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database
    from sage_agent.db.tools import run_pg_tool
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    tmp = Path(tempfile.mkdtemp(prefix="sage-bench-snap-"))
    server = EmbeddedServer(tmp / "pg", fast=True, port_seed="bench-migsnap")
    server.start()
    rows_out = []
    try:
        os.environ["SAGE_SHADOW_URL"] = server.url()
        url = create_database(server.url(), "bench_snap")
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("create table public.parent (id bigint primary key, name text)")
            db.execute("insert into public.parent select g, 'p' || g from generate_series(1, 5000) g")
            for i in range(40):
                db.execute(f"create table public.t{i} (id bigint generated always as identity primary key, "
                           f"parent bigint references public.parent (id), body text, n int)")
                db.execute(f"insert into public.t{i} (parent, body, n) select (g % 5000) + 1, md5(g::text), g "
                           f"from generate_series(1, 5000) g")
                db.execute(f"create index on public.t{i} (parent)")
            db.execute("analyze")
        project = tmp / "project"
        project.mkdir()
        session = Session(project=project, target=Target("local", url, "bench"),
                          answers=FlagAnswers(yes=True, confirm_words=("ROLLBACK",)))
        major = 18
        raw_dump = tmp / "raw.sql"

        _ok(session.run_line("*snapshot warmup"))  # first use loads the catalog and connects
        t_raw = timed(lambda: run_pg_tool("pg_dump", url, ["-n", "public", "--quote-all-identifiers", "-f",
                                                            str(raw_dump)], server_major=major), 3)
        t_sage = timed(lambda i: _ok(session.run_line(f"*snapshot {'bench' if i == 0 else f'bench{i}'} "
                                                      "--mode with-data")), 3)
        rows_out.append(("*snapshot with-data (41 tables, 205k rows)", t_sage, "pg_dump -n public", t_raw, 1.5))

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("create table public.extra (id int primary key); delete from public.t1 where n % 2 = 0")
        t_sage_rb = timed(lambda: _ok(session.run_line("*rollback bench")))
        t_raw_rb = timed(lambda: run_pg_tool("psql", url, ["-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1",
                                                           "-c", "drop schema public cascade", "-f", str(raw_dump)],
                                             server_major=major))
        rows_out.append(("*rollback with-data (plan + safety snapshot + restore + verify)", t_sage_rb,
                         "psql --single-transaction (drop + restore)", t_raw_rb, 3.0))

        url2 = create_database(server.url(), "bench_snap_wide")
        with psycopg.connect(url2, autocommit=True) as db:
            for i in range(500):
                db.execute(f"create table public.w{i} (id bigint primary key, a text, b int default 0, "
                           f"c timestamptz default now())")
        session2 = Session(project=project, target=Target("local", url2, "bench"), answers=FlagAnswers(yes=True))
        _ok(session2.run_line("*snapshot wide_warmup"))
        t_raw2 = timed(lambda: run_pg_tool("pg_dump", url2, ["-n", "public", "--schema-only", "-f",
                                                             str(tmp / "raw2.sql")], server_major=major), 3)
        t_sage2 = timed(lambda i: _ok(session2.run_line(f"*snapshot wide{i}")), 3)
        rows_out.append(("*snapshot schema-only (500 tables)", t_sage2, "pg_dump --schema-only", t_raw2, 1.5))
    finally:
        server.stop()
    lines = ["## Migrations: snapshot and rollback", "",
             f"Median of 3 runs for snapshots (after one warm-up), one run for rollback; same embedded PostgreSQL 18 server, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}. Peer: the raw tool with the same arguments (the Supabase CLI's "
             "`db dump` needs Docker).", "",
             "| operation | DB Sage s | peer | peer s | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for name, mine, peer, theirs, target in rows_out:
        ratio = mine / theirs if theirs else float("inf")
        lines.append(f"| {name} | {mine:.2f} | {peer} | {theirs:.2f} | {ratio:.2f}x | {target:.1f}x | "
                     f"{'yes' if ratio <= target else 'no'} |")
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


def _ok(outcome) -> None:
    if outcome.exit_code != 0:
        raise SystemExit(f"failed: {outcome.error}")


if __name__ == "__main__":
    raise SystemExit(main())
