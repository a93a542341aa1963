"""Loader for the squawk conformance cases (tests/sqlkit/squawk_conformance.txt).

Each case restates one expectation of squawk's own rule tests (crates/squawk_linter/src/rules/*.rs
and their snapshots) as our own SQL. Format::

    ### <rule-id>: <case name> [| pg=<major>] [| assume-in-transaction]
    <sql ...>
    ### expect: <line> <line> ...        (1-based lines of the rule's findings; empty: none)
    ### sage: <line> ...                  (optional: DB Sage deliberately differs; our lines)
    ### why: <reason>                     (required with sage:)
"""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).with_name("squawk_conformance.txt")
SQUAWK_DEFAULT_PG = 15  # squawk's default --pg-version
EVERY = "*"  # a case about every default rule at once (ignore comments)


@dataclass
class Case:
    rule: str
    name: str
    sql: str
    expect: list[int]
    pg: int = SQUAWK_DEFAULT_PG
    assume_in_transaction: bool = False
    sage: list[int] | None = None
    why: str = ""
    line: int = 0  # where the case starts in the data file

    @property
    def ours_expected(self) -> list[int]:
        return self.expect if self.sage is None else self.sage


def _lines(text: str) -> list[int]:
    return sorted(int(x) for x in text.replace(",", " ").split())


def load_cases(path: Path = DATA) -> list[Case]:
    cases: list[Case] = []
    cur: Case | None = None
    body: list[str] = []
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith("### expect:") and cur is not None:
            cur.sql = "\n".join(body) + "\n"
            cur.expect = _lines(raw.split(":", 1)[1])
            cases.append(cur)
        elif raw.startswith("### sage:"):
            cases[-1].sage = _lines(raw.split(":", 1)[1])
        elif raw.startswith("### why:"):
            cases[-1].why = raw.split(":", 1)[1].strip()
        elif raw.startswith("### "):
            head, *opts = [p.strip() for p in raw[4:].split("|")]
            rule, name = [p.strip() for p in head.split(":", 1)]
            cur = Case(rule=rule, name=name, sql="", expect=[], line=no)
            for o in opts:
                if o.startswith("pg="):
                    cur.pg = int(o[3:])
                elif o == "assume-in-transaction":
                    cur.assume_in_transaction = True
                else:
                    raise ValueError(f"{path}:{no}: unknown case option {o!r}")
            body = []
        elif cur is not None:
            body.append(raw)
    return cases


def ours(case: Case) -> list[int]:
    """Lines of DB Sage's findings of the case's rule (the rule included if opt-in)."""
    from sage_agent.sqlkit.lint import lint_sql, select_rules

    rules = select_rules(include=[] if case.rule == EVERY else [case.rule])
    return sorted(f.line for f in lint_sql(case.sql, f"case{case.line}.sql", server_major=case.pg, rules=rules,
                                           assume_in_transaction=case.assume_in_transaction)
                  if f.rule == case.rule or (case.rule == EVERY and not f.rule.startswith("sage-")))


def squawk_findings(cases: list[Case], workdir: Path, squawk: str = "squawk") -> dict[int, list[int]]:
    """Lines of the real squawk's findings of each case's rule, keyed by Case.line.
    One squawk process per (pg version, transaction mode), every case a file of its own."""
    from sage_agent.sqlkit.lint.rules import ALL_RULES

    opt_in = ",".join(r.id for r in ALL_RULES if r.opt_in)
    groups: dict[tuple[int, bool], list[Case]] = {}
    for c in cases:
        groups.setdefault((c.pg, c.assume_in_transaction, c.rule == EVERY), []).append(c)
    out: dict[int, list[int]] = {c.line: [] for c in cases}
    for (pg, tx, every), group in groups.items():
        files = {}
        for c in group:
            p = workdir / f"case{c.line}.sql"
            p.write_text(c.sql, encoding="utf-8")
            files[p.name] = c
        cmd = [squawk, "--reporter", "json", f"--pg-version={pg}"] + ([] if every else [f"--include={opt_in}"])
        if tx:
            cmd.append("--assume-in-transaction")
        proc = subprocess.run([*cmd, "--", *(str(workdir / n) for n in files)], capture_output=True,
                              text=True, timeout=120, cwd=workdir)
        for x in json.loads(proc.stdout or "[]"):
            c = files[Path(x["file"]).name]
            if x["rule_name"] == c.rule or c.rule == EVERY:
                out[c.line].append(x["line"] + 1)  # squawk's lines are 0-based
    return {k: sorted(v) for k, v in out.items()}


def agreement(a: dict[int, list[int]], b: dict[int, list[int]]) -> tuple[int, int]:
    """(findings both report, findings either reports), counting repeats on a line."""
    both = either = 0
    for key in set(a) | set(b):
        ca, cb = Counter(a.get(key, [])), Counter(b.get(key, []))
        both += sum((ca & cb).values())
        either += sum((ca | cb).values())
    return both, either
