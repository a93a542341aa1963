"""Registry of lint rules: one module per rule, listed here so the order is stable.

``RULES`` are the rules on by default (squawk's default set plus DB Sage's own ``sage-*`` rules);
``ALL_RULES`` adds squawk's opt-in rules, which run only when included (``select_rules``).

`sage lint` must start fast, and most files use a few statement types: a rule module is imported only when
the rule first checks a statement. ``INDEX`` says, for each rule, the statement node types it looks at (its
``node_types``), so the engine can skip a rule without importing it; ``tests/sqlkit/test_lint_rule_index.py``
fails when the index and a rule module disagree. ``select_rules``, ``registered`` and ``rule_by_id`` give
rules that load on first use; ``ALL_RULES``, ``RULES`` and ``RULES_BY_ID`` import every rule.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from pglast import ast

from ..model import Rule

EVERY = None  # node types of a rule that looks at every statement
# rule id (its module is the id with "_" for "-"), statement node types it looks at (pglast.ast class names),
# flags: "opt-in" (runs only when included), "ordered" (remembers earlier statements, see Rule.ordered),
# "finish" (overrides Rule.finish: imported with the registry, as it may report on any file)
INDEX: tuple[tuple[str, str | None, str], ...] = (
    ("adding-field-with-default", "AlterTableStmt", ""),
    ("adding-foreign-key-constraint", "AlterTableStmt", ""),
    ("adding-not-nullable-field", "AlterTableStmt", "ordered"),
    ("adding-required-field", "AlterTableStmt", ""),
    ("adding-serial-primary-key-field", "AlterTableStmt", ""),
    ("ban-add-column", "AlterTableStmt", "opt-in"),
    ("ban-add-composite-attribute", "AlterTableStmt", "opt-in"),
    ("ban-add-enum-value", "AlterEnumStmt", "opt-in"),
    ("ban-alter-database-options", "AlterDatabaseSetStmt AlterDatabaseStmt", "opt-in"),
    ("ban-alter-domain-with-add-constraint", "AlterDomainStmt", ""),
    ("ban-alter-extension", "AlterExtensionStmt", "opt-in"),
    ("ban-alter-function-options", "AlterFunctionStmt", "opt-in"),
    ("ban-alter-generated-expression", "AlterTableStmt", "opt-in"),
    ("ban-alter-identity", "AlterTableStmt", ""),
    ("ban-alter-policy-condition", "AlterPolicyStmt", "opt-in"),
    ("ban-alter-policy-roles", "AlterPolicyStmt", "opt-in"),
    ("ban-alter-role-options", "AlterRoleSetStmt AlterRoleStmt", "opt-in"),
    ("ban-alter-row-level-security", "AlterTableStmt", "opt-in"),
    ("ban-alter-sequence-values", "AlterSeqStmt", "opt-in"),
    ("ban-alter-system-options", "AlterSystemStmt", "opt-in"),
    ("ban-alter-view-options", "AlterTableStmt", "opt-in"),
    ("ban-char-field", "AlterTableStmt CreateStmt", ""),
    ("ban-concurrent-index-creation-in-transaction", "IndexStmt TransactionStmt", "ordered"),
    ("ban-create-domain-with-constraint", "CreateDomainStmt", ""),
    ("ban-create-policy", "CreatePolicyStmt", "opt-in"),
    ("ban-detach-inheritance", "AlterTableStmt", "opt-in"),
    ("ban-disable-trigger", "AlterTableStmt", "opt-in"),
    ("ban-drop-column", "AlterTableStmt", ""),
    ("ban-drop-constraint", "AlterDomainStmt AlterTableStmt", ""),
    ("ban-drop-database", "DropdbStmt", ""),
    ("ban-drop-default", "AlterDomainStmt AlterTableStmt", ""),
    ("ban-drop-domain", "DropStmt", ""),
    ("ban-drop-extension", "DropStmt", ""),
    ("ban-drop-function", "DropStmt", ""),
    ("ban-drop-generated-expression", "AlterTableStmt", ""),
    ("ban-drop-index", "DropStmt", "opt-in"),
    ("ban-drop-not-null", "AlterTableStmt", ""),
    ("ban-drop-policy", "DropStmt", "opt-in"),
    ("ban-drop-schema", "DropStmt", ""),
    ("ban-drop-sequence", "DropStmt", ""),
    ("ban-drop-table", "DropStmt", ""),
    ("ban-drop-type", "DropStmt", ""),
    ("ban-drop-view", "DropStmt", ""),
    ("ban-duplicate-column-assignments", "CreateForeignTableStmt CreateStmt InsertStmt MergeStmt SelectStmt "
     "UpdateStmt ViewStmt", ""),
    ("ban-new-write-restriction", "AlterDomainStmt AlterTableStmt", "opt-in"),
    ("ban-replace-view-function", "CreateFunctionStmt CreateTrigStmt RuleStmt ViewStmt", "opt-in"),
    ("ban-replica-identity", "AlterTableStmt", "opt-in"),
    ("ban-revoke", "AlterOwnerStmt AlterTableStmt GrantRoleStmt GrantStmt", "opt-in"),
    ("ban-set-default", "AlterDomainStmt AlterTableStmt", "opt-in"),
    ("ban-set-schema", "AlterObjectSchemaStmt", ""),
    ("ban-truncate-cascade", "TruncateStmt", ""),
    ("ban-uncommitted-transaction", "TransactionStmt", "ordered finish"),
    ("changing-column-type", "AlterTableStmt CreateStmt", "ordered"),
    ("constraint-missing-not-valid", "AlterTableStmt TransactionStmt", "ordered"),
    ("disallowed-unique-constraint", "AlterTableStmt", ""),
    ("identifier-too-long", EVERY, ""),
    ("prefer-bigint-over-int", "AlterTableStmt CreateStmt", ""),
    ("prefer-bigint-over-smallint", "AlterTableStmt CreateStmt", ""),
    ("prefer-identity", "AlterTableStmt CreateStmt", ""),
    ("prefer-repack", "ClusterStmt VacuumStmt", ""),
    ("prefer-robust-stmts", "AlterTableStmt CreateStmt DropStmt IndexStmt RenameStmt", "ordered"),
    ("prefer-text-field", "AlterTableStmt CreateStmt", ""),
    ("prefer-timestamp-tz", "AlterTableStmt CreateStmt", ""),
    ("renaming-column", "RenameStmt", ""),
    ("renaming-object", "AlterEnumStmt RenameStmt", ""),
    ("renaming-table", "RenameStmt", ""),
    ("require-concurrent-index-creation", "IndexStmt", ""),
    ("require-concurrent-index-deletion", "DropStmt", ""),
    ("require-concurrent-partition-detach", "AlterTableStmt", ""),
    ("require-concurrent-reindex", "ReindexStmt", ""),
    ("require-enum-value-ordering", "AlterEnumStmt", ""),
    ("require-lock-timeout", EVERY, "ordered"),
    ("require-statement-timeout", EVERY, "ordered"),
    ("require-table-schema", "AlterObjectSchemaStmt AlterTableStmt CreateStmt CreateTableAsStmt DropStmt "
     "RenameStmt", "opt-in"),
    ("sage-prefer-pg-repack", "ClusterStmt VacuumStmt", ""),
    ("transaction-nesting", "TransactionStmt", ""),
    ("unused-ignore", "", ""),
)
# For the rules that look at ALTER TABLE: the subcommand types they can flag or remember (Rule.alter_subtypes;
# the engine skips an ALTER TABLE that has none of them). A rule not listed looks at any ALTER TABLE.
ALTER_SUBTYPES: dict[str, str] = {
    "adding-field-with-default": "AT_AddColumn",
    "adding-foreign-key-constraint": "AT_AddColumn AT_AddConstraint",
    "adding-not-nullable-field": "AT_AddConstraint AT_SetNotNull AT_ValidateConstraint",
    "adding-required-field": "AT_AddColumn",
    "adding-serial-primary-key-field": "AT_AddColumn AT_AddConstraint",
    "ban-add-column": "AT_AddColumn",
    "ban-add-composite-attribute": "AT_AddColumn",
    "ban-alter-generated-expression": "AT_SetExpression",
    "ban-alter-identity": "AT_AddIdentity AT_DropIdentity",
    "ban-alter-row-level-security": ("AT_DisableRowSecurity AT_EnableRowSecurity AT_ForceRowSecurity "
                                     "AT_NoForceRowSecurity"),
    "ban-alter-view-options": "AT_ResetRelOptions AT_SetRelOptions",
    "ban-char-field": "AT_AddColumn AT_AlterColumnType",
    "ban-detach-inheritance": "AT_DetachPartition AT_DropInherit",
    "ban-disable-trigger": ("AT_DisableRowSecurity AT_DisableRule AT_DisableTrig AT_DisableTrigAll "
                            "AT_DisableTrigUser AT_EnableAlwaysRule AT_EnableAlwaysTrig AT_EnableReplicaRule "
                            "AT_EnableReplicaTrig AT_EnableRule AT_EnableTrig AT_EnableTrigAll AT_EnableTrigUser "
                            "AT_ForceRowSecurity AT_NoForceRowSecurity"),
    "ban-drop-column": "AT_DropColumn",
    "ban-drop-constraint": "AT_DropConstraint",
    "ban-drop-default": "AT_ColumnDefault",
    "ban-drop-generated-expression": "AT_DropExpression",
    "ban-drop-not-null": "AT_DropNotNull",
    "ban-new-write-restriction": "AT_AddColumn AT_AddConstraint AT_SetNotNull",
    "ban-replica-identity": "AT_ReplicaIdentity",
    "ban-revoke": "AT_ChangeOwner",
    "ban-set-default": "AT_ColumnDefault",
    "changing-column-type": "AT_AddColumn AT_AlterColumnType",
    "constraint-missing-not-valid": "AT_AddConstraint AT_ValidateConstraint",
    "disallowed-unique-constraint": "AT_AddColumn AT_AddConstraint",
    "prefer-bigint-over-int": "AT_AddColumn AT_AlterColumnType",
    "prefer-bigint-over-smallint": "AT_AddColumn AT_AlterColumnType",
    "prefer-identity": "AT_AddColumn AT_AlterColumnType",
    "prefer-text-field": "AT_AddColumn AT_AlterColumnType",
    "prefer-timestamp-tz": "AT_AddColumn AT_AlterColumnType",
    "require-concurrent-partition-detach": "AT_DetachPartition",
}
# squawk's deprecated name for the two timeout rules, and the rules' own aliases (Rule.aliases)
ALIASES: dict[str, tuple[str, ...]] = {
    "require-timeout-settings": ("require-lock-timeout", "require-statement-timeout"),
    "prefer-timestamptz": ("prefer-timestamp-tz",),
}


def rule_class(rule_id: str) -> type[Rule]:
    """Import a rule's module and return its rule class (the one whose ``id`` is ``rule_id``)."""
    name = f"{__name__}.{rule_id.replace('-', '_')}"
    __import__(name)  # an import statement's path, so `python -X importtime` lists the rule modules it loads
    module = sys.modules[name]
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Rule) and value.id == rule_id:
            return value
    raise LookupError(f"{module.__name__} has no rule class with id {rule_id!r}")


