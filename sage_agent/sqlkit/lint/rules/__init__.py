"""Registry of lint rules: one module per rule, listed here so the order is stable.

``RULES`` are the rules on by default (squawk's default set plus DB Sage's own ``sage-*`` rules);
``ALL_RULES`` adds squawk's opt-in rules, which run only when included (``select_rules``).
"""
from __future__ import annotations

from collections.abc import Iterable

from ..model import Rule
from .adding_field_with_default import AddingFieldWithDefault
from .adding_foreign_key_constraint import AddingForeignKeyConstraint
from .adding_not_nullable_field import AddingNotNullableField
from .adding_required_field import AddingRequiredField
from .adding_serial_primary_key_field import AddingSerialPrimaryKeyField
from .ban_add_column import BanAddColumn
from .ban_add_composite_attribute import BanAddCompositeAttribute
from .ban_add_enum_value import BanAddEnumValue
from .ban_alter_database_options import BanAlterDatabaseOptions
from .ban_alter_domain_with_add_constraint import BanAlterDomainWithAddConstraint
from .ban_alter_extension import BanAlterExtension
from .ban_alter_function_options import BanAlterFunctionOptions
from .ban_alter_generated_expression import BanAlterGeneratedExpression
from .ban_alter_identity import BanAlterIdentity
from .ban_alter_policy_condition import BanAlterPolicyCondition
from .ban_alter_policy_roles import BanAlterPolicyRoles
from .ban_alter_role_options import BanAlterRoleOptions
from .ban_alter_row_level_security import BanAlterRowLevelSecurity
from .ban_alter_sequence_values import BanAlterSequenceValues
from .ban_alter_system_options import BanAlterSystemOptions
from .ban_alter_view_options import BanAlterViewOptions
from .ban_char_field import BanCharField
from .ban_concurrent_index_creation_in_transaction import BanConcurrentIndexCreationInTransaction
from .ban_create_domain_with_constraint import BanCreateDomainWithConstraint
from .ban_create_policy import BanCreatePolicy
from .ban_detach_inheritance import BanDetachInheritance
from .ban_disable_trigger import BanDisableTrigger
from .ban_drop_column import BanDropColumn
from .ban_drop_constraint import BanDropConstraint
from .ban_drop_database import BanDropDatabase
from .ban_drop_default import BanDropDefault
from .ban_drop_domain import BanDropDomain
from .ban_drop_extension import BanDropExtension
from .ban_drop_function import BanDropFunction
from .ban_drop_generated_expression import BanDropGeneratedExpression
from .ban_drop_index import BanDropIndex
from .ban_drop_not_null import BanDropNotNull
from .ban_drop_policy import BanDropPolicy
from .ban_drop_schema import BanDropSchema
from .ban_drop_sequence import BanDropSequence
from .ban_drop_table import BanDropTable
from .ban_drop_type import BanDropType
from .ban_drop_view import BanDropView
from .ban_duplicate_column_assignments import BanDuplicateColumnAssignments
from .ban_new_write_restriction import BanNewWriteRestriction
from .ban_replace_view_function import BanReplaceViewFunction
from .ban_replica_identity import BanReplicaIdentity
from .ban_revoke import BanRevoke
from .ban_set_default import BanSetDefault
from .ban_set_schema import BanSetSchema
from .ban_truncate_cascade import BanTruncateCascade
from .ban_uncommitted_transaction import BanUncommittedTransaction
from .changing_column_type import ChangingColumnType
from .constraint_missing_not_valid import ConstraintMissingNotValid
from .disallowed_unique_constraint import DisallowedUniqueConstraint
from .identifier_too_long import IdentifierTooLong
from .prefer_bigint_over_int import PreferBigintOverInt
from .prefer_bigint_over_smallint import PreferBigintOverSmallint
from .prefer_identity import PreferIdentity
from .prefer_repack import PreferRepack
from .prefer_robust_stmts import PreferRobustStmts
from .prefer_text_field import PreferTextField
from .prefer_timestamp_tz import PreferTimestamptz
from .renaming_column import RenamingColumn
from .renaming_object import RenamingObject
from .renaming_table import RenamingTable
from .require_concurrent_index_creation import RequireConcurrentIndexCreation
from .require_concurrent_index_deletion import RequireConcurrentIndexDeletion
from .require_concurrent_partition_detach import RequireConcurrentPartitionDetach
from .require_concurrent_reindex import RequireConcurrentReindex
from .require_enum_value_ordering import RequireEnumValueOrdering
from .require_lock_timeout import RequireLockTimeout
from .require_statement_timeout import RequireStatementTimeout
from .require_table_schema import RequireTableSchema
from .sage_prefer_pg_repack import SagePreferPgRepack
from .transaction_nesting import TransactionNesting
from .unused_ignore import UnusedIgnore

