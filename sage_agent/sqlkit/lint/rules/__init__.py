"""Registry of lint rules: one module per rule, listed here so the order is stable."""
from __future__ import annotations

from ..model import Rule
from .adding_field_with_default import AddingFieldWithDefault
from .adding_foreign_key_constraint import AddingForeignKeyConstraint
from .adding_not_nullable_field import AddingNotNullableField
from .adding_required_field import AddingRequiredField
from .adding_serial_primary_key_field import AddingSerialPrimaryKeyField
from .ban_alter_domain_with_add_constraint import BanAlterDomainWithAddConstraint
from .ban_char_field import BanCharField
from .ban_concurrent_index_creation_in_transaction import BanConcurrentIndexCreationInTransaction
from .ban_create_domain_with_constraint import BanCreateDomainWithConstraint
from .ban_drop_column import BanDropColumn
from .ban_drop_database import BanDropDatabase
from .ban_drop_not_null import BanDropNotNull
from .ban_drop_table import BanDropTable
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
from .renaming_table import RenamingTable
from .require_concurrent_index_creation import RequireConcurrentIndexCreation
from .require_concurrent_index_deletion import RequireConcurrentIndexDeletion
from .require_concurrent_partition_detach import RequireConcurrentPartitionDetach
from .require_concurrent_reindex import RequireConcurrentReindex
from .require_enum_value_ordering import RequireEnumValueOrdering
from .require_lock_timeout import RequireLockTimeout
from .require_statement_timeout import RequireStatementTimeout
from .transaction_nesting import TransactionNesting

RULES: list[Rule] = [
    AddingFieldWithDefault(),
    AddingForeignKeyConstraint(),
    AddingNotNullableField(),
    AddingRequiredField(),
    AddingSerialPrimaryKeyField(),
    BanAlterDomainWithAddConstraint(),
    BanCharField(),
    BanConcurrentIndexCreationInTransaction(),
    BanCreateDomainWithConstraint(),
    BanDropColumn(),
    BanDropDatabase(),
    BanDropNotNull(),
    BanDropTable(),
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
    RenamingTable(),
    RequireConcurrentIndexCreation(),
    RequireConcurrentIndexDeletion(),
    RequireConcurrentPartitionDetach(),
    RequireConcurrentReindex(),
    RequireEnumValueOrdering(),
    RequireLockTimeout(),
    RequireStatementTimeout(),
    TransactionNesting(),
]
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}

__all__ = ["RULES", "RULES_BY_ID"]
