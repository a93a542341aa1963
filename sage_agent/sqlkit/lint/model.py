"""Data model of the migration linter: findings, per-file context, rule base class."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

from ..split import Statement
from .locks import LockInfo, statement_lock

Severity = Literal["error", "warning", "info"]


@dataclass
class LintFinding:
    """One problem in one statement, with the lock facts a reviewer needs.

    A dataclass, not a pydantic model: `sage lint` must start fast, and pydantic's import alone costs more
    than linting a typical migration. ``model_dump()`` keeps the dict form callers use."""

    rule: str
    severity: Severity
    line: int
    message: str
    table: str | None = None
    lock: str | None = None
    rewrites: bool = False
    scans: bool = False
    blocks: str | None = None
    safe_alternative: str = ""
    statement_line: int | None = None
    filename: str = "<sql>"
    column: int | None = None  # 1-based column of ``line`` (the node the finding is about, else the statement)
    # True when ``table`` is created earlier in the same file (nobody else can be using it).
    new_table: bool = False
    # Filled by :func:`sage_agent.sqlkit.lint.sizing.apply_table_facts` when a database is known.
    table_rows: int | None = None
    table_bytes: int | None = None
    estimated_seconds: float | None = None

    def model_dump(self) -> dict[str, Any]:
        return asdict(self)

    def model_copy(self, *, update: dict[str, Any] | None = None) -> "LintFinding":
        return replace(self, **(update or {}))


@dataclass
class LintContext:
    """What a rule may know about the file besides the statement it is looking at.

    The engine updates the transaction / timeout fields *before* each statement,
    so they describe the state the statement runs in.
    """

    server_major: int = 18
    tables_created_in_file: frozenset[str] = frozenset()  # created inside a transaction (squawk's exemption)
    tables_created_anywhere: frozenset[str] = frozenset()  # created by any statement of the file
    lock_timeout_set: bool = False
    statement_timeout_set: bool = False
    in_transaction: bool = False
    assume_in_transaction: bool = False
    filename: str = "<sql>"
    statements: list[Statement] = field(default_factory=list)
    index: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # rule-private memory, keyed by rule id
    # Memory that outlives the file when several migrations are linted as one chain.
    shared: dict[str, Any] = field(default_factory=dict)

    # (statement, its LockInfo): the last statement's lock facts, shared by its findings and the timeout rules
    _lock: tuple[Statement, LockInfo] | None = field(default=None, repr=False, compare=False)

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
        return LintFinding(
            rule=self.id, severity=severity or self.severity,
            line=line,
            message=message, table=table if table is not None else info.table,
            lock=info.lock, rewrites=info.rewrites, scans=info.scans, blocks=info.blocks,
            safe_alternative=alternative if alternative is not None else self.safe_alternative,
            statement_line=stmt.line, filename=ctx.filename, column=column,
        )

    def __repr__(self) -> str:
        return f"<Rule {self.id}>"
