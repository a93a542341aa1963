"""DB Sage's SQL stand-ins for pgcrypto / uuid-ossp vs the real C modules, side by side on one PostgreSQL 15
database (the real functions in `extensions`, the stand-ins in `standin`), alternating, 5 rounds, medians.

    python3 bench/supabase_platform.py      # writes bench/results/supabase-platform.md
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASES = [
    ("uuid_generate_v4() x 10,000", "select count(X.uuid_generate_v4()) from generate_series(1, 10000)"),
    ("uuid_generate_v5(ns, name) x 1,000", "select count(X.uuid_generate_v5(X.uuid_ns_url(), g::text)) "
                                           "from generate_series(1, 1000) g"),
    ("gen_random_bytes(32) x 1,000", "select count(X.gen_random_bytes(32)) from generate_series(1, 1000)"),
    ("digest(1 KB, 'sha256') x 1,000", "select count(X.digest(repeat('x', 1024), 'sha256')) "
                                        "from generate_series(1, 1000)"),
    ("digest(1 KB, 'sha1') x 100", "select count(X.digest(repeat('x', 1024) || g, 'sha1')) "
                                   "from generate_series(1, 100) g"),
    ("hmac(text, key, 'sha256') x 1,000", "select count(X.hmac(g::text, 'key', 'sha256')) "
                                           "from generate_series(1, 1000) g"),
    ("crypt(pw, gen_salt('bf')) x 1 (cost 6)", "select X.crypt('password123', '$2a$06$EVc49tV8vNv45Kn9eIu6Au')"),
]


def main() -> None:
    import psycopg

    from sage_agent.db.baseline import standin_script
    from sage_agent.db.embedded import EmbeddedServer

    pg15 = Path("/usr/lib/postgresql/15/bin")
    if not (pg15 / "pg_ctl").exists():
        sys.exit("needs Debian's PostgreSQL 15 (apt-get install postgresql-15)")
    base = Path(tempfile.mkdtemp(prefix="sage-bench-platform-"))
    server = EmbeddedServer(base / "pg", fast=True, port_seed=str(base))
    server.bin_dir = pg15
    server.start()
    rows = []
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("create schema standin")
            conn.execute(standin_script("pgcrypto", "standin"))
            conn.execute(standin_script("uuid-ossp", "standin"))
            for label, query in CASES:
                times = {"extensions": [], "standin": []}
                for _ in range(5):
                    for schema in ("extensions", "standin"):
                        started = time.perf_counter()
                        conn.execute(query.replace("X.", schema + "."))
                        times[schema].append(time.perf_counter() - started)
                real, ours = statistics.median(times["extensions"]), statistics.median(times["standin"])
                rows.append((label, real * 1000, ours * 1000, ours / real if real else float("inf")))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()[0]
    lines = ["# Supabase platform: SQL stand-ins vs the real pgcrypto / uuid-ossp", "",
             f"PostgreSQL 15 (Debian), one database, 5 alternating rounds, medians. Load average {load:.1f} on "
             f"{os.cpu_count()} cores while measuring. The stand-ins serve the embedded PostgreSQL 18, which has "
             "neither module.", "",
             "| call | real module (ms) | DB Sage stand-in (ms) | ratio |", "|---|---|---|---|"]
    lines += [f"| {label} | {real:.1f} | {ours:.1f} | {ratio:.1f}x |" for label, real, ours, ratio in rows]
    out = REPO / "bench" / "results" / "supabase-platform.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
