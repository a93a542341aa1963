"""Migration-safety lint for Postgres DDL, compatible with squawk 2.70's rules, rule ids,
ignore comments and ``.squawk.toml``.

Public API: :func:`lint_sql`, :func:`lint_statements`, :func:`lint_files` (an ordered migration
chain), :func:`select_rules` (defaults + opt-in includes - excludes), :data:`RULES` (default set),
:data:`ALL_RULES`, :class:`LintFinding`, :class:`LintContext`, :class:`Rule`; configuration in
:mod:`.config`, size-aware severity in :mod:`.sizing`.

Deliberate differences from squawk 2.70 (kept because they are more correct; the conformance
suite tests/sqlkit/squawk_conformance.txt lists each with its reason):
* ``DEFAULT -1`` (any constant expression) is not flagged by adding-field-with-default;
* changing-column-type skips binary-coercible changes (varchar(n) -> text / larger
  varchar, numeric widening) when the old type is known from earlier in the file;
* require-lock-timeout / require-statement-timeout do not fire on statements that only touch
  tables created earlier in the same file (nobody else can hold a lock on them);
* before PG 19 (no REPACK), VACUUM FULL / CLUSTER get DB Sage's own ``sage-prefer-pg-repack``.
"""
from .engine import LintChain, lint_files, lint_sql, lint_statements
from .locks import LockInfo, alter_cmd_lock, statement_lock
from .model import LintContext, LintFinding, Rule, Severity
from .rules import UnknownRuleError, select_rules


def __getattr__(name: str):
    """``ALL_RULES``, ``RULES``, ``RULES_BY_ID`` import every rule module: only when asked for (see .rules)."""
    if name in ("ALL_RULES", "RULES", "RULES_BY_ID"):
        # lazy: importing every rule module is what `sage lint` of a small file must not pay for
        from . import rules

        return getattr(rules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ALL_RULES", "RULES", "RULES_BY_ID", "LintChain", "LintContext", "LintFinding", "LockInfo", "Rule",
           "Severity", "UnknownRuleError", "alter_cmd_lock", "lint_files", "lint_sql", "lint_statements",
           "select_rules", "statement_lock"]
