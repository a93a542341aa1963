"""Conformance with squawk 2.70 on the behaviours its own rule tests check.

Every case in squawk_conformance.txt restates one expectation of squawk's rule tests as our own
SQL. The first test runs DB Sage's linter on every case; the second runs the real squawk binary
on the same cases, proving the expectations themselves against the oracle.
"""
import shutil
from pathlib import Path

import pytest

from tests.sqlkit.squawk_conformance import agreement, load_cases, ours, squawk_findings

CASES = load_cases()


def test_the_suite_is_substantial():
    assert len(CASES) >= 370
    assert all(c.why for c in CASES if c.sage is not None)  # every deliberate difference says why


@pytest.mark.parametrize("case", CASES, ids=[f"L{c.line}-{c.rule}" for c in CASES])
def test_db_sage_meets_the_expectation(case):
    assert ours(case) == case.ours_expected, f"{case.rule}: {case.name}\n{case.sql}"


@pytest.mark.skipif(shutil.which("squawk") is None, reason="the squawk CLI is not installed (pip install squawk-cli)")
def test_expectations_match_the_real_squawk(tmp_path: Path):
    theirs = squawk_findings(CASES, tmp_path)
    wrong = [(c.line, c.rule, c.name, c.expect, theirs[c.line]) for c in CASES if theirs[c.line] != c.expect]
    assert wrong == []
    both, either = agreement({c.line: ours(c) for c in CASES}, theirs)
    differ = sum(1 for c in CASES if c.sage is not None)
    assert either - both <= differ * 2  # only the documented differences separate the two tools
