"""Risk is declared once per operation (with the inputs that raise one call's risk) and read by every door."""

from __future__ import annotations

import pytest

from sage_agent.frontends.mcp_server import McpSage, tool_annotations
from sage_agent.ops.registry import load_operations
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK

# task id -> (risk with default inputs, {input: the risk that input raises a call to})
DECLARED = {
    "agent-resume": ("read", {}),
    "agent-usage": ("read", {}),
    "create-doc": ("write", {}),
    "create-migration-from-design": ("write", {}),
    "db-analyze-hotpaths": ("read", {}),
    "db-apply-migration": ("write", {"complete": "destructive"}),
    "db-backup": ("read", {}),
    "db-bootstrap": ("write", {}),
    "db-check-locks": ("read", {"cancel": "write", "terminate": "destructive"}),
    "db-compare-schemas": ("read", {}),
    "db-dry-run": ("read", {}),
    "db-env-check": ("read", {}),
    "db-explain": ("read", {}),
    "db-lint": ("read", {}),
    "db-load-csv": ("write", {}),
    "db-migration-new": ("write", {}),
    "db-migrations": ("read", {}),
    "db-monitor-queries": ("read", {}),
    "db-policy-apply": ("write", {}),
    "db-repair": ("write", {}),
    "db-restore": ("destructive", {}),
    "db-rls-audit": ("read", {}),
    "db-rollback": ("destructive", {}),
    "db-run-sql": ("read", {"write": "write"}),
    "db-seed": ("destructive", {}),
    "db-smoke-test": ("read", {}),
    "db-snapshot": ("read", {}),
    "db-test-suite": ("write", {}),
    "db-vacuum-status": ("read", {}),
    "db-watch-report": ("read", {}),
    "domain-modeling": ("write", {}),
    "execute-checklist": ("read", {}),
    "exit": ("read", {}),
    "handoff": ("write", {}),
    "help": ("read", {}),
    "kb": ("read", {}),
    "query-optimization": ("read", {"migration": "write"}),
    "schema-audit": ("read", {}),
    "supabase-setup": ("write", {}),
}


def test_every_operation_declares_its_risk_per_input():
    ops = load_operations()
    assert {k: (op.risk, dict(op.raised_by)) for k, op in ops.items()} == DECLARED
    for task_id, (base, raised) in DECLARED.items():
        op = ops[task_id]
        assert op.risk_for({}) == base
        for key, risk in raised.items():
            assert op.risk_for({key: 12345 if key in ("cancel", "terminate") else True}) == risk, (task_id, key)
            assert op.risk_for({key: None}) == base and op.risk_for({key: False}) == base


@pytest.mark.parametrize("task_id,read_only,destructive", [
    ("db-env-check", True, False), ("db-run-sql", False, False), ("db-check-locks", False, True),
    ("create-doc", False, False), ("db-rollback", False, True), ("query-optimization", False, False),
])
def test_mcp_annotations_come_from_the_declaration(task_id, read_only, destructive):
    assert tool_annotations(load_operations()[task_id]) == {"read_only_hint": read_only,
                                                            "destructive_hint": destructive}


def test_read_only_mcp_refuses_a_raising_input_before_anything_runs(db_url, db, project):
    from sage_agent.db.env import Target

    sage = McpSage(project, Target("local", db_url, "test"), read_only=True)
    assert "run-sql" in sage.tools() and "create-doc" not in sage.tools()
    assert "--write: write, refused" in sage.describe(*sage.tools()["run-sql"])
    is_error, text, doc = sage.call("run-sql", {"sql": "create table sneaky (id int)", "write": True})
    assert is_error and doc == {"error": "read-only"}
    assert text == "run-sql with --write is write: refused, the server runs --read-only. Nothing was done."
    is_error, text, doc = sage.call("locks", {"terminate": 1})
    assert is_error and text.startswith("locks with --terminate is destructive: refused")
    assert db.execute("select to_regclass('public.sneaky')").fetchone()[0] is None
    is_error, text, _ = sage.call("run-sql", {"sql": "select 41 + 1 as n"})
    assert not is_error and "42" in text


def test_production_word_only_for_the_raising_call(make_session, db_url, db):
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    def prod(confirm=()):
        return Session(project=make_session(db_url).project, target=Target("prod", db_url, "test"),
                       answers=FlagAnswers(yes=True, confirm_words=confirm))

    assert prod().run_line('*run-sql "select 1"').exit_code == EXIT_OK  # looking needs no PRODUCTION word
    out = prod().run_line('*run-sql "create table t_prod (id int)" --write')
    assert out.exit_code == EXIT_CONFIRM and "PRODUCTION" in out.error
    assert db.execute("select to_regclass('public.t_prod')").fetchone()[0] is None
    assert prod(("PRODUCTION",)).run_line('*run-sql "create table t_prod (id int)" --write').exit_code == EXIT_OK
    assert db.execute("select to_regclass('public.t_prod')").fetchone()[0] is not None