ALL_RULES: list[Rule] = [
    AddingFieldWithDefault(),
    AddingForeignKeyConstraint(),
    AddingNotNullableField(),
    AddingRequiredField(),
    AddingSerialPrimaryKeyField(),
    BanAddColumn(),
    BanAddCompositeAttribute(),
    BanAddEnumValue(),
    BanAlterDatabaseOptions(),
    BanAlterDomainWithAddConstraint(),
    BanAlterExtension(),
    BanAlterFunctionOptions(),
    BanAlterGeneratedExpression(),
    BanAlterIdentity(),
    BanAlterPolicyCondition(),
    BanAlterPolicyRoles(),
    BanAlterRoleOptions(),
    BanAlterRowLevelSecurity(),
    BanAlterSequenceValues(),
    BanAlterSystemOptions(),
    BanAlterViewOptions(),
    BanCharField(),
    BanConcurrentIndexCreationInTransaction(),
    BanCreateDomainWithConstraint(),
    BanCreatePolicy(),
    BanDetachInheritance(),
    BanDisableTrigger(),
    BanDropColumn(),
    BanDropConstraint(),
    BanDropDatabase(),
    BanDropDefault(),
    BanDropDomain(),
    BanDropExtension(),
    BanDropFunction(),
    BanDropGeneratedExpression(),
    BanDropIndex(),
    BanDropNotNull(),
    BanDropPolicy(),
    BanDropSchema(),
    BanDropSequence(),
    BanDropTable(),
    BanDropType(),
    BanDropView(),
    BanDuplicateColumnAssignments(),
    BanNewWriteRestriction(),
    BanReplaceViewFunction(),
    BanReplicaIdentity(),
    BanRevoke(),
    BanSetDefault(),
    BanSetSchema(),
    BanTruncateCascade(),
    BanUncommittedTransaction(),
    ChangingColumnType(),
    ConstraintMissingNotValid(),
    DisallowedUniqueConstraint(),
    IdentifierTooLong(),
    PreferBigintOverInt(),
    PreferBigintOverSmallint(),
    PreferIdentity(),
    PreferRepack(),
    PreferRobustStmts(),
    PreferTextField(),
    PreferTimestamptz(),
    RenamingColumn(),
    RenamingObject(),
    RenamingTable(),
    RequireConcurrentIndexCreation(),
    RequireConcurrentIndexDeletion(),
    RequireConcurrentPartitionDetach(),
    RequireConcurrentReindex(),
    RequireEnumValueOrdering(),
    RequireLockTimeout(),
    RequireStatementTimeout(),
    RequireTableSchema(),
    SagePreferPgRepack(),
    TransactionNesting(),
    UnusedIgnore(),
]
RULES: list[Rule] = [r for r in ALL_RULES if not r.opt_in]
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in ALL_RULES}
# squawk's deprecated name for the two timeout rules
ALIASES: dict[str, tuple[str, ...]] = {
    "require-timeout-settings": ("require-lock-timeout", "require-statement-timeout"),
    **{a: (r.id,) for r in ALL_RULES for a in r.aliases},
}


class UnknownRuleError(ValueError):
    """A rule name in config, --include/--exclude or an API call that no rule has."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"unknown lint rule {', '.join(repr(n) for n in names)}; known rules: "
            f"{', '.join(sorted([*RULES_BY_ID, *ALIASES]))}")


def canonical_names(name: str) -> tuple[str, ...] | None:
    """Rule ids a (case-sensitive, squawk-style) name stands for; None when unknown."""
    if name in RULES_BY_ID:
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
    return [r for r in ALL_RULES if (not r.opt_in or r.id in inc) and r.id not in exc]


__all__ = ["ALIASES", "ALL_RULES", "RULES", "RULES_BY_ID", "UnknownRuleError", "canonical_names", "expand",
           "select_rules"]
