"""Many files (ops/lint/runner.py): spread over forked workers, except in a process that already runs threads
(`*lint` inside `sage mcp` or the REPL), where a fork could copy a lock another thread holds and hang the worker.
Either way the findings are the same."""
from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from sage_agent.ops.lint import runner
from sage_agent.sqlkit.lint import RULES

MIGRATION = """\
alter table public.t{i} add column c{i} int not null;
create index t{i}_idx on public.t{i} (c{i});
create table "{long}" (id int);
"""


def _files(tmp_path: Path, count: int = 12) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"{20240101000000 + i}_m{i}.sql"
        path.write_text(MIGRATION.format(i=i, long="x" * (60 + i)), encoding="utf-8")
        paths.append(path)
    (tmp_path / "20240101000099_bad.sql").write_text("select 1;\nalter tabel t;\n", encoding="utf-8")
    return [*paths, tmp_path / "20240101000099_bad.sql"]


def _findings(run) -> list[dict]:
    return [f.model_dump() for f in run.findings]


def _counting_forks(monkeypatch) -> list[str]:
    asked: list[str] = []
    real = multiprocessing.get_context

    def get_context(method=None):
        asked.append(method)
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", get_context)
    return asked


def test_many_files_use_a_worker_pool_without_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGE_LINT_JOBS", "2")
    paths = _files(tmp_path)
    asked = _counting_forks(monkeypatch)
    pooled = runner.lint_paths(paths, RULES, 18, False)
    assert asked == ["fork"]
    monkeypatch.setenv("SAGE_LINT_JOBS", "1")
    alone = runner.lint_paths(paths, RULES, 18, False)
    assert _findings(pooled) == _findings(alone)
    rules = {f["rule"] for f in _findings(pooled)}
    assert {"adding-required-field", "require-concurrent-index-creation", "identifier-too-long",
            "syntax-error"} <= rules
    assert [r.path for r in pooled.files] == paths


def test_a_threaded_process_lints_many_files_without_forking(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGE_LINT_JOBS", "2")
    paths = _files(tmp_path)
    expected = _findings(runner.lint_paths(paths, RULES, 18, False))
    asked = _counting_forks(monkeypatch)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        threaded = runner.lint_paths(paths, RULES, 18, False)
    finally:
        stop.set()
        worker.join()
    assert asked == []
    assert _findings(threaded) == expected


def test_busy_cores_mean_fewer_processes_unless_asked(monkeypatch):
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("SAGE_LINT_JOBS", "0")
    # the 1-minute load average trails: right after other work it says busy although nothing runs now
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (3.9, 3.0, 2.0))
    monkeypatch.setattr(runner, "_running_elsewhere", lambda: 0)
    assert runner._cores() == 4 and runner._jobs(200) == 4
    monkeypatch.setattr(runner, "_running_elsewhere", lambda: 3)
    assert runner._cores() == 1
    assert runner._jobs(200) == 1
    monkeypatch.setattr(runner, "_running_elsewhere", lambda: 9)
    assert runner._cores() == 1
    monkeypatch.setattr(runner, "_running_elsewhere", lambda: None)  # no instant count: the load average
    assert runner._cores() == 1
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert runner._cores() == 4
    monkeypatch.setenv("SAGE_LINT_JOBS", "2")  # asked for: the load does not matter
    monkeypatch.setattr(runner, "_running_elsewhere", lambda: 9)
    assert runner._cores() == 2 and runner._jobs(200) == 2


def _spin(ready) -> None:
    ready.send(1)
    while True:
        pass


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="the instant count of running tasks is Linux's")
def test_processes_computing_right_now_are_counted(monkeypatch):
    """Two processes that compute are counted in every read of the real /proc/loadavg, so on two cores a
    run takes one process; the count is an instant, not the 1-minute average."""
    context = multiprocessing.get_context("fork")
    children = []
    try:
        for _ in range(2):
            ours, theirs = context.Pipe()
            child = context.Process(target=_spin, args=(theirs,), daemon=True)
            child.start()
            ours.recv()
            children.append(child)
        assert runner._running_elsewhere() >= 2
        monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        monkeypatch.setenv("SAGE_LINT_JOBS", "0")
        assert runner._cores() == 1
    finally:
        for child in children:
            child.kill()
            child.join()
