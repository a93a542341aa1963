#!/usr/bin/env python3
"""Run the reliability suite (tests/reliability) and write its counts to bench/results/reliability.md.

Not part of `bench/run`'s timed benchmarks (the suite runs in CI on every change; here it takes minutes):
run it by hand, `python bench/_reliability.py`, then `bench/run` picks the section up into RESULTS.md.
`python bench/_reliability.py --from COUNTS.json SECONDS` writes the section from an earlier run's counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def run() -> tuple[dict, float, int, str]:
    counts = Path(tempfile.mkdtemp()) / "counts.json"
    env = {**os.environ, "SAGE_RELIABILITY_COUNTS": str(counts)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    summary = (proc.stdout.strip().splitlines() or [""])[-1].split(" in ")[0]
    print(proc.stdout[-2000:])
    return (json.loads(counts.read_text()) if counts.exists() else {}), elapsed, proc.returncode, summary


def fmt_states(states: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((states or {}).items())) or "-"


def write(counts: dict, elapsed: float, summary: str) -> None:
    f, c, b, s, k = (counts.get(x, {}) for x in ("faults", "concurrency", "bad_input", "secrets", "soak"))
    trials = sum(int(v) for key, v in f.items() if key.endswith("_trials"))
    lines = [
        "# Reliability suite (tests/reliability)", "",
        f"Whole suite: {elapsed:.0f} s on this machine ({summary}). Runs in CI; seeded, so every run repeats the "
        "same trials.", "",
        "| Area | Count | Result |", "|---|---|---|",
        f"| Fault trials (backend terminated mid-work) | {trials} | database fully before or fully after in every "
        "trial; history agrees with the schema; no lock or idle transaction left; next run works |",
        f"| - *apply (2 files, one transaction each; kill at a seeded statement index) | {f.get('apply_trials', '-')} | end states (history = schema in each): "
        f"{fmt_states(f.get('apply_states'))} |",
        f"| - *seed (kill at a seeded statement index) | {f.get('seed_trials', '-')} | all {f.get('seed_killed', '-')} "
        "killed mid-transaction, database unchanged |",
        f"| - *rollback (kill after a seeded random delay) | {f.get('rollback_trials', '-')} | "
        f"{fmt_states(f.get('rollback_states'))} |",
        f"| - *load-csv (kill mid-COPY: the test holds the key of a seeded random row) | {f.get('load_csv_trials', 'skipped')} | "
        f"{fmt_states(f.get('load_csv_states'))} |",
        f"| - *restore (kill after a seeded random delay) | {f.get('restore_trials', 'skipped')} | "
        f"{fmt_states(f.get('restore_states'))} |",
        f"| Concurrent *apply processes on one pending set | {c.get('apply_processes', '-')} x "
        f"{c.get('apply_rounds', '-')} rounds | {c.get('apply_files_applied', '-')} files applied exactly once, "
        f"0 duplicates, 0 locks left |",
        f"| Concurrent *load-csv into different tables | {c.get('load_csv_processes', 'skipped')} | "
        f"{c.get('load_csv_rows', '-')} rows, all loaded, 0 locks left |",
        f"| Bad-input cases (headless, in-process) | {b.get('cases', '-')} | failures: {b.get('failures', '-')}; "
        f"exit codes {json.dumps(b.get('exit_codes', {}), sort_keys=True)} |",
        f"| - through real `sage run` processes | {b.get('subprocess_sample', '-')} | failures: "
        f"{b.get('subprocess_failures', '-')} |",
        f"| - malformed handoff files | {b.get('handoff_cases', '-')} | failures: {b.get('handoff_failures', '-')} |",
        f"| Secrets: commands run with a planted password and keys | {s.get('headless_commands', '-')} headless + "
        f"{s.get('subprocess_commands', '-')} processes + {s.get('model_requests', '-')} model requests | "
        f"occurrences found: {s.get('leaks', '-')} in output/files ({s.get('files_scanned', '-')} files), "
        f"{s.get('model_request_leaks', '-')} in model requests |",
        f"| Soak: REPL commands in one session | {k.get('commands', '-')} | RSS {k.get('rss_after_warmup_mb', '-')} "
        f"-> {k.get('rss_end_mb', '-')} MB after warm-up ({k.get('warmup', '-')} commands): growth "
        f"{k.get('rss_growth_mb', '-')} MB (bound {k.get('rss_bound_mb', '-')}); Python heap growth "
        f"{k.get('heap_growth_mb', '-')} MB (bound {k.get('heap_bound_mb', '-')}) |",
        "",
        "`no_backend_at_kill`: the random delay fell before DB Sage connected or after it finished (still checked).",
        "",
        "Findings fixed while building the suite (each has a test): a deeply nested expression on one enormous line "
        "crashed the process (segmentation fault in the SQL parser); syntax errors quoted the whole rest of the file "
        "(megabytes, many lines); headless errors wrapped at 80 columns; a 300-character migration name was a raw "
        "OSError; control characters in names split error lines; a binary handoff file was a traceback; a restore "
        "retried within the same second failed on its safety backup's name.",
        "Finding reported, not fixed: *restore over a database where a table created after the backup references "
        "a backed-up table fails (safely: one transaction, unchanged, clear message).",
    ]
    (BENCH / "results" / "reliability.md").write_text("\n".join(lines) + "\n")
    print("wrote bench/results/reliability.md")


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--from":
        write(json.loads(Path(sys.argv[2]).read_text()), float(sys.argv[3]), "earlier run")
        return 0
    counts, elapsed, code, summary = run()
    write(counts, elapsed, summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
