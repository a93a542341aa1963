"""Migration-safety lint for Postgres DDL, compatible with squawk's rule ids.

Public API: :func:`lint_sql`, :func:`lint_statements`, :data:`RULES`,
:class:`LintFinding`, :class:`LintContext`, :class:`Rule`.

Deliberate differences from squawk 2.70 (kept because they are more correct):
* ``DEFAULT -1`` (any constant expression) is not flagged by adding-field-with-default;
* changing-column-type skips binary-coercible changes (varchar(n) -> text / larger
  varchar, numeric widening) when the old type is known from earlier in the file;
* ``-- squawk-ignore`` covers the whole next statement (squawk: the next line only);
* prefer-repack is on by default here (opt-in in squawk);
* the rule id is squawk's ``prefer-timestamp-tz``; ``prefer-timestamptz`` is accepted
  in ignore comments.
"""
from .engine import lint_sql, lint_statements
from .locks import LockInfo, alter_cmd_lock, statement_lock
from .model import LintContext, LintFinding, Rule, Severity
from .rules import RULES, RULES_BY_ID

__all__ = ["RULES", "RULES_BY_ID", "LintContext", "LintFinding", "LockInfo", "Rule", "Severity",
           "alter_cmd_lock", "lint_sql", "lint_statements", "statement_lock"]
