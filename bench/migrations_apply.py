"""Benchmark: apply 200 typical migration files to an empty database.
`sage run "*apply"` vs `supabase db push --db-url` on the same server, in one run. Target: no slower than the CLI.

    python bench/migrations_apply.py [--files 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _migrations_common import machine, new_db, run_sage, start_server, supabase_cli


def typical(i: int) -> str:
    """Rotating shapes of real Supabase migrations: tables + RLS + policies, indexes, functions, triggers, data."""
    t = f"public.t{i:03d}"
    kind = i % 5
    if kind == 0 or i < 5:
        return (f"-- {i}: a new table with RLS\n"
                f"create table {t} (\n  id bigint generated always as identity primary key,\n"
                f"  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,\n"
                f"  title text not null,\n  created_at timestamptz not null default now()\n);\n"
                f"alter table {t} enable row level security;\n"
                f"create policy \"owner reads\" on {t} for select to authenticated using ((select auth.uid()) = owner);\n"
                f"create policy \"owner writes\" on {t} for insert to authenticated with check ((select auth.uid()) = owner);\n"
                f"create index t{i:03d}_owner_idx on {t} (owner);\n")
    base = f"public.t{(i // 5) * 5:03d}"
    if kind == 1:
        return (f"alter table {base} add column if not exists note_{i} text;\n"
                f"comment on column {base}.note_{i} is 'added by migration {i}; harmless';\n")
    if kind == 2:
        return (f"create or replace function public.f{i:03d}(p_id bigint) returns text\n"
                f"language plpgsql stable security invoker set search_path = '' as $$\n"
                f"declare v text;\nbegin\n  select title into v from {base} where id = p_id;\n"
                f"  return coalesce(v, 'none; really');\nend;\n$$;\n"
                f"grant execute on function public.f{i:03d}(bigint) to authenticated;\n")
    if kind == 3:
        return (f"create or replace function public.touch_{i:03d}() returns trigger language plpgsql as $$\n"
                f"begin new.created_at := now(); return new; end $$;\n"
                f"create trigger touch_{i:03d} before update on {base} for each row execute function public.touch_{i:03d}();\n")
    return (f"insert into auth.users (id, email) select gen_random_uuid(), 'user{i}_' || g || '@example.com' "
            f"from generate_series(1, 20) g;\n"
            f"create index if not exists t{(i // 5) * 5:03d}_created_{i}_idx on {base} (created_at);\n")


def make_project(root: Path, n: int) -> Path:
    folder = root / "supabase" / "migrations"
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"2024{(i // 86400) + 101:04d}{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}_m{i:03d}.sql") \
            .write_text(typical(i), encoding="utf-8")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cli = supabase_cli()
    if not cli:
        raise SystemExit("Supabase CLI not found: npm install --prefix .tools supabase, or set SUPABASE_CLI")
    server = start_server("apply")
    import psycopg

    results: dict[str, list[float]] = {"sage *apply (snapshot off)": [], "sage *apply (default: snapshot on)": [],
                                       "supabase db push": []}
    try:
        for round_no in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                project = make_project(Path(tmp) / "p", args.files)
                urls = {}
                order = list(results) if round_no % 2 == 0 else list(reversed(results))  # alternate: fair under load
                for label in order:
                    url = urls[label] = new_db(server, "bench")
                    if label == "supabase db push":
                        started = time.perf_counter()
                        proc = subprocess.run([cli, "db", "push", "--db-url", url, "--yes"], cwd=project,
                                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                              env={**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"})
                        elapsed = time.perf_counter() - started
                    else:
                        line = "*apply --snapshot=no" if "off" in label else "*apply"
                        elapsed, proc = run_sage(["run", line, "--yes", "--db-url", url], project)
                    if proc.returncode != 0:
                        raise SystemExit(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")
                    results[label].append(elapsed)
                # both tools must leave the same ledger, row for row
                ledgers = []
                for label in ("sage *apply (snapshot off)", "supabase db push"):
                    with psycopg.connect(urls[label]) as conn:
                        ledgers.append(conn.execute("select version, name, statements from "
                                                    "supabase_migrations.schema_migrations order by 1").fetchall())
                assert ledgers[0] == ledgers[1] and len(ledgers[0]) == args.files, "ledgers differ"
    finally:
        server.stop()
    cli_t = statistics.median(results["supabase db push"])
    lines = [f"### Apply {args.files} typical migration files to an empty database", "",
             f"Machine: {machine()}; same embedded PostgreSQL 18 server; median and best of {args.rounds} rounds "
             "(tool order alternates per round), each end to end (process start included).", "",
             "| tool | median s | best s | runs (s) | median ratio to CLI | best ratio to CLI |",
             "|---|---|---|---|---|---|"]
    cli_best = min(results["supabase db push"])
    for label, values in results.items():
        med = statistics.median(values)
        lines.append(f"| {label} | {med:.2f} | {min(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} | "
                     f"{med / cli_t:.2f}x | {min(values) / cli_best:.2f}x |")
    lines += ["", "Target: `*apply` no slower than `supabase db push` (snapshot off: the same work). "
              "Both ledgers were checked identical row for row (version, name, statements).", ""]
    print("\n".join(lines))
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    (Path(__file__).parent / "results" / "_migrations_apply.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
