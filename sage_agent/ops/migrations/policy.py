"""One verdict policy for *dry-run and *apply: the same findings lead to the same word.

- unsafe: the file fails (syntax, or on the shadow) or an error-level lint finding remains. *apply stops
  there unless a person types UNSAFE (REPL, MCP elicitation) or the run says `--allow-unsafe`; `--yes` never
  passes it.
- caution: warnings, statements that rewrite or scan an existing table, or a failed smoke check.
- safe: none of these.

Both grade the lint findings the same way first, so the two commands reach the same verdict: the timeout rules
by the timeouts *apply sets on the server (`grade_timeouts`), then by the target's real table sizes
(`grade_by_size`): a rewrite of an empty table is info, of one above SAGE_LINT_ERROR_MB an error. Each finding
graded away from the rule's severity says why in its message.

Both lint with the project's lint settings, found as `sage lint` finds them (`lint_settings`): the rules
`.squawk.toml` or `sage.toml [lint]` exclude stay out, the opt-in rules they include run. The PostgreSQL version
is the target's (the database is the truth, not pg_version), and whether the file runs in a transaction is what
*apply will do with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sage_agent.session.answers import UNSAFE_WORD

__all__ = ["UNSAFE_WORD", "Verdict", "verdict", "finding_row", "grade_timeouts", "grade_by_size", "lint_settings",
           "LintSettings"]


@dataclass
class LintSettings:
    rules: list  # the sqlkit rules to run (defaults + included opt-in - excluded)
    sources: list = field(default_factory=list)  # the files the settings came from
    pg_version: int | None = None  # the settings' pg_version (not used with a database)

    def notes(self, server_major: int) -> list[str]:
        """Where the settings came from, and a pg_version that is not used here and why."""
        notes = [f"lint settings from {s}" for s in self.sources]
        if self.pg_version is not None and self.pg_version != server_major:
            notes.append(f"linted for PostgreSQL {server_major}, the target's version (pg_version = "
                         f"{self.pg_version} in the lint settings is for `sage lint` without a database)")
        return notes


def lint_settings(project: Path) -> LintSettings:
    """The rules `sage lint` runs in this project (`.squawk.toml` and `sage.toml [lint]`, found from the project
    folder as `*lint` finds them). A bad setting (an unknown rule, bad TOML) is an OpError with exit 2, raised
    before anything runs."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.lint.config import LintConfig, LintUsageError, load_config, select_rules
    from sage_agent.ops.result import OpError

    try:
        cfg = load_config(project, project, LintConfig())
        rules = select_rules(cfg)
    except LintUsageError as exc:
        raise OpError(f"lint settings: {exc}", exc.hint or "fix the lint settings (`sage lint --list-rules` lists "
                      "the rules), then run the command again; nothing was run", exit_code=2) from None
    return LintSettings(rules, list(cfg.sources), cfg.pg_version)


@dataclass
class Verdict:
    level: str  # safe | caution | unsafe
    status: str  # ok | warning | failed (the OpResult status that goes with it)
    blocking: list = field(default_factory=list)  # the error-level lint findings (sqlkit LintFinding)


def verdict(findings: list, *, failed: str | None = None, impact: bool = False,
            failed_checks: bool = False) -> Verdict:
    blocking = [f for f in findings if f.severity == "error"]
    if failed or blocking:
        return Verdict("unsafe", "failed", blocking)
    if impact or failed_checks or any(f.severity == "warning" for f in findings):
        return Verdict("caution", "warning", [])
    return Verdict("safe", "ok", [])


def finding_row(f) -> str:
    """`file:line rule: message [lock, rewrites]`: one line per finding, for plans and headless errors."""
    facts = ", ".join(x for x in (f.lock, "rewrites" if f.rewrites else "", "scans" if f.scans else "") if x)
    return f"{f.filename}:{f.line} {f.rule}: {f.message}" + (f" [{facts}]" if facts else "")


