"""*rollback of one added column on a 1M-row table: the proven reverse change vs the whole-schema restore vs SQL.

Each round starts from the same state (the column added by `*apply`, which took its schema-only snapshot) and
undoes it three ways, in an order that rotates every round:
  - `*rollback before_<file>`: plan (schema diff), proof on a shadow copy (pg_dump of the result equals the
    snapshot's), safety snapshot (schema + the column's values it drops), one transaction, verification;
  - `*rollback base --replace`: the whole-schema replacement from a with-data snapshot taken before the
    migration (drop the schemas, replay the dump with its 1M rows: the only way the old rollback kept rows);
  - by hand: `ALTER TABLE public.items DROP COLUMN price` and the ledger row deleted, in one transaction.
Medians of the rounds; the machine's load average is noted (2 cores shared with other work).
Run: python bench/rollback_column.py [rounds]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "rollback.md"
ROWS = 1_000_000
MIGRATION = "20250101000001_add_price.sql"


def _ok(outcome):
    if outcome.exit_code != 0:
        raise SystemExit(f"failed: {outcome.error}")
    return outcome


def main() -> int:
    import psycopg

    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.db.shadow import create_database
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    tmp = Path(tempfile.mkdtemp(prefix="sage-bench-rollback-"))
    server = EmbeddedServer(tmp / "pg", fast=True, port_seed="bench-rollback")
    server.start()
    times: dict[str, list[float]] = {"reverse": [], "replace": [], "hand": []}
    load = []
    lost: list[int] = []
    try:
        os.environ["SAGE_SHADOW_URL"] = server.url()
        url = create_database(server.url(), "bench_rollback")
        project = tmp / "project"
        (project / "supabase" / "migrations").mkdir(parents=True)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("create table public.items (id bigint generated always as identity primary key, "
                       "name text not null, qty int not null default 0)")
            db.execute(f"insert into public.items (name, qty) select 'item ' || g, g % 100 "
                       f"from generate_series(1, {ROWS}) g")
            db.execute("vacuum analyze public.items")

        def session(*words: str) -> Session:
            return Session(project=project, target=Target("local", url, "bench"),
                           answers=FlagAnswers(yes=True, confirm_words=words))

        _ok(session().run_line("*snapshot base --mode with-data"))  # for --replace: keeps the 1M rows
        (project / "supabase" / "migrations" / MIGRATION).write_text(
            "alter table public.items add column price numeric;\n", encoding="utf-8")

        def apply() -> str:
            return _ok(session().run_line("*apply")).result.data["snapshot"]

        def reverse() -> None:
            out = _ok(session("ROLLBACK").run_line(f"*rollback {state['snapshot']}"))
            lost.append(out.result.data["rows_lost"])

        def replace() -> None:
            _ok(session("REPLACE").run_line("*rollback base --replace"))

        def hand() -> None:
            with psycopg.connect(url) as conn, conn.transaction():
                conn.execute("alter table public.items drop column price")
                conn.execute("delete from supabase_migrations.schema_migrations where version = '20250101000001'")

        ways = [("reverse", reverse), ("replace", replace), ("hand", hand)]
        state = {"snapshot": apply()}
        _ok(session("ROLLBACK").run_line(f"*rollback {state['snapshot']}"))  # warm-up
        for r in range(rounds):
            order = ways[r % 3:] + ways[: r % 3]
            for name, fn in order:
                state["snapshot"] = apply()
                load.append(os.getloadavg()[0])
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                with psycopg.connect(url) as conn:
                    n = conn.execute("select count(*) from public.items").fetchone()[0]
                    assert n == ROWS, f"{name}: {n} rows left"
    finally:
        server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        "# *rollback of one added column (issue 15)", "",
        f"`public.items` with {ROWS:,} rows; `alter table public.items add column price numeric` applied with "
        f"`*apply`, then undone. {rounds} rounds, the three ways alternating (order rotates each round), medians; "
        f"same embedded PostgreSQL 18 server, {os.cpu_count()} cores, Python {platform.python_version()}, load "
        f"average during the runs {min(load):.1f}-{max(load):.1f} (the machine is shared).", "",
        "| way | median s | runs (s) | rows left | vs hand-written |", "|---|---|---|---|---|",
        f"| `*rollback before_<file>` (reverse change, proof, safety snapshot, verify) | {med['reverse']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times['reverse'])} | {ROWS:,} (reported lost: {max(lost) if lost else 0}) | "
        f"{med['reverse'] / med['hand']:.1f}x |",
        f"| `*rollback base --replace` (whole-schema restore from a with-data snapshot) | {med['replace']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times['replace'])} | {ROWS:,} | {med['replace'] / med['hand']:.1f}x |",
        f"| by hand: `ALTER TABLE ... DROP COLUMN` + ledger row, one transaction | {med['hand']:.3f} | "
        f"{', '.join(f'{t:.3f}' for t in times['hand'])} | {ROWS:,} | 1.0x |",
        "",
        f"The reverse change takes {med['reverse'] / med['replace']:.2f}x the time of the whole-schema restore "
        f"({'faster' if med['reverse'] < med['replace'] else 'slower'}), keeps every row without a with-data "
        "snapshot (a schema-only `before_<file>` is enough because the file only adds). Its "
        "cost over the bare ALTER is fixed work: loading the snapshot and a copy of the schema into shadow "
        "databases, the proof's two pg_dumps, the safety snapshot (which keeps the dropped column's values: "
        "a COPY of (id, price)), a re-check dump before and a verification dump after.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
