"""*rls-audit + *schema-audit on a 2,000-table schema vs `supabase db advisors --level info` on the same database.

One run of each tool per round, 5 alternating rounds, medians (target: no slower than the CLI). DB Sage runs as a user
runs it after `pip install .`: byte-compiled (this machine sets PYTHONDONTWRITEBYTECODE, which would otherwise make
every run compile the package again). Also checks that both report the same findings for every lint name both
implement. Run: python bench/security_audit.py [tables]
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

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "security.md"
ROUNDS = 5
sys.path.insert(0, str(REPO))


def build_schema(url: str, tables: int) -> None:
    import psycopg

    parts = []
    for i in range(tables):
        kind = i % 5
        parts.append(f"create table public.t{i} (id bigint generated always as identity primary key, "
                     f"user_id uuid references auth.users (id), parent_id bigint, title varchar(100), "
                     f"created_at timestamp default now()"
                     + (", password text" if kind == 4 else "") + ");")
        if kind in (0, 1, 2):
            parts.append(f"alter table public.t{i} enable row level security;")
        if kind == 0:
            parts.append(f"create policy own on public.t{i} for all to authenticated using (auth.uid() = user_id);")
        if kind == 1:
            parts.append(f"create policy own on public.t{i} for select to authenticated using ((select auth.uid()) = user_id);"
                         f"create policy all_rows on public.t{i} for delete to authenticated using (true);")
        if i % 10 == 3:
            parts.append(f"create index on public.t{i} (user_id); create index on public.t{i} (title);"
                         f"create index t{i}_title_dup on public.t{i} (title);")
        if i and i % 50 == 0:
            parts.append(f"create view public.v{i} as select id, title from public.t{i};")
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, len(parts), 500):
            conn.execute("\n".join(parts[start:start + 500]))


def main() -> None:
    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.shadow import create_database
    from sage_agent.ops.security.lints import LINTS

    base = Path(tempfile.mkdtemp(prefix="sage-bench-sec-"))
    server = EmbeddedServer(base / "pg", fast=True, port_seed=str(base))
    server.start()
    try:
        url = create_database(server.url(), "bench_security")
        t0 = time.perf_counter()
        build_schema(url, tables)
        build_s = time.perf_counter() - t0
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "SAGE_SHADOW_URL": server.url()}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sage_agent")], check=True)
        project = tempfile.mkdtemp()
        from statistics import median

        from sage_agent.db.env import Target
        from sage_agent.session.answers import FlagAnswers
        from sage_agent.session.machine import Session

        os.environ["SAGE_SHADOW_URL"] = server.url()
        cli = os.environ.get("SUPABASE_CLI") or shutil.which("supabase") or str(REPO / ".tools/node_modules/.bin/supabase")
        has_cli = Path(cli).exists()
        samples: dict[str, list[float]] = {"*rls-audit": [], "*schema-audit": [], "both": [], "session": [], "cli": []}
        outputs = {}
        cli_out = ""
        for _ in range(ROUNDS):  # rounds alternate the tools, so load from other processes hits both alike
            for cmd in ("*rls-audit", "*schema-audit"):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "sage_agent", "run", cmd, "--json", "--db-url", url],
                                      cwd=project, env=env, capture_output=True, text=True)
                samples[cmd].append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    raise SystemExit(f"{cmd} failed: {proc.stderr[-800:]}")
                outputs[cmd] = json.loads(proc.stdout)
            # both in one headless run (one Python start-up, one JSON document)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "sage_agent", "run", "*rls-audit", "*schema-audit", "--json",
                                   "--db-url", url], cwd=project, env=env, capture_output=True, text=True)
            samples["both"].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"both audits failed: {proc.stderr[-800:]}")
            both = json.loads(proc.stdout)
            assert [r["operation"] for r in both["results"]] == ["db-rls-audit", "schema-audit"], both.keys()
            # the same two audits in one session (the REPL: Python start-up paid once)
            session = Session(project=Path(project), target=Target("local", url, "bench"), answers=FlagAnswers())
            t0 = time.perf_counter()
            for cmd in ("*rls-audit", "*schema-audit"):
                out = session.run_line(cmd)
                assert out.exit_code == 0, out.error
            samples["session"].append(time.perf_counter() - t0)
            if has_cli:
                t0 = time.perf_counter()
                proc = subprocess.run([cli, "db", "advisors", "--db-url", url, "--level", "info", "--output-format",
                                       "json"], cwd=project, capture_output=True, text=True)
                samples["cli"].append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    raise SystemExit(f"supabase db advisors failed: {proc.stderr[-800:]}")
                cli_out = proc.stdout
        timings = {k: median(v) for k, v in samples.items() if v}
        in_session_s = timings["session"]
        cli_s = timings.get("cli")
        parity = "CLI not installed"
        if has_cli:
            theirs = {(r["name"], r["cacheKey"]) for r in json.loads(cli_out)["results"]}
            import psycopg

            from sage_agent.ops.security.lints import run_lints

            with psycopg.connect(url, autocommit=True) as conn:
                ours = {(f["name"], f["cache_key"]) for f in run_lints(conn, list(LINTS)).lints}
            common = {n for n, _ in theirs} & set(LINTS)
            diff = {n: len({k for m, k in ours ^ theirs if m == n}) for n in common}
            parity = ("identical for " + ", ".join(f"{n} ({sum(1 for m, _ in theirs if m == n)})" for n in sorted(common))
                      if not any(diff.values()) else f"DIFFERENCES: {diff}")
        ours_s = timings["*rls-audit"] + timings["*schema-audit"]
        both_s = timings["both"]
        n_rls = len(outputs["*rls-audit"]["data"]["lints"])
        n_schema = len(outputs["*schema-audit"]["data"]["findings"])
        lines = ["# Security and quality audits", "",
                 f"Schema: {tables} tables in public (RLS on 60%, policies, FKs to auth.users, duplicate indexes, views), "
                 f"built in {build_s:.1f}s on the embedded PostgreSQL 18. Each tool runs once per round (subprocess, cold "
                 f"Python start included), {ROUNDS} alternating rounds, median shown (the machine is shared); "
                 f"{os.cpu_count()} cores.", "",
                 "| command | seconds | findings |", "|---|---|---|",
                 f"| `sage run \"*rls-audit\"` | {timings['*rls-audit']:.2f} | {n_rls} |",
                 f"| `sage run \"*schema-audit\"` | {timings['*schema-audit']:.2f} | {n_schema} |",
                 f"| both, one headless run: `sage run \"*rls-audit\" \"*schema-audit\" --json` | {both_s:.2f} | |",
                 f"| both as two headless runs (sum) | {ours_s:.2f} | |",
                 f"| both in one session (REPL; no start-up, no JSON rendering) | {in_session_s:.2f} | |"]
        if cli_s is not None:
            lines += [f"| `supabase db advisors --level info` (CLI 3.x) | {cli_s:.2f} | |", "",
                      f"Ratio DB Sage (both audits in one headless run) / CLI: **{both_s / cli_s:.2f}x**; as two "
                      f"headless runs: **{ours_s / cli_s:.2f}x**; in one REPL session: **{in_session_s / cli_s:.2f}x** "
                      "(target: <= 1.0x, no slower than the CLI). "
                      "The CLI runs only the lints; DB Sage's *rls-audit adds the coverage matrix and *schema-audit "
                      "the design checks and fix SQL.",
                      "", f"Findings parity on the same database: {parity}."]
        RESULTS.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
