"""Benchmark: *compare-schemas of two 1,000-table schemas, including the proof; where the time goes.

Peer: bare `pg_dump --schema-only` of both databases (what a dump-and-diff approach has to pay at least).
Run: python bench/schema_diff_compare.py  (starts its own embedded server; writes bench/results/schema_diff.md)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N = 1000


def schema_sql(variant: int) -> str:
    out = ["create type public.status as enum ('new', 'active', 'done'"
           + (", 'archived')" if variant else ")") + ";"]
    for i in range(N):
        extra = ""
        if variant and i % 10 == 0:
            extra = ", added_col text default 'x'"
        ntype = "bigint" if (variant and i % 25 == 0) else "integer"
        out.append(f"create table public.t{i:04d} (id bigint generated always as identity primary key, "
                   f"name text not null, n {ntype} default 0, status public.status default 'new', "
                   f"created_at timestamptz not null default now(){extra});")
        if i % 2 == 0:
            out.append(f"create index t{i:04d}_name on public.t{i:04d} (name);")
        if i > 0 and i % 3 == 0:
            out.append(f"alter table public.t{i:04d} add column parent bigint references public.t{i - 1:04d}(id);")
        if i % 5 == 0:
            out.append(f"alter table public.t{i:04d} enable row level security;")
            using = "(n > 0)" if (variant and i % 50 == 0) else "(true)"
            out.append(f"create policy p{i:04d} on public.t{i:04d} for select to authenticated using {using};")
        if i % 20 == 0:
            out.append(f"create view public.v{i:04d} as select id, name, n from public.t{i:04d};")
    if variant:
        out.append("create function public.touch() returns trigger language plpgsql as "
                   "$$ begin return new; end $$;")
    return "\n".join(out)


def _file_creation_s(folder: Path, n: int = 5000) -> float:
    """Seconds to create n empty files in `folder` (what CREATE TABLE costs the file system), then remove them."""
    if not folder.is_dir():
        return float("nan")
    work = Path(tempfile.mkdtemp(dir=folder, prefix="sage-files-"))
    try:
        t0 = time.perf_counter()
        for i in range(n):
            os.close(os.open(work / f"f{i}", os.O_CREAT | os.O_WRONLY))
        return time.perf_counter() - t0
    finally:
        for i in range(n):
            (work / f"f{i}").unlink(missing_ok=True)
        work.rmdir()


def main() -> None:
    import psycopg

    from sage_agent.db.binaries import find_binary
    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database, drop_database
    from sage_agent.db.tools import tool_env
    from sage_agent.ops.schema.compare import compare

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "pg", fast=True, port_seed="bench-schema-diff")
        server.start()
        admin = server.url()
        os.environ["SAGE_SHADOW_URL"] = admin
        try:
            urls = []
            for v in (0, 1):
                url = create_database(admin, f"bench_{v}")
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(schema_sql(v))
                urls.append(url)
            ctx = SimpleNamespace(admin_url=admin, project=Path(tmp), target=Target("local", admin, "bench"))
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                cmp = compare(ctx, urls[0], urls[1])
                runs.append((time.perf_counter() - t0, cmp))
            best, cmp = min(runs, key=lambda r: r[0])
            from sage_agent.ops.schema.commands import _lint_plan

            t0 = time.perf_counter()
            _lint_plan(cmp.plan, 18)
            lint_s = time.perf_counter() - t0
            # A on another server (as production is): pg_dump of A + load into the shadow, overlapping the reads
            remote = EmbeddedServer(Path(tmp) / "pg-remote", fast=True, port_seed="bench-schema-diff-remote")
            remote.start()
            try:
                remote_a = create_database(remote.url(), "bench_remote_a")
                with psycopg.connect(remote_a, autocommit=True) as conn:
                    conn.execute(schema_sql(0))
                t0 = time.perf_counter()
                dump_cmp = compare(ctx, remote_a, urls[1])
                dump_path = time.perf_counter() - t0
                assert dump_cmp.proof.proven, dump_cmp.proof
            finally:
                remote.stop()
            files_disk, files_ram = _file_creation_s(Path(tmp)), _file_creation_s(Path("/dev/shm"))
            t0 = time.perf_counter()
            for url in urls:
                subprocess.run([str(find_binary("pg_dump", 18)), "--schema-only", "-f", os.devnull],
                               env=tool_env(url), check=True)
            peer = time.perf_counter() - t0
            counts = cmp.model_a.counts()
            lines = [
                "# *compare-schemas benchmark", "",
                f"Machine: 2 cores, embedded PostgreSQL 18 (fast mode). {time.strftime('%Y-%m-%d')}.", "",
                f"Two schemas of {N} tables each ({counts['columns']} columns, {counts['indexes']} indexes, "
                f"{counts['constraints']} constraints, {counts['policies']} policies, {counts['views']} views); "
                f"B differs by {len(cmp.plan.drift)} objects (new columns, widened types, an enum value, "
                "changed policies, a new function).", "",
                "| measure | seconds |", "|---|---|",
                f"| *compare-schemas incl. proof (best of 3) | {best:.2f} |",
                f"| + linting the plan with sqlkit (done by the command) | {lint_s:.2f} |",
                f"| runs | {', '.join(f'{r[0]:.2f}' for r in runs)} |",
                f"| peer: bare pg_dump --schema-only of both databases | {peer:.2f} |",
                f"| ratio to peer | {best / peer:.2f}x |",
                f"| same with A on another server: shadow copy by pg_dump + load | {dump_path:.2f} |", "",
                "The shadow copy is `CREATE DATABASE ... TEMPLATE A` when A is a small idle database on the "
                "shadow server, else pg_dump --schema-only + psql load (shown on the last row; its phases: "
                + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(dump_cmp.timings.items(), key=lambda kv: -kv[1])[:3])
                + ").", "",
                "Copies, loads and CREATE DATABASE are file-system work (a 1,000-table schema is ~5,000 relation "
                "files), and on this virtual disk that cost swings with what the disk did just before: creating "
                f"5,000 empty files took {files_disk:.2f} s right after these runs (0.3-3.6 s across our runs) and "
                f"{files_ram:.2f} s on tmpfs (/dev/shm). That, not CPU, is most of the run-to-run spread above.", "",
                f"Target: < 5 s. Result: {'MET' if best < 5 else 'NOT met'} (A on another server: "
                f"{'met' if dump_path < 5 else 'not met'}). Plan: {len(cmp.plan.steps)} steps, "
                f"proven: {cmp.proof.proven}.", "",
                "## Where the time goes (best run; phases overlap: the shadow copy runs in a thread while both "
                "schemas are read)", "", "| phase | seconds |", "|---|---|",
            ]
            for k, v in sorted(cmp.timings.items(), key=lambda kv: -kv[1]):
                lines.append(f"| {k} | {v:.3f} |")
            lines += ["", "Reading a 1,000-table schema is a dozen catalog queries (~0.3-0.7 s on a loaded 2-core "
                      "machine); the diff itself is tens of milliseconds; applying the plan is ~0.2 s. Over the "
                      "pg_dump path, loading the dump into the shadow (~25,000 lines of DDL: tables, identities, "
                      "constraints, grants) dominates; it is server-side catalog work (sending the script in one "
                      "round trip instead of psql measured the same). Figures vary 2-3x with the load other "
                      "processes put on this 2-core machine.", ""]
            out = ROOT / "bench" / "results" / "schema_diff.md"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines))
            print("\n".join(lines))
        finally:
            for v in (0, 1):
                drop_database(admin, f"bench_{v}")
            server.stop()


if __name__ == "__main__":
    main()
