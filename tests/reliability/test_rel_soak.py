"""Soak: one REPL session of 1,000 cheap read commands through prompt-toolkit's pipe input, memory measured
(resident set size and Python heap via tracemalloc snapshots at command 200 and 1,000)."""

from __future__ import annotations

import gc
import os
import time

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rel_common import record

from sage_agent.db.env import Target
from sage_agent.frontends.render import make_console
from sage_agent.frontends.repl import Repl

COMMANDS = int(os.environ.get("SAGE_REL_SOAK", "1000"))
WARMUP = COMMANDS // 5
RSS_BOUND_MB = 40     # growth of the resident set after warm-up
HEAP_BOUND_MB = 15    # growth of live Python objects after warm-up (outcomes kept for *usage included)
MIX = ["*help",  # (*monitor refreshes for seconds in a REPL, *env-check runs external tools: not "cheap")
       "*run-sql \"select 1 as one\"", "*migrations", "*locks", "*help apply",
       "*run-sql \"select count(*) from pg_class\"", "*frobnicate", "*usage", "*kb rls", "*vacuum"]


class Sink:
    """Console output counted, not kept (a StringIO of 1,000 reports would be the growth we measure)."""

    def __init__(self) -> None:
        self.chars = 0
        self.tail = ""

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.tail = (self.tail + text)[-2000:]
        return len(text)

    def flush(self) -> None:
        pass


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_thousand_command_repl_session(db_url, project):
    import tracemalloc

    lines = [MIX[i % len(MIX)] for i in range(COMMANDS)]
    sink = Sink()
    console = make_console(width=160)
    console.file = sink
    marks: dict[str, float] = {}
    with create_pipe_input() as pipe:
        repl = Repl(project, Target("local", db_url, "test"), input=pipe, output=DummyOutput(), console=console,
                    history_file=project / ".sage" / "history")
        handle = repl.handle
        count = {"n": 0}

        def counted(line):
            ok = handle(line)
            count["n"] += 1
            if count["n"] in (WARMUP, COMMANDS):
                gc.collect()
                marks[f"rss_{count['n']}"] = rss_mb()
                marks[f"heap_{count['n']}"] = tracemalloc.get_traced_memory()[0] / 2**20
            return ok

        repl.handle = counted
        pipe.send_text("".join(line + "\r" for line in lines) + "*exit\r")
        tracemalloc.start(1)
        started = time.monotonic()
        try:
            assert repl.run() == 0
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started
    assert count["n"] == COMMANDS + 1, sink.tail
    codes = [o.exit_code for o in repl.outcomes]
    failed = [(lines[i], c) for i, c in enumerate(codes[:COMMANDS]) if c not in (0, 2)]
    assert not failed[:5], failed[:5]
    assert codes.count(2) == COMMANDS // len(MIX) + (1 if COMMANDS % len(MIX) > MIX.index("*frobnicate") else 0)
    rss_growth = marks[f"rss_{COMMANDS}"] - marks[f"rss_{WARMUP}"]
    heap_growth = marks[f"heap_{COMMANDS}"] - marks[f"heap_{WARMUP}"]
    record("soak", commands=COMMANDS, warmup=WARMUP, seconds=round(elapsed, 1),
           rss_after_warmup_mb=round(marks[f"rss_{WARMUP}"], 1), rss_end_mb=round(marks[f"rss_{COMMANDS}"], 1),
           rss_growth_mb=round(rss_growth, 1), heap_growth_mb=round(heap_growth, 2),
           rss_bound_mb=RSS_BOUND_MB, heap_bound_mb=HEAP_BOUND_MB, output_chars=sink.chars)
    print(f"soak: {COMMANDS} commands in {elapsed:.0f}s, rss {marks[f'rss_{WARMUP}']:.0f} -> "
          f"{marks[f'rss_{COMMANDS}']:.0f} MB, heap growth {heap_growth:.2f} MB")
    assert rss_growth < RSS_BOUND_MB, marks
    assert heap_growth < HEAP_BOUND_MB, marks
