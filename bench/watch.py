"""A `sage watch` round of all checks on a 20,000-table schema, side by side with the same checks run as single
commands (`sage run "*locks" "*monitor" "*vacuum" "*rls-audit" "*schema-audit"`) and with the Supabase CLI's
`supabase inspect db` equivalents (blocking, long-running-queries, vacuum-stats) plus `supabase db advisors`
where they run without Docker.

Run: python bench/watch.py [runs] [tables] [--url URL] [--quick]. Starts its own embedded PostgreSQL 18 in a temp dir (or reuses
SAGE_BENCH_WATCH_DIR when set, keeping the schema between runs), builds the schema with generate_series DO
blocks (half plain tables with a primary key, half hash partitions of 100-way partitioned tables), then
alternates the contenders `runs` times and writes bench/results/watch.md (medians, best, ratios, load).
With --url (or SAGE_BENCH_WATCH_URL), it uses that database instead (a copy of bench/big_schema.py's big_20000 made with
CREATE DATABASE ... TEMPLATE: policies, foreign keys and indexes on every plain table; the bench runs DDL on it).

Figures:
- "round right after DDL" = one in-process round of all 7 checks after a small migration (a table with RLS and
  a policy created, the last one dropped, a grant): the audits read again only the relations whose catalog
  rows changed (security/summary.py), on a thread beside the other checks; one History for all rounds, as
  `sage watch` keeps it;
- "round right after DDL, audits read whole" = the same with no per-relation findings kept (what a round after
  DDL cost before: both audits summarised over every relation);
- "both audits in full" = run_lints + schema_audit.audit in process, every finding built;
- "round, catalog unchanged" = the steady state: nothing new in the catalogs, findings carried;
- "sage watch --once (CLI)" = the whole process, start-up included, steady state and right after DDL (the
  per-relation findings come from .sage/watch.sqlite, and are written back at exit);
In-process rounds are timed by the round's own duration: not the DDL run before it, nor the history written
after it. --quick (SAGE_BENCH_WATCH_QUICK=1) leaves out the
contenders that take ~50 s a run at 20,000 tables (the whole reads and the Supabase CLI).
- "sage run 5 commands (CLI)" = the diagnostics a round is built on, as one headless run;
- "supabase inspect x3" = blocking + long-running-queries + vacuum-stats, three CLI runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "watch.md"


def build(url: str, tables: int) -> float:
    import psycopg

    plain = tables // 2
    parents = max(1, (tables - plain) // 100)
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as c:
        if c.execute("select count(*) from pg_class where relname like 'bw\\_%%' and relkind in ('r', 'p')"
                     ).fetchone()[0] >= tables:
            return 0.0
        c.execute(f"""do $$ begin for i in 1..{plain} loop
            execute format('create table if not exists public.bw_t%s (id bigint primary key, v int, note text)', i);
            if i % 500 = 0 then commit; end if;
            end loop; end $$""")
        c.execute(f"""do $$ begin for i in 1..{parents} loop
            execute format('create table if not exists public.bw_p%s (id bigint, tenant int, v int, '
                           'primary key (tenant, id)) partition by hash (tenant)', i);
            for j in 0..99 loop
              execute format('create table if not exists public.bw_p%s_%s partition of public.bw_p%s '
                             'for values with (modulus 100, remainder %s)', i, j, i, j);
            end loop;
            if i % 5 = 0 then commit; end if;
            end loop; end $$""")
        c.execute("insert into public.bw_t1 select g, g, 'x' from generate_series(1, 5000) g on conflict do nothing")
        c.execute("update public.bw_t1 set v = v + 1 where id <= 3000")
        c.execute("create extension if not exists pg_stat_statements with schema extensions")
        c.execute("analyze")
    return time.perf_counter() - t0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database
    from sage_agent.ops.watch.checks import CHECK_NAMES, Thresholds
    from sage_agent.ops.watch.history import History, history_path
    from sage_agent.ops.watch.runner import run_round, target_name, watch_context

    args = sys.argv[1:]
    if "--url" in args:  # the same as SAGE_BENCH_WATCH_URL
        at = args.index("--url")
        os.environ["SAGE_BENCH_WATCH_URL"] = args[at + 1]
        del args[at:at + 2]
    only = None
    if "--only" in args:  # e.g. --only first: the contenders whose name has one of these words (comma-separated)
        at = args.index("--only")
        only = [w.strip() for w in args[at + 1].split(",") if w.strip()]
        del args[at:at + 2]
    if "--quick" in args:  # the same as SAGE_BENCH_WATCH_QUICK=1
        args.remove("--quick")
        os.environ["SAGE_BENCH_WATCH_QUICK"] = "1"
    runs = int(args[0]) if args else 5
    tables = int(args[1]) if len(args) > 1 else 20_000
    given = os.environ.get("SAGE_BENCH_WATCH_URL")
    keep_dir = os.environ.get("SAGE_BENCH_WATCH_DIR") or given
    base = Path(tempfile.mkdtemp(prefix="sage-bench-watch-")) if not keep_dir or given else Path(keep_dir)
    server = None if given else EmbeddedServer(base / "pg", fast=True, port_seed="bench-watch")
    if server is not None:
        server.start()
    cli = os.environ.get("SUPABASE_CLI") or shutil.which("supabase") or str(REPO / ".tools/node_modules/.bin/supabase")
    if not Path(cli).exists():
        cli = None
    project = Path(tempfile.mkdtemp(prefix="sage-bench-watch-project-"))
    try:
        if given:
            url, setup_s = given, 0.0
        else:
            name = f"watch{tables}"
            with psycopg.connect(server.url(), autocommit=True) as c:
                exists = c.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            url = server.url().rsplit("/", 1)[0] + f"/{name}" if exists else create_database(server.url(), name)
            setup_s = build(url, tables)
        with psycopg.connect(url, autocommit=True) as c:
            relations = c.execute("select count(*) from pg_class where relkind in ('r', 'p') "
                                  "and relnamespace = 'public'::regnamespace").fetchone()[0]
            shape = c.execute("select (select count(*) from pg_policy), (select count(*) from pg_index), "
                              "(select count(*) from pg_constraint where contype = 'f')").fetchone()
            c.execute("select extensions.pg_stat_statements_reset()")
        ctx = watch_context(project, Target("local", url, "bench"), 30_000)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "PG", "SAGE_"))}
        env.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1"})
        counter = iter(range(1, 10_000))

        history = History(history_path(project))  # one for all in-process rounds, as `sage watch` keeps it
        migration = iter(range(1, 10_000))

        def ddl() -> None:
            """A small migration: a table with RLS and a policy, the previous one dropped, a grant."""
            i = next(migration)
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"drop table if exists public.wb_{i}; "
                          f"create table public.wb_{i} (id bigint primary key, owner uuid, note text); "
                          f"alter table public.wb_{i} enable row level security; "
                          f"create policy wb_{i}_own on public.wb_{i} for all to authenticated "
                          f"using ((select auth.uid()) = owner); drop table if exists public.wb_{i - 1}; "
                          f"grant select on public.wb_{i} to anon")

        def round_(audit_every_s: float, after_ddl: bool = False, whole: bool = False):
            if after_ddl:
                ddl()
            if whole:
                history.audit_store(target_name(ctx.target)).clear()
            rnd = run_round(ctx, list(CHECK_NAMES), Thresholds(), history, number=next(counter),
                            audit_every_s=audit_every_s)
            history.flush()
            assert not rnd.errors, [r.error for r in rnd.errors]
            audits = rnd.results[-1]
            assert (audits.carried_from is not None) == (not after_ddl), audits
            assert (audits.reread is None) == whole or not after_ddl, audits.reread
            return rnd

        def first_round():
            """A new watch: no .sage/watch.sqlite yet, so the audits read every relation and store their rows."""
            fresh = Path(tempfile.mkdtemp(prefix="sage-bench-watch-first-"))
            try:
                with History(history_path(fresh)) as new:
                    rnd = run_round(watch_context(fresh, Target("local", url, "bench"), 30_000), list(CHECK_NAMES),
                                    Thresholds(), new, number=1, audit_every_s=3600)
                assert not rnd.errors and rnd.results[-1].reread is None, [r.error for r in rnd.errors]
                return rnd
            finally:
                shutil.rmtree(fresh, ignore_errors=True)

        def cli_first() -> None:
            fresh = Path(tempfile.mkdtemp(prefix="sage-bench-watch-first-cli-"))
            try:
                sage("watch", "--once", "--db-url", url, cwd=fresh)
                assert history_path(fresh).exists()
            finally:
                shutil.rmtree(fresh, ignore_errors=True)

        def cli_after_ddl() -> None:
            ddl()
            sage("watch", "--once", "--db-url", url)

        def sage(*args: str, cwd: Path = project) -> None:
            proc = subprocess.run([sys.executable, "-m", "sage_agent", *args], cwd=cwd, env=env,
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            assert proc.returncode in (0, 1), proc.stderr[-500:]

        def supabase(*args: str):
            def run() -> None:
                for command in args:
                    proc = subprocess.run([cli, "inspect", "db", command, "--db-url", url, "--output-format", "json"],
                                          capture_output=True, text=True, cwd=project, stdin=subprocess.DEVNULL,
                                          env={"PATH": os.environ.get("PATH", ""), "HOME": str(project),
                                               "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"})
                    assert '"rows"' in proc.stdout, proc.stdout[-300:] + proc.stderr[-300:]
            return run

        def full_audits() -> None:
            # what the audits check ran before it summarised on the server: both full audits, every finding built
            from sage_agent.ops.security.lints import SECURITY_LINTS, exposed_schemas, run_lints
            from sage_agent.ops.security.schema_audit import audit

            with psycopg.connect(url, autocommit=True) as c:
                run_lints(c, SECURITY_LINTS, exposed_schemas(c), server_major=18)
                audit(c)

        contenders = {
            "first round of a new watch, no history (in-process)": first_round,
            "sage watch --once (CLI), first round: no .sage/watch.sqlite": cli_first,
            "round of 7 checks right after DDL (in-process)": lambda: round_(3600, after_ddl=True),
            "round of 7 checks right after DDL, audits read whole (before)": lambda: round_(3600, True, True),
            "both audits in full, in process": full_audits,
            "round of 7 checks, catalog unchanged (in-process)": lambda: round_(3600),
            "sage watch --once (CLI), catalog unchanged": lambda: sage("watch", "--once", "--db-url", url),
            "sage watch --once (CLI) right after DDL": cli_after_ddl,
        }
        if not given or os.environ.get("SAGE_BENCH_WATCH_ALL"):  # 30 s a run at 20,000 tables: on request there
            contenders["sage run *locks *monitor *vacuum *rls-audit *schema-audit (CLI)"] = \
                lambda: sage("run", "*locks", "*monitor --once", "*vacuum", "*rls-audit", "*schema-audit", "--json",
                             "--db-url", url)
        quick = bool(os.environ.get("SAGE_BENCH_WATCH_QUICK"))  # leave out the contenders that take ~50 s a run
        if quick:
            for key in ("round of 7 checks right after DDL, audits read whole (before)", "both audits in full, in process"):
                del contenders[key]
        if cli and not quick:
            contenders["supabase inspect db blocking + long-running-queries + vacuum-stats"] = \
                supabase("blocking", "long-running-queries", "vacuum-stats")
        if only:
            contenders = {k: v for k, v in contenders.items() if any(w in k for w in only)}
        if any(k.startswith(("round of 7 checks", "sage watch --once (CLI), catalog", "sage watch --once (CLI) right"))
               for k in contenders):
            round_(3600, after_ddl=True, whole=True)  # warm: caches, the history file, the audits' first full read
            round_(3600)
            sage("watch", "--once", "--db-url", url)  # the CLI's own first read (its target's findings, if not shared)
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        cpu: dict[str, list[float]] = {k: [] for k in contenders}
        loads = []
        per_check: dict[str, list[float]] = {}
        for _ in range(runs):
            loads.append(os.getloadavg()[0])
            for key, fn in contenders.items():  # alternating: each run measures every contender once
                t0 = time.perf_counter()
                c0 = time.process_time() + _children_cpu()
                result = fn()
                cpu[key].append(time.process_time() + _children_cpu() - c0)
                # an in-process round: its own duration (not the DDL before it, nor the history written after it)
                samples[key].append(result.duration_ms / 1000 if key.startswith(("round of 7 checks", "first round"))
                                    else time.perf_counter() - t0)
                for kind in ("catalog unchanged", "right after DDL (in-process)"):
                    if kind in key and key.startswith("round of 7 checks"):
                        for r in result.results:
                            per_check.setdefault((kind, r.name), []).append(r.duration_ms)
        if only:  # a few contenders alone (the lead's quiet re-run of one case): no overhead check, no history size
            history.close()
            write_only(runs, tables, relations, samples, cpu, loads, shape if given else None, only)
            return
        ddl()  # the catalog changes, then the watch alone: what does *hotpaths see of it?
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("select extensions.pg_stat_statements_reset()")
        for n in range(4):
            rnd = run_round(ctx, list(CHECK_NAMES), Thresholds(), history, number=next(counter), audit_every_s=3600)
            assert (rnd.results[-1].carried_from is None) == (n == 0) and not rnd.errors
        with psycopg.connect(url, autocommit=True) as c:
            shown = c.execute("select count(*) from extensions.pg_stat_statements s where s.dbid = "
                              "(select oid from pg_database where datname = current_database())").fetchone()[0]
        from sage_agent.db.env import Target as T
        from sage_agent.session.answers import FlagAnswers
        from sage_agent.session.machine import Session

        hot = Session(project=project, target=T("local", url, "bench"), answers=FlagAnswers()).run_line(
            "*hotpaths --limit 50").result
        visible = [r["query"] for r in hot.data["top"]["total"]]
        size_kb = history_path(project).stat().st_size / 1024
        n_rounds = history.count(history.targets()[0])
        history.close()
        write(runs, tables, relations, setup_s, samples, loads, per_check, shown, hot.data["own_hidden"], visible,
              size_kb, n_rounds, cli is not None, shape if given else None)
    finally:
        if server is not None and not keep_dir:
            server.stop()
        if not keep_dir or given:
            shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes (a CLI run of sage)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def write_only(runs, tables, relations, samples, cpu, loads, shape, only) -> None:
    """The results of `--only` runs: printed, and appended to bench/results/watch.md (the full bench rewrites it)."""
    lines = ["", f"### `python bench/watch.py {runs} {tables}{' --url URL' if shape else ''} --only {','.join(only)}` "
             f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"{relations:,} tables in public; 1-minute load average during the runs {min(loads):.1f}-{max(loads):.1f} "
             f"on {os.cpu_count()} cores. {runs} alternating runs (median, best; CPU = this process and its children, "
             "not the server's):", "",
             "| contender | median s | best s | median CPU s |", "|---|---|---|---|"]
    for key, values in samples.items():
        lines.append(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | "
                     f"{statistics.median(cpu[key]):.2f} |")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def write(runs, tables, relations, setup_s, samples, loads, per_check, pss_total, own_hidden, visible, size_kb,
          n_rounds, have_cli, shape) -> None:
    base_key = "round of 7 checks, catalog unchanged (in-process)"
    base = statistics.median(samples[base_key])
    if shape:
        what = (f"{relations:,} tables in public, a copy of bench/big_schema.py's big_{tables} (half plain tables "
                "with an identity key, an index, RLS and a policy, a foreign key on every third, a view per 50; half "
                f"hash partitions of 20-way parents): {shape[0]:,} policies, {shape[1]:,} indexes, {shape[2]:,} "
                "foreign keys")
    else:
        what = (f"{relations:,} tables in public ({tables // 2:,} plain with a primary key, the rest hash partitions "
                f"of 100-way partitioned tables){f', built in {setup_s:.0f} s' if setup_s else ''}")
    lines = [
        "# sage watch: a round of all checks at 20,000 tables (issue 18)", "",
        f"`python bench/watch.py {runs} {tables}{' --url URL' if shape else ''}"
        f"{' --quick' if os.environ.get('SAGE_BENCH_WATCH_QUICK') else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: embedded "
        f"PostgreSQL 18 (fsync off), {what}. "
        f"Machine: {os.cpu_count()} cores shared with other jobs; 1-minute load average during the runs "
        f"{min(loads):.1f}-{max(loads):.1f} (on 2 cores: single figures vary by 2x or more, compare medians "
        "within one run).", "",
        f"{runs} alternating runs of each contender (median and best, seconds; ratio = median / the steady-state "
        "round):", "",
        "| contender | median s | best s | ratio |", "|---|---|---|---|",
    ]
    for key, values in samples.items():
        lines.append(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | "
                     f"{statistics.median(values) / base:.2f}x |")
    lines += ["", "Where a round spends its time (median ms per check; vacuum and wraparound share one *vacuum query, "
              "long-queries, idle-in-tx and replication one activity snapshot, the first check that needs it pays; "
              "the audits run on a thread beside the others, so the round takes the longer of the two):", "",
              "| check | catalog unchanged | right after DDL |", "|---|---|---|"]
    names = dict.fromkeys(name for _, name in per_check)
    lines += [f"| {name} | {statistics.median(per_check[('catalog unchanged', name)]):.0f} | "
              f"{statistics.median(per_check[('right after DDL (in-process)', name)]):.0f} |" for name in names]
    lines += ["", "Own overhead invisible to `*hotpaths`: after DDL, a pg_stat_statements reset and 4 rounds (the "
              "first reads the changed relations again), pg_stat_statements holds "
              f"{pss_total} statements for the database; `*hotpaths` leaves out {own_hidden} of them as DB Sage's "
              f"and shows {len(visible)} ({'none of them a watch statement' if not visible else '; '.join(v[:60] for v in visible)}).",
              "", f"History: {n_rounds} rounds in .sage/watch.sqlite take {size_kb:,.0f} KB "
              "(audits are kept as one observation per rule, at most 200 observations per check and round).", ""]
    if not have_cli:
        lines.append("The Supabase CLI was not found: its row is missing.")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
