"""Every command that reads a file or folder the user names: one exit-code rule (README, Headless runs).

2 = bad usage or an input that is missing, a folder where a file is wanted, or not UTF-8 text; 1 = the file was
read and a finding or verdict failed. The message names the cause and the next step, never a traceback."""

from pathlib import Path

import pytest

LATIN = b"\xff\xfe select 1;\n"  # not UTF-8

# (id, argv (DB appended where the command needs a database), files to write, exit code, words of the cause)
CASES = [
    # missing
    ("lint-missing", ["lint", "nope.sql"], {}, 2, "nope.sql: no such file or folder"),
    ("*lint-missing", ["run", "*lint nope.sql"], {}, 2, "nope.sql: no such file or folder"),
    ("*apply-missing", ["run", "*apply nope.sql", "--yes", "DB"], {}, 2, "no migration file matches 'nope.sql'"),
    ("*dry-run-missing", ["run", "*dry-run nope.sql", "DB"], {}, 2, "no migration file matches 'nope.sql'"),
    ("*load-csv-missing", ["run", "*load-csv nope.csv people", "DB"], {}, 2, "file not found: nope.csv"),
    ("*restore-missing", ["run", "*restore nope", "--confirm", "RESTORE", "DB"], {}, 2, "no backup named 'nope'"),
    ("*seed-missing", ["run", "*seed nope.sql", "--yes", "DB"], {}, 2, "seed file not found: nope.sql"),
    ("*run-sql-missing", ["run", "*run-sql nope.sql", "DB"], {}, 2, "SQL file not found: nope.sql"),
    ("*compare-schemas-missing", ["run", "*compare-schemas nope.sql local", "DB"], {}, 2,
     "snapshot file 'nope.sql' not found"),
    ("*design-missing", ["run", "*create-migration-from-design nope.yaml", "DB"], {}, 2,
     "schema design not found: nope.yaml"),
    ("*model-domain-missing", ["run", "*model-domain nope.yaml", "DB"], {}, 2, "domain spec not found: nope.yaml"),
    ("*handoff-artifact-missing", ["run", "*handoff dev --artifacts nope.txt", "DB"], {}, 2,
     "artifact file(s) not found: nope.txt"),
    ("targets-missing", ["run", "*env-check", "--targets", "nope.yaml"], {}, 2, "no such targets file"),
    ("watch-targets-missing", ["watch", "--once", "--targets", "nope.yaml"], {}, 2, "no such targets file"),
    ("handoff-receive-missing", ["handoff", "receive", "nope.yaml"], {}, 2, "handoff not found: nope.yaml"),
    ("handoff-receive-missing-json", ["handoff", "receive", "nope.yaml", "--json"], {}, 2,
     '"error": "handoff not found: nope.yaml", "next_steps": ["`sage handoff list` shows every handoff'),
    # a folder where a file is wanted
    ("*apply-folder", ["run", "*apply stuff", "--yes", "DB"], {"stuff/": b""}, 2, "no migration file matches"),
    ("*dry-run-folder", ["run", "*dry-run stuff", "DB"], {"stuff/": b""}, 2, "no migration file matches"),
    ("*load-csv-folder", ["run", "*load-csv stuff people", "DB"], {"stuff/": b""}, 2, "stuff is not a file"),
    ("*lint-empty-folder", ["run", "*lint stuff"], {"stuff/": b""}, 2, "stuff: no .sql files in this folder"),
    ("targets-folder", ["run", "*env-check", "--targets", "stuff"], {"stuff/": b""}, 2, "stuff: is a folder"),
    ("handoff-receive-folder", ["handoff", "receive", "stuff"], {"stuff/": b""}, 2,
     "stuff is a folder, not a handoff file"),
    # not UTF-8
    ("lint-latin", ["lint", "bad.sql"], {"bad.sql": LATIN}, 2, "not UTF-8"),
    ("*lint-latin", ["run", "*lint bad.sql"], {"bad.sql": LATIN}, 2, "not UTF-8"),
    ("*dry-run-latin", ["run", "*dry-run bad.sql", "DB"], {"bad.sql": LATIN}, 2, "not UTF-8"),
    ("*apply-latin-pending", ["run", "*apply", "--yes", "DB"],
     {"supabase/migrations/20260101000000_bad.sql": LATIN}, 2, "not UTF-8"),
    ("*seed-latin", ["run", "*seed bad.sql", "--yes", "DB"], {"bad.sql": LATIN}, 2, "seed file bad.sql is not UTF-8"),
    ("*run-sql-latin", ["run", "*run-sql bad.sql", "DB"], {"bad.sql": LATIN}, 2, "bad.sql is not UTF-8"),
    ("*design-latin", ["run", "*create-migration-from-design bad.yaml", "DB"], {"bad.yaml": LATIN}, 2,
     "bad.yaml is not UTF-8"),
    ("*model-domain-latin", ["run", "*model-domain bad.yaml", "DB"], {"bad.yaml": LATIN}, 2, "bad.yaml is not UTF-8"),
    ("targets-latin", ["run", "*env-check", "--targets", "bad.yaml"], {"bad.yaml": LATIN}, 2,
     "the targets file is not UTF-8"),
    ("watch-targets-latin", ["watch", "--once", "--targets", "bad.yaml"], {"bad.yaml": LATIN}, 2,
     "the targets file is not UTF-8"),
    ("handoff-receive-latin", ["handoff", "receive", "bad.yaml"], {"bad.yaml": LATIN}, 2, "bad.yaml: not UTF-8"),
    # read, and not a handoff (malformed YAML or JSON, not a mapping): 2, nothing ran
    ("handoff-receive-not-yaml", ["handoff", "receive", "bad.yaml"], {"bad.yaml": b"from: [unclosed\n"}, 2,
     "bad.yaml: not valid YAML: while parsing a flow sequence"),
    ("handoff-receive-bad-json", ["handoff", "receive", "bad.json"], {"bad.json": b'{"from": "@dev", "to": \n'}, 2,
     "bad.json: not valid YAML"),
    ("handoff-receive-a-list", ["handoff", "receive", "list.yaml"], {"list.yaml": b"- from: '@dev'\n"}, 2,
     "list.yaml: a handoff is a YAML mapping"),
    # read, and the verdict failed: 1
    ("lint-finding", ["lint", "f.sql"], {"f.sql": b"alter table t alter column a type bigint;\n"}, 1,
     "changing-column-type"),
    ("*dry-run-syntax", ["run", "*dry-run f.sql", "DB"], {"f.sql": b"create tabel t (a int);\n"}, 1,
     "syntax error"),
]


@pytest.mark.parametrize("argv, files, code, cause", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_input_files_follow_one_exit_code_rule(run_sage, project, db_url, argv, files, code, cause):
    (project / "supabase" / "migrations").mkdir(parents=True)
    for name, content in files.items():
        path = project / name
        if name.endswith("/"):
            path.mkdir()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    args = [a for a in argv if a != "DB"] + (["--db-url", db_url] if "DB" in argv else [])
    proc = run_sage(*args, cwd=project)
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert cause in out
    assert "Traceback" not in out and "Error:" not in out.replace("error:", "")  # no Python exception names
    if code == 2 and argv[0] in ("run", "handoff") and "--targets" not in argv:  # the next step on its own line
        assert [line for line in out.splitlines() if line.strip().lower().startswith("next: ")], out
