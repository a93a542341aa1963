"""Every lint rule: at least one positive and one negative case, plus exemptions."""
import pytest

from sage_agent.sqlkit.lint import ALL_RULES, RULES_BY_ID, LintFinding, lint_sql, select_rules

# rule id -> (SQL that must trigger it, SQL that must not)
CASES = {
    "require-concurrent-index-creation": ("CREATE INDEX i ON t (a);",
                                          "CREATE INDEX CONCURRENTLY i ON t (a);"),
    "require-concurrent-index-deletion": ("DROP INDEX i;", "DROP INDEX CONCURRENTLY i;"),
    "constraint-missing-not-valid": ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
                                     "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;"),
    "adding-field-with-default": ("ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid();",
                                  "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now();"),
    "adding-foreign-key-constraint": (
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id);",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID;"),
    "changing-column-type": ("ALTER TABLE t ALTER COLUMN a TYPE bigint;",
                             "CREATE TABLE t (a varchar(10));\nALTER TABLE t ALTER COLUMN a TYPE text;"),
    "adding-not-nullable-field": ("ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
                                  "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID;\n"
                                  "ALTER TABLE t VALIDATE CONSTRAINT c;\n"
                                  "ALTER TABLE t ALTER COLUMN a SET NOT NULL;"),
    "adding-serial-primary-key-field": ("ALTER TABLE t ADD PRIMARY KEY (id);",
                                        "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX i;"),
    "disallowed-unique-constraint": ("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);",
                                     "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i;"),
    "renaming-column": ("ALTER TABLE t RENAME COLUMN a TO b;", "ALTER TABLE t ADD COLUMN b text;"),
    "renaming-table": ("ALTER TABLE t RENAME TO u;", "ALTER INDEX i RENAME TO j;"),
    "ban-drop-database": ("DROP DATABASE d;", "CREATE DATABASE d;"),
    "ban-drop-table": ("DROP TABLE t;", "DROP VIEW v;"),
    "ban-drop-column": ("ALTER TABLE t DROP COLUMN c;", "ALTER TABLE t DROP CONSTRAINT c;"),
    "ban-drop-not-null": ("ALTER TABLE t ALTER COLUMN a DROP NOT NULL;",
                          "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    "ban-truncate-cascade": ("TRUNCATE t CASCADE;", "TRUNCATE t;"),
    "adding-required-field": ("ALTER TABLE t ADD COLUMN c text NOT NULL;",
                              "ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT '';"),
    "ban-concurrent-index-creation-in-transaction": (
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    "prefer-robust-stmts": ("CREATE TABLE t (id bigint);", "CREATE TABLE IF NOT EXISTS t (id bigint);"),
    "prefer-bigint-over-int": ("CREATE TABLE t (id integer);", "CREATE TABLE t (id bigint);"),
    "prefer-bigint-over-smallint": ("CREATE TABLE t (id smallint);", "CREATE TABLE t (id int8);"),
    "prefer-identity": ("CREATE TABLE t (id bigserial);",
                        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY);"),
    "prefer-text-field": ("CREATE TABLE t (a varchar(20));", "CREATE TABLE t (a text);"),
    "prefer-timestamp-tz": ("CREATE TABLE t (a timestamp);", "CREATE TABLE t (a timestamptz);"),
    "ban-char-field": ("CREATE TABLE t (a char(3));", "CREATE TABLE t (a varchar);"),
    "require-lock-timeout": ("ALTER TABLE t ADD COLUMN c text;",
                             "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN c text;"),
    "require-statement-timeout": ("ALTER TABLE t ADD COLUMN c text;",
                                  "SET statement_timeout = '5s';\nALTER TABLE t ADD COLUMN c text;"),
    "transaction-nesting": ("BEGIN;\nBEGIN;\nCOMMIT;", "BEGIN;\nSELECT 1;\nCOMMIT;"),
    "ban-uncommitted-transaction": ("BEGIN;\nSELECT 1;", "BEGIN;\nSELECT 1;\nROLLBACK;"),
    "require-enum-value-ordering": ("ALTER TYPE e ADD VALUE 'x';", "ALTER TYPE e ADD VALUE 'x' AFTER 'w';"),
    "ban-create-domain-with-constraint": ("CREATE DOMAIN d AS int CHECK (VALUE > 0);",
                                          "CREATE DOMAIN d AS int;"),
    "ban-alter-domain-with-add-constraint": ("ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0);",
                                             "ALTER DOMAIN d DROP CONSTRAINT c;"),
    "identifier-too-long": ("CREATE TABLE " + "x" * 64 + " (a text);", "CREATE TABLE " + "x" * 63 + " (a text);"),
    "require-concurrent-reindex": ("REINDEX TABLE t;", "REINDEX TABLE CONCURRENTLY t;"),
    "require-concurrent-partition-detach": ("ALTER TABLE p DETACH PARTITION c;",
                                            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;"),
    "prefer-repack": ("VACUUM FULL t;", "VACUUM t;"),
    "sage-prefer-pg-repack": ("CLUSTER t USING t_pkey;", "VACUUM (FULL false) t;"),
    "ban-duplicate-column-assignments": ("UPDATE t SET a = 1, a = 2;", "UPDATE t SET a = 1, b = 2;"),
    "unused-ignore": ("-- squawk-ignore no-such-rule\nSELECT 1;", "-- squawk-ignore ban-drop-table\nSELECT 1;"),
    "ban-alter-identity": ("ALTER TABLE t ALTER COLUMN id DROP IDENTITY;",
                           "ALTER TABLE t ALTER COLUMN id SET GENERATED BY DEFAULT;"),
    "ban-drop-constraint": ("ALTER TABLE t DROP CONSTRAINT c;", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;"),
    "ban-drop-default": ("ALTER TABLE t ALTER COLUMN a DROP DEFAULT;", "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1;"),
    "ban-drop-domain": ("DROP DOMAIN d;", "CREATE DOMAIN d AS int;"),
    "ban-drop-extension": ("DROP EXTENSION pgcrypto;", "CREATE EXTENSION IF NOT EXISTS pgcrypto;"),
    "ban-drop-function": ("DROP FUNCTION f(int);", "DROP TRIGGER tr ON t;"),
    "ban-drop-generated-expression": ("ALTER TABLE t ALTER COLUMN a DROP EXPRESSION;",
                                      "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    "ban-drop-schema": ("DROP SCHEMA s CASCADE;", "CREATE SCHEMA s;"),
    "ban-drop-sequence": ("DROP SEQUENCE s;", "CREATE SEQUENCE s;"),
    "ban-drop-type": ("DROP TYPE mood;", "CREATE TYPE mood AS ENUM ('a');"),
    "ban-drop-view": ("DROP MATERIALIZED VIEW mv;", "DROP TABLE t;"),
    "ban-set-schema": ("ALTER TABLE t SET SCHEMA archive;", "ALTER TABLE t SET (fillfactor = 70);"),
    "renaming-object": ("ALTER INDEX i RENAME TO j;", "ALTER TABLE t RENAME TO u;"),
    # opt-in rules (run with --include)
    "require-table-schema": ("CREATE TABLE t (id bigint);", "CREATE TABLE public.t (id bigint);"),
    "ban-add-column": ("ALTER TABLE t ADD COLUMN c text;", "ALTER TYPE ct ADD ATTRIBUTE c text;"),
    "ban-add-composite-attribute": ("ALTER TYPE ct ADD ATTRIBUTE c text;", "ALTER TABLE t ADD COLUMN c text;"),
    "ban-add-enum-value": ("ALTER TYPE e ADD VALUE 'x' AFTER 'w';", "ALTER TYPE e RENAME VALUE 'w' TO 'x';"),
    "ban-alter-database-options": ("ALTER DATABASE d SET work_mem = '64MB';", "SELECT 1;"),
    "ban-alter-extension": ("ALTER EXTENSION e UPDATE;", "ALTER EXTENSION e ADD FUNCTION f();"),
    "ban-alter-function-options": ("ALTER FUNCTION f() SECURITY DEFINER;", "ALTER FUNCTION f() RENAME TO g;"),
    "ban-alter-generated-expression": ("ALTER TABLE t ALTER COLUMN a SET EXPRESSION AS (b * 2);",
                                       "ALTER TABLE t ALTER COLUMN a DROP EXPRESSION;"),
    "ban-alter-policy-condition": ("ALTER POLICY p ON t USING (true);", "ALTER POLICY p ON t TO r;"),
    "ban-alter-policy-roles": ("ALTER POLICY p ON t TO r;", "ALTER POLICY p ON t USING (true);"),
    "ban-alter-role-options": ("ALTER ROLE r NOLOGIN;", "CREATE ROLE r;"),
    "ban-alter-row-level-security": ("ALTER TABLE t ENABLE ROW LEVEL SECURITY;", "ALTER TABLE t OWNER TO r;"),
    "ban-alter-sequence-values": ("ALTER SEQUENCE s INCREMENT BY 2;", "ALTER SEQUENCE s OWNED BY t.id;"),
    "ban-alter-system-options": ("ALTER SYSTEM SET work_mem = '64MB';", "SET work_mem = '64MB';"),
    "ban-alter-view-options": ("ALTER VIEW v SET (security_barrier);", "ALTER TABLE t SET (fillfactor = 70);"),
    "ban-create-policy": ("CREATE POLICY p ON t USING (true);", "DROP POLICY p ON t;"),
    "ban-detach-inheritance": ("ALTER TABLE t NO INHERIT p;", "ALTER TABLE t INHERIT p;"),
    "ban-disable-trigger": ("ALTER TABLE t DISABLE TRIGGER tr;", "ALTER TABLE t ADD COLUMN c text;"),
    "ban-drop-index": ("DROP INDEX CONCURRENTLY i;", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    "ban-drop-policy": ("DROP POLICY p ON t;", "CREATE POLICY p ON t USING (true);"),
    "ban-new-write-restriction": ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
                                  "ALTER TABLE t ADD COLUMN c text;"),
    "ban-replace-view-function": ("CREATE OR REPLACE VIEW v AS SELECT 1;", "CREATE VIEW v AS SELECT 1;"),
    "ban-replica-identity": ("ALTER TABLE t REPLICA IDENTITY FULL;", "ALTER TABLE t ADD COLUMN c text;"),
    "ban-revoke": ("REVOKE SELECT ON t FROM r;", "GRANT SELECT ON t TO r;"),
    "ban-set-default": ("ALTER TABLE t ALTER COLUMN a SET DEFAULT 1;", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
}
OPTIONS = {"prefer-repack": {"server_major": 19}}


def rules_hit(sql, **kw):
    return [f.rule for f in lint_sql(sql, **kw)]


def test_every_rule_has_cases():
    assert set(CASES) == {r.id for r in ALL_RULES}
    for r in ALL_RULES:
        assert r.severity in ("error", "warning", "info") and r.summary and r.safe_alternative


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_positive(rule_id):
    assert rule_id in rules_hit(CASES[rule_id][0], rules=select_rules(include=[rule_id]), **OPTIONS.get(rule_id, {}))


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_negative(rule_id):
    assert rule_id not in rules_hit(CASES[rule_id][1], rules=select_rules(include=[rule_id]),
                                    **OPTIONS.get(rule_id, {}))


@pytest.mark.parametrize("rule_id", sorted(r.id for r in ALL_RULES if r.opt_in))
def test_opt_in_rules_are_off_by_default(rule_id):
    assert rule_id not in rules_hit(CASES[rule_id][0])


# ---- exemptions -----------------------------------------------------------------

NEW_TABLE = "BEGIN;\nCREATE TABLE t (id bigint, a text, u bigint);\n{}\nCOMMIT;"


@pytest.mark.parametrize("rule_id,sql", [
    ("require-concurrent-index-creation", "CREATE INDEX i ON t (a);"),
    ("constraint-missing-not-valid", "ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);"),
    ("adding-foreign-key-constraint", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id);"),
    ("disallowed-unique-constraint", "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (a);"),
])
def test_table_created_in_same_transaction_is_exempt(rule_id, sql):
    assert rule_id not in rules_hit(NEW_TABLE.format(sql))
    assert rule_id in rules_hit(sql)  # the same statement on an existing table is flagged


def test_assume_in_transaction_exempts_new_tables():
    sql = "CREATE TABLE t (a text);\nCREATE INDEX i ON t (a);"
    assert "require-concurrent-index-creation" in rules_hit(sql)
    assert "require-concurrent-index-creation" not in rules_hit(sql, assume_in_transaction=True)


def test_not_valid_then_validate_in_same_transaction():
    sql = ("BEGIN;\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
           "ALTER TABLE t VALIDATE CONSTRAINT c;\nCOMMIT;")
    found = [f for f in lint_sql(sql) if f.rule == "constraint-missing-not-valid"]
    assert [f.line for f in found] == [3]


def test_adding_field_with_default_versions_and_kinds():
    assert "adding-field-with-default" in rules_hit("ALTER TABLE t ADD COLUMN c int DEFAULT 0;", server_major=10)
    assert "adding-field-with-default" not in rules_hit("ALTER TABLE t ADD COLUMN c int DEFAULT 0;")
    assert "adding-field-with-default" in rules_hit(
        "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED;")
    assert "adding-field-with-default" in rules_hit("ALTER TABLE t ADD COLUMN c float DEFAULT random();")
    assert "adding-field-with-default" not in rules_hit("ALTER TABLE t ADD COLUMN c jsonb DEFAULT '{}'::jsonb;")


def test_changing_column_type_binary_coercible_rules():
    base = "CREATE TABLE t (a varchar(10));\nALTER TABLE t ALTER COLUMN a TYPE {};"
    assert "changing-column-type" not in rules_hit(base.format("varchar(20)"))
    assert "changing-column-type" in rules_hit(base.format("varchar(5)"))
    assert "changing-column-type" in rules_hit(base.format("integer USING a::integer"))


def test_set_not_null_before_pg12_always_flagged():
    sql = CASES["adding-not-nullable-field"][1]
    assert "adding-not-nullable-field" in rules_hit(sql, server_major=11)


def test_lock_timeout_reported_once_per_file():
    sql = "ALTER TABLE t ADD COLUMN c text;\nALTER TABLE t ADD COLUMN d text;"
    assert rules_hit(sql).count("require-lock-timeout") == 1


# ---- suppression ------------------------------------------------------------------

def test_squawk_ignore_comment_before_statement():
    sql = "-- squawk-ignore ban-drop-table, prefer-robust-stmts\nDROP TABLE t;\nDROP TABLE u;"
    found = [(f.rule, f.line) for f in lint_sql(sql)]
    assert ("ban-drop-table", 2) not in found and ("ban-drop-table", 3) in found
    assert ("prefer-robust-stmts", 2) not in found


def test_squawk_ignore_trailing_and_alias():
    sql = "CREATE TABLE IF NOT EXISTS t (a timestamp); -- squawk-ignore prefer-timestamptz"
    assert "prefer-timestamp-tz" not in rules_hit(sql)


def test_squawk_ignore_file():
    sql = "-- squawk-ignore-file ban-drop-table\n\nSELECT 1;\n\nDROP TABLE t;"
    hits = rules_hit(sql)
    assert "ban-drop-table" not in hits and "require-lock-timeout" in hits


# ---- finding facts ------------------------------------------------------------------

def test_finding_lock_facts_strictest_wins():
    sql = ("ALTER TABLE app.t VALIDATE CONSTRAINT c,\n"
           "  ADD COLUMN IF NOT EXISTS x uuid DEFAULT gen_random_uuid();")
    (f,) = [f for f in lint_sql(sql) if f.rule == "adding-field-with-default"]
    assert isinstance(f, LintFinding)
    assert (f.lock, f.rewrites, f.scans, f.blocks, f.table) == (
        "ACCESS EXCLUSIVE", True, True, "reads and writes", "app.t")
    assert f.line == 2 and f.statement_line == 1 and f.severity == "error" and f.safe_alternative


def test_finding_lock_for_index_and_fk():
    (f,) = [f for f in lint_sql(CASES["require-concurrent-index-creation"][0])
            if f.rule == "require-concurrent-index-creation"]
    assert (f.lock, f.blocks, f.table) == ("SHARE", "writes", "public.t")
    (f,) = [f for f in lint_sql(CASES["adding-foreign-key-constraint"][0])
            if f.rule == "adding-foreign-key-constraint"]
    assert (f.lock, f.scans) == ("SHARE ROW EXCLUSIVE", True)


def test_column_level_line_numbers():
    sql = "CREATE TABLE IF NOT EXISTS t (\n  id bigint,\n  n integer,\n  s smallint\n);"
    found = {(f.rule, f.line) for f in lint_sql(sql)}
    assert ("prefer-bigint-over-int", 3) in found and ("prefer-bigint-over-smallint", 4) in found


def test_rules_by_id():
    assert RULES_BY_ID["ban-drop-table"].severity == "error"
    assert RULES_BY_ID["prefer-identity"].severity == "info"


def test_lint_statements_and_copy_file():
    from sage_agent.sqlkit.lint import lint_statements
    from sage_agent.sqlkit.split import split_sql

    sql = "COPY t (a) FROM stdin;\nx'--\n\\.\nDROP TABLE t;"
    found = lint_statements(split_sql(sql), "f.sql")
    assert [(f.rule, f.line, f.filename) for f in found if f.rule == "ban-drop-table"] == [
        ("ban-drop-table", 4, "f.sql")]
    assert lint_sql("") == []
