"""Who will block you (issue 17 item 3): how close *dry-run's duration estimates come to the real run, and
what the prediction costs.

A table of ROWS rows (default 1M). For each heavy statement (a rewrite, an index build, a scan, a
validation) on a fresh copy of the database: *dry-run's estimate (the table's size / the rate measured on
the shadow server), then the statement's real time under *apply (`duration_ms` of the file), alternating
which kind goes first between REPEAT rounds. No peer tool predicts blockers or durations before running
(pgroll, Reshape, squawk: none), so the comparison is estimate vs actual. Also: the survey's own cost on the
target (pg_locks + pg_stat_activity + sizes) and the rate measurement's cost on the shadow.
Run: python bench/blockers_estimate.py [ROWS] [REPEAT]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "blockers_estimate.md"

KINDS = {
    "rewrite (int -> bigint)": "alter table public.orders alter column qty type bigint;",
    "index build": "create index orders_note_idx on public.orders (note);",
    "scan (add CHECK)": "alter table public.orders add constraint orders_qty_ck check (qty >= 0);",
    "validate (FK NOT VALID, then VALIDATE)":
        "alter table public.orders add constraint orders_user_fk foreign key (user_id) references public.users (id) "
        "not valid;\nalter table public.orders validate constraint orders_user_fk;",
}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database, drop_database
    from sage_agent.ops.migrations.applier import prepare_file
    from sage_agent.ops.migrations.blockers import measure_rates, survey
    from sage_agent.ops.migrations.history import LocalMigration
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    base = Path(tempfile.mkdtemp(prefix="sage-bench-blk-"))
    server = EmbeddedServer(base / "pg", fast=True)
    server.start()
    os.environ["SAGE_SHADOW_URL"] = server.url()
    load = os.getloadavg()
    try:
        seed_url = create_database(server.url(), "blk_seed")
        with psycopg.connect(seed_url, autocommit=True) as conn:
            conn.execute("create table public.users (id int primary key)")
            conn.execute("insert into public.users select generate_series(1, 1000)")
            conn.execute("create table public.orders (id int primary key, user_id int, qty int, note text)")
            conn.execute("insert into public.orders select g, 1 + g %% 1000, g %% 50, md5(g::text) "
                         "from generate_series(1, %s) g", (rows,))
            conn.execute("vacuum analyze public.orders")
            size = conn.execute("select pg_size_pretty(pg_total_relation_size('public.orders'))").fetchone()[0]
            version = conn.execute("show server_version").fetchone()[0]
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        survey_ms: list[float] = []
        rate_ms: list[float] = []
        names = list(KINDS)
        for r in range(repeat):
            order = names if r % 2 == 0 else names[::-1]
            for kind in order:
                name = f"blk_{r}_{names.index(kind)}"
                with psycopg.connect(server.url(), autocommit=True) as admin:
                    admin.execute(f'create database "{name}" template blk_seed')
                url = seed_url.rsplit("/", 1)[0] + "/" + name
                project = base / name
                mig = project / "supabase" / "migrations" / "20240101000000_heavy.sql"
                mig.parent.mkdir(parents=True)
                mig.write_text(KINDS[kind] + "\n")
                session = Session(project=project, target=Target("local", url, "bench"),
                                  answers=FlagAnswers(yes=True, confirm_words=("UNSAFE",)))
                dry = session.run_line("*dry-run heavy")
                estimate = sum(e["seconds"] for e in dry.result.data["survey"]["estimates"])
                with psycopg.connect(url, autocommit=True) as conn:
                    plan = prepare_file(LocalMigration("20240101000000", "heavy", mig))
                    t0 = time.perf_counter()
                    survey(conn, [plan], lock_timeout="5s")
                    survey_ms.append((time.perf_counter() - t0) * 1000)
                with psycopg.connect(server.url(), autocommit=True) as conn:
                    conn.execute("create database blk_rate")
                rate_url = seed_url.rsplit("/", 1)[0] + "/blk_rate"
                with psycopg.connect(rate_url, autocommit=True) as conn:
                    t0 = time.perf_counter()
                    measure_rates(conn)
                    rate_ms.append((time.perf_counter() - t0) * 1000)
                drop_database(server.url(), "blk_rate")
                applied = session.run_line("*apply --snapshot=no --statement-timeout=10min")
                assert applied.exit_code == 0, applied.result.summary if applied.result else applied.error
                log = (project / "supabase" / ".sage" / "migration-log.jsonl").read_text().splitlines()[-1]
                import json

                actual = json.loads(log)["duration_ms"] / 1000
                results[kind].append((estimate, actual))
                drop_database(server.url(), name)
        lines = ["# Who will block you: duration estimates vs the real run", "",
                 f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average at start "
                 f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared with other agents' test runs); "
                 f"PostgreSQL {version} (embedded, shadow on the same server). public.orders: {rows:,} rows, "
                 f"{size}. {repeat} rounds, the kinds' order alternating; medians.", "",
                 "| statement | estimate (s) | actual (s) | actual / estimate |", "|---|---|---|---|"]
        for kind, pairs in results.items():
            est = statistics.median(p[0] for p in pairs)
            act = statistics.median(p[1] for p in pairs)
            lines.append(f"| {kind} | {est:.2f} | {act:.2f} | {act / est:.2f} |" if est else
                         f"| {kind} | - | {act:.2f} | - |")
        lines += ["", f"Survey on the target (pg_locks, pg_stat_activity, sizes): median "
                      f"{statistics.median(survey_ms):.1f} ms; rate measurement on the shadow (50k-row table "
                      f"scanned twice, FK-validated, indexed, rewritten): median {statistics.median(rate_ms):.0f} ms.", ""]
        RESULTS.write_text("\n".join(lines), encoding="utf-8")
        print("\n".join(lines))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
