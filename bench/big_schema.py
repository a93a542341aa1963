"""Big schemas: `*dry-run` of a one-line change and `*compare-schemas` against a copy, at 1k/5k/10k/20k tables,
beside the floor PostgreSQL itself sets (bare `pg_dump --schema-only | psql --single-transaction` into a new
database). Not a test.

    nice -n 10 python bench/big_schema.py [--sizes 1000,5000] [--rounds 1]
    nice -n 10 python bench/big_schema.py --phases compare --sizes 10000,20000 --rounds 3 --alternate
        (*compare-schemas alone, 10k and 20k alternating: the 20k/10k ratio of the medians and the peak RSS)
    nice -n 10 python bench/big_schema.py --sizes 10000 --phases floor,closure,cold --rounds 3 --pipe-floor-only \
        --skip-compare --out bench/results/big-schema-closure.md
        (cold *dry-run three ways, round by round: the floor, the closure load, the whole schema)

Schema of N tables: half plain tables (identity primary key, an index, RLS + a policy, every 3rd with a foreign
key to the previous one, a view per 50), half hash partitions of 20-way partitioned parents (primary key and an
index on the parent, so every partition carries its own two indexes; RLS + a policy on the parent).
Each schema is built once into the database `big_N` on a server kept in SAGE_BENCH_BIG_DIR (default
/tmp/bigschema-bench), so reruns skip the build. Peak memory is the sage process's own ru_maxrss (pg_dump and
psql are separate processes). Writes bench/results/big-schema.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _migrations_common import REPO, machine, sage_env

RESULTS = REPO / "bench" / "results" / "big-schema.md"
COMPARE_RESULTS = REPO / "bench" / "results" / "big-schema-compare.md"
PARTS = 20  # partitions per partitioned parent

_WRAP = ("import atexit, resource, sys, runpy\n"
         "def _report(u=resource.getrusage):\n"
         "    r = u(resource.RUSAGE_SELF)\n"
         "    c = u(resource.RUSAGE_CHILDREN)\n"
         "    own = r.ru_utime + r.ru_stime\n"
         "    sys.stderr.write('MAXRSS_KB %d\\nCPU_S %.3f\\nCPU_TREE_S %.3f\\n'\n"
         "                     % (r.ru_maxrss, own, own + c.ru_utime + c.ru_stime))\n"
         "atexit.register(_report)\n"
         "sys.argv = ['sage'] + sys.argv[1:]\n"
         "runpy.run_module('sage_agent', run_name='__main__')\n")


def server():
    from sage_agent.db.embedded import EmbeddedServer

    root = Path(os.environ.get("SAGE_BENCH_BIG_DIR", "/tmp/bigschema-bench"))
    srv = EmbeddedServer(root / "pg", fast=True, port_seed="bench-bigschema")
    srv.start()
    return srv


def build(srv, tables: int) -> tuple[str, float]:
    """The database big_N holding the schema (built once)."""
    import psycopg

    from sage_agent.db.shadow import create_database
    from sage_agent.db.urls import replace_dbname

    name = f"big_{tables}"
    with psycopg.connect(srv.url(), autocommit=True) as c:
        if c.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return replace_dbname(srv.url(), name), 0.0
    t0 = time.perf_counter()
    url = create_database(srv.url(), name + "_building")
    plain = tables // 2
    parents = max(1, (tables - plain) // PARTS)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"""do $$ begin for i in 1..{plain} loop
            execute format('create table public.t%s (id bigint generated always as identity primary key, '
                           'owner uuid not null default auth.uid(), title text not null, status text not null '
                           'default ''new'' check (status in (''new'', ''done'')), created_at timestamptz not null '
                           'default now()%s)', i,
                           case when i > 1 and i %% 3 = 0 then format(', parent_id bigint references public.t%s (id)', i - 1)
                           else '' end);
            execute format('create index t%s_owner_idx on public.t%s (owner)', i, i);
            execute format('alter table public.t%s enable row level security', i);
            execute format('create policy t%s_owner on public.t%s for all to authenticated '
                           'using ((select auth.uid()) = owner)', i, i);
            if i %% 50 = 0 then
              execute format('create view public.v%s with (security_invoker = on) as select id, title from public.t%s', i, i);
            end if;
            if i %% 500 = 0 then commit; end if;
            end loop; end $$""".replace("%%", "%"))
        c.execute(f"""do $$ begin for i in 1..{parents} loop
            execute format('create table public.p%s (id bigint not null, tenant int not null, owner uuid not null, '
                           'v int, created_at timestamptz not null default now(), primary key (tenant, id)) '
                           'partition by hash (tenant)', i);
            execute format('create index p%s_owner_idx on public.p%s (owner)', i, i);
            execute format('alter table public.p%s enable row level security', i);
            execute format('create policy p%s_owner on public.p%s for all to authenticated '
                           'using ((select auth.uid()) = owner)', i, i);
            for j in 0..{PARTS - 1} loop
              execute format('create table public.p%s_%s partition of public.p%s '
                             'for values with (modulus {PARTS}, remainder %s)', i, j, i, j);
            end loop;
            if i % 25 = 0 then commit; end if;
            end loop; end $$""")
        c.execute("insert into public.t7 (owner, title) select gen_random_uuid(), 'row ' || g "
                  "from generate_series(1, 20000) g")
        c.execute("analyze public.t7")
    with psycopg.connect(srv.url(), autocommit=True) as c:
        c.execute(f"alter database {name}_building rename to {name}")
    return replace_dbname(srv.url(), name), time.perf_counter() - t0


def copy_of(srv, tables: int) -> str:
    """big_N_copy: B for *compare-schemas, a file copy of big_N (built once)."""
    import psycopg

    from sage_agent.db.urls import replace_dbname

    name = f"big_{tables}_copy"
    with psycopg.connect(srv.url(), autocommit=True) as c:
        if not c.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            c.execute(f"create database {name} template big_{tables} strategy file_copy")
    return replace_dbname(srv.url(), name)


def own_copy(srv, tables: int, prefix: str) -> str:
    """PREFIX_N: a file copy of big_N (made once) to dry-run against."""
    import psycopg

    from sage_agent.db.urls import replace_dbname

    name = f"{prefix}_{tables}"
    with psycopg.connect(srv.url(), autocommit=True) as c:
        if not c.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            c.execute(f'create database "{name}" template big_{tables} strategy file_copy')
    return replace_dbname(srv.url(), name)


def drop_templates(shadow: str, closure_only: bool = False, target: str | None = None) -> None:
    """Cold: no cached dry-run template and no leftover shadow on the shadow server (`closure_only`: only the
    closure templates, sage_tpl_c..., which other helpers' full templates are not; with `target` only the
    closure templates of that target's schema, so other helpers' closure runs on the same server keep theirs)."""
    import psycopg

    query = ("select datname from pg_database where datname like 'sage\\_tpl\\_c%'" if closure_only else
             "select datname from pg_database where datname like 'sage\\_tpl\\_%' "
             "or datname like 'sage\\_shadow\\_%' or datname like 'floor\\_%'")
    if closure_only and target:
        query += f" and shobj_description(oid, 'pg_database') like '%fingerprint={fingerprint(target)}\\_c%'"
    with psycopg.connect(shadow, autocommit=True) as c:
        for (name,) in c.execute(query).fetchall():
            c.execute(f'drop database if exists "{name}" with (force)')


def fingerprint(url: str) -> str:
    """The catalog fingerprint *dry-run labels this target's templates with."""
    import psycopg

    from sage_agent.ops.migrations.shadow_run import schema_fingerprint
    from sage_agent.ops.snapshots.store import schema_exists, user_schemas

    with psycopg.connect(url, autocommit=True) as c:
        schemas = user_schemas(c)
        return schema_fingerprint(c, schemas, schema_exists(c, "supabase_migrations"), 18)


