"""Data model of the migration linter: findings, per-file context, rule base class."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..split import Statement
from .locks import LockInfo, statement_lock

Severity = Literal["error", "warning", "info"]

# LintFinding's fields, in order (model_dump, ==, repr, and the rows sqlkit.lint.parallel sends between processes)
FINDING_FIELDS = ("rule", "severity", "line", "message", "table", "lock", "rewrites", "scans", "blocks",
                  "safe_alternative", "statement_line", "filename", "column", "new_table", "table_rows",
                  "table_bytes", "estimated_seconds")


class LintFinding:
    """One problem in one statement, with the lock facts a reviewer needs.

    Neither a pydantic model nor a dataclass: `sage lint` must start fast (pydantic's import alone costs more
    than linting a typical migration, importing ``dataclasses`` about 13 ms of a small file's run).
    ``model_dump()`` gives the dict form callers use; ==, the unhashability and repr are the dataclass's."""

    rule: str
    severity: Severity
    line: int
    message: str
    table: str | None
    lock: str | None
    rewrites: bool
    scans: bool
    blocks: str | None
    safe_alternative: str
    statement_line: int | None
    filename: str
    column: int | None  # 1-based column of ``line`` (the node the finding is about, else the statement)
    # True when ``table`` is created earlier in the same file (nobody else can be using it).
    new_table: bool
    # Filled by :func:`sage_agent.sqlkit.lint.sizing.apply_table_facts` when a database is known.
    table_rows: int | None
    table_bytes: int | None
    estimated_seconds: float | None

    def __init__(self, rule: str, severity: Severity, line: int, message: str, table: str | None = None,
                 lock: str | None = None, rewrites: bool = False, scans: bool = False, blocks: str | None = None,
                 safe_alternative: str = "", statement_line: int | None = None, filename: str = "<sql>",
                 column: int | None = None, new_table: bool = False, table_rows: int | None = None,
                 table_bytes: int | None = None, estimated_seconds: float | None = None) -> None:
        self.rule = rule
        self.severity = severity
        self.line = line
        self.message = message
        self.table = table
        self.lock = lock
        self.rewrites = rewrites
        self.scans = scans
        self.blocks = blocks
        self.safe_alternative = safe_alternative
        self.statement_line = statement_line
        self.filename = filename
        self.column = column
        self.new_table = new_table
        self.table_rows = table_rows
        self.table_bytes = table_bytes
        self.estimated_seconds = estimated_seconds

    def model_dump(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FINDING_FIELDS}

    def model_copy(self, *, update: dict[str, Any] | None = None) -> "LintFinding":
        return LintFinding(**{**self.model_dump(), **(update or {})})

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in FINDING_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return "LintFinding(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in FINDING_FIELDS) + ")"


class LintContext:
    """What a rule may know about the file besides the statement it is looking at.

    The engine updates the transaction / timeout fields *before* each statement,
    so they describe the state the statement runs in.
    """

    def __init__(self, server_major: int = 18, tables_created_in_file: frozenset[str] = frozenset(),
                 tables_created_anywhere: frozenset[str] = frozenset(), lock_timeout_set: bool = False,
                 statement_timeout_set: bool = False, in_transaction: bool = False,
                 assume_in_transaction: bool = False, filename: str = "<sql>",
                 statements: list[Statement] | None = None, index: int = 0, state: dict[str, Any] | None = None,
                 shared: dict[str, Any] | None = None) -> None:
        self.server_major = server_major
        self.tables_created_in_file = tables_created_in_file  # created inside a transaction (squawk's exemption)
        self.tables_created_anywhere = tables_created_anywhere  # created by any statement of the file
        self.lock_timeout_set = lock_timeout_set
        self.statement_timeout_set = statement_timeout_set
        self.in_transaction = in_transaction
        self.assume_in_transaction = assume_in_transaction
        self.filename = filename
        self.statements: list[Statement] = [] if statements is None else statements
        self.index = index
        self.state: dict[str, Any] = {} if state is None else state  # rule-private memory, keyed by rule id
        # Memory that outlives the file when several migrations are linted as one chain.
        self.shared: dict[str, Any] = {} if shared is None else shared
        # (statement, its LockInfo): the last statement's lock facts, shared by its findings and the timeout rules
        self._lock: tuple[Statement, LockInfo] | None = None

    def __repr__(self) -> str:
        return (f"LintContext(server_major={self.server_major!r}, filename={self.filename!r}, "
                f"index={self.index!r}, in_transaction={self.in_transaction!r})")

    def lock_of(self, stmt: Statement) -> LockInfo:
        """:func:`.locks.statement_lock` of ``stmt``, computed once however many rules ask."""
        memo = self._lock
        if memo is not None and memo[0] is stmt:
            return memo[1]
        info = statement_lock(stmt.node, self.server_major)
        self._lock = (stmt, info)
        return info

    def rule_state(self, rule_id: str, factory: Any) -> Any:
        """Per-file mutable state for one rule (created on first use)."""
        if rule_id not in self.state:
            self.state[rule_id] = factory()
        return self.state[rule_id]


class Rule:
    """Base class: subclasses set the class attributes and implement :meth:`check`."""

    id: ClassVar[str] = ""
    severity: ClassVar[Severity] = "warning"
    summary: ClassVar[str] = ""
    safe_alternative: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    opt_in: ClassVar[bool] = False  # squawk's opt-in rules run only when included
    # Statement node classes this rule can ever flag or remember; the engine does not call
    # ``check`` for other statements.  ``None``: every statement.
    node_types: ClassVar[tuple[type, ...] | None] = None
    # For an ALTER TABLE: the subcommand types (``AT_AddColumn`` ...) this rule can ever flag or remember; the
    # engine does not call ``check`` for an ALTER TABLE that has none of them. ``None``: any ALTER TABLE.
    alter_subtypes: ClassVar[frozenset[str] | None] = None
    # True when ``check`` remembers earlier statements (``ctx.state`` / ``ctx.shared``): such a rule must see a
    # file's statements in one order, in one process (see :mod:`.parallel`; a rule that overrides ``finish``
    # counts as ordered too). The others judge each statement alone.
    ordered: ClassVar[bool] = False

    def check(self, stmt: Statement, ctx: LintContext) -> list[LintFinding]:
        raise NotImplementedError

    def finish(self, ctx: LintContext) -> list[LintFinding]:
        """Called once after the last statement (for file-level rules)."""
        return []

    def finding(self, stmt: Statement, ctx: LintContext, message: str, *,
                location: int | None = None, line: int | None = None,
                table: str | None = None, lock: LockInfo | None = None,
                severity: Severity | None = None, alternative: str | None = None) -> LintFinding:
        """Build a finding, filling lock/rewrite/scan facts from the lock table."""
        info = lock or ctx.lock_of(stmt)
        column = None  # 1-based, of the node at `location` (else of the statement); none with an explicit line
        if line is None:
            if stmt.lines is None:
                line = stmt.line
            elif location is not None and location >= 0:
                line, column = stmt.lines.position(location)
            else:
                line, column = stmt.line, stmt.lines.position(stmt.start)[1]
        # positional, in FINDING_FIELDS order: 13 keywords matched against 17 parameters cost 4x the call itself
        # (0.36 vs 0.10 s for the 62,262 findings of the 5 MB bench file)
        return LintFinding(self.id, severity or self.severity, line, message,
                           table if table is not None else info.table, info.lock, info.rewrites, info.scans,
                           info.blocks, alternative if alternative is not None else self.safe_alternative,
                           stmt.line, ctx.filename, column)

    def __repr__(self) -> str:
        return f"<Rule {self.id}>"
