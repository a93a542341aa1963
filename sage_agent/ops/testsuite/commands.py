"""*test-suite: pgTAP or native SQL tests in supabase/tests, JUnit XML; starter tests generated from the schema."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table


# --- *test-suite ----------------------------------------------------------------------------------------------
class TestSuiteInput(BaseModel):
    generate: bool = False
    overwrite: bool = False


@operation("db-test-suite", risk="write")
def test_suite(inputs: TestSuiteInput, ctx) -> OpResult:
    """Run supabase/tests (pgTAP or native assertions), JUnit XML; optionally generate starter tests."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.testsuite import testing
    project = Path(ctx.project)
    folder = project / "supabase" / "tests"
    url = ctx.url
    pgtap = testing.pgtap_available(ctx, url)
    notes = [f"pgTAP {'available: *.sql files run as pgTAP tests' if pgtap else 'not installed: native *.test.sql assertion files'}"]
    artifacts: list[str] = []
    if inputs.generate:
        written, kept = testing.generate_tests(ctx, url, folder, pgtap=pgtap, overwrite=inputs.overwrite)
        artifacts += [str(p) for p in written]
        notes.append(f"generated {len(written)} test files" + (f", kept {len(kept)} existing" if kept else ""))
    files = testing.test_files(folder, pgtap)
    if not files:
        raise OpError(f"no test files in {folder}" + (" (*.sql)" if pgtap else " (*.test.sql)"),
                      "*test-suite generate=yes writes starter tests from the schema", exit_code=1)
    results = testing.run_files(ctx, url, files, pgtap=pgtap)
    junit = folder / "results" / "junit.xml"
    testing.write_junit(results, junit)
    artifacts.append(str(junit))
    total = sum(len(r.cases) for r in results)
    failed = sum(1 for r in results for c in r.cases if not c.ok)
    rows = [[r.file, len(r.cases), sum(1 for c in r.cases if not c.ok), r.runner, round(r.seconds, 2)] for r in results]
    findings = [Finding(rule="test.failed", severity="error", message=c.name, location=r.file, detail=c.message)
                for r in results for c in r.cases if not c.ok][:200]
    summary = f"{total - failed}/{total} tests passed in {len(files)} files" + (f"; {failed} FAILED" if failed else "")
    return OpResult(operation="db-test-suite", status="failed" if failed else "ok", summary=summary,
                    facts={"pgtap": pgtap, "files": len(files), "tests": total, "failed": failed,
                           "junit": str(junit.relative_to(project))},
                    tables=[Table(title="Test files", columns=["file", "tests", "failed", "runner", "seconds"],
                                  rows=rows)],
                    findings=findings, notes=notes, artifacts=artifacts,
                    data={"results": [r.model_dump() for r in results]},
                    next_steps=["fix the failing tests or policies, then *test-suite"] if failed else [])