def floor(shadow: str, url: str, file_too: bool = True, copy_name: str = "floor_copy") -> tuple[float, float, float]:
    """(pg_dump -s to a file, psql load of that file, the bare pipe `pg_dump -s | psql --single-transaction`) into a
    new database from template1, as a person would copy the schema."""
    import psycopg

    from sage_agent.db.binaries import find_binary
    from sage_agent.db.tools import run_pg_tool, tool_env
    from sage_agent.db.urls import replace_dbname

    copy = replace_dbname(shadow, copy_name)

    def fresh() -> None:
        with psycopg.connect(shadow, autocommit=True) as c:
            c.execute(f'drop database if exists "{copy_name}" with (force)')
            c.execute(f'create database "{copy_name}" template template1')

    t0 = t1 = t1b = t2 = 0.0
    if file_too:
        fresh()
        with tempfile.TemporaryDirectory(prefix="bigschema-floor-") as tmp:
            out = Path(tmp) / "s.sql"
            t0 = time.perf_counter()
            run_pg_tool("pg_dump", url, ["--schema-only", "--no-owner", "-n", "public", "-f", str(out)],
                        server_major=18)
            t1 = time.perf_counter()
            out.write_text(out.read_text().replace("\nCREATE SCHEMA public;\n", "\n"))
            t1b = time.perf_counter()
            run_pg_tool("psql", copy, ["-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-f", str(out)],
                        server_major=18)
            t2 = time.perf_counter()
    fresh()
    pg_dump, psql = find_binary("pg_dump", 18), find_binary("psql", 18)
    env = {**tool_env(url), "SRC": url, "DST": copy}
    t3 = time.perf_counter()
    subprocess.run(f"set -o pipefail; {pg_dump} --schema-only --no-owner -n public -d \"$SRC\" "
                   f"| grep -v '^CREATE SCHEMA public;$' "
                   f"| {psql} -X -q --single-transaction -v ON_ERROR_STOP=1 -d \"$DST\" > /dev/null",
                   shell=True, check=True, env=env, executable="/bin/bash")
    t4 = time.perf_counter()
    with psycopg.connect(shadow, autocommit=True) as c:
        c.execute(f'drop database if exists "{copy_name}" with (force)')
    return t1 - t0, t2 - t1b, t4 - t3


