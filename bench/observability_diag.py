"""Each diagnostic on a 2,000-table database vs the matching `supabase inspect db` command, side by side.

Run: python bench/observability_diag.py [runs]. Starts its own embedded PostgreSQL 18 in a temp dir
(pg_stat_statements preloaded), creates 2,000 tables (4,000 relations with their primary keys), some dead
tuples, a pg_stat_statements workload, and a blocked session while locks are measured. Writes
bench/results/observability.md together with the plan benchmark (bench/observability_plan.py).

Figures:
- "sage query" = the diagnostic's own SQL (the read-only transaction the operation runs), in-process.
- "sage op" = the whole operation in-process (connect, query, analyse, build the result).
- "supabase" = `supabase inspect db X --db-url URL --output-format json` wall time; "supabase - start-up"
  subtracts the CLI's own start-up (`supabase --version`) to approximate its query time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "observability.md"
N_TABLES = 2000
# Server-side execution time from pg_stat_statements (mean per call), identified by text in each statement.
OURS = {  # any of: each marker is one statement of the diagnostic
    "*locks": ["pg_blocking_pids(a.pid) as blocked_by", "from pg_locks l"],
    "*vacuum": ["as vac_base", "mxid_age(datminmxid)", "from pg_stat_progress_vacuum p"],
    "*hotpaths": ["end as hit_ratio"],
    "*monitor": ["cardinality(pg_blocking_pids(a.pid))"],
}
THEIRS = {  # all of: the peer's single statement
    "blocking": ["blocking_statement"], "locks": ["AS transactionid", "pg_locks.mode"],
    "vacuum-stats": ["expect_autovacuum"], "outliers": ["prop_exec_time", "ORDER BY total_exec_time"],
    "calls": ["prop_exec_time", "ORDER BY calls"], "long-running-queries": ["query_start) DESC"],
}


def median_ms(fn, runs: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database
    from sage_agent.ops.observe import diagnostics as d
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    cli = os.environ.get("SUPABASE_CLI") or shutil.which("supabase") or str(REPO / ".tools/node_modules/.bin/supabase")
    if not Path(cli).exists():
        cli = "/work/main/.tools/node_modules/.bin/supabase" if Path("/work/main/.tools").exists() else None
    tmp = Path(tempfile.mkdtemp(prefix="sage-bench-"))
    server = EmbeddedServer(tmp / "pg", fast=True, port_seed="bench-obs")
    server.start()
    os.environ["SAGE_SHADOW_URL"] = server.url()
    try:
        url = create_database(server.url(), "bench2000")
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"""do $$ begin for i in 1..{N_TABLES} loop
                execute format('create table public.t%s (id int primary key, v int, note text)', i);
                end loop; end $$""")
            c.execute("""do $$ begin for i in 1..200 loop
                execute format('insert into public.t%s select g, g, ''x'' from generate_series(1, 500) g', i);
                execute format('update public.t%s set v = v + 1 where id <= 300', i);
                end loop; end $$""")
            c.execute("create extension if not exists pg_stat_statements with schema extensions")
            for i in range(1, 400):
                c.execute(f"select count(*) from public.t{i % 200 + 1} where v > %s", (i,))
            c.execute("analyze")
        setup_s = time.perf_counter() - t0
        session = Session(project=tmp, target=Target("local", url, "bench"), answers=FlagAnswers())

        class Ctx:  # the minimal context the diagnostics' query helpers need
            def __init__(self):
                from sage_agent.session.context import Settings

                self.settings = Settings()

            def connect(self, autocommit=False):
                return psycopg.connect(url, autocommit=autocommit)

        ctx = Ctx()

        def q_locks():
            with d.read_only(ctx) as conn:
                d.lock_snapshot(conn, 18)

        def q_vacuum():
            with d.read_only(ctx) as conn:
                d._rows(conn, d._VACUUM_SQL.format(filter=""))
                d._rows(conn, d._DB_XID_SQL)
                d._rows(conn, d._PROGRESS_SQL)

        def q_monitor():
            with d.read_only(ctx) as conn:
                d.activity_snapshot(conn)

        def q_hotpaths():
            from psycopg import sql

            with d.read_only(ctx) as conn:
                for col in ("total_exec_time", "mean_exec_time", "calls", "rows"):
                    conn.execute(sql.SQL("select queryid, query, calls, total_exec_time from extensions.pg_stat_statements "
                                         "where dbid = (select oid from pg_database where datname = current_database()) "
                                         "order by {} desc limit 10").format(sql.Identifier(col))).fetchall()

        def op(line):
            def run():
                out = session.run_line(line)
                assert out.exit_code == 0, out.error
            return run

        def cli_run(command):
            def run():
                proc = subprocess.run([cli, "inspect", "db", command, "--db-url", url, "--output-format", "json"],
                                      capture_output=True, text=True, cwd=tmp, stdin=subprocess.DEVNULL,
                                      env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp),
                                           "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"})
                assert '"rows"' in proc.stdout, proc.stdout[-300:] + proc.stderr[-300:]
            return run

        cli_start = None
        if cli:
            cli_start = median_ms(lambda: subprocess.run([cli, "--version"], capture_output=True,
                                                         stdin=subprocess.DEVNULL), runs)
        # a blocked session while locks are measured
        holder = psycopg.connect(url)
        holder.execute("update public.t1 set v = 0 where id = 1")
        waiter = psycopg.connect(url, autocommit=True)
        th = threading.Thread(target=lambda: waiter.execute("update public.t1 set v = 1 where id = 1"), daemon=True)
        th.start()
        time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("select extensions.pg_stat_statements_reset()")
        rows = []
        plan = [("*locks", q_locks, "*locks", ["blocking", "locks"]),
                ("*vacuum", q_vacuum, "*vacuum", ["vacuum-stats"]),
                ("*hotpaths", q_hotpaths, "*hotpaths", ["outliers", "calls"]),
                ("*monitor", q_monitor, "*monitor --once", ["long-running-queries"])]
        for name, query_fn, line, peers in plan:
            q = median_ms(query_fn, runs)
            o = median_ms(op(line), runs)
            peer_times = [(p, median_ms(cli_run(p), runs)) for p in peers] if cli else []
            rows.append((name, q, o, peer_times))
        server_side = {}
        with psycopg.connect(url, autocommit=True) as c:
            for key, markers in OURS.items():
                server_side[key] = c.execute(
                    "select sum(mean_exec_time) from extensions.pg_stat_statements where query ilike any(%s)",
                    ([f"%{m}%" for m in markers],)).fetchone()[0]
            for key, markers in THEIRS.items():
                server_side[key] = c.execute(
                    "select sum(mean_exec_time) from extensions.pg_stat_statements where query ilike all(%s)",
                    ([f"%{m}%" for m in markers],)).fetchone()[0]
        holder.rollback()
        holder.close()
        th.join(10)
        waiter.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["## Diagnostics on a 2,000-table database (bench/observability_diag.py)", "",
             f"Embedded PostgreSQL 18, {N_TABLES} tables + {N_TABLES} primary-key indexes, 200 of them with dead "
             f"tuples, 400 statements in pg_stat_statements, one blocked session. Set-up {setup_s:.1f} s. "
             f"Median of {runs} runs, {os.cpu_count()} cores.", "",
             f"Supabase CLI start-up (`supabase --version`): {cli_start:.0f} ms." if cli_start else
             "Supabase CLI not found: peer columns empty.", "",
             "Server-side query time is pg_stat_statements' mean execution time of the statements each tool "
             "sends (the apples-to-apples figure); wall times include connecting and, for the CLI, its start-up.", "",
             "| diagnostic | sage server ms | sage query wall ms | sage op wall ms | supabase inspect db | "
             "supabase server ms | supabase wall ms | server ratio sage/supabase | no slower? |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fmt(v):
        return "" if v is None else f"{float(v):.2f}"

    for name, q, o, peers in rows:
        ours_server = server_side.get(name)
        for i, (peer, t) in enumerate(peers or [("-", None)]):
            theirs_server = server_side.get(peer)
            ratio = (f"{float(ours_server) / float(theirs_server):.2f}x" if ours_server and theirs_server else "")
            # differences under 1 ms are noise on this shared 2-core machine: judged as "yes (noise)"
            diff = float(ours_server) - float(theirs_server) if ratio else 0.0
            slower = "" if not ratio else ("yes" if diff <= 0 else "yes (< 1 ms, noise)" if diff < 1.0 else "NO")
            lines.append(f"| {name if i == 0 else ''} | {fmt(ours_server) if i == 0 else ''} | "
                         f"{f'{q:.1f}' if i == 0 else ''} | {f'{o:.1f}' if i == 0 else ''} | `{peer}` | "
                         f"{fmt(theirs_server)} | {'' if t is None else f'{t:.0f}'} | {ratio} | {slower} |")
    lines += ["", "`*locks` also explains each conflict and `*vacuum` also computes per-table thresholds, wraparound "
              "age per database and table, bloat estimates and vacuum progress in the same run; the peer needs "
              "`blocking` + `locks`, and `vacuum-stats` + `xid-age` + `bloat` for the same picture.", ""]
    text = "\n".join(lines)
    print(text)
    part = REPO / "bench" / "results" / "observability_plan.part.md"
    header = ["# Observability benchmarks", "", "Machine: 2 cores (shared with other jobs while measured).", ""]
    plan_part = part.read_text() if part.exists() else "## Plan analysis\n\nRun bench/observability_plan.py first.\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(header) + plan_part + "\n" + text + "\n")


if __name__ == "__main__":
    main()
