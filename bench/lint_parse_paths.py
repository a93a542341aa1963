"""Issue 14, session 10: what building the parse trees of the 200 typical files (bench/lint_vs_squawk.py) costs
through each pglast entry point, in one process, the ways rotating each round: the Node objects `sage lint` builds
today (sqlkit.split._parse: pglast's parse_sql with the per-attribute validation off), pglast's own parse_sql,
parse_sql_json + the C json.loads into plain dicts (what rules on dicts would read), and the C parse alone
(parse_sql_json / parse_sql_protobuf without decoding; libpg_query's splitter) as floors. CPU seconds.

    python bench/lint_parse_paths.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lint_vs_squawk import make_folder  # noqa: E402
from pglast import parser as pg  # noqa: E402

from sage_agent.sqlkit import split  # noqa: E402

WAYS = {
    "Node trees, sage's fast build (today)": split._parse,
    "parse_sql_json + json.loads (dicts)": lambda s: json.loads(pg.parse_sql_json(s)),
    "parse_sql_json alone (C parse + JSON text)": pg.parse_sql_json,
    "parse_sql_protobuf alone (C parse + protobuf bytes)": pg.parse_sql_protobuf,
    "libpg_query split alone (statement bounds)": pg.split,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--plain", action="store_true", help="also pglast's validated parse_sql (slow)")
    args = ap.parse_args()
    ways = dict(WAYS)
    if args.plain:
        ways["pglast parse_sql (validated Node trees)"] = pg.parse_sql
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        size = make_folder(folder)
        texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))]
    gc.disable()
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {w: [] for w in ways}
    names = list(ways)
    for rnd in range(args.rounds):
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            fn = ways[name]
            started = time.process_time()
            for t in texts:
                fn(t)
            times[name].append(time.process_time() - started)
    base = statistics.median(times[names[0]])
    print(f"200 files, {size / 1024 / 1024:.1f} MB, {args.rounds} rounds rotating, load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| way | median CPU s | best s | vs today |\n|---|---|---|---|")
    for name, v in times.items():
        print(f"| {name} | {statistics.median(v):.3f} | {min(v):.3f} | {statistics.median(v) / base:.2f}x |")


if __name__ == "__main__":
    main()
