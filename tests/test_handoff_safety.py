"""Handoff files are input from other agents: every path they name, their size, links and the files DB Sage
writes back are checked before anything runs (`sage handoff receive` through the real CLI, real PostgreSQL)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

REQUEST = "*bootstrap --use-cli=no"  # would create supabase/ if it ran


def put(folder: Path, name: str, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(res, cause: str, next_words: str) -> None:
    """Exit 2, the cause, a next step on a line of its own, no Python traceback."""
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert cause in res.stderr, res.stderr
    nexts = [line for line in res.stderr.splitlines() if line.startswith("  next: ")]
    assert len(nexts) == 1, res.stderr
    assert next_words in nexts[0], nexts
    assert "Traceback" not in out


# (id, fields of the handoff besides from/to/request, cause shown, words of the next step)
PATH_CASES = [
    ("from-dotdot", {"from": "@../x"}, "'from' is '@../x': an agent is named like @dev", "fix 'from'"),
    ("from-slash", {"from": "@dev/../../evil"}, "'from' is '@dev/../../evil'", "fix 'from'"),
    ("to-dotdot", {"to": "@../db-sage"}, "'to' is '@../db-sage'", "fix 'to'"),
    ("story-path-dotdot", {"story": {"id": "1.2", "path": "../../stories/1.2.md"}},
     "story.path '../../stories/1.2.md' is a path out of the project (..): refused", "copy the file into the project"),
    ("artifact-dotdot", {"artifacts": ["docs/../../outside.txt"]},
     "artifacts 'docs/../../outside.txt' is a path out of the project (..): refused", "copy the file into the project"),
    ("artifact-absolute", {"artifacts": ["OUTSIDE"]}, "is an absolute path: refused", "copy the file into the project"),
    ("artifact-link-out", {"artifacts": ["docs/link.txt"]},
     "artifacts 'docs/link.txt' is a link that points outside the project: refused", "copy the file into the project"),
    ("checksum-dotdot", {"checksums": {"../outside.txt": "sha256:00"}},
     "checksums '../outside.txt' is a path out of the project (..): refused", "copy the file into the project"),
]


@pytest.mark.parametrize("fields, cause, next_words", [c[1:] for c in PATH_CASES], ids=[c[0] for c in PATH_CASES])
def test_path_fields_are_refused_before_anything_runs(db_url, project, run_sage, fields, cause, next_words):
    outside = project.parent / "outside.txt"
    outside.write_text("not the project's\n")
    (project / "docs").mkdir()
    (project / "docs/link.txt").symlink_to(outside)
    fields = {k: ([str(outside)] if v == ["OUTSIDE"] else v) for k, v in fields.items()}
    doc = {"from": "@architect", "to": "@db-sage", "request": REQUEST, **fields}
    path = put(project / ".aios/handoffs", "001.yaml", doc)
    before = files_under(project.parent)
    res = run_sage("handoff", "receive", ".aios/handoffs/001.yaml", "--yes", "--db-url", db_url, cwd=project)
    refused(res, cause, next_words)
    assert ".aios/handoffs/001.yaml" in res.stderr
    assert not (project / "supabase").exists()  # the request did not run
    assert files_under(project.parent) == before  # nothing written: not consumed, no reply, outside untouched
    listed = run_sage("handoff", "list", "--json", cwd=project)
    assert [(r["status"], cause in r["request"]) for r in json.loads(listed.stdout)] == [("invalid", True)]
    assert path.read_text() == yaml.safe_dump(doc, sort_keys=False)


def test_a_handoff_inside_the_project_still_runs(db_url, project, run_sage):
    """The checks refuse only what is outside: a link inside the project and a nested artifact are fine."""
    (project / "docs/architecture").mkdir(parents=True)
    (project / "docs/architecture/notes.md").write_text("notes\n")
    (project / "docs/notes-link.md").symlink_to(project / "docs/architecture/notes.md")
    handoff = put(project / ".aios/handoffs", "001.yaml", {
        "from": "@architect", "to": "@db-sage", "request": REQUEST,
        "story": {"id": "1.2", "path": "docs/architecture/notes.md"},
        "artifacts": ["docs/architecture/notes.md", "docs/notes-link.md"]})
    handoff.chmod(0o640)
    res = run_sage("handoff", "receive", ".aios/handoffs/001.yaml", "--yes", "--db-url", db_url, cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (project / "supabase/migrations").is_dir()
    assert yaml.safe_load((project / ".aios/handoffs/001.yaml").read_text())["consumed"] is True
    assert "reply handoff: .aios/handoffs/" in res.stdout
    # written through a temporary file, with the permissions a plain write gives (other agents read them)
    umask = os.umask(0)
    os.umask(umask)
    folder = project / ".aios/handoffs"
    assert {p.name.endswith("-db-sage-to-architect.yaml"): p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        False: 0o640, True: 0o666 & ~umask}
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_handoff_over_the_size_limit_is_refused_unread(db_url, project, run_sage):
    doc = {"from": "@dev", "to": "@db-sage", "request": REQUEST, "decisions": ["x" * 1000] * 300}
    path = put(project / ".aios/handoffs", "big.yaml", doc)
    size = path.stat().st_size
    assert size > 256 * 1024
    res = run_sage("handoff", "receive", ".aios/handoffs/big.yaml", "--yes", "--db-url", db_url, cwd=project)
    refused(res, f".aios/handoffs/big.yaml is {size:,} bytes: a handoff is at most 256 KiB", "artifact files")
    assert not (project / "supabase").exists()
    assert sorted(p.name for p in (project / ".aios/handoffs").iterdir()) == ["big.yaml"]
    # just under the limit is read
    doc["decisions"] = ["x" * 1000] * 250
    put(project / ".aios/handoffs", "big.yaml", doc)
    assert (project / ".aios/handoffs/big.yaml").stat().st_size < 256 * 1024
    res = run_sage("handoff", "receive", ".aios/handoffs/big.yaml", "--yes", "--db-url", db_url, cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_handoff_that_is_a_link_is_refused_and_its_target_untouched(db_url, project, run_sage):
    target = put(project.parent / "elsewhere", "real.yaml", {"from": "@dev", "to": "@db-sage", "request": REQUEST})
    before = target.read_bytes()
    (project / ".aios/handoffs").mkdir(parents=True)
    (project / ".aios/handoffs/001.yaml").symlink_to(target)
    res = run_sage("handoff", "receive", ".aios/handoffs/001.yaml", "--yes", "--db-url", db_url, cwd=project)
    refused(res, ".aios/handoffs/001.yaml is a symbolic link: refused", "copy the file itself into .aios/handoffs/")
    assert target.read_bytes() == before and not (project / "supabase").exists()
    assert (project / ".aios/handoffs/001.yaml").is_symlink()


def test_a_handoff_folder_linked_outside_gets_nothing_written(db_url, make_session, project, run_sage):
    """Replies are written in .aios/handoffs/: a link from there out of the project is refused, reading and writing."""
    outside = project.parent / "shared-handoffs"
    put(outside, "001.yaml", {"from": "@dev", "to": "@db-sage", "request": REQUEST})
    before = files_under(outside)
    (project / ".aios").mkdir()
    (project / ".aios/handoffs").symlink_to(outside)
    res = run_sage("handoff", "receive", ".aios/handoffs/001.yaml", "--yes", "--db-url", db_url, cwd=project)
    refused(res, ".aios/handoffs/ points outside the project", "make .aios/handoffs a real folder inside the project")
    assert files_under(outside) == before and not (project / "supabase").exists()
    # an outgoing handoff is not written there either
    assert make_session(db_url, yes=True).run_line("*bootstrap --use-cli=no").exit_code == 0
    res = run_sage("handoff", "send", "qa", "--yes", "--db-url", db_url, cwd=project)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert ".aios/handoffs/ points outside the project" in out and "Traceback" not in out
    assert "next: make .aios/handoffs a real folder inside the project" in out
    assert files_under(outside) == before
    assert list(project.rglob("smoke-test-*")) == []  # refused before @qa's smoke test ran


def test_an_outgoing_handoff_refuses_artifacts_outside_the_project(db_url, project, run_sage):
    (project.parent / "outside.txt").write_text("x\n")
    res = run_sage("run", "*handoff dev --artifacts ../outside.txt", "--yes", "--db-url", db_url, cwd=project)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "artifact file(s) outside the project: ../outside.txt (a path out of the project (..))" in out
    assert not (project / ".aios").exists()


def test_connection_strings_never_reach_handoff_output(db_url, project, run_sage):
    """A request and a failure that carry a connection string: the terminal, the consumed handoff, the reply
    and `sage handoff list` show it redacted."""
    secret = "hunter2secret"
    url = f"postgresql://sage:{secret}@db.example.com:5432/prod"
    folder = project / ".aios/handoffs"
    put(folder, "001.yaml", {"from": "@dev", "to": "@db-sage", "request": "*run-sql",
                             "inputs": {"sql": f"select * from nope where dsn = '{url}'"}})
    put(folder, "002.yaml", {"from": "@dev", "to": "@db-sage", "request": f"*snapshot {url}"})
    put(folder, "003.yaml", {"from": "@qa", "to": "@db-sage", "request": f"*dry-run {url}"})
    outputs = []
    for name, code in (("001.yaml", 1), ("002.yaml", 2), ("003.yaml", 1)):
        res = run_sage("handoff", "receive", f".aios/handoffs/{name}", "--yes", "--db-url", db_url, cwd=project)
        assert res.returncode == code, res.stdout + res.stderr
        outputs.append(res.stdout + res.stderr)
    assert 'relation "nope" does not exist' in outputs[0]
    assert "invalid snapshot name 'postgresql://sage:***@db.example.com:5432/prod'" in outputs[1]
    consumed = yaml.safe_load((folder / "001.yaml").read_text())
    assert consumed["consumed"] is True
    assert consumed["inputs"]["sql"] == f"select * from nope where dsn = '{url.replace(secret, '***')}'"
    replies = sorted(folder.glob("*-db-sage-to-*.yaml"))
    assert [yaml.safe_load(p.read_text())["request"] for p in replies] == [
        "re: *run-sql", "re: *dry-run postgresql://sage:***@db.example.com:5432/prod"]
    listed = run_sage("handoff", "list", cwd=project)
    assert "*snapshot postgresql://sage:***@db.example.com" in listed.stdout
    shown = [*outputs, listed.stdout + listed.stderr, *(p.read_text() for p in replies),
             *((folder / n).read_text() for n in ("001.yaml", "003.yaml"))]
    assert [secret in text for text in shown] == [False] * len(shown)
