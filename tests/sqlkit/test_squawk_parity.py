"""DB Sage's lint must agree with the real squawk CLI on the rules both implement.

Known, deliberate differences are kept out of the corpus (see module docstring of
sage_agent.sqlkit.lint): negative numeric defaults (squawk flags ``DEFAULT -1``),
binary-coercible type changes on tables whose old type is known, and prefer-repack
(opt-in in squawk).
"""
import json
import shutil
import subprocess

import pytest

from sage_agent.sqlkit.lint import RULES, lint_sql

# timeouts: DB Sage skips tables the file created (see test_squawk_conformance.py for both tools)
NOT_COMPARED = {"prefer-repack", "sage-prefer-pg-repack", "require-lock-timeout", "require-statement-timeout"}

CORPUS = {
    "plain.sql": """-- existing tables, no transaction, no timeouts
CREATE TABLE foo (id serial primary key, name varchar(20), c char(3), t timestamp, n int, s smallint);
CREATE INDEX foo_idx ON foo(name);
CREATE INDEX bar_idx ON bar(name);
ALTER TABLE bar ADD COLUMN x int NOT NULL;
ALTER TABLE bar ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES foo(id);
DROP TABLE bar;
DROP INDEX IF EXISTS i1;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS y bigint DEFAULT now();
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z bigint DEFAULT random();
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z3 bigint DEFAULT 1 + 2;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z4 bigint GENERATED ALWAYS AS (a * 2) STORED;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z5 bigint DEFAULT nextval('s');
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z6 text DEFAULT 'a'::text;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z7 bigint DEFAULT lower('x');
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z8 timestamptz DEFAULT current_timestamp;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS z9 bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE bar ALTER COLUMN a TYPE text;
ALTER TABLE bar ALTER COLUMN a TYPE varchar(100);
ALTER TABLE bar ALTER COLUMN a TYPE timestamp;
ALTER TABLE bar ALTER COLUMN a SET NOT NULL;
ALTER TABLE bar ALTER COLUMN a DROP NOT NULL;
ALTER TABLE bar RENAME COLUMN a TO b;
ALTER TABLE bar RENAME TO baz;
ALTER TABLE bar DROP COLUMN IF EXISTS q;
ALTER TABLE bar DROP COLUMN q;
TRUNCATE a, b CASCADE;
DROP DATABASE IF EXISTS d;
ALTER TABLE bar ADD CONSTRAINT c CHECK (a > 0);
ALTER TABLE bar ADD CONSTRAINT c2 CHECK (a > 0) NOT VALID;
ALTER TABLE bar ADD CONSTRAINT u UNIQUE (a);
ALTER TABLE bar ADD CONSTRAINT u2 UNIQUE USING INDEX i;
ALTER TABLE bar ADD PRIMARY KEY (a);
ALTER TABLE bar ADD COLUMN IF NOT EXISTS id bigserial PRIMARY KEY;
ALTER TABLE bar ADD COLUMN IF NOT EXISTS c int8 REFERENCES t2(id);
ALTER TABLE bar ADD COLUMN IF NOT EXISTS d int8 UNIQUE;
CREATE DOMAIN dd AS int CHECK (VALUE > 0);
ALTER DOMAIN dd ADD CONSTRAINT x CHECK (VALUE > 1);
REINDEX INDEX i;
REINDEX INDEX CONCURRENTLY i;
ALTER TABLE p DETACH PARTITION c;
ALTER TABLE p DETACH PARTITION c CONCURRENTLY;
ALTER TYPE e ADD VALUE 'x';
ALTER TYPE e ADD VALUE 'y' AFTER 'x';
CREATE TABLE IF NOT EXISTS aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa (id bigint);
SELECT 1 AS gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS ignored;
""",
    "tx.sql": """SET lock_timeout = '1s';
BEGIN;
CREATE TABLE t1 (id bigint);
CREATE INDEX i ON t1(id);
ALTER TABLE t1 ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES t2(id);
ALTER TABLE t1 ADD CONSTRAINT c CHECK (id > 0);
ALTER TABLE t1 ADD CONSTRAINT uq UNIQUE (id);
CREATE INDEX CONCURRENTLY i2 ON t3(id);
ALTER TABLE t3 ADD CONSTRAINT cc CHECK (x IS NOT NULL) NOT VALID;
COMMIT;
ALTER TABLE t3 VALIDATE CONSTRAINT cc;
ALTER TABLE t3 ALTER COLUMN x SET NOT NULL;
ALTER TABLE t3 ALTER COLUMN y SET NOT NULL;
BEGIN;
ALTER TABLE t4 ADD CONSTRAINT fk4 FOREIGN KEY (a) REFERENCES t5(id) NOT VALID;
ALTER TABLE t4 VALIDATE CONSTRAINT fk4;
DROP TABLE t4;
BEGIN;
COMMIT;
COMMIT;
BEGIN;
""",
    "types.sql": """SET statement_timeout = '5s';
CREATE TABLE IF NOT EXISTS t (a varchar, b varchar(10), c character varying(5), d char, e character(2), g bpchar, h text[], i varchar(3)[]);
CREATE TABLE IF NOT EXISTS t2 (a integer, b int4, c serial4, d int8, e int2, f smallserial, g serial8, h bigserial, i int[], j timestamp(3), k timestamp with time zone, l timestamp without time zone, m time);
CREATE TABLE IF NOT EXISTS t3 (
    id serial,
    n integer,
    created timestamp
);
ALTER TABLE t ALTER COLUMN a TYPE int;
ALTER TABLE t ALTER COLUMN a TYPE char(4);
ALTER TABLE t ADD COLUMN IF NOT EXISTS z smallint;
""",
}


@pytest.mark.skipif(shutil.which("squawk") is None, reason="squawk CLI not installed (pip install squawk-cli)")
def test_findings_agree_with_squawk(tmp_path):
    paths = []
    for name, sql in CORPUS.items():
        (tmp_path / name).write_text(sql)
        paths.append(str(tmp_path / name))
    proc = subprocess.run(["squawk", "--reporter", "json", *paths], capture_output=True, text=True,
                          timeout=60)
    raw = json.loads(proc.stdout)
    assert not [x for x in raw if x["rule_name"] == "syntax-error"], raw
    compared = {r.id for r in RULES} - NOT_COMPARED
    theirs = {(x["file"].rsplit("/", 1)[-1], x["rule_name"], x["line"] + 1)  # squawk lines are 0-based
              for x in raw if x["rule_name"] in compared}
    ours = {(name, f.rule, f.line) for name, sql in CORPUS.items()
            for f in lint_sql(sql, name) if f.rule in compared}
    assert sorted(theirs - ours) == [] and sorted(ours - theirs) == []
    assert len({r for _, r, _ in ours}) >= 25  # the corpus really exercises most shared rules