# the lint rules *apply answers itself: it sets these settings on the server for every file it runs
SERVER_SIDE_TIMEOUTS = {"require-lock-timeout": "lock_timeout", "require-statement-timeout": "statement_timeout"}
_OFF = re.compile(r"^\s*0+\s*(ms|s|min|h)?\s*$")


def grade_timeouts(plans: list, *, lock_timeout: str | None, statement_timeout: str | None) -> None:
    """require-lock-timeout / require-statement-timeout are warnings in `sage lint` (the file alone: `supabase
    db push` or psql sets no timeout). *apply sets both on the server for every file, so in *dry-run and *apply
    they are info, and the message says why and with which value. A timeout of 0 (off) keeps the warning."""
    values = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    for plan in plans:
        graded = []
        for f in plan.findings:
            setting = SERVER_SIDE_TIMEOUTS.get(f.rule)
            value = values.get(setting) if setting else None
            if value and not _OFF.match(value) and f.severity != "info":
                f = f.model_copy()
                was, f.severity = f.severity, "info"
                f.message += (f" (info here, a {was} in `sage lint`: *apply runs the file with {setting}={value} "
                              "set on the server)")
            graded.append(f)
        plan.findings = graded


def grade_by_size(conn, plans: list) -> dict:
    """Attach each table's real size to the findings of `plans` (FilePlans) and let severity follow it
    (sqlkit.lint.sizing). Returns qualified name -> shadow_run.TableSize or None, for impact tables."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.migrations.shadow_run import qualify, table_facts
    from sage_agent.sqlkit.lint.sizing import SizePolicy, TableFacts, apply_table_facts

    names: list[str] = []
    for plan in plans:
        for f in plan.findings:
            name = qualify(f.table)
            if name and (f.rewrites or f.scans or f.severity == "error" or f.lock) and name not in names:
                names.append(name)
    facts = table_facts(conn, names)
    sizes = {name: TableFacts(rows=int(max(fact.rows, 0)), bytes=fact.bytes)
             for name, fact in facts.items() if fact is not None}
    size_policy = SizePolicy.from_env()
    for plan in plans:
        plan.findings = apply_table_facts(plan.findings, sizes, size_policy)
    _grade_tables_of_earlier_files(plans, facts)
    return facts


def _grade_tables_of_earlier_files(plans: list, facts: dict) -> None:
    """A table that is not on the target yet and that an earlier pending file creates is empty when this file
    runs, as one created in the same file is: its findings are info. Not when a statement from its CREATE on
    writes rows into it, or a DO / CALL could (then the rule's severity stays)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import ast

    from sage_agent.ops.migrations.shadow_run import qualify
    from sage_agent.sqlkit.lint.sizing import is_size_sensitive
    from sage_agent.sqlkit.nodes import qualified

    created: dict[str, str] = {}  # table -> the earlier file that creates it, empty
    for plan in plans:
        if created:
            graded = []
            for f in plan.findings:
                name = qualify(f.table)
                if name in created and facts.get(name) is None and is_size_sensitive(f) and f.severity != "info":
                    f = f.model_copy()
                    f.severity = "info"
                    f.message += (f" ({name} is created by {created[name]}, pending before this file: it has no "
                                  "rows yet)")
                graded.append(f)
            plan.findings = graded
        for stmt in plan.parsed:
            node = stmt.node
            if isinstance(node, ast.CreateStmt):
                created[qualify(qualified(node.relation))] = plan.migration.filename
            elif isinstance(node, (ast.DoStmt, ast.CallStmt)):
                created.clear()  # it may write rows anywhere
            else:
                target = getattr(node, "relation", None) if isinstance(
                    node, (ast.InsertStmt, ast.UpdateStmt, ast.CopyStmt, ast.MergeStmt)) else None
                if target is not None:
                    created.pop(qualify(qualified(target)), None)
