"""Ctrl-C during execution cancels the statement on the server and leaves the database as it was."""

import os
import signal
import threading
import time

from pydantic import BaseModel

from sage_agent.ops.registry import Operation
from sage_agent.ops.result import OpResult
from sage_agent.session.machine import EXIT_INTERRUPTED


class SlowInput(BaseModel):
    name: str


def slow_op(inputs: SlowInput, ctx) -> OpResult:
    from psycopg import sql

    with ctx.connect() as conn:
        with conn.transaction():
            conn.execute(sql.SQL("create table {} (id int)").format(sql.Identifier(inputs.name)))
            conn.execute("select pg_sleep(60)")
    return OpResult(operation="slow", summary="done")


def test_ctrl_c_cancels_on_the_server_and_rolls_back(make_session, db_url, db, monkeypatch, tmp_path):
    from sage_agent.ops import registry
    from tests.test_session import demo_task

    task = demo_task(tmp_path)  # any task with a required `name`
    with registry.registered(Operation("demo-drop", slow_op, SlowInput, "read")):
        session = make_session(db_url)

        def interrupt_when_sleeping() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = db.execute("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' "
                                 "and state = 'active'").fetchone()
                if row[0]:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=interrupt_when_sleeping)
        watcher.start()
        outcome = session.run_task(task, {"name": "half_done"})
        watcher.join()
        assert outcome.exit_code == EXIT_INTERRUPTED
        # psycopg cancelled the statement, the with-block rolled back: the person is told so (it said "interrupted")
        assert outcome.error == ("interrupted: the running statement was cancelled on the server and its "
                                 "transaction rolled back")
        assert db.execute("select to_regclass('public.half_done')").fetchone()[0] is None
        busy = db.execute("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' "
                          "and state = 'active'").fetchone()[0]
        assert busy == 0


def test_ctrl_c_of_a_headless_json_run_is_cancelled_not_failed(db_url, db, project):
    """`sage run "*run-sql select pg_sleep(60)" --json` and Ctrl-C: exit code 130, but the document said
    `"status": "failed"`, which a script reads as an operation that went wrong. It is `cancelled` (the schema's)."""
    import json
    import subprocess
    import sys

    from conftest import sage_env

    proc = subprocess.Popen([sys.executable, "-m", "sage_agent", "run", "*run-sql select pg_sleep(60)", "--json",
                             "--db-url", db_url], cwd=project, env=sage_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not db.execute(
                "select count(*) from pg_stat_activity where query like '%%select pg_sleep(60)%%'"
                " and state = 'active' and pid <> pg_backend_pid()").fetchone()[0]:  # inside *run-sql's DECLARE
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    doc = json.loads(out)
    assert doc["status"] == "cancelled" and doc["exit_code"] == 130
    assert doc["error"] == ("interrupted: the running statement was cancelled on the server and its transaction "
                            "rolled back")
