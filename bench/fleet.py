"""A fleet of 50 databases, both audits (*rls-audit + *schema-audit): one `sage run --targets` vs a shell loop of
single `sage run` calls (both audits in each) vs a shell loop of `supabase db advisors` (issue 18, item 1).

The 50 databases live on one embedded PostgreSQL 18 server, cloned from a template (20 tables each: RLS on some,
policies, foreign keys to auth.users, a missing index, a table without a primary key; every third tenant has one
more table without RLS, so the results differ between targets). Each round runs the three ways once, in a rotating
order (load from other processes on this shared machine hits all of them alike); medians over the rounds, the
machine's load average noted before and after. DB Sage runs byte-compiled, as after `pip install .`. Also checks
that the fleet run reports exactly the findings the single runs report, target by target.
Run: python bench/fleet.py [databases] [rounds]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "fleet.md"
sys.path.insert(0, str(REPO))


def tenant_schema(tables: int = 20) -> str:
    parts = []
    for i in range(tables):
        pk = "id bigint generated always as identity primary key," if i % 7 else "id bigint,"
        parts.append(f"create table public.t{i} ({pk} user_id uuid references auth.users (id), title text, "
                     "created_at timestamptz default now());")
        if i % 3:
            parts.append(f"alter table public.t{i} enable row level security;")
            parts.append(f"create policy own on public.t{i} for all to authenticated "
                         "using ((select auth.uid()) = user_id);")
        if i % 4 == 0:
            parts.append(f"create index on public.t{i} (user_id);")
    return "\n".join(parts)


def build_fleet(admin_url: str, count: int) -> list[str]:
    import psycopg

    from sage_agent.db.shadow import create_database

    template = create_database(admin_url, "fleet_template")
    with psycopg.connect(template, autocommit=True) as conn:
        conn.execute(tenant_schema())
    urls = []
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for i in range(count):
            admin.execute(f'create database "tenant_{i:02d}" template fleet_template')
            urls.append(template.rsplit("/", 1)[0] + f"/tenant_{i:02d}")
    for i, url in enumerate(urls):
        if i % 3 == 0:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("create table public.leaky (id bigint primary key, secret text)")
    return urls


def run(cmd: list[str] | str, **kw) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {cmd if isinstance(cmd, str) else ' '.join(cmd)}\n"
                         f"{proc.stdout[-800:]}\n{proc.stderr[-800:]}")
    run.last_stdout = proc.stdout  # type: ignore[attr-defined]
    return elapsed


def findings_by_target(doc: dict) -> dict[str, list[tuple[str, str, str]]]:
    return {t["name"]: sorted((r["operation"], f["rule"], f.get("location") or "") for r in t["results"]
                              for f in r["findings"]) for t in doc["targets"]}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    from sage_agent.db.embedded import EmbeddedServer

    base = Path(tempfile.mkdtemp(prefix="sage-bench-fleet-"))
    server = EmbeddedServer(base / "pg", fast=True, port_seed=str(base))
    server.start()
    try:
        t0 = time.perf_counter()
        urls = build_fleet(server.url(), count)
        build_s = time.perf_counter() - t0
        project = base / "project"
        project.mkdir()
        (project / "fleet.yaml").write_text("".join(f"- name: tenant-{i:02d}\n  url: {u}\n  tags: [t{i % 2}]\n"
                                                    for i, u in enumerate(urls)))
        (project / "urls.txt").write_text("\n".join(urls) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "PG", "SAGE_"))}
        env.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1", "SAGE_SHADOW_URL": server.url()})
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sage_agent")], check=True)
        cli = os.environ.get("SUPABASE_CLI") or shutil.which("supabase") or str(REPO / ".tools/node_modules/.bin/supabase")
        has_cli = Path(cli).exists()
        py = sys.executable
        loop_sage = (f'while read -r url; do "{py}" -m sage_agent run "*rls-audit" "*schema-audit" --json '
                     f'--db-url "$url" > "out/$(basename "$url").json"; done < urls.txt')
        loop_cli = (f'while read -r url; do "{cli}" db advisors --db-url "$url" --level info --output-format json '
                    f'> /dev/null; done < urls.txt')
        (project / "out").mkdir()
        ways = {"fleet": [py, "-m", "sage_agent", "run", "*rls-audit", "*schema-audit", "--targets", "fleet.yaml",
                          "--json"],
                "fleet4": [py, "-m", "sage_agent", "run", "*rls-audit", "*schema-audit", "--targets", "fleet.yaml",
                           "--json", "--parallel", "4"],
                "loop": ["bash", "-c", loop_sage]}
        if has_cli:
            ways["cli"] = ["bash", "-c", loop_cli]
        samples: dict[str, list[float]] = {k: [] for k in ways}
        load_before = os.getloadavg()
        fleet_doc: dict = {}
        order = list(ways)
        for r in range(rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                samples[name].append(run(ways[name], cwd=project, env=env))
                if name == "fleet":
                    fleet_doc = json.loads(run.last_stdout)  # type: ignore[attr-defined]
        load_after = os.getloadavg()
        # the same findings, target by target, as the single runs
        singles = {}
        for i, url in enumerate(urls):
            doc = json.loads((project / "out" / f"tenant_{i:02d}.json").read_text())
            singles[f"tenant-{i:02d}"] = sorted((r["operation"], f["rule"], f.get("location") or "")
                                                for r in doc["results"] for f in r["findings"])
        ours = findings_by_target(fleet_doc)
        same = ours == singles
        total_findings = sum(len(v) for v in ours.values())
        assert fleet_doc["summary"]["ok"] == count, fleet_doc["summary"]
        m = {k: median(v) for k, v in samples.items()}
        ratio = m["fleet"] / m["loop"]
        lines = ["# Fleets: one run over many databases (issue 18)", "",
                 f"{count} databases on one embedded PostgreSQL 18 server (20 tables each: RLS on two thirds, "
                 f"policies, FKs to auth.users, missing indexes, tables without a primary key; every third tenant one "
                 f"more table without RLS), built in {build_s:.1f}s. Both audits on every database; each way runs "
                 f"once per round, {rounds} rounds in rotating order, median shown. {os.cpu_count()} cores, shared "
                 f"with other work: load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
                 f"(1-minute).", "",
                 "| way | seconds (median) | per database | vs the loop of sage runs |", "|---|---|---|---|",
                 f"| `sage run \"*rls-audit\" \"*schema-audit\" --targets fleet.yaml --json` (default parallel: "
                 f"{os.cpu_count()}) | {m['fleet']:.2f} | {m['fleet'] / count:.3f} | **{ratio:.2f}x** |",
                 f"| the same with `--parallel 4` | {m['fleet4']:.2f} | {m['fleet4'] / count:.3f} | "
                 f"{m['fleet4'] / m['loop']:.2f}x |",
                 f"| shell loop: `sage run \"*rls-audit\" \"*schema-audit\" --json --db-url $url` per database | "
                 f"{m['loop']:.2f} | {m['loop'] / count:.3f} | 1.00x |"]
        if has_cli:
            lines.append(f"| shell loop: `supabase db advisors --db-url $url --level info` per database | "
                         f"{m['cli']:.2f} | {m['cli'] / count:.3f} | {m['cli'] / m['loop']:.2f}x |")
        lines += ["", f"Target: the fleet run <= 0.3x the loop of single sage runs: **{ratio:.2f}x** "
                      f"({'met' if ratio <= 0.3 else 'NOT met'})."
                  + (f" The fleet run vs the advisors loop: {m['fleet'] / m['cli']:.2f}x (the CLI runs only the "
                     "lints; DB Sage adds the coverage matrix, the design checks and fix SQL)." if has_cli else ""),
                  "", f"Findings: the fleet run reports {'exactly the same' if same else 'DIFFERENT'} findings as the "
                      f"single runs, target by target ({total_findings} in all).",
                  "", "All samples (s): " + "; ".join(f"{k}: {', '.join(f'{x:.2f}' for x in v)}"
                                                   for k, v in samples.items())]
        RESULTS.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        if not same:
            raise SystemExit("the fleet run and the single runs disagree")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
