"""Area lint: *lint, the REPL / headless / MCP face of `sage lint` (same files, settings and findings)."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult


class LintInput(BaseModel):
    paths: str | None = None
    all: bool = False
    fail_on: str = "error"
    pg_version: str | None = None
    exclude: str | None = None
    include: str | None = None
    assume_in_transaction: bool = False


@operation("db-lint", risk="read")
def lint(inputs: LintInput, ctx) -> OpResult:
    """Lint without running anything: the same code path as `sage lint`."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.lint.cli import DEFAULT_PG
    from sage_agent.ops.lint.config import LintConfig, LintUsageError, load_config, parse_pg_version, select_rules, \
        split_rules
    from sage_agent.ops.lint.files import collect, default_files
    from sage_agent.ops.lint.runner import SEVERITY_RANK, lint_paths

    project: Path = ctx.project
    try:
        flags = LintConfig(pg_version=parse_pg_version(inputs.pg_version, "pg_version") if inputs.pg_version else None,
                           assume_in_transaction=inputs.assume_in_transaction or None,
                           exclude=split_rules(inputs.exclude) if inputs.exclude else None,
                           include=split_rules(inputs.include) if inputs.include else None,
                           fail_on=inputs.fail_on)
        cfg = load_config(project, project, flags)
        rules = select_rules(cfg)
        notes: list[str] = []
        paths = shlex.split(inputs.paths) if inputs.paths else []
        if paths:
            files = collect(paths, project, cfg.excluded_paths or [], command="*lint")
        else:
            selection = default_files(project, project, all_files=inputs.all, env=ctx.target.env,
                                      db_url=None if ctx.target.embedded else ctx.target.url,
                                      excluded_paths=cfg.excluded_paths or [], command="*lint")
            files, notes = selection.files, selection.notes
    except (LintUsageError, ValueError) as exc:
        raise OpError(str(exc), getattr(exc, "hint", None) or "*help lint lists the inputs; `sage lint --list-rules` "
                      "the rules", exit_code=2) from None
    run = lint_paths([p if p.is_absolute() else project / p for p in files], rules, cfg.pg_version or DEFAULT_PG,
                     bool(cfg.assume_in_transaction), chain=not paths)
    findings = []
    for f in run.findings:
        name = _rel(f.filename, project)
        where = f"{name}:{f.line}:{f.column or 1}"
        facts = ", ".join(x for x in (f.lock, "rewrites" if f.rewrites else "", "scans" if f.scans else "") if x)
        findings.append(Finding(rule=f.rule, severity=f.severity, message=f.message, location=where,
                                detail=facts or None, fix=f.safe_alternative or None))
    counts = run.counts()
    floor = SEVERITY_RANK[cfg.fail_on or "error"]
    failing = [f for f in run.findings if SEVERITY_RANK.get(f.severity, 0) >= floor]
    unreadable = [r for r in run.files if r.unreadable]
    status = "failed" if failing or unreadable else "warning" if run.findings else "ok"
    summary = (f"{len(run.files)} file(s) linted: {counts['error']} error(s), {counts['warning']} warning(s), "
               f"{counts['info']} info" if run.findings else f"{len(run.files)} file(s) linted: no findings")
    notes += [f"settings from {s}" for s in cfg.sources]
    return OpResult(operation="db-lint", status=status, summary=summary, exit_code=2 if unreadable else None,
                    facts={"files": len(run.files), **counts, "fail_on": cfg.fail_on or "error"},
                    findings=findings, notes=notes,
                    next_steps=["*dry-run"] if not failing else ["fix the findings, then *lint again"],
                    data={"files": [_rel(str(r.path), project) for r in run.files],
                          "findings": [{**f.model_dump(), "filename": _rel(f.filename, project)}
                                       for f in run.findings]})


def _rel(name: str, project: Path) -> str:
    path = Path(name)
    if path.is_absolute():
        try:
            return path.relative_to(project).as_posix()
        except ValueError:
            return name
    return name
