"""Benchmark: `*dry-run` of a one-table change against a 500-table schema. Target: under 5 s end to end.

    python bench/migrations_dryrun.py [--tables 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from _migrations_common import machine, new_db, run_sage, start_server


def build_schema(url: str, tables: int) -> None:
    import psycopg

    parts = []
    for i in range(tables):
        ref = f", parent_id bigint references public.t{i - 1:03d} (id)" if i and i % 3 == 0 else ""
        parts.append(
            f"create table public.t{i:03d} (id bigint generated always as identity primary key, "
            f"owner uuid not null default auth.uid(), title text not null, body text, "
            f"status text not null default 'new' check (status in ('new', 'done')), "
            f"created_at timestamptz not null default now(){ref});"
            f"create index t{i:03d}_owner_idx on public.t{i:03d} (owner);"
            f"alter table public.t{i:03d} enable row level security;"
            f"create policy t{i:03d}_owner on public.t{i:03d} for all to authenticated "
            f"using ((select auth.uid()) = owner);")
        if i % 10 == 0:
            parts.append(f"create view public.v{i:03d} as select id, title from public.t{i:03d};")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("\n".join(parts))
        conn.execute("insert into public.t250 (owner, title) select gen_random_uuid(), 'row ' || g "
                     "from generate_series(1, 200000) g")
        conn.execute("analyze public.t250")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    server = start_server("dryrun")
    try:
        url = new_db(server, "bench500")
        build_schema(url, args.tables)
        totals, phases = [], []
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp) / "p"
            (project / "supabase" / "migrations").mkdir(parents=True)
            (project / "supabase" / "migrations" / "20240101000000_t250_priority.sql").write_text(
                "alter table public.t250 add column priority int not null default 0;\n"
                "alter table public.t250 add constraint t250_priority_range check (priority between 0 and 9);\n"
                "create index t250_priority_idx on public.t250 (priority);\n", encoding="utf-8")
            for _ in range(args.rounds):
                elapsed, proc = run_sage(["run", "*dry-run t250_priority", "--db-url", url, "--json"], project,
                                         env={"SAGE_SHADOW_URL": server.url()})
                doc = json.loads(proc.stdout)
                if doc.get("status") not in ("ok", "warning", "failed") or doc.get("data", {}).get("error"):
                    raise SystemExit(proc.stdout + proc.stderr)
                totals.append(elapsed)
                phases.append(doc["data"]["timings"])
            impact = doc["data"]["impact"]
            verdict = doc["data"]["verdict"]
    finally:
        server.stop()
    warm = totals[1:] or totals
    med = statistics.median(warm)
    lines = [f"### `*dry-run` of a one-table change against a {args.tables}-table schema", "",
             f"Machine: {machine()}; {args.tables} tables (+ indexes, policies, {args.tables // 10} views, FKs), "
             f"200k rows in the changed table; median of {args.rounds} runs of "
             "`sage run \"*dry-run ...\"` end to end (process start included).", "",
             f"- First run (cold: the target's schema loaded into a new template database, then copied): "
             f"{totals[0]:.2f} s; phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases[0].items()),
             f"- Later runs (schema unchanged: shadow copied from the cached template): median **{med:.2f} s** "
             f"(runs: {', '.join(f'{t:.2f}' for t in warm)}); phases (last): "
             + ", ".join(f"{k} {v:.2f}s" for k, v in phases[-1].items()),
             "- Target: < 5 s end to end",
             f"- Verdict: {verdict}; impact reported: "
             + "; ".join(f"{r[2]} {r[1]}, {r[3]}, {r[4]}, {r[5]}" for r in impact), ""]
    print("\n".join(lines))
    (Path(__file__).parent / "results").mkdir(exist_ok=True)
    (Path(__file__).parent / "results" / "_migrations_dryrun.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
