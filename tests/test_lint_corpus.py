"""`sage lint --reporter json` of the bench's 200 typical migration files (bench/lint_vs_squawk.py, ~2 MB) gives
exactly the findings it gave before the speed work of session 10 (tests/fixtures/lint_corpus/typical_200.json.gz,
generated from main at c8db1b2): every field of every finding, sorted, file names without their folder. A speed
change that drops, adds or alters one finding fails here; one process and two worker processes both."""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED = Path(__file__).parent / "fixtures" / "lint_corpus" / "typical_200.json.gz"


def _sorted(findings: list[dict]) -> list[dict]:
    for f in findings:
        f["file"] = Path(f["file"]).name
    return sorted(findings, key=lambda f: json.dumps(f, sort_keys=True))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from lint_vs_squawk import make_folder
    finally:
        sys.path.remove(str(REPO / "bench"))
    folder = tmp_path_factory.mktemp("corpus") / "migrations"
    make_folder(folder)
    return sorted(folder.glob("*.sql"))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_200_typical_files_give_the_same_findings_as_before(run_sage, corpus, jobs):
    expected = json.loads(gzip.decompress(EXPECTED.read_bytes()))
    proc = run_sage("lint", "--reporter", "json", *map(str, corpus), cwd=corpus[0].parent,
                    env={"SAGE_LINT_JOBS": jobs}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(corpus) == 200
    got = _sorted(json.loads(proc.stdout))
    assert len(got) == len(expected) == 5040
    assert got == expected