# What a rule not yet imported answers itself; any other attribute imports it. ``finish`` is Rule's (nothing):
# the rules that override it are imported with the registry ("finish" in INDEX).
_PENDING_OWN = frozenset({"id", "node_types", "alter_subtypes", "opt_in", "ordered", "aliases", "finish"})


class _Pending(Rule):
    """A rule whose module is not imported yet. It knows what the engine asks before calling ``check`` (id,
    node types, ALTER TABLE subtypes, opt-in, ordered); ``check`` or any other attribute imports the module,
    and the object becomes the real rule (its class is swapped: the engine pays nothing afterwards, and the
    lists and caches that hold the object hold the real rule)."""

    def __init__(self, rule_id: str, node_types: tuple[type, ...] | None, flags: str) -> None:
        self.id = rule_id
        self.node_types = node_types
        subtypes = ALTER_SUBTYPES.get(rule_id)
        self.alter_subtypes = None if subtypes is None else frozenset(subtypes.split())
        self.opt_in = "opt-in" in flags
        self.ordered = "ordered" in flags
        self.aliases = tuple(a for a, ids in ALIASES.items() if ids == (rule_id,))

    def __getattribute__(self, name: str) -> Any:
        if name in _PENDING_OWN or name.startswith("__"):
            return object.__getattribute__(self, name)
        return getattr(_load(self), name)


