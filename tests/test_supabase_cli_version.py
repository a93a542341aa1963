"""The Supabase CLI's version is asked once per installed binary: `supabase --version` costs about 2 s of CPU
(several seconds on a busy machine), which every *env-check, *bootstrap and *migration-new used to pay."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sage_agent.db.supabase_cli import find_cli


def fake_cli(path: Path, version: str) -> Path:
    """A stand-in program that answers `--version` and counts how often it was asked."""
    path.write_text(f"#!/bin/sh\necho x >> '{path}.calls'\necho '{version}'\n")
    path.chmod(0o755)
    return path


def calls(path: Path) -> int:
    log = Path(f"{path}.calls")
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_version_is_asked_once_then_again_when_the_binary_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cli = fake_cli(tmp_path / "supabase", "3.1.0")
    monkeypatch.setenv("SUPABASE_CLI", str(cli))
    assert find_cli(tmp_path).version == "3.1.0"
    assert find_cli(tmp_path).version == "3.1.0"
    assert calls(cli) == 1
    fake_cli(cli, "3.2.10")  # an upgrade in place: same path, new content
    assert find_cli(tmp_path).version == "3.2.10" and calls(cli) == 2
    assert find_cli(tmp_path).version == "3.2.10" and calls(cli) == 2
    doc = json.loads((tmp_path / "cache" / "db-sage" / "supabase-cli.json").read_text())
    assert list(doc.values()) == ["3.1.0", "3.2.10"]


def test_a_cache_that_cannot_be_read_or_written_only_costs_the_call(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    cli = fake_cli(tmp_path / "supabase", "3.1.0")
    monkeypatch.setenv("SUPABASE_CLI", str(cli))
    assert find_cli(tmp_path).version == "3.1.0" and find_cli(tmp_path).version == "3.1.0"
    assert calls(cli) == 2
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "db-sage").mkdir(parents=True)
    (tmp_path / "cache" / "db-sage" / "supabase-cli.json").write_text("{not json")
    assert find_cli(tmp_path).version == "3.1.0" and calls(cli) == 3
    assert find_cli(tmp_path).version == "3.1.0" and calls(cli) == 3  # rewritten whole


def test_a_failing_cli_is_not_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    broken = tmp_path / "supabase"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("SUPABASE_CLI", str(broken))
    monkeypatch.setattr("sage_agent.db.supabase_cli.Path.resolve", lambda self: Path("/nonexistent/x/y/z"))
    assert find_cli(tmp_path) is None
    fake_cli(broken, "3.1.0")
    assert find_cli(tmp_path).version == "3.1.0"


def test_env_check_shows_the_remembered_version(run_sage, project, db_url, tmp_path):
    cli = fake_cli(tmp_path / "supabase", "3.1.0")
    env = {"SUPABASE_CLI": str(cli), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for _ in range(2):
        proc = run_sage("run", "*env-check", "--db-url", db_url, "--json", cwd=project, env=env)
        assert json.loads(proc.stdout)["facts"]["supabase_cli"] == "3.1.0", proc.stderr
    assert calls(cli) == 1
    assert os.access(tmp_path / "cache" / "db-sage" / "supabase-cli.json", os.R_OK)