def sage(args: list[str], project: Path, shadow_url: str, env: dict | None = None) -> tuple[float, int, dict]:
    """(seconds, peak RSS in MB of the sage process, JSON document)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAP, *args], cwd=project, capture_output=True, text=True,
                          env=sage_env({"SAGE_SHADOW_URL": shadow_url, **(env or {})}), stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    rss = next((int(ln.split()[1]) for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS_KB")), 0)
    cpu = next((float(ln.split()[1]) for ln in proc.stderr.splitlines() if ln.startswith("CPU_S")), 0.0)
    tree = next((float(ln.split()[1]) for ln in proc.stderr.splitlines() if ln.startswith("CPU_TREE_S")), 0.0)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"sage {args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    doc["_cpu_s"] = cpu
    doc["_cpu_tree_s"] = tree  # with pg_dump / pg_restore (the server's own work is not in it)
    return elapsed, rss // 1024, doc


def project_dir(root: Path) -> Path:
    project = root / "p"
    (project / "supabase" / "migrations").mkdir(parents=True, exist_ok=True)
    (project / "supabase" / "migrations" / "20240101000000_t7_priority.sql").write_text(
        "alter table public.t7 add column priority int not null default 0;\n", encoding="utf-8")
    # another file on the same schema, whose closure (a view over t50) the t7 file's closure holds
    (project / "supabase" / "migrations" / "20240101000001_v50_comment.sql").write_text(
        "comment on view public.v50 is 'fifty';\n", encoding="utf-8")
    return project


def template_bytes(shadow: str) -> int:
    import psycopg

    with psycopg.connect(shadow, autocommit=True) as c:
        return int(c.execute("select coalesce(sum(pg_database_size(datname)), 0) from pg_database "
                             "where datname like 'sage\\_tpl\\_%'").fetchone()[0])


def round_(args, phases: list[str], res: dict, url: str, b_url: str, project: Path, shadow: str) -> None:
    """One round at one size: the phases asked for, in order, measurements appended to `res`."""
    res["load"].append(os.getloadavg()[0])
    own = bool(args.target_copy)  # a copy of big_N as the target: only closure templates are dropped
    for phase in phases:
        if phase == "floor" and not args.no_floor:
            drop_templates(shadow, closure_only=own)
            res["floor"].append(floor(shadow, url, file_too=not args.pipe_floor_only,
                                      copy_name=f"{args.target_copy}_floor" if own else "floor_copy"))
            res["load_floor"] = res.get("load_floor", []) + [os.getloadavg()[0]]
        elif phase == "closure":
            # cold, closure load: no closure template (and no full one of this target: run after the floor phase,
            # or with --target-copy, whose fingerprint no full template carries); with --baseline the same run with
            # that code first, so old and new alternate round by round
            if args.baseline:
                drop_templates(shadow, closure_only=True, target=url if own else None)
                t, _rss, doc = sage(["run", "*dry-run t7_priority", "--db-url", url, "--json"], project, shadow,
                                    {"SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS": "0", "PYTHONPATH": args.baseline})
                assert doc["data"]["verdict"] in ("safe", "caution"), doc["summary"]
                res["closure_base"] = res.get("closure_base", []) + [t]
                res["cpu_closure_base"] = res.get("cpu_closure_base", []) + [doc["_cpu_tree_s"]]
                res["closure_base_phases"] = doc["data"]["timings"]
                res["closure_base_changes"] = doc["data"]["changes"]
                res["closure_base_checks"] = doc["data"]["checks"]
            drop_templates(shadow, closure_only=True, target=url if own else None)
            t, rss, doc = sage(["run", "*dry-run t7_priority", "--db-url", url, "--json"], project, shadow,
                               {"SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS": "0"})
            res["cpu_closure"] = res.get("cpu_closure", []) + [doc["_cpu_tree_s"]]
            assert doc["data"]["verdict"] in ("safe", "caution"), doc["summary"]
            note = next((n for n in doc.get("notes") or [] if "closure of the file" in n), None)
            assert note and "cached" not in note, doc.get("notes")
            res.setdefault("closure", []).append(t)
            res["rss_dry"].append(rss)
            res["closure_phases"] = doc["data"]["timings"]
            res["closure_note"] = note
            res["closure_changes"] = doc["data"]["changes"]
            res["closure_checks"] = doc["data"]["checks"]
            res["load_closure"] = res.get("load_closure", []) + [os.getloadavg()[0]]
        elif phase == "covered":
            # right after the closure phase: another file whose closure the t7 file's closure template holds
            t, _rss, doc = sage(["run", "*dry-run v50_comment", "--db-url", url, "--json"], project, shadow,
                                {"SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS": "0"})
            note = next((n for n in doc.get("notes") or [] if "closure of the file" in n), None)
            assert note and "made for another file" in note, doc.get("notes")
            res["covered"] = res.get("covered", []) + [t]
            res["cpu_covered"] = res.get("cpu_covered", []) + [doc["_cpu_tree_s"]]
            res["covered_phases"] = doc["data"]["timings"]
            res["covered_note"] = note
        elif phase == "cold":
            _cold(args, res, url, project, shadow)
    rest = [p for p in phases if p not in ("floor", "closure", "covered", "cold")]
    _rest(args, rest, res, url, b_url, project, shadow)


def _cold(args, res: dict, url: str, project: Path, shadow: str) -> None:
    """Cold, the whole schema loaded (the closure load off)."""
    assert not args.target_copy, "the cold phase on a copy would relabel big_N's own full template"
    drop_templates(shadow)
    t, rss, doc = sage(["run", "*dry-run t7_priority", "--db-url", url, "--json"], project, shadow,
                       {"SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS": "-1"})
    assert doc["data"]["verdict"] in ("safe", "caution"), doc["summary"]
    res["cold"].append(t)
    res["rss_dry"].append(rss)
    res["cold_phases"] = doc["data"]["timings"]
    res["load_cold"] = res.get("load_cold", []) + [os.getloadavg()[0]]
    res["cold_changes"] = doc["data"]["changes"]
    res["cold_checks"] = doc["data"]["checks"]


def _rest(args, phases: list[str], res: dict, url: str, b_url: str, project: Path, shadow: str) -> None:
    if "warm" in phases:
        for _w in range(args.warm):
            t, rss, doc = sage(["run", "*dry-run t7_priority", "--db-url", url, "--json"], project,
                               shadow)
            res["warm"].append(t)
            res["cpu_warm"] = res.get("cpu_warm", []) + [doc["_cpu_s"]]
            res["load_warm"] = res.get("load_warm", []) + [os.getloadavg()[0]]
            res["rss_dry"].append(rss)
            res["warm_phases"] = doc["data"]["timings"]
            res["verdict"] = doc["data"]["verdict"]
            res["changes"] = doc["data"]["changes"]
        res["tpl_bytes"] = template_bytes(shadow)
    if "compare" in phases and not args.skip_compare:
        t, rss, doc = sage(["run", f"*compare-schemas {url} {b_url}", "--json"], project, shadow)
        res["compare"].append(t)
        res["cpu_compare"] = res.get("cpu_compare", []) + [doc["_cpu_s"]]
        res["rss_cmp"].append(rss)
        res["compare_notes"] = len(doc.get("notes") or [])
        res["compare_summary"] = doc.get("summary")
        res["compare_json_kb"] = len(json.dumps(doc)) // 1024
        res["compare_timings"] = doc.get("data", {}).get("timings")
        res["load_compare"] = res.get("load_compare", []) + [os.getloadavg()[0]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--rounds", type=int, default=1, help="cold rounds per size (each: floor, cold, warm)")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--warm", type=int, default=1, help="warm runs per round")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--pipe-floor-only", action="store_true", help="skip the dump-to-file floor (saves time)")
    parser.add_argument("--no-floor", action="store_true", help="no floor, and other sizes' templates kept")
    parser.add_argument("--phases", default="floor,cold,warm,compare",
                        help="what each round runs, in this order (floor and cold alternate round by round)")
    parser.add_argument("--shadow-url", help="the shadow server for the dry-runs and the floor's copy (default: "
                        "the bench server itself)")
    parser.add_argument("--out", help="the results file (default bench/results/big-schema.md; with --phases compare "
                        "alone bench/results/big-schema-compare.md, so the dry-run table is kept)")
    parser.add_argument("--alternate", action="store_true",
                        help="each round runs every size in turn (sizes alternate), instead of size after size")
    parser.add_argument("--target-copy", metavar="PREFIX",
                        help="dry-run against PREFIX_N, a copy of big_N made once (its fingerprint is its own, so "
                             "no full template on the shared server matches it and only closure templates are "
                             "dropped); not with the cold phase")
    parser.add_argument("--baseline", metavar="DIR",
                        help="closure phase: each round first runs the same cold dry-run with the code in DIR (a "
                             "copy of an older tree, e.g. `git archive COMMIT | tar -x -C DIR`), old and new "
                             "alternating")
    parser.add_argument("--render", nargs="*", help="only rewrite the results from the JSON lines of these logs")
    args = parser.parse_args()
    out = Path(args.out) if args.out else COMPARE_RESULTS if args.phases == "compare" else RESULTS
    if args.render:
        write(merge(args.render), out)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    srv = server()
    shadow = args.shadow_url or srv.url()
    phases = args.phases.split(",")
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bigschema-") as tmp:
        project = project_dir(Path(tmp))
        urls = {}
        for n in sizes:
            url, built = build(srv, n)
            if args.target_copy:
                url = own_copy(srv, n, args.target_copy)
            urls[n] = (url, copy_of(srv, n))
            print(f"{n} tables: built in {built:.0f}s" if built else f"{n} tables: reused", flush=True)
            results[n] = {"n": n, "floor": [], "cold": [], "warm": [], "compare": [], "rss_dry": [], "rss_cmp": [],
                          "load": []}
        if args.build_only:
            return
        # --alternate: each round runs every size in turn (10k, 20k, 10k, 20k, ...), so a change in the machine's
        # load falls on both sizes alike; else all rounds of one size, then the next size.
        order = ([n for _ in range(args.rounds) for n in sizes] if args.alternate
                 else [n for n in sizes for _ in range(args.rounds)])
        for n in order:
            round_(args, phases, results[n], *urls[n], project, shadow)
            print(json.dumps(results[n], default=str), flush=True)
    rows = [results[n] for n in sizes]
    if "compare" in phases and not args.skip_compare:
        for small, big in zip(sizes, sizes[1:]):
            a, b = results[small]["compare"], results[big]["compare"]
            if a and b:
                print(f"compare {big:,} / {small:,} tables: {med(b) / med(a):.2f}x (medians {med(a):.1f} / "
                      f"{med(b):.1f} s; peak RSS {max(results[big]['rss_cmp'])} MB at {big:,})", flush=True)
    if rows:
        write(rows, out)


_MEASURED = ("floor", "cold", "warm", "compare", "rss_dry", "rss_cmp", "load", "load_floor", "load_cold", "load_warm",
             "load_compare", "cpu_warm", "cpu_compare", "closure", "load_closure", "cpu_closure", "closure_base",
             "cpu_closure_base", "covered", "cpu_covered")


def merge(logs: list[str]) -> list[dict]:
    """One row per size from several runs' logs: each log's last line for a size (a round's line holds all its
    rounds so far), lists of measurements joined across logs, other fields from the last log that has them."""
    by_n: dict[int, dict] = {}
    for log in logs:
        last: dict[int, dict] = {}
        for ln in Path(log).read_text().splitlines():
            if ln.startswith("{"):
                row = json.loads(ln)
                last[row["n"]] = row
        for n, row in last.items():
            out = by_n.setdefault(n, {})
            for key, value in row.items():
                if key in _MEASURED:
                    out[key] = out.get(key, []) + value
                elif value not in (None, {}, []):
                    out[key] = value
    return [by_n[n] for n in sorted(by_n)]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def _runs(xs: list[float], unit: str = " s") -> str:
    """median (every run, in order) - or "-" when not measured."""
    if not xs:
        return "-"
    return f"{med(xs):.1f}{unit}" + (f" ({', '.join(f'{x:.0f}' if x >= 100 else f'{x:.1f}' for x in xs)})"
                                     if len(xs) > 1 else "")


def write(rows: list[dict], out: Path = RESULTS) -> None:
    lines = ["# Big schemas: `*dry-run` and `*compare-schemas` at 1k-20k tables", "",
             f"Machine: {machine()}, shared with 6 other agents (load average: the 1-minute value at each "
             "measurement, range over the runs). Produced by `nice -n 10 python bench/big_schema.py --sizes ... "
             "--phases ...` (logs merged with `--render LOG ...`). Half plain tables (PK, index, RLS policy, FK on "
             f"every 3rd, a view per 50), half hash partitions of {PARTS}-way parents. Floor = the bare pipe "
             "`pg_dump --schema-only -n public | psql --single-transaction` into a new database on the shadow "
             "server; cold = `sage run \"*dry-run ...\"` with no cached template, run right after the floor "
             "(alternating, round by round); warm = the same file again, schema unchanged. Times are the whole "
             "`sage run` process; CPU = that process's own user+sys seconds (the server's work is not in it); "
             "medians, every run in brackets. Peak RSS = the sage process (ru_maxrss).", "",
             "| tables | floor: pg_dump \\| psql | dry-run cold | load (floor / cold) | dry-run warm | warm CPU | "
             "load (warm) | compare vs copy | load (compare) | peak RSS dry-run / compare |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def loads(xs):
        if not xs:
            return "-"
        return f"{min(xs):.0f}" if round(min(xs)) == round(max(xs)) else f"{min(xs):.0f}-{max(xs):.0f}"

    for r in rows:
        floor = [f[2] for f in r.get("floor", [])]
        lines.append(f"| {r['n']:,} | {_runs(floor)} | {_runs(r.get('cold', []))} | "
                     f"{loads(r.get('load_floor', []))} / {loads(r.get('load_cold', []))} | "
                     f"{_runs(r.get('warm', []))} | {_runs(r.get('cpu_warm', []))} | {loads(r.get('load_warm', []))} | "
                     f"{_runs(r.get('compare', []))} | {loads(r.get('load_compare', []))} | "
                     f"{max(r.get('rss_dry') or [0]) or '-'} / {max(r.get('rss_cmp') or [0]) or '-'} MB |")
    lines += [""]
    for r in rows:
        parts = [f"- {r['n']:,} tables:"]
        if r.get("verdict"):
            parts.append(f"dry-run verdict {r['verdict']}, changes {r.get('changes')};")
        for key, label in (("cold_phases", "cold phases"), ("warm_phases", "warm phases"),
                           ("compare_timings", "compare phases")):
            if r.get(key):
                parts.append(f"{label} " + ", ".join(f"{k} {v:.2f}s" for k, v in r[key].items()) + ";")
        if r.get("compare_summary"):
            parts.append(f"compare: {r['compare_summary']}")
        if r.get("note"):
            parts.append(f"({r['note']})")
        lines.append(" ".join(parts))
    lines += _closure_lines(rows, loads)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _closure_lines(rows: list[dict], loads) -> list[str]:
    """Cold with the closure load (SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS=0) beside the floor and the full cold load."""
    rows = [r for r in rows if r.get("closure")]
    if not rows:
        return []
    lines = ["", "## Cold `*dry-run`, closure load (only what the file can touch) vs the floor and the full load", "",
             "| tables | floor | cold, closure | closure / floor | cold, whole schema | load (floor / closure / "
             "whole) | loaded |", "|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        floor = [f[2] for f in r.get("floor", [])]
        ratio = f"{med(r['closure']) / med(floor):.2f}x" if floor else "-"
        lines.append(f"| {r['n']:,} | {_runs(floor)} | {_runs(r['closure'])} | {ratio} | {_runs(r.get('cold', []))} | "
                     f"{loads(r.get('load_floor', []))} / {loads(r.get('load_closure', []))} / "
                     f"{loads(r.get('load_cold', []))} | {r.get('closure_note', '')} |")
    lines.append("")
    lines += _closure_ratio_lines(rows)
    for r in rows:
        same = ("same changes and smoke checks as the whole-schema load"
                if r.get("cold_changes") is not None and r.get("cold_changes") == r.get("closure_changes")
                and r.get("cold_checks") == r.get("closure_checks") else
                "no whole-schema run to compare with" if r.get("cold_changes") is None else "REPORTS DIFFER")
        lines.append(f"- {r['n']:,} tables, closure: changes {r.get('closure_changes')}; {same}; phases "
                     + ", ".join(f"{k} {v:.2f}s" for k, v in (r.get("closure_phases") or {}).items()))
    return lines


def _closure_ratio_lines(rows: list[dict]) -> list[str]:
    """Cold closure, this code (and the --baseline code beside it): wall and process-tree CPU (sage + pg_dump +
    pg_restore; the server's work is not in it) per size, and the ratio of each size to the one before."""
    lines = ["", "| tables | cold closure, wall | CPU (sage + pg_dump/pg_restore) | baseline wall | baseline CPU | "
             "load |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        load = r.get("load_closure") or []
        lines.append(f"| {r['n']:,} | {_runs(r['closure'])} | {_runs(r.get('cpu_closure', []))} | "
                     f"{_runs(r.get('closure_base', []))} | {_runs(r.get('cpu_closure_base', []))} | "
                     + (f"{min(load):.1f}-{max(load):.1f}" if load else "-") + " |")
    for r in rows:
        if r.get("covered"):
            lines.append(f"- {r['n']:,} tables, another file right after (its closure held by the t7 file's "
                         f"template): {_runs(r['covered'])}, CPU {_runs(r.get('cpu_covered', []))}; phases "
                         + ", ".join(f"{k} {v:.2f}s" for k, v in (r.get("covered_phases") or {}).items()))
    lines.append("")
    for small, big in zip(rows, rows[1:]):
        parts = []
        for key, label in (("closure", "wall"), ("cpu_closure", "CPU"), ("closure_base", "baseline wall"),
                           ("cpu_closure_base", "baseline CPU")):
            if small.get(key) and big.get(key):
                parts.append(f"{label} {med(big[key]) / med(small[key]):.2f}x")
        if parts:
            lines.append(f"- {big['n']:,} / {small['n']:,} tables, ratio of the medians: " + ", ".join(parts))
    return lines


if __name__ == "__main__":
    main()