def _load(rule: Rule) -> Rule:
    """Turn a pending rule into its real rule, in place (a real rule is returned as it is)."""
    if type(rule) is _Pending:
        real = rule_class(rule.id)
        rule.__class__ = real  # first: a reader in another thread sees the same values either way
        for key in ("id", "node_types", "alter_subtypes", "opt_in", "ordered", "aliases"):
            rule.__dict__.pop(key, None)  # the class's own attributes show through
    return rule


def _entry(rule_id: str, types: str | None, flags: str) -> Rule:
    node_types = None if types is None else tuple(getattr(ast, t) for t in types.split())
    if "finish" in flags:
        return rule_class(rule_id)()
    return _Pending(rule_id, node_types, flags)


_REGISTERED: list[Rule] = [_entry(*row) for row in INDEX]
_BY_ID: dict[str, Rule] = {r.id: r for r in _REGISTERED}


def registered() -> list[Rule]:
    """Every rule (opt-in ones too), in the stable order; modules load on first use."""
    return list(_REGISTERED)


def rule_by_id(rule_id: str) -> Rule:
    """The rule with this id (KeyError when none); its module loads on first use."""
    return _BY_ID[rule_id]


def __getattr__(name: str) -> Any:
    """``ALL_RULES``, ``RULES`` and ``RULES_BY_ID``: every rule imported (for listings, docs and tests)."""
    if name not in ("ALL_RULES", "RULES", "RULES_BY_ID"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    every = [_load(r) for r in _REGISTERED]
    globals().update(ALL_RULES=every, RULES=[r for r in every if not r.opt_in],
                     RULES_BY_ID={r.id: r for r in every})
    return globals()[name]


class UnknownRuleError(ValueError):
    """A rule name in config, --include/--exclude or an API call that no rule has."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"unknown lint rule {', '.join(repr(n) for n in names)}; known rules: "
            f"{', '.join(sorted([*_BY_ID, *ALIASES]))}")


def canonical_names(name: str) -> tuple[str, ...] | None:
    """Rule ids a (case-sensitive, squawk-style) name stands for; None when unknown."""
    if name in _BY_ID:
        return (name,)
    return ALIASES.get(name)


def expand(names: Iterable[str]) -> set[str]:
    """Rule ids for names, aliases expanded; raises UnknownRuleError listing every unknown one."""
    out: set[str] = set()
    unknown = []
    for n in names:
        ids = canonical_names(n.strip())
        if ids is None:
            unknown.append(n)
        else:
            out.update(ids)
    if unknown:
        raise UnknownRuleError(unknown)
    return out


def select_rules(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[Rule]:
    """Default rules plus ``include`` (opt-in ones) minus ``exclude``; exclude wins, as in squawk."""
    inc, exc = expand(include), expand(exclude)
    return [r for r in _REGISTERED if (not r.opt_in or r.id in inc) and r.id not in exc]


__all__ = ["ALIASES", "ALL_RULES", "ALTER_SUBTYPES", "EVERY", "INDEX", "RULES", "RULES_BY_ID", "Rule",
           "UnknownRuleError", "canonical_names", "expand", "registered", "rule_by_id", "rule_class", "select_rules"]
