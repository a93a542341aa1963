"""Benchmark: lint a 5 MB migration file, DB Sage (sqlkit lint_sql) vs squawk (PyPI squawk-cli), same file,
one run. Target: within 3x of squawk's time.

    python bench/migrations_lint.py [--mb 5]
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

STATEMENTS = [
    "create table if not exists public.t{i} (id bigint generated always as identity primary key, "
    "owner uuid not null, title text not null, created_at timestamptz not null default now());",
    "alter table public.t{j} add column note_{i} text;",
    "create index t{j}_owner_{i}_idx on public.t{j} (owner);",
    "alter table public.t{j} add constraint t{j}_title_{i} check (length(title) < 500);",
    "create or replace function public.f{i}(p bigint) returns text language plpgsql stable as $$\n"
    "begin\n  return (select title from public.t{j} where id = p);\nend;\n$$;",
    "alter table public.t{j} alter column title set not null;",
    "insert into public.t{j} (owner, title) values ('00000000-0000-0000-0000-000000000000', 'x;{i}');",
    "create policy p{i} on public.t{j} for select to authenticated using ((select auth.uid()) = owner);",
    "drop index if exists public.old_{i}_idx;",
    "alter table public.t{j} alter column note_{i} type varchar(200);",
]


def make_file(path: Path, megabytes: float) -> int:
    target = int(megabytes * 1024 * 1024)
    parts: list[str] = ["set lock_timeout = '5s';\n"]
    size, i, count = 0, 0, 0
    while size < target:
        stmt = STATEMENTS[i % len(STATEMENTS)].format(i=i, j=(i // len(STATEMENTS)) * len(STATEMENTS)) + "\n"
        parts.append(stmt)
        size += len(stmt)
        i += 1
        count += 1
    path.write_text("".join(parts), encoding="utf-8")
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    squawk = shutil.which("squawk")
    if not squawk:
        raise SystemExit("squawk not found: pip install squawk-cli")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "20240101000000_big.sql"
        count = make_file(path, args.mb)
        size_mb = path.stat().st_size / 1024 / 1024
        runs: dict[str, list[float]] = {"squawk": [], "DB Sage (process, end to end)": [],
                                        "DB Sage (in process)": []}
        found = {}
        for rnd in range(args.rounds):
            if rnd % 2:  # alternate which tool goes first, so neither always gets the warmer cache
                _run_sage_process(path, runs, found)
            t = time.perf_counter()
            proc = subprocess.run([squawk, "--reporter", "json", str(path)], capture_output=True, text=True, check=False)
            runs["squawk"].append(time.perf_counter() - t)
            try:
                found["squawk"] = len(json.loads(proc.stdout))
            except ValueError:
                found["squawk"] = -1
            if not rnd % 2:
                _run_sage_process(path, runs, found)
            from sage_agent.sqlkit.lint import lint_sql

            t = time.perf_counter()
            findings = lint_sql(path.read_text(encoding="utf-8"), "big.sql")
            runs["DB Sage (in process)"].append(time.perf_counter() - t)
            found["DB Sage (in process)"] = len(findings)
    base = statistics.median(runs["squawk"])
    best = min(runs["squawk"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"### Lint a {size_mb:.1f} MB migration file ({count:,} statements)", "",
             f"Machine: {machine()}; load average {load:.1f} at the end; {args.rounds} rounds, tool order "
             f"alternating; squawk {_squawk_version(squawk)}.", "",
             "| tool | median s | best s | runs (s) | findings | median ratio to squawk | best ratio |",
             "|---|---|---|---|---|---|---|"]
    for label, values in runs.items():
        med = statistics.median(values)
        lines.append(f"| {label} | {med:.2f} | {min(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} | "
                     f"{found[label]:,} | {med / base:.2f}x | {min(values) / best:.2f}x |")
    ratio = statistics.median(runs["DB Sage (process, end to end)"]) / base
    same = len(set(found.values())) == 1
    lines += ["", f"Target: within 3x of squawk (end to end): {'met' if ratio <= 3 else 'NOT met'} "
              f"({ratio:.2f}x). Findings counts {'identical' if same else 'DIFFER'}.", ""]
    print("\n".join(lines))
    (Path(__file__).parent / "results").mkdir(exist_ok=True)
    (Path(__file__).parent / "results" / "_migrations_lint.md").write_text("\n".join(lines), encoding="utf-8")


def _run_sage_process(path: Path, runs: dict, found: dict) -> None:
    t = time.perf_counter()
    code = ("import sys; from sage_agent.sqlkit.lint import lint_sql; "
            "f = lint_sql(open(sys.argv[1], encoding='utf-8').read(), 'big.sql'); print(len(f))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          env=sage_env(), cwd=REPO, check=False)
    runs["DB Sage (process, end to end)"].append(time.perf_counter() - t)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    found["DB Sage (process, end to end)"] = int(proc.stdout.strip().splitlines()[-1])


def _squawk_version(squawk: str) -> str:
    try:
        return subprocess.run([squawk, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    main()
