"""*load-csv vs `psql -c "\\copy ..."`: 1,000,000 rows x 6 columns, same server, same run, alternating.

    python bench/data_load_csv.py [ROWS] [ROUNDS]

Writes bench/results/data-load-csv.txt (raw figures); bench/results/data.md holds the write-up.
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
from pathlib import Path

from _data_common import bench_server, machine, median, sage_cli, session, timed, write_section

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DDL = ("create table t (id bigint primary key, name text not null, email text, amount numeric(12,2), "
       "created_at timestamptz, active boolean)")


NOTES = """
- "in process" is the operation's own throughput (Session.run_line: plan, confirmation, COPY, report),
  the figure to compare with psql's; "CLI" adds the Python interpreter's start-up and imports
  (about 0.2-0.3 s, see startup.md) to every run, which weighs ~20% on a one-second load.
- The fast path sends the file's raw bytes to `COPY ... FROM STDIN (FORMAT csv)` in 1 MB chunks:
  the server parses, exactly as for psql; the client only counts line breaks (bytes.count).
- "system psql 15" is Debian's client against the same PostgreSQL 18 server (for reference).
"""


def make_csv(path: Path) -> None:
    rnd = random.Random(42)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "email", "amount", "created_at", "active"])
        for i in range(1, ROWS + 1):
            w.writerow([i, f"name {rnd.randrange(10**6)}", f"user{i}@example.com" if i % 10 else "",
                        f"{rnd.randrange(10**7) / 100:.2f}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 12:{i % 60:02d}:00+00",
                        "true" if i % 3 else "false"])


def main() -> None:
    import psycopg

    from sage_agent.db.binaries import find_binary
    from sage_agent.db.shadow import create_database
    from sage_agent.db.tools import tool_env

    work = Path(tempfile.mkdtemp(prefix="sage-bench-csv-"))
    data = work / "data.csv"
    make_csv(data)
    size = data.stat().st_size
    project = work / "project"
    project.mkdir()
    with bench_server() as server:
        url = create_database(server.url(), "bench")
        psql = find_binary("psql", 18)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(DDL)

        def reset() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("truncate t")
                conn.execute("checkpoint")

        def check() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                assert conn.execute("select count(*) from t").fetchone()[0] == ROWS

        def run_psql() -> None:
            import subprocess

            subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            f"\\copy t from '{data}' with (format csv, header true)"],
                           env=tool_env(url), check=True)

        def run_sage() -> None:
            out = session(url, project).run_line(f"*load-csv {data} t")
            assert out.exit_code == 0, out.error or out.result.summary

        def run_cli() -> None:
            sage_cli(["run", f"*load-csv {data} t", "--yes", "--db-url", url], cwd=project)

        system_psql = Path("/usr/bin/psql")

        def run_psql_system() -> None:
            import subprocess

            subprocess.run([str(system_psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            f"\\copy t from '{data}' with (format csv, header true)"],
                           env=tool_env(url), check=True)

        runs = [("psql \\copy", run_psql), ("*load-csv (in process)", run_sage), ("sage run *load-csv (CLI)", run_cli)]
        if system_psql.exists():
            runs.append(("system psql 15 \\copy", run_psql_system))
        results: dict[str, list[float]] = {label: [] for label, _ in runs}
        warm = work / "warm.csv"  # warm-up (imports, catalog, page cache), not timed
        warm.write_text("id,name\n1,a\n")
        reset()
        out = session(url, project).run_line(f"*load-csv {warm} t")
        assert out.exit_code == 0, out.error
        data.read_bytes()
        for r in range(ROUNDS):
            for label, fn in (runs if r % 2 == 0 else runs[::-1]):  # alternate the order
                reset()
                results[label].append(timed(fn))
                check()
    base = median(results["psql \\copy"])
    lines = [f"*load-csv benchmark: {ROWS:,} rows x 6 columns, {size / 1e6:.1f} MB CSV, {ROUNDS} rounds (median), "
             f"PostgreSQL 18 embedded (fsync on), psql {psql}", f"machine: {machine()}", "",
             "| tool | median s | rows/s (median) | MB/s | ratio to psql (median) | best s | ratio (best) |",
             "|---|---|---|---|---|---|---|"]
    best = min(results["psql \\copy"])
    for label, times in results.items():
        t = median(times)
        lines.append(f"| {label} | {t:.2f} | {ROWS / t:,.0f} | {size / t / 1e6:.1f} | {base / t:.2f}x | "
                     f"{min(times):.2f} | {best / min(times):.2f}x |")
    ours = results["*load-csv (in process)"]
    ratio_med, ratio_best = base / median(ours), best / min(ours)
    cli = results["sage run *load-csv (CLI)"]
    lines.append("")
    lines.append(f"**Result:** *load-csv throughput is {ratio_med:.2f}x psql's (median), {ratio_best:.2f}x (best runs): "
                 f"target >= 0.9x {'met' if min(ratio_med, ratio_best) >= 0.9 else 'NOT met'}, goal 1.0x "
                 f"{'met' if max(ratio_med, ratio_best) >= 1.0 else 'not met'}. End to end through the CLI "
                 f"(interpreter start-up included) {base / median(cli):.2f}x median, {best / min(cli):.2f}x best.")
    lines.append("")
    lines.append("all runs (s): " + "; ".join(f"{k}: {', '.join(f'{v:.2f}' for v in vs)}" for k, vs in results.items()))
    text = "\n".join(lines)
    print(text)
    write_section("load-csv", text, NOTES)
    subprocess_rm(work)


def subprocess_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
