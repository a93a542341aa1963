"""One verdict policy for *dry-run and *apply: the same findings lead to the same word.

- unsafe: the file fails (syntax, or on the shadow) or an error-level lint finding remains. *apply stops
  there unless a person types UNSAFE (REPL, MCP elicitation) or the run says `--allow-unsafe`; `--yes` never
  passes it.
- caution: warnings, statements that rewrite or scan an existing table, or a failed smoke check.
- safe: none of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sage_agent.session.answers import UNSAFE_WORD

__all__ = ["UNSAFE_WORD", "Verdict", "verdict", "finding_row"]


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
