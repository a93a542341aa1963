"""The shipped CI entry points: action.yml's script and .pre-commit-hooks.yaml run the real `sage lint`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, sage_env


def _sage_on_path(tmp_path: Path) -> dict[str, str]:
    """A `sage` executable that runs this checkout (as `pip install` would put it on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sage"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m sage_agent \"$@\"\n")
    shim.chmod(0o755)
    env = sage_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _action_script() -> tuple[dict, str]:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "sage lint")
    assert step["shell"] == "bash"
    assert "${{" not in step["run"]  # inputs reach the script as environment variables only
    return action, step["run"]


def test_action_runs_sage_lint_with_github_annotations(tmp_path, project):
    action, script = _action_script()
    assert action["inputs"]["reporter"]["default"] == "github"
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_a.sql").write_text("alter table public.t add column x int not null;\n")
    env = _sage_on_path(tmp_path)
    base = {"SAGE_LINT_PATHS": "", "SAGE_LINT_REPORTER": "github", "SAGE_LINT_FAIL_ON": "error",
            "SAGE_LINT_PG_VERSION": "", "SAGE_LINT_ARGS": ""}
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=project, env={**env, **base},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "::error file=supabase/migrations/20240101000000_a.sql,line=1,col=33,title=adding-required-field::" \
        in proc.stdout
    quiet = {**base, "SAGE_LINT_ARGS": "--exclude adding-required-field", "SAGE_LINT_PATHS": "supabase/migrations",
             "SAGE_LINT_PG_VERSION": "15"}
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=project, env={**env, **quiet},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "::warning file=supabase/migrations/20240101000000_a.sql" in proc.stdout
    assert "adding-required-field" not in proc.stdout


def test_pre_commit_hook_entry_lints_the_files_it_is_given(tmp_path, project):
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "sage-lint")
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    assert hook["files"] == r"\.sql$"
    (project / "ok.sql").write_text("select 1;\n")
    (project / "bad.sql").write_text("alter table public.t add column x int not null;\n")
    env = _sage_on_path(tmp_path)
    run = lambda *files: subprocess.run([*hook["entry"].split(), *files], cwd=project, env=env,  # noqa: E731
                                        capture_output=True, text=True, timeout=120)
    assert run("ok.sql").returncode == 0
    bad = run("ok.sql", "bad.sql")
    assert bad.returncode == 1 and "bad.sql:1:33: error adding-required-field" in bad.stdout
