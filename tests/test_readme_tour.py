"""The README's five-minute tour, run exactly as written (headless), so it never goes stale.

The ```bash block of the "Five-minute tour" section of README.md (docs/tour.md until the README has it):
every `sage ...` line runs in a fresh project folder on that project's own embedded server.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import REPO, sage_env

TOUR_HEADING = re.compile(r"^#+\s*Five-minute tour\s*$", re.I | re.M)


def tour_commands() -> tuple[Path, list[str]]:
    for source in (REPO / "README.md", REPO / "docs" / "tour.md"):
        if not source.exists():
            continue
        text = source.read_text(encoding="utf-8")
        heading = TOUR_HEADING.search(text)
        if not heading:
            continue
        block = re.search(r"```bash\n(.*?)```", text[heading.end():], re.S)
        assert block, f"{source}: the tour has no ```bash block"
        lines = [line.strip() for line in block.group(1).splitlines()]
        return source, [line for line in lines if line.startswith("sage ")]
    raise AssertionError("no 'Five-minute tour' section in README.md or docs/tour.md")


def test_tour_covers_the_lifecycle():
    _, commands = tour_commands()
    text = "\n".join(commands)
    for command in ("*bootstrap", "*migration-new", "*dry-run", "*apply", "*smoke-test", "*snapshot", "*rollback"):
        assert command in text, f"the tour should show {command}"
    assert commands[-1] == "sage db stop"


def test_readme_tour_runs_as_written(tmp_path):
    source, commands = tour_commands()
    project = tmp_path / "my-app"
    project.mkdir()
    env = sage_env({"SAGE_SHADOW_URL": ""})  # everything on the project's own embedded server
    env.pop("SUPABASE_CLI", None)
    def sage(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sage_agent", *argv], cwd=project, env=env,
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)

    outputs: dict[str, str] = {}
    try:
        for line in commands:
            if line == "sage db stop":  # before stopping: the rows the tour added are all still there
                proc = sage(["run", "*run-sql 'select count(*) as n from public.todos'", "--json"])
                assert proc.returncode == 0, proc.stdout + proc.stderr
                assert json.loads(proc.stdout)["tables"][0]["rows"] == [[3]], proc.stdout
                # what the README says of a second *rollback v1: nothing to do, no typed word asked
                proc = sage(["run", "*rollback v1"])
                assert proc.returncode == 0, proc.stdout + proc.stderr
                assert proc.stdout.startswith("✔ Already at v1: "), proc.stdout
            proc = sage(shlex.split(line)[1:])
            assert proc.returncode == 0, f"{source.name}: `{line}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            outputs[line] = proc.stdout
    finally:
        subprocess.run([sys.executable, "-m", "sage_agent", "db", "stop"], cwd=project, env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    migrations = sorted(p.name for p in (project / "supabase" / "migrations").glob("*.sql"))
    assert [m.split("_", 1)[1] for m in migrations] == ["add_todos.sql", "add_tags.sql"]
    assert (project / "supabase" / "snapshots" / "v1.sql").exists()
    assert list((project / "supabase" / "tests").glob("dry-run-*_add_todos.md"))
    log = (project / "supabase" / ".sage" / "migration-log.jsonl").read_text().splitlines()
    assert len(log) == 2
    # the tour's rollback undoes one added column: every row stays, none is reported lost
    rollback = next(out for line, out in outputs.items() if "*rollback v1" in line)
    assert "3 rows kept, 0 rows lost" in rollback, rollback
    readme = source.read_text(encoding="utf-8")
    assert "`3 rows kept, 0 rows lost`" in readme and "`*rollback v1` again says `Already at v1`" in readme
    # one table, one migration, one foreign key: counted in words that agree ("1 tables: public.todos" did not)
    smoke = outputs['sage run "*smoke-test v1.0"']
    for said in ("1 table: public.todos", "1 migration applied, latest", "the public table has RLS and policies",
                 "1 foreign key, all validated"):
        assert said in smoke, smoke
    assert "1 tables" not in smoke and "1 migrations" not in smoke and "all 1 " not in smoke
    assert re.search(r"Snapshot v1 created \(schema-only, 1 table, [0-9.]+ kB\)", outputs['sage run "*snapshot v1"'])
    # the second *apply suggests the next smoke test, not the v1.0 the tour already ran
    second_apply = outputs['sage run "*apply" --yes']  # the same line twice: the later output is kept
    assert "*smoke-test v1.1" in second_apply and "*smoke-test v1.0" not in second_apply, second_apply
