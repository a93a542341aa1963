"""A database schema as data: what *compare-schemas reads, diffs and proves.

Names are stored already quoted and qualified (as PostgreSQL's `format('%I.%I')` renders them) so that
generated SQL never formats raw identifiers. Expressions and definitions come from PostgreSQL's own
deparsers (pg_get_expr, pg_get_constraintdef, pg_get_indexdef, pg_get_viewdef, pg_get_functiondef,
pg_get_triggerdef) read with an empty search_path, so every name in them is schema-qualified.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

Grants = frozenset  # of "grantee:PRIVILEGE:grantable" strings (grantee quoted, PUBLIC for everyone)


class Schema(BaseModel):
    name: str  # quoted
    comment: str | None = None
    grants: frozenset[str] = frozenset()


class Extension(BaseModel):
    name: str  # quoted
    schema_: str  # quoted
    version: str


class TypeDef(BaseModel):
    """Enum, domain or composite type."""

    qname: str
    schema_: str = ""  # quoted
    raw_name: str = ""  # unquoted type name
    kind: str  # enum | domain | composite
    labels: list[str] = Field(default_factory=list)  # enum
    base: str | None = None  # domain base type (with typmod)
    notnull: bool = False
    default: str | None = None
    collation: str | None = None
    checks: dict[str, str] = Field(default_factory=dict)  # domain constraint name (quoted) -> definition
    attributes: list[tuple[str, str]] = Field(default_factory=list)  # composite (quoted name, type)
    comment: str | None = None


class Sequence(BaseModel):
    qname: str
    data_type: str
    start: int
    increment: int
    min_value: int
    max_value: int
    cache: int
    cycle: bool
    owned_by: str | None = None  # "table.column" (quoted)
    comment: str | None = None
    grants: frozenset[str] = frozenset()


class Column(BaseModel):
    name: str  # quoted
    position: int
    type: str
    notnull: bool = False
    default: str | None = None
    identity: str = ""  # '' | 'a' (always) | 'd' (by default)
    generated: str = ""  # '' | 's' (stored) | 'v' (virtual)
    generation_expr: str | None = None
    collation: str | None = None  # quoted, only when not the type's default
    comment: str | None = None
    grants: frozenset[str] = frozenset()
    # identity sequence options: (start, increment, min, max, cache, cycle), when identity is set
    identity_opts: tuple[int, int, int, int, int, bool] | None = None
    inherited: bool = False  # a partition's column that comes from its parent (attislocal false)


class Table(BaseModel):
    qname: str
    schema_: str
    columns: dict[str, Column] = Field(default_factory=dict)
    unlogged: bool = False
    partitioned: bool = False
    rls: bool = False
    force_rls: bool = False
    comment: str | None = None
    grants: frozenset[str] = frozenset()
    partition_key: str | None = None  # pg_get_partkeydef, for a partitioned table
    parent: str | None = None  # the partitioned table this table is a partition of
    bound: str | None = None  # "FOR VALUES ..." or "DEFAULT", for a partition
    replica_identity: str = "d"  # d (default) | n (nothing) | f (full) | i (index)
    replica_index: str | None = None  # quoted index name (no schema), when replica_identity is i
    options: list[str] = Field(default_factory=list)  # storage parameters (reloptions), e.g. fillfactor=70

    def ordered_columns(self) -> list[Column]:
        return sorted(self.columns.values(), key=lambda c: c.position)


class Constraint(BaseModel):
    table: str
    name: str  # quoted
    type: str  # p u c f x t
    definition: str
    comment: str | None = None
    inherited: bool = False  # a partition's copy of its parent's constraint: planned on the parent only

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


class Index(BaseModel):
    qname: str
    table: str
    definition: str
    comment: str | None = None
    parent_index: str | None = None  # the partitioned index this index is attached to
    constraint_index: bool = False  # backs an inherited constraint (created with the parent's constraint)


class View(BaseModel):
    qname: str
    materialized: bool = False
    definition: str
    options: list[str] = Field(default_factory=list)
    comment: str | None = None
    grants: frozenset[str] = frozenset()


class Function(BaseModel):
    key: str  # schema.name(identity args)
    qname: str
    kind: str  # f | p | w
    identity_args: str
    arguments: str
    result: str | None = None
    definition: str
    uses_rowtype: bool = False  # arguments/result reference a table's row type: create after tables
    comment: str | None = None
    grants: frozenset[str] = frozenset()


class Trigger(BaseModel):
    table: str
    name: str
    definition: str
    enabled: str = "O"
    comment: str | None = None
    inherited: bool = False  # a partition's clone of its parent's trigger

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


class Policy(BaseModel):
    table: str
    name: str
    permissive: bool = True
    roles: list[str] = Field(default_factory=list)
    command: str = "ALL"
    using: str | None = None
    check: str | None = None
    comment: str | None = None

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


class DatabaseSchema(BaseModel):
    """Everything *compare-schemas compares, for the user's schemas only."""

    schemas: dict[str, Schema] = Field(default_factory=dict)
    extensions: dict[str, Extension] = Field(default_factory=dict)
    types: dict[str, TypeDef] = Field(default_factory=dict)
    sequences: dict[str, Sequence] = Field(default_factory=dict)
    tables: dict[str, Table] = Field(default_factory=dict)
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    indexes: dict[str, Index] = Field(default_factory=dict)
    views: dict[str, View] = Field(default_factory=dict)
    functions: dict[str, Function] = Field(default_factory=dict)
    triggers: dict[str, Trigger] = Field(default_factory=dict)
    policies: dict[str, Policy] = Field(default_factory=dict)
    # dependencies between the objects above: dependent key -> referenced keys. Keys are "kind:name"
    # (table:, column:, view:, function:, type:, sequence:, constraint:, index:, trigger:, policy:, default:)
    depends: dict[str, set[str]] = Field(default_factory=dict)
    # privileges new objects get by default, per (schema or '' for global, object kind r|S|f|n)
    default_acl: dict[str, frozenset[str]] = Field(default_factory=dict)
    # casts PostgreSQL knows: (source, target) base type names -> context (e explicit, a assignment, i implicit)
    casts: dict[tuple[str, str], str] = Field(default_factory=dict)
    server_major: int = 0
    unsupported: list[str] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "schemas": len(self.schemas), "extensions": len(self.extensions), "types": len(self.types),
            "tables": len(self.tables), "columns": sum(len(t.columns) for t in self.tables.values()),
            "constraints": len(self.constraints), "indexes": len(self.indexes), "sequences": len(self.sequences),
            "views": len(self.views), "functions": len(self.functions), "triggers": len(self.triggers),
            "policies": len(self.policies),
        }
