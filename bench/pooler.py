#!/usr/bin/env python3
"""Pooler reliability: 20 concurrent `sage run "*apply"` through a real, stock PgBouncer (transaction mode) with
the direct URL given, over several rounds of new migrations: every file applied exactly once, no process past
its bound (a hang), no partial state (history = schema, every row once), nothing left on any pooled backend or
the server. Then 20 attempts without the direct URL: each a clear refusal, nothing changed. Side by side, the
peer: the same 20 concurrent `supabase db push --db-url` through the same pooler.

Writes bench/results/pooler.md. Needs `pgbouncer` (apt-get install pgbouncer)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import psycopg  # noqa: E402
from pgtopology import dirty_backends, pgbouncer_binary, start_pgbouncer, via  # noqa: E402

from sage_agent.db.embedded import EmbeddedServer  # noqa: E402
from sage_agent.db.shadow import create_database, drop_database  # noqa: E402

N = 20
ROUNDS = 3
BOUND_S = 300  # a process still running after this is a hang (20 Python start-ups share 2 cores)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "PG", "SAGE_"))}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["NO_COLOR"] = "1"
    return e


def launch(cmd: list[str], project: Path) -> tuple[subprocess.Popen, float]:
    return (subprocess.Popen(cmd, cwd=project, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True), time.perf_counter())


def collect(procs) -> list[dict]:
    """Wait for every process (one thread each, so each one's own end time is measured); kill at the bound."""
    import threading

    out: list[dict] = [{} for _ in procs]

    def wait(i: int, p: subprocess.Popen, t0: float) -> None:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, BOUND_S - (time.perf_counter() - t0)))
            out[i] = {"code": p.returncode, "out": stdout, "err": stderr, "s": time.perf_counter() - t0,
                      "hung": False}
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
            out[i] = {"code": None, "out": stdout, "err": stderr, "s": BOUND_S, "hung": True}

    threads = [threading.Thread(target=wait, args=(i, p, t0)) for i, (p, t0) in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def write_round(project: Path, r: int) -> list[str]:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    versions = []
    for i in range(3):
        v = f"2024010{r + 1}0000{i}0"
        body = (f"create table public.r{r}_{i} (n int not null);\n"
                + ("select pg_sleep(0.3);\n" if i == 1 else "")
                + f"insert into public.hits values ({r * 10 + i});\n")
        (folder / f"{v}_r{r}_{i}.sql").write_text(body)
        versions.append(v)
    return versions


def state(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        history = [r[0] for r in c.execute(
            "select version from supabase_migrations.schema_migrations order by 1")] if c.execute(
            "select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0] else []
        tables = [r[0] for r in c.execute("select tablename from pg_tables where schemaname = 'public' "
                                          "and tablename like 'r%%' order by 1")]
        hits = [r[0] for r in c.execute("select n from public.hits order by n")]
        left = c.execute("select count(*) from pg_stat_activity where datname = current_database() and pid <> "
                         "pg_backend_pid() and (state like 'idle in transaction%%' or wait_event_type = 'Lock')"
                         ).fetchone()[0]
        locks = c.execute("select count(*) from pg_locks l join pg_stat_activity a using (pid) where "
                          "a.datname = current_database() and l.locktype = 'advisory'").fetchone()[0]
    return {"history": history, "tables": tables, "hits": hits, "leftover_sessions": left, "advisory_locks": locks}


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    if not pgbouncer_binary():
        print("pgbouncer is not installed: apt-get install pgbouncer")
        return 1
    base = Path(tempfile.mkdtemp(prefix="sage-bench-pooler-"))
    server = EmbeddedServer(base / "pg", fast=True)
    server.start()
    os.environ["SAGE_SHADOW_URL"] = server.url()
    bouncer = start_pgbouncer(server.port, pool_size=5)
    load = os.getloadavg()[0]
    rows: list[str] = []
    problems: list[str] = []
    try:
        name = "bench_pooler"
        direct = create_database(server.url(), name)
        pooled = via(bouncer, direct)
        with psycopg.connect(direct, autocommit=True) as c:
            c.execute("create table public.hits (n int not null)")
        project = base / "project"
        project.mkdir()
        sage = [sys.executable, "-m", "sage_agent", "run", "*apply --snapshot=no", "--yes", "--json",
                "--db-url", pooled]
        expected_hits: list[int] = []
        expected_history: list[str] = []
        with_direct: list[dict] = []
        for r in range(ROUNDS):
            expected_history += write_round(project, r)
            expected_hits += [r * 10 + i for i in range(3)]
            results = collect([launch(sage + ["--direct-url", direct], project) for _ in range(N)])
            with_direct += results
            st = state(direct)
            applied = sum(json.loads(x["out"]).get("facts", {}).get("applied", 0) for x in results
                          if x["code"] == 0 and x["out"].strip())
            dirty = dirty_backends(bouncer, direct)
            partial = (st["history"] != expected_history or len(st["tables"]) != len(expected_history)
                       or st["hits"] != expected_hits)
            rows.append(f"| with direct URL, round {r + 1} | {N} | {sum(x['code'] == 0 for x in results)} ok, "
                        f"{sum(x['code'] not in (0, None) for x in results)} failed | {sum(x['hung'] for x in results)} "
                        f"| {applied} of 3 | {'yes' if partial else 'no'} | {st['leftover_sessions']} sessions, "
                        f"{st['advisory_locks']} locks, {len(dirty)} dirty backends | "
                        f"{median([x['s'] for x in results]):.1f} / {max(x['s'] for x in results):.1f} |")
            for x in results:
                if x["code"] != 0:
                    problems.append(f"round {r + 1}: exit {x['code']}: {(x['out'] + x['err'])[-300:]}")
            if applied != 3 or partial or dirty or st["leftover_sessions"] or st["advisory_locks"]:
                problems.append(f"round {r + 1}: applied={applied} partial={partial} dirty={dirty} state={st}")
        # without the direct URL: a clear refusal, nothing changed
        write_round(project, ROUNDS)
        before = state(direct)
        refused = collect([launch(sage, project) for _ in range(N)])
        after = state(direct)
        clear = sum(1 for x in refused if x["code"] == 1 and "needs a database session" in x["out"]
                    and "--direct-url" in x["out"])
        rows.append(f"| without direct URL | {N} | {clear} refused with the message | "
                    f"{sum(x['hung'] for x in refused)} | 0 of 3 (refused) | {'no' if after == before else 'CHANGED'} | "
                    f"{after['leftover_sessions']} sessions, {after['advisory_locks']} locks, "
                    f"{len(dirty_backends(bouncer, direct))} dirty backends | "
                    f"{median([x['s'] for x in refused]):.1f} / {max(x['s'] for x in refused):.1f} |")
        if clear != N or after != before:
            problems.append(f"refusal: {clear} of {N} clear; changed={after != before}")
        message = json.loads(refused[0]["out"]).get("error", "") if refused[0]["out"].strip() else refused[0]["err"]
        peer = run_peer(server, bouncer, base)
        drop_database(server.url(), name)
    finally:
        bouncer.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    attempts = N * ROUNDS
    hung = sum(x["hung"] for x in with_direct)
    lines = [
        "# Pooler: concurrent *apply through PgBouncer (issue 18)", "",
        f"Real PgBouncer {bouncer_version()} in transaction mode (stock: no `ignore_startup_parameters`, pool size 5) "
        f"in front of the embedded PostgreSQL; {N} concurrent `sage run \"*apply\"` processes per round, each "
        f"bounded at {BOUND_S} s; each round adds 3 migrations (one sleeps 0.3 s). Load average at start "
        f"{load:.1f} on {os.cpu_count()} cores (other agents share the machine).", "",
        "| attempts | processes | outcome | hung | files applied | partial state | left behind | "
        "seconds per process (median / max) |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"**{attempts} attempts with the direct URL: {hung} hangs, every file applied exactly once, no partial state; "
        f"{N} attempts without it: {clear} refused with the message, nothing changed.** "
        "The losers of the lock race wait (bounded by SAGE_APPLY_LOCK_WAIT_S), re-read the history under the lock "
        "and find nothing left to do. The seconds per process are mostly 20 Python start-ups sharing the 2 cores "
        "with other work: the refusals, which do no database work, take about as long.", "",
        "The refusal, as printed:", "", "```", message.strip()[:600], "```", "",
        peer, "",
    ]
    if problems:
        lines += ["## Problems in this run", ""] + [f"- {p}" for p in problems[:20]]
    (BENCH / "results" / "pooler.md").write_text("\n".join(lines).rstrip() + "\n")
    print("\n".join(lines))
    return 1 if problems else 0


def bouncer_version() -> str:
    out = subprocess.run([pgbouncer_binary(), "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out.split()[1:] else "?"


def run_peer(server: EmbeddedServer, bouncer, base: Path) -> str:
    """The same 20 concurrent attempts with `supabase db push --db-url POOLER` (the peer has no direct-URL
    notion for --db-url and no lock), one round of 3 files."""
    from sage_agent.db.supabase_cli import find_cli

    cli = find_cli(REPO)
    if cli is None:
        return "Peer: Supabase CLI not installed (npm install --prefix .tools supabase); not measured."
    name = "bench_pooler_peer"
    direct = create_database(server.url(), name)
    try:
        with psycopg.connect(direct, autocommit=True) as c:
            c.execute("create table public.hits (n int not null)")
        project = base / "peer"
        (project / "supabase").mkdir(parents=True)
        (project / "supabase" / "config.toml").write_text('project_id = "bench"\n')
        versions = write_round(project, 0)
        pooled = via(bouncer, direct)
        results = collect([launch([cli.path, "db", "push", "--db-url", pooled, "--yes"], project) for _ in range(N)])
        st = state(direct)
        ok = sum(x["code"] == 0 for x in results)
        errors = sorted({next((ln.strip() for ln in (x["err"] + x["out"]).splitlines()
                               if "ERROR" in ln or "error" in ln.lower()), "?")[:120]
                         for x in results if x["code"] != 0})
        return (f"Peer, same pooler, one round: {N} concurrent `supabase db push --db-url <pooler>` ({cli.version}): "
                f"{ok} exited 0, {N - ok} failed, {sum(x['hung'] for x in results)} hung; history "
                f"{len(st['history'])} of {len(versions)} versions, hits {st['hits']} (each of 0, 1, 2 expected once); "
                f"median {median([x['s'] for x in results]):.1f} s per process. Distinct errors: "
                + ("; ".join(f"`{e}`" for e in errors[:4]) or "none"))
    finally:
        drop_database(server.url(), name)


if __name__ == "__main__":
    raise SystemExit(main())
