"""REPL completion on a 2,000-table catalog (issue 19): how long a completion list takes to appear, in process.

A real database with 2,000 tables of 8 columns (embedded PostgreSQL); the catalog is read once (timed), then each
completion is timed 30 times, median. Target: under 50 ms per list. Run: python bench/repl_completion.py [tables]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "repl-completion.md"


def main() -> None:
    import psycopg
    from prompt_toolkit.document import Document

    from sage_agent.catalog.tasks import command_index, load_tasks
    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.frontends.completion import CatalogCache, InputCompleters, read_catalog
    from sage_agent.frontends.repl import CommandCompleter

    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    base = Path(tempfile.mkdtemp(prefix="sage-bench-complete-"))
    server = EmbeddedServer(base / "pg", fast=True)
    server.start()
    try:
        url = server.url()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("; ".join(f"create table public.t{i:04d}_orders (id bigint primary key, customer_id uuid, "
                                   "total numeric, status text, created_at timestamptz, note text, qty int, "
                                   "sku text)" for i in range(tables)))
        started = time.perf_counter()
        names = read_catalog(url)
        read_s = time.perf_counter() - started
        cache = CatalogCache(lambda: url, reader=lambda u: names)
        completer = CommandCompleter(sorted(command_index(load_tasks())), InputCompleters(base, cache))
        cases = ["*run-sql select * from t1", "*run-sql select * from t", "*run-sql select t0042_orders.",
                 "*run-sql sel", "*policy-apply t00", "*policy-apply t0001_orders --owner-column cu",
                 # in context: the columns of the statement's tables (aliases resolved), tables after FROM/JOIN
                 "*run-sql select * from t0001_orders a join t0002_orders b on b.",
                 "*run-sql select * from t0001_orders o where ", "*run-sql select * from t0001_orders o join t1",
                 "*run-sql update t0007_orders set "]
        rows = []
        for text in cases:
            samples, count = [], 0
            for _ in range(30):
                start = time.perf_counter()
                count = len(list(completer.get_completions(Document(text), None)))
                samples.append((time.perf_counter() - start) * 1000)
            rows.append((text, count, statistics.median(samples), max(samples)))
    finally:
        server.stop()
    load = os.getloadavg()[0]
    lines = [f"# REPL completion on a {tables:,}-table catalog", "",
             f"Load average {load:.1f} on {os.cpu_count()} cores. Catalog read once: {read_s * 1000:.0f} ms "
             f"({len(names.tables):,} relations, {sum(len(c) for c in names.tables.values()):,} columns).", "",
             "| typed | completions | median ms | max ms |", "|---|---|---|---|"]
    lines += [f"| `{t}` | {n:,} | {m:.1f} | {x:.1f} |" for t, n, m, x in rows]
    lines += ["", "Target: a completion list in under 50 ms (in process)."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
