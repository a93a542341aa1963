"""*apply vs *apply --online under a steady concurrent workload (issue 17's numbers).

A table of ROWS rows (default 2M, the issue's size: about 3 minutes on 2 shared cores; pass ROWS to change it). Another process runs a fixed-rate loop of single-row selects, inserts and
updates (RATE per second, each latency recorded, statement_timeout 30 s); a sampler polls pg_stat_activity
every 20 ms for the workload's longest wait on a lock. Five migrations, each applied plainly (`*apply`,
UNSAFE typed) and online (`*apply --online`), alternating which goes first, on the same table, undone
between runs outside the measurement: add an index, add a foreign key, set NOT NULL, int -> bigint (online:
expand/contract, and `*apply --complete` inside the measured window), backfill a new column (volatile default),
and "primary key int -> bigint": the int primary key of `accounts` (ROWS rows), referenced by a foreign key from
`payments` (ROWS / 10 rows); its workload runs the same mix on `accounts`, every other insert going to `payments`
(a foreign-key check on the key being changed). Two shapes the type change carries: "identity key int -> bigint"
(`tickets.id`, an identity: the workload's inserts take their ids from it) and "view over int -> bigint"
(`sales.qty`, read by the view `sales_v`: the file is the plain ALTER's, drop the view, change the type, make the
view again; the workload selects, updates and inserts through the view). A baseline run without a migration gives the workload's own
p50/p99. Rows of the original tables are checksummed before and after every run: nothing lost or changed.
Run: python bench/online.py [ROWS] [RATE] [MIGRATION]   (MIGRATION, e.g. "int -> bigint": only that one, written
as its own section of the results file)
The client (BENCH_CLIENT): `prepared` (default: psycopg prepares a query server-side after 5 runs, and the select
returns every column), `unprepared` (prepare_threshold=None; BENCH_NO_PREPARE=1 is the same), or
`prepared-other-columns` (prepares, but its select does not return the column whose type changes): which clients
get `cached plan must not change result type` at the moment the type changes. `prepared-versioned` adds a third
mode to each migration, `*apply --online --versioned`: the prepared client runs on the base table through the
apply, then a simulated deploy (1 s after the apply) reconnects it with `search_path` = the version schema, public,
where it prepares its statements again; `*apply --complete` runs 1 s after the deploy, inside the measured window;
the plain and `--online` runs of the same invocation use the default `prepared` client, side by side.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "online.md"
CLIENT_TITLES = {"prepared": "", "unprepared": ", workload without server-side prepared statements",
                 "prepared-other-columns": ", workload preparing statements that do not return the changed column",
                 "prepared-versioned": ", prepared workload, with `--online --versioned` and a simulated deploy "
                                       "beside plain and `--online`"}
VERSION = "20250101000000"  # the bench file's version: its version schema is public_<VERSION>

SALES_VIEW = ("create view public.sales_v as select id, user_id, amount, qty, note from public.sales;\n"
              "grant select on public.sales_v to anon;\n")
MIGRATIONS = {
    "add an index": ("create index orders_amount_idx on public.orders (amount);",
                     "drop index if exists public.orders_amount_idx"),
    "add a foreign key": ("alter table public.orders add constraint orders_user_fk foreign key (user_id) "
                          "references public.users (id);",
                          "alter table public.orders drop constraint if exists orders_user_fk"),
    "set NOT NULL": ("alter table public.orders alter column amount set not null;",
                     "alter table public.orders alter column amount drop not null"),
    "int -> bigint": ("alter table public.orders alter column qty type bigint;",
                      "alter table public.orders alter column qty type int"),
    "backfill a new column": ("alter table public.orders add column token uuid default gen_random_uuid();",
                              "alter table public.orders drop column if exists token"),
    "primary key int -> bigint": ("alter table public.accounts alter column id type bigint;",
                                  "alter table public.accounts alter column id type int"),
    "identity key int -> bigint": ("alter table public.tickets alter column id type bigint;",
                                   "alter table public.tickets alter column id type int"),
    # the file a plain ALTER needs (a view uses the column); --online runs its view statements in the swap
    "view over int -> bigint": ("drop view public.sales_v;\nalter table public.sales alter column qty type bigint;\n"
                                + SALES_VIEW, "drop view public.sales_v; alter table public.sales alter column qty "
                                              "type int; " + SALES_VIEW),
}
# the workload's table (orders otherwise): the view shape's workload reads and writes through the view
TABLE_OF = {"primary key int -> bigint": "accounts", "identity key int -> bigint": "tickets",
            "view over int -> bigint": "sales_v"}
CHANGED = {"int -> bigint": "qty", "primary key int -> bigint": "id", "identity key int -> bigint": "id",
           "view over int -> bigint": "qty"}  # the column whose type changes
COLUMNS = ["id", "user_id", "amount", "qty", "note"]


def client() -> str:
    """BENCH_CLIENT, or `unprepared` for the older BENCH_NO_PREPARE=1."""
    kind = os.environ.get("BENCH_CLIENT") or ("unprepared" if os.environ.get("BENCH_NO_PREPARE") == "1" else
                                              "prepared")
    if kind not in CLIENT_TITLES:
        raise SystemExit(f"BENCH_CLIENT={kind!r}: one of {', '.join(CLIENT_TITLES)}")
    return kind


def workload(url: str, rate: float, rows: int, stop, out, table: str = "orders", changed: str | None = None,
             kind: str = "prepared", deploy=None) -> None:
    """Fixed-rate single-row operations on `table`; each result: (latency_s, error or ''). Columns are named (not
    `*`): psycopg prepares repeated queries, and a prepared `select *` fails after any ADD COLUMN, online or not.
    On `accounts`, every other insert goes to `payments` (its foreign key checks the key being changed).
    `prepared-versioned`: names are unqualified (the search_path picks the schema), and once `deploy` is set the
    client reconnects with search_path = the version schema, public (the new build)."""
    import psycopg

    results: list[tuple[float, str]] = []
    rng = random.Random(7)
    # a prepared query whose result type a type change alters fails with "cached plan must not change result type"
    prepare = None if kind == "unprepared" else 5
    shown = [c for c in COLUMNS if not (kind == "prepared-other-columns" and c == changed)]
    q = "" if kind == "prepared-versioned" else "public."
    select = f"select {', '.join(shown)} from {q}{table} where id = %s"

    def connect(search_path: str | None = None):
        extra = {"options": f"-csearch_path={search_path}"} if search_path else {}
        conn = psycopg.connect(url, autocommit=True, application_name="bench-workload", prepare_threshold=prepare,
                               **extra)
        conn.execute("set statement_timeout = '30s'")
        return conn

    conn = connect()
    deployed = False
    try:
        interval, next_at = 1.0 / rate, time.perf_counter()
        inserts = 0
        while not stop.is_set():
            if deploy is not None and deploy.is_set() and not deployed:  # the new build: the version schema
                conn.close()
                conn = connect(f"public_{VERSION},public")
                deployed = True
            op = rng.random()
            started = time.perf_counter()
            try:
                if op < 0.5:
                    conn.execute(select, (rng.randint(1, rows),)).fetchall()
                elif op < 0.75:
                    conn.execute(f"update {q}{table} set note = %s where id = %s",
                                 (f"w{rng.randint(0, 999)}", rng.randint(1, rows)))
                elif table == "tickets":  # the identity hands out the id
                    inserts += 1
                    conn.execute(f"insert into {q}tickets (user_id, amount, qty, note) values (%s, %s, 1, 'new')",
                                 (rng.randint(1, 1000), rng.randint(0, 999)))
                elif table == "accounts" and inserts % 2:
                    inserts += 1
                    conn.execute("insert into public.payments (id, account_id) values (nextval('public.wl_pay_ids'), "
                                 "%s)", (rng.randint(1, rows),))
                else:
                    inserts += 1
                    conn.execute(f"insert into {q}{table} (id, user_id, amount, qty, note) "
                                 "values (nextval('public.wl_ids'), %s, %s, 1, 'new')",
                                 (rng.randint(1, 1000), rng.randint(0, 999)))
                results.append((time.perf_counter() - started, ""))
            except psycopg.Error as exc:
                results.append((time.perf_counter() - started, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.perf_counter()  # behind after a wait: carry on at the rate, not in a burst
    finally:
        conn.close()
    out.send(results)


class LockSampler(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.longest, self.done = url, 0.0, threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.is_set():
                row = conn.execute("select max(extract(epoch from clock_timestamp() - query_start)) "
                                   "from pg_stat_activity where application_name = 'bench-workload' "
                                   "and wait_event_type = 'Lock'").fetchone()
                if row[0] is not None:
                    self.longest = max(self.longest, float(row[0]))
                time.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def checksum(conn, rows: int) -> str:
    """The seeded rows of every table (not the workload's own inserts and notes)."""
    out = conn.execute("select md5(string_agg(id || ':' || user_id || ':' || amount || ':' || qty, ',' order by id)) "
                       "from public.orders where id <= %s", (rows,)).fetchone()[0]
    if conn.execute("select to_regclass('public.accounts')").fetchone()[0]:
        out += conn.execute("select md5(string_agg(id || ':' || user_id || ':' || amount || ':' || qty, ',' "
                            "order by id)) from public.accounts where id <= %s", (rows,)).fetchone()[0]
        out += conn.execute("select md5(string_agg(id || ':' || account_id, ',' order by id)) from public.payments "
                            "where id <= %s", (rows // 10,)).fetchone()[0]
    for table in ("tickets", "sales"):
        if conn.execute("select to_regclass(%s)", (f"public.{table}",)).fetchone()[0]:
            out += conn.execute("select md5(string_agg(id || ':' || user_id || ':' || amount || ':' || qty, ',' "
                                f"order by id)) from public.{table} where id <= %s", (rows,)).fetchone()[0]
    return out


def main() -> int:
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
    only = sys.argv[3] if len(sys.argv) > 3 else None
    if only is not None and only not in MIGRATIONS:
        raise SystemExit(f"unknown migration {only!r}: one of {', '.join(MIGRATIONS)}")
    kind = client()
    tmp = Path(tempfile.mkdtemp(prefix="sage-bench-online-"))
    server = EmbeddedServer(tmp / "pg", fast=True, port_seed="bench-online")
    server.start()
    os.environ["SAGE_SHADOW_URL"] = server.url()
    load_before = os.getloadavg()
    report: list[dict] = []
    try:
        url = create_database(server.url(), "bench_online")
        project = tmp / "project"
        folder = project / "supabase" / "migrations"
        folder.mkdir(parents=True)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("create table public.users (id bigint primary key)")
            db.execute("insert into public.users select generate_series(1, 1000)")
            db.execute("create table public.orders (id bigint primary key, user_id bigint, amount int, qty int, "
                       "note text)")
            db.execute(f"insert into public.orders select g, 1 + g % 1000, g % 1000, g % 7, 'n' "
                       f"from generate_series(1, {rows}) g")
            db.execute("create sequence public.wl_ids start 100000000")
            db.execute("vacuum analyze public.orders")
            if only is None or only in TABLE_OF:  # the primary-key case: an int key referenced by a foreign key
                db.execute("create table public.accounts (id int primary key, user_id bigint, amount int, qty int, "
                           "note text)")
                db.execute(f"insert into public.accounts select g, 1 + g % 1000, g % 1000, g % 7, 'n' "
                           f"from generate_series(1, {rows}) g")
                db.execute("create table public.payments (id bigint primary key, account_id int not null "
                           "constraint payments_account_fk references public.accounts (id))")
                db.execute(f"insert into public.payments select g, 1 + (g * 7) % {rows} "
                           f"from generate_series(1, {rows // 10}) g")
                db.execute("create index payments_account_idx on public.payments (account_id)")
                db.execute("create sequence public.wl_pay_ids start 100000000")
                db.execute("vacuum analyze public.accounts")
                db.execute("vacuum analyze public.payments")
            for label, table in (("identity key int -> bigint", "tickets"), ("view over int -> bigint", "sales")):
                if only is None or only == label:
                    key = "int generated by default as identity" if table == "tickets" else "bigint"
                    db.execute(f"create table public.{table} (id {key} primary key, user_id bigint, amount int, "
                               "qty int, note text)")
                    db.execute(f"insert into public.{table} (id, user_id, amount, qty, note) select g, 1 + g % 1000, "
                               f"g % 1000, g % 7, 'n' from generate_series(1, {rows}) g")
                    db.execute(f"vacuum analyze public.{table}")
            if only is None or only == "identity key int -> bigint":
                db.execute(f"select setval(pg_get_serial_sequence('public.tickets', 'id'), {rows})")
            if only is None or only == "view over int -> bigint":
                db.execute(SALES_VIEW)
            before = checksum(db, rows)

        def news(text: str) -> None:
            """sage's lines that name a lock holder (a step retried): printed, to see who held up a step."""
            if "pid " in text:
                print(f"  sage: {text}", flush=True)

        def run(label: str, mode: str | None, sql: str | None, undo: str | None, table: str = "orders") -> dict:
            parent, child = mp.Pipe(duplex=False)
            stop, deploy = mp.Event(), mp.Event()
            # plain and --online runs get the default prepared client beside a versioned run
            who = kind if mode == "versioned" or kind != "prepared-versioned" else "prepared"
            proc = mp.Process(target=workload, args=(url, rate, rows, stop, child, table, CHANGED.get(label), who,
                                                     deploy))
            proc.start()
            sampler = LockSampler(url)
            sampler.start()
            time.sleep(1.0)  # the workload is steady before the migration starts
            started = time.perf_counter()
            status = "ran"
            if mode is None:
                time.sleep(5.0)
            else:
                (folder / f"{VERSION}_bench.sql").write_text(sql + "\n", encoding="utf-8")
                words = ("UNSAFE",) if mode == "plain" else ()
                session = Session(project=project, target=Target("local", url, "bench"),
                                  answers=FlagAnswers(yes=True, confirm_words=words), message_sink=news)
                flags = {"plain": "", "online": " --online", "versioned": " --online --versioned"}[mode]
                outcome = session.run_line("*apply --snapshot=no" + flags)
                if outcome.exit_code != 0:
                    status = "refused" if outcome.error and "no online form" in outcome.error else \
                        f"failed: {(outcome.error or outcome.result.summary)[:80]}"
                elif mode in ("online", "versioned") and "type" in sql:  # the contract is part of the change
                    applied = time.perf_counter() - started
                    if mode == "versioned":  # the deploy: the client moves to the version schema, then --complete
                        time.sleep(1.0)
                        deploy.set()
                        time.sleep(1.0)
                    completing = time.perf_counter()
                    done = Session(project=project, target=Target("local", url, "bench"),
                                   answers=FlagAnswers(confirm_words=("COMPLETE",)), message_sink=news
                                   ).run_line("*apply --complete")
                    took = time.perf_counter() - completing
                    status = (f"ran (apply {applied:.1f} s + {'deploy 2 s + ' if mode == 'versioned' else ''}complete "
                              f"{took:.2f} s)") if done.exit_code == 0 else \
                        f"complete failed: {(done.error or done.result.summary)[:80]}"
            elapsed = time.perf_counter() - started
            time.sleep(1.0)
            stop.set()
            results = parent.recv()
            proc.join()
            sampler.done.set()
            sampler.join()
            with psycopg.connect(url, autocommit=True) as db:
                if mode is not None:
                    (folder / f"{VERSION}_bench.sql").unlink()
                    db.execute("delete from supabase_migrations.schema_migrations")
                    if db.execute("select to_regclass('supabase_migrations.sage_online')").fetchone()[0]:
                        db.execute("delete from supabase_migrations.sage_online")
                intact = checksum(db, rows) == before
                if undo:
                    db.execute(undo)
            lat = [r[0] * 1000 for r in results]
            entry = {"migration": label, "mode": mode or "no migration", "status": status, "seconds": elapsed,
                     "ops": len(results), "errors": sum(1 for r in results if r[1]), "p50": pct(lat, 0.5),
                     "p99": pct(lat, 0.99), "max": max(lat) if lat else 0.0, "lock_wait": sampler.longest * 1000,
                     "intact": intact, "error_kinds": sorted({r[1] for r in results if r[1]})}
            print(f"{label:24} {entry['mode']:13} {status:8} {elapsed:6.2f}s p50 {entry['p50']:6.1f} "
                  f"p99 {entry['p99']:7.1f} max {entry['max']:7.1f} lockwait {entry['lock_wait']:7.1f} "
                  f"errors {entry['errors']} intact {intact}", flush=True)
            report.append(entry)
            return entry

        base_table = TABLE_OF.get(only or "", "orders")
        run("baseline", None, None, None, base_table)
        chosen = {k: v for k, v in MIGRATIONS.items() if only is None or k == only}
        for n, (label, (sql, undo)) in enumerate(chosen.items()):
            order = ["plain", "online"] if n % 2 == 0 else ["online", "plain"]
            if kind == "prepared-versioned":
                order = ["plain", "online", "versioned"][n % 3:] + ["plain", "online", "versioned"][:n % 3]
            for mode in order:
                # the online run of a refused statement changes nothing: nothing to undo
                run(label, mode, sql, undo, TABLE_OF.get(label, "orders"))
        run("baseline", None, None, None, base_table)
    finally:
        server.stop()
    load_after = os.getloadavg()
    write_results(report, rows, rate, load_before, load_after, only, kind)
    return 0


def write_results(report: list[dict], rows: int, rate: float, load_before, load_after, only: str | None = None,
                  kind: str = "prepared") -> None:
    base = [e for e in report if e["mode"] == "no migration"]
    base_p99 = statistics.median(e["p99"] for e in base)
    base_p50 = statistics.median(e["p50"] for e in base)
    title = "## Online migrations: `*apply` vs `*apply --online` (issue 17)" if only is None else \
        f"### {only} alone{CLIENT_TITLES[kind]} " \
        f"(`{'BENCH_CLIENT=' + kind + ' ' if kind != 'prepared' else ''}python bench/online.py " \
        f"{rows} {rate:.0f} \"{only}\"`)"
    lines = [
        title,
        "",
        f"Table of {rows:,} rows (the issue's size is 2M), "
        f"a concurrent workload from another process at {rate:.0f} single-row operations/s (50% select by id, 25% "
        "update by id, 25% insert), every latency recorded; the longest lock wait is the workload's longest "
        "`wait_event_type = 'Lock'` seen by a 20 ms sampler of pg_stat_activity. One run per migration and mode, "
        "alternating which mode goes first; `*apply` with UNSAFE typed, `*apply --online` with the defaults "
        "(lock_timeout 1 s, batches of 5000 rows, no pause). Embedded PostgreSQL 18, fsync on. The loop sends "
        "its next operation when the previous returns, so a blocked stretch shows as one long `max` and fewer "
        "`workload ops`, not as many slow operations (coordinated omission): read those two columns first. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Reproduce: `python bench/online.py {rows} {rate:.0f}`.",
        "",
        f"Workload without a migration: p50 {base_p50:.1f} ms, p99 {base_p99:.1f} ms (median of {len(base)} runs).",
        "",
        "| migration | mode | result | migration s | workload ops | errors | p50 ms | p99 ms | max ms | "
        "longest lock wait ms | p99 / baseline | rows intact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report:
        if e["mode"] == "no migration":
            continue
        lines.append(f"| {e['migration']} | {e['mode']} | {e['status']} | {e['seconds']:.2f} | {e['ops']} | "
                     f"{e['errors']} | {e['p50']:.1f} | {e['p99']:.1f} | {e['max']:.1f} | {e['lock_wait']:.0f} | "
                     f"{e['p99'] / base_p99:.1f}x | {'yes' if e['intact'] else 'NO'} |")
    kinds = sorted({k for e in report for k in e["error_kinds"]})
    if kinds:
        lines += ["", "Workload errors seen: " + "; ".join(f"`{k}`" for k in kinds)]
    for mode, flags in (("online", "--online"), ("versioned", "--online --versioned")):
        lines += _targets([e for e in report if e["mode"] == mode and e["status"].startswith("ran")], flags,
                          base_p99, report)
    text = "\n".join(lines) + "\n"
    if only is not None and RESULTS.exists():  # one migration: its own section, replacing an earlier one
        old = RESULTS.read_text(encoding="utf-8")
        head, _, rest = old.partition(title)
        after = rest[rest.find("\n### ", 1) + 1:] if rest and "\n### " in rest else ""
        if not rest:  # first time: before the earlier, smaller runs
            marker = old.find("\n### ")
            head, after = (old[:marker + 1], old[marker + 1:]) if marker >= 0 else (old + "\n", "")
        text = head + text + ("\n" + after if after else "")
    RESULTS.write_text(text, encoding="utf-8")
    print(f"wrote {RESULTS}")


def _targets(online: list[dict], flags: str, base_p99: float, report: list[dict]) -> list[str]:
    """The issue's targets over the runs of one mode that ran."""
    if not online:
        return []
    worst_wait = max(e["lock_wait"] for e in online)
    worst_max = max(e["max"] for e in online)
    worst_ratio = max(e["p99"] / base_p99 for e in online)
    errors = sum(e["errors"] for e in online)
    return ["", f"Targets for `{flags}` (runs that ran): longest lock wait {worst_wait:.0f} ms, longest "
            f"workload query {worst_max:.0f} ms (target: under lock_timeout + 100 ms = 1100 ms); "
            f"{errors} workload errors (target 0); worst p99 {worst_ratio:.1f}x the baseline (target 3x); "
            f"rows intact in every run: {'yes' if all(e['intact'] for e in report) else 'NO'}."]


if __name__ == "__main__":
    raise SystemExit(main())
