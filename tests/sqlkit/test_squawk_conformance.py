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


# squawk's lock_kind_* tests: the lock each statement takes, as named in the require-lock-timeout message.
# (statement, squawk's lock, DB Sage's lock when it deliberately differs)
LOCKS = [
    ("ALTER TABLE box ADD COLUMN c int;", "ACCESS EXCLUSIVE", None),
    ("CLUSTER box;", "ACCESS EXCLUSIVE", None),
    ("COMMENT ON TABLE box IS 'x';", "SHARE UPDATE EXCLUSIVE", None),
    ("CREATE INDEX box_i ON box (c);", "SHARE", None),
    ("CREATE INDEX CONCURRENTLY box_i ON box (c);", "SHARE UPDATE EXCLUSIVE", None),
    ("DROP INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("DROP INDEX CONCURRENTLY box_i;", "SHARE UPDATE EXCLUSIVE", None),
    ("DROP TABLE box;", "ACCESS EXCLUSIVE", None),
    ("DROP VIEW box_v;", "ACCESS EXCLUSIVE", None),
    ("REFRESH MATERIALIZED VIEW box_mv;", "ACCESS EXCLUSIVE", None),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY box_mv;", "EXCLUSIVE", None),
    ("REINDEX INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("REINDEX INDEX CONCURRENTLY box_i;", "SHARE UPDATE EXCLUSIVE", None),
    ("TRUNCATE box;", "ACCESS EXCLUSIVE", None),
    ("CREATE TYPE shade AS ENUM ('dark', 'light');", None, None),
    ("ALTER TABLE box DROP COLUMN c;", "ACCESS EXCLUSIVE", None),
    ("ALTER TABLE box ALTER COLUMN c TYPE bigint;", "ACCESS EXCLUSIVE", None),
    ("ALTER TABLE box VALIDATE CONSTRAINT box_c;", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box ALTER COLUMN c SET STATISTICS 100;", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box ALTER COLUMN c SET (n_distinct = 5);", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box SET (fillfactor = 70);", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box RESET (fillfactor);", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box CLUSTER ON box_i;", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box SET WITHOUT CLUSTER;", "SHARE UPDATE EXCLUSIVE", None),
    ("ALTER TABLE box DETACH PARTITION box_p;", "ACCESS EXCLUSIVE", None),
    # PostgreSQL's documentation: DETACH ... CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the parent
    ("ALTER TABLE box DETACH PARTITION box_p CONCURRENTLY;", "ACCESS EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"),
    ("ALTER TABLE box ADD CONSTRAINT box_fk FOREIGN KEY (a) REFERENCES other (id);", "SHARE ROW EXCLUSIVE", None),
    ("ALTER TABLE box ADD CONSTRAINT box_ck CHECK (a > 0);", "ACCESS EXCLUSIVE", None),
    ("ALTER TABLE box DISABLE TRIGGER box_trg;", "SHARE ROW EXCLUSIVE", None),
    ("ALTER TABLE box ENABLE TRIGGER box_trg;", "SHARE ROW EXCLUSIVE", None),
    ("ALTER TABLE box ENABLE REPLICA TRIGGER box_trg;", "SHARE ROW EXCLUSIVE", None),
    ("ALTER TABLE box ENABLE ALWAYS TRIGGER box_trg;", "SHARE ROW EXCLUSIVE", None),
    ("ALTER TABLE box VALIDATE CONSTRAINT box_c, ADD COLUMN d int;", "ACCESS EXCLUSIVE", None),
    ("LOCK TABLE box;", "ACCESS EXCLUSIVE", None),
    ("LOCK TABLE box IN ACCESS EXCLUSIVE MODE;", "ACCESS EXCLUSIVE", None),
    ("LOCK TABLE box IN ACCESS SHARE MODE;", "ACCESS SHARE", None),
    ("LOCK TABLE box IN EXCLUSIVE MODE;", "EXCLUSIVE", None),
    ("LOCK TABLE box IN ROW EXCLUSIVE MODE;", "ROW EXCLUSIVE", None),
    ("LOCK TABLE box IN ROW SHARE MODE;", "ROW SHARE", None),
    ("LOCK TABLE box IN SHARE MODE;", "SHARE", None),
    ("LOCK TABLE box IN SHARE ROW EXCLUSIVE MODE;", "SHARE ROW EXCLUSIVE", None),
    ("LOCK TABLE box IN SHARE UPDATE EXCLUSIVE MODE;", "SHARE UPDATE EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY) INDEX box_i;", "SHARE UPDATE EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY true) INDEX box_i;", "SHARE UPDATE EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY false) INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY 'false') INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY off) INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("REINDEX (CONCURRENTLY 0) INDEX box_i;", "ACCESS EXCLUSIVE", None),
    ("VACUUM box;", "SHARE UPDATE EXCLUSIVE", None),
    ("VACUUM FULL box;", "ACCESS EXCLUSIVE", None),
    ("VACUUM (FULL) box;", "ACCESS EXCLUSIVE", None),
    ("VACUUM (FULL true) box;", "ACCESS EXCLUSIVE", None),
    ("VACUUM (FULL false) box;", "SHARE UPDATE EXCLUSIVE", None),
    ("VACUUM (FULL 'false') box;", "SHARE UPDATE EXCLUSIVE", None),
    ("VACUUM (FULL off) box;", "SHARE UPDATE EXCLUSIVE", None),
    ("VACUUM (FULL 0) box;", "SHARE UPDATE EXCLUSIVE", None),
]


def _our_lock(sql: str) -> str | None:
    from sage_agent.sqlkit.lint import lint_sql

    (f,) = [f for f in lint_sql(sql + "\n") if f.rule == "require-lock-timeout"]
    return f.lock


@pytest.mark.parametrize("sql,squawk_lock,ours_lock", LOCKS, ids=[s for s, _, _ in LOCKS])
def test_lock_of_each_statement(sql, squawk_lock, ours_lock):
    assert _our_lock(sql) == (ours_lock or squawk_lock)


@pytest.mark.skipif(shutil.which("squawk") is None, reason="the squawk CLI is not installed (pip install squawk-cli)")
def test_lock_table_matches_the_real_squawk(tmp_path: Path):
    import json
    import subprocess

    files = []
    for i, (sql, _, _) in enumerate(LOCKS):
        files.append(tmp_path / f"l{i:03}.sql")
        files[-1].write_text(sql + "\n")
    out = json.loads(subprocess.run(["squawk", "--reporter", "json", *map(str, files)], capture_output=True,
                                    text=True, timeout=120).stdout)
    theirs = {}
    for x in out:
        if x["rule_name"] == "require-lock-timeout":
            msg = x["message"]
            lock = msg.split("slow ", 1)[1].split(" lock operations")[0] if " lock operations" in msg else None
            theirs[LOCKS[int(Path(x["file"]).stem[1:])][0]] = lock
    assert {sql: theirs.get(sql, "no finding") for sql, _, _ in LOCKS} == {sql: lock for sql, lock, _ in LOCKS}
