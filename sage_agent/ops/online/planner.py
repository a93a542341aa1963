"""Turn a migration file into an online sequence: every statement that would hold a long lock becomes steps
that end in the same schema while other sessions keep reading and writing.

Why a parse tree and not text: the rewrites (CONCURRENTLY, NOT VALID, a column split from its default) are
flags and subtrees of the statement PostgreSQL itself parsed; pglast deparses them back into SQL, so the
online form says exactly what the file says, nothing more.

Step kinds (the executor runs each in its own way):
- ``tx``: statements in one short transaction (short lock_timeout, retried);
- ``direct``: one statement that cannot run in a transaction (e.g. VACUUM), as written;
- ``index``: CREATE [UNIQUE] INDEX CONCURRENTLY (an INVALID index left by a failure is dropped and retried);
- ``drop_index``: DROP INDEX CONCURRENTLY;
- ``validate``: VALIDATE CONSTRAINT in its own transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on);
- ``backfill``: an UPDATE in primary-key ranges, each batch its own transaction, resumable;
- ``expand``, ``expand_index``, ``expand_check``, ``swap``: a column type change as expand/contract (expand.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.stream import RawStream
from psycopg import sql

from sage_agent.sqlkit.nodes import names

StepKind = Literal["tx", "direct", "index", "drop_index", "validate", "backfill", "expand", "expand_index",
                   "expand_check", "swap", "version"]
DIRECTIVE = re.compile(r"^\s*--\s*sage:online\b", re.M)
NAMEDATALEN = 63
# lint rules whose finding means "holds a lock for as long as a scan or rewrite takes"
BLOCKING_RULES = {"require-concurrent-index-creation", "require-concurrent-index-deletion",
                  "constraint-missing-not-valid", "adding-foreign-key-constraint", "adding-not-nullable-field",
                  "adding-field-with-default", "changing-column-type", "disallowed-unique-constraint",
                  "adding-serial-primary-key-field", "require-concurrent-reindex", "prefer-repack",
                  "sage-prefer-pg-repack", "ban-alter-domain-with-add-constraint",
                  "require-concurrent-partition-detach"}


@dataclass
class Step:
    """One unit the executor runs and records as done."""

    kind: StepKind
    sql: list[str]  # what runs (a backfill: the UPDATE without its key range)
    line: int  # the file line of the statement this step comes from
    why: str = ""  # shown in the plan: what this step replaces
    table: str | None = None  # the relation whose lock the step takes (for naming lock holders)
    index: str | None = None  # index steps: the index name (schema-qualified when the table is)
    constraint: str | None = None  # validate: the constraint name, or "@key" set by an earlier tx step
    discover: str | None = None  # tx: remember the name of the NOT VALID constraint this step adds under this key
    backfill: dict[str, Any] = field(default_factory=dict)  # set (SQL), where (SQL or ""), only_null (column)
    expand: dict[str, Any] = field(default_factory=dict)  # expand/contract: key, table, column, newtype, using

    def show(self, batch_rows: int, bound: str = "") -> str:
        """The plan line; `bound` (the run's lock wait and hold limits) is said for the swap, the step that takes
        ACCESS EXCLUSIVE while clients are live."""
        label = {"tx": "transaction", "direct": "no transaction", "index": "concurrently",
                 "drop_index": "concurrently", "validate": "validate", "backfill": "backfill",
                 "expand": "transaction", "expand_index": "concurrently", "expand_check": "validate",
                 "swap": "transaction", "version": "transaction"}[self.kind]
        text = "; ".join(_one_line(s) for s in self.sql)
        if self.kind == "validate":
            name = "<the constraint added above>" if (self.constraint or "@").startswith("@") else \
                sql.Identifier(self.constraint).as_string(None)
            text = text.replace("{constraint}", name)
        if self.kind == "backfill":
            text += f" (in primary-key batches of {batch_rows} rows, one transaction each, resumable)"
        bound = f"; {bound}" if bound and self.kind == "swap" else ""
        return f"[{label}] {text}; lock: {self.lock()}{bound}"

    def lock(self, server_major: int = 18) -> str:
        """The table lock this step takes and for how long (for the plan and *dry-run --online)."""
        t = self.table or "the table"
        light = {"index": f"SHARE UPDATE EXCLUSIVE on {t} for the build: reads and writes go on",
                 "expand_index": f"SHARE UPDATE EXCLUSIVE on {t} for each build: reads and writes go on",
                 "drop_index": "SHARE UPDATE EXCLUSIVE on the index's table: reads and writes go on",
                 "validate": f"SHARE UPDATE EXCLUSIVE on {t} for the scan: reads and writes go on",
                 "expand_check": f"ACCESS EXCLUSIVE on {t} briefly (NOT VALID, no scan), then SHARE UPDATE "
                                 "EXCLUSIVE for the scan: reads and writes go on",
                 "backfill": f"ROW EXCLUSIVE on {t} and the row locks of one batch, one short transaction each",
                 "expand": f"ACCESS EXCLUSIVE on {t} briefly (catalog only, no scan)",
                 "swap": f"ACCESS EXCLUSIVE on {t} for one short transaction (the renames and what moves with the "
                         "column: catalog only, no scan)",
                 "version": f"ACCESS SHARE on {t} (CREATE VIEW): reads and writes go on"}
        if self.kind in light:
            return light[self.kind]
        return _statements_lock(self.sql, server_major, brief=self.why not in ("as written", "cannot run in a "
                                                                                            "transaction"))


@dataclass
class OnlinePlan:
    steps: list[Step]
    rewritten: set[int] = field(default_factory=set)  # file lines of the statements given an online form

    def checksum(self) -> str:
        """The checksum of the step text, as state rows of builds before file checksums carry it (executor.py
        knows a file by its statements now: file_checksum)."""
        text = "\n\x1e".join(f"{s.kind}\x1f" + "\x1f".join(s.sql) for s in self.steps)
        return hashlib.sha256(text.encode()).hexdigest()


class NoOnlineForm(Exception):
    """A statement that would block and has no online sequence: *apply --online refuses it."""

    def __init__(self, line: int, statement: str, reason: str):
        self.line = line
        self.statement = statement
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


def _one_line(text: str, limit: int = 240) -> str:
    """One line of a step for the plan: long ones cut at a space (never inside a name) and marked."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 4)
    return text[:cut if cut > limit // 2 else limit - 4] + " ..."


def deparse(node: Any) -> str:
    return RawStream()(node)


def wants_online(text: str) -> bool:
    """A `-- sage:online` line in the file asks for the online form of that file only."""
    return DIRECTIVE.search(text) is not None


def _rel_text(rv: ast.RangeVar) -> str:
    """The relation as written (schema kept if given), without ONLY / alias."""
    parts = [rv.schemaname, rv.relname] if rv.schemaname else [rv.relname]
    return sql.SQL(".").join(sql.Identifier(p) for p in parts).as_string(None)


def _qualified(rv: ast.RangeVar) -> str:
    return f"{rv.schemaname or 'public'}.{rv.relname}"


def _index_name(rv: ast.RangeVar, name: str) -> str:
    """An index lives in its table's schema: name it there so lookups find it whatever the search_path."""
    parts = [rv.schemaname, name] if rv.schemaname else [name]
    return sql.SQL(".").join(sql.Identifier(p) for p in parts).as_string(None)


def _derived_name(table: str, columns: list[str], label: str, line: int, stmt: str) -> str:
    """The name PostgreSQL picks for an unnamed index or constraint (ChooseRelationName, no truncation case)."""
    name = "_".join([table, *columns, label]) if columns else f"{table}_{label}"
    if len(name.encode()) > NAMEDATALEN:
        raise NoOnlineForm(line, stmt, f"the generated name {name!r} is longer than 63 bytes and PostgreSQL would "
                           "shorten it: give the index or constraint a name so an interrupted build can be found "
                           "and retried")
    return name


def _index_columns(params) -> list[str]:
    out: list[str] = []
    for p in params or ():
        out.append(p.name if p.name else "expr")
    return out


class Planner:
    def __init__(self, statements: list, findings: list, server_major: int):
        self.statements = statements
        self.major = server_major
        self.flagged: dict[int, list] = {}
        for f in findings:
            if f.rule in BLOCKING_RULES and f.severity != "info":
                self.flagged.setdefault(f.statement_line or f.line, []).append(f)
        self.created: set[str] = set()
        for s in statements:
            if isinstance(s.node, ast.CreateStmt):
                self.created.add(_qualified(s.node.relation))
        self.added: dict[tuple[str, str], int] = {}  # (table, column) -> line of the ADD COLUMN in this file
        self.folded: set[int] = set()  # id() of statements changed by fold_new_column_types: deparsed, not as written
        self.moved: dict[int, dict] = {}  # id() of a type change -> the view statements its swap runs (file text)
        self.moved_ids: set[int] = set()  # id() of those statements: not run where the file has them
        self.moved_by_later: dict[int, list[int]] = {}  # id() of an earlier type change in that ALTER -> their lines
        self.steps: list[Step] = []
        self.rewritten: set[int] = set()
        self._plain: list[str] = []
        self._plain_line = 0
        self._seq = 0

    # --- plain statements are grouped into one transaction until the next online step ---
    def plain(self, text: str, line: int) -> None:
        if not self._plain:
            self._plain_line = line
        self._plain.append(text)

    def flush(self) -> None:
        if self._plain:
            self.steps.append(Step("tx", self._plain, self._plain_line, "as written"))
            self._plain = []

    def add(self, step: Step) -> None:
        self.flush()
        self.steps.append(step)

    def tx(self, stmts: list[str], line: int, why: str, table: str, discover: str | None = None) -> None:
        self.add(Step("tx", stmts, line, why, table=table, discover=discover))

    def key(self) -> str:
        self._seq += 1
        return f"@c{self._seq}"

    # --- per statement ---
    def plan(self) -> OnlinePlan:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.sqlkit.classify import classify

        self.fold_new_column_types()
        self.move_view_statements()
        for s in self.statements:
            node, text, line = s.node, s.text.strip().rstrip(";").strip(), s.line
            if isinstance(node, ast.TransactionStmt):
                continue  # each online step is its own transaction; the file's BEGIN/COMMIT do not apply
            if id(node) in self.moved_ids:
                self.rewritten.add(line)
                continue  # runs in the swap's transaction of the type change it surrounds
            if id(node) in self.folded:
                if isinstance(node, ast.AlterTableStmt) and not node.cmds:
                    self.rewritten.add(line)  # its only subcommand went into the ADD COLUMN
                    continue
                text = deparse(node)
            if isinstance(node, ast.IndexStmt) and _qualified(node.relation) not in self.created:
                self.index(node, text, line)
            elif isinstance(node, ast.DropStmt) and node.removeType.name == "OBJECT_INDEX" and not node.concurrent \
                    and len(node.objects) == 1 and node.behavior.name == "DROP_RESTRICT":
                node.concurrent = True
                name = sql.SQL(".").join(sql.Identifier(n) for n in names(node.objects[0])).as_string(None)
                self.add(Step("drop_index", [deparse(node)], line, "DROP INDEX takes ACCESS EXCLUSIVE on its table",
                              index=name))
                self.rewritten.add(line)
            elif isinstance(node, ast.AlterTableStmt) and node.objtype.name == "OBJECT_TABLE" \
                    and _qualified(node.relation) not in self.created:
                self.alter(node, text, line)
            elif isinstance(node, ast.UpdateStmt) and _qualified(node.relation) not in self.created:
                self.update(node, text, line)
            elif line in self.flagged:
                f = self.flagged[line][0]
                raise NoOnlineForm(line, text, f"{f.rule}: {f.message} DB Sage has no online form for this "
                                   "statement; run it in a file without --online / -- sage:online in a quiet window, "
                                   "or rewrite it by hand")
            elif not classify(s, self.major).transactional:
                self.add(Step("direct", [text], line, "cannot run in a transaction"))
            else:
                self.plain(text, line)
        self.flush()
        return OnlinePlan(self.steps, self.rewritten)

    def index(self, node: ast.IndexStmt, text: str, line: int) -> None:
        if node.relation.inh is False:
            raise NoOnlineForm(line, text, "CREATE INDEX ... ON ONLY (a partitioned table's parent) cannot be built "
                               "CONCURRENTLY; build each partition's index concurrently, then ATTACH PARTITION")
        name = node.idxname or _derived_name(node.relation.relname, _index_columns(node.indexParams), "idx", line,
                                             text)
        node.idxname = name
        node.concurrent = True
        self.add(Step("index", [deparse(node)], line, "CREATE INDEX blocks writes for the whole build",
                      table=_rel_text(node.relation), index=_index_name(node.relation, name)))
        self.rewritten.add(line)

    def fold_new_column_types(self) -> None:
        """`ADD COLUMN c t1` then, as the next statement, `ALTER TABLE ... ALTER COLUMN c TYPE t2` alone (no USING):
        the column is new and
        every value NULL, so it is added as t2 and the type change goes (the ALTER TYPE would rewrite the whole
        table under ACCESS EXCLUSIVE for nothing). The same column as the plain file's. (PostgreSQL itself refuses
        the type change of a column added in the same ALTER TABLE.)"""
        previous: dict[tuple[str, str], ast.ColumnDef] = {}  # the ADD COLUMNs of the statement just before
        for s in self.statements:
            node = s.node
            if not (isinstance(node, ast.AlterTableStmt) and node.objtype.name == "OBJECT_TABLE"):
                previous = {}
                continue
            table, here, keep = _qualified(node.relation), {}, []
            for cmd in node.cmds or ():
                col = previous.get((table, cmd.name)) if cmd.subtype == AlterTableType.AT_AlterColumnType and \
                    len(node.cmds) == 1 else None  # the whole statement goes: nothing else of it runs unchecked
                if col is not None and cmd.def_.raw_default is None:
                    col.typeName, col.collClause = cmd.def_.typeName, cmd.def_.collClause
                    self.folded.add(id(node))
                    self.folded |= {id(o.node) for o in self.statements if _defines(o.node, col)}
                    self.rewritten.add(s.line)
                    continue
                if cmd.subtype == AlterTableType.AT_AddColumn and _bare(cmd.def_):
                    here[cmd.def_.colname] = cmd.def_
                keep.append(cmd)
            node.cmds = tuple(keep)
            previous = {(table, name): col for name, col in here.items()}

    def move_view_statements(self) -> None:
        """A file written for the plain ALTER TYPE of a column a view uses: `DROP VIEW v` right before the type
        change, `CREATE VIEW v ...` right after it (with GRANT / REVOKE / COMMENT / ALTER VIEW of those views). As
        written, under --online the view would be gone from its DROP to the swap, through the whole backfill; so
        those statements run in the swap's transaction instead, the file's own text in the file's order (the drops
        first, the rest after the column has its new name), and the view is never missing. Only the DROP VIEW
        statements (without CASCADE) just before the statement and the view statements just after it move, and a
        drop only when every view it names is made again there: hook.py refuses a view over the column that the file
        drops before the type change in any other way.

        An ALTER TABLE with several subcommands: they run one after the other (each in its online form), and the
        view statements go into the swap of its last type change, so they run once every subcommand is done, as in
        the plain file (a view over a column changed earlier in the ALTER is made again by that earlier swap from
        its definition, then dropped and made by the file's statements in the last one). A subcommand after the
        last type change would run after the file's CREATE VIEW (which may need it): refused with the reason."""
        for k, s in enumerate(self.statements):
            node = s.node
            if not (isinstance(node, ast.AlterTableStmt) and node.objtype.name == "OBJECT_TABLE"):
                continue
            cmds = list(node.cmds or ())
            types = [c for c in cmds if c.subtype == AlterTableType.AT_AlterColumnType]
            if not types:
                continue
            drops, j = [], k - 1
            while j >= 0 and isinstance(self.statements[j].node, ast.DropStmt) and \
                    self.statements[j].node.removeType.name == "OBJECT_VIEW" and \
                    self.statements[j].node.behavior.name == "DROP_RESTRICT":
                drops.insert(0, self.statements[j])
                j -= 1
            created: set[str] = set()
            after, j = [], k + 1
            while j < len(self.statements):
                view = _view_statement(self.statements[j].node, created)
                if view is None:
                    break
                if isinstance(self.statements[j].node, ast.ViewStmt):
                    created.add(view)
                after.append(self.statements[j])
                j += 1
            drops = [d for d in drops if {_view_label(names(o)) for o in d.node.objects} <= created]
            dropped = {_view_label(names(o)) for d in drops for o in d.node.objects}
            after = [a for a in after if _view_statement(a.node, dropped) is not None]
            if not drops or not after:
                continue
            lines = [d.line for d in drops] + [a.line for a in after]
            if cmds[-1] is not types[-1]:
                text = s.text.strip().rstrip(";").strip()
                later = ", ".join(_subcommand(c) for c in cmds[cmds.index(types[-1]) + 1:])
                raise NoOnlineForm(s.line, text, (
                    f"the view statements around this ALTER TABLE (lines {', '.join(map(str, lines))}) would run in "
                    f"the swap of its last type change (ALTER COLUMN {types[-1].name} TYPE), so that a view is never "
                    f"gone while the backfill runs, but {later} comes after it in the same statement and would run "
                    "after the file's CREATE VIEW, which may need it: put the type changes last in the ALTER TABLE, "
                    "or move the other subcommands to an ALTER TABLE of their own before the DROP VIEW statements"))
            self.moved[id(types[-1])] = {"drop": [d.text.strip().rstrip(";").strip() for d in drops],
                                         "create": [a.text.strip().rstrip(";").strip() for a in after],
                                         "views": sorted(dropped), "lines": lines}
            for c in types[:-1]:  # their swaps come first and make the views over their column again themselves
                self.moved_by_later[id(c)] = lines
            self.moved_ids |= {id(d.node) for d in drops} | {id(a.node) for a in after}

    def alter(self, node: ast.AlterTableStmt, text: str, line: int) -> None:
        cmds = list(node.cmds or ())
        table = _qualified(node.relation)
        for cmd in cmds:
            if cmd.subtype == AlterTableType.AT_AlterColumnType and (table, cmd.name) in self.added:
                added = self.added[(table, cmd.name)]
                raise NoOnlineForm(line, text, (
                    f"{cmd.name} is added by this same file (line {added}) and then changes type: there is no old "
                    "column for an expand/contract to keep in step, and ALTER COLUMN ... TYPE rewrites the whole "
                    "table under ACCESS EXCLUSIVE even when every value is NULL; give the column its final type in "
                    f"the ADD COLUMN on line {added} (or move the type change to a later file). Done for you only "
                    "when the ADD COLUMN has no default or constraint and the next statement is that type change "
                    "alone, without USING"))
            if cmd.subtype == AlterTableType.AT_AddColumn:
                self.added[(table, cmd.def_.colname)] = line
        online = [c for c in cmds if self._online_form(node, c)]
        if not online:
            if line in self.flagged:
                f = self.flagged[line][0]
                raise NoOnlineForm(line, text, self._no_form_reason(node, cmds, f))
            self.plain(text, line)
            return
        self.rewritten.add(line)
        for cmd in cmds:  # one ALTER per subcommand, in the written order
            if cmd in online:
                self._alter_online(node, cmd, text, line)
            else:
                single = ast.AlterTableStmt(relation=node.relation, cmds=(cmd,), objtype=node.objtype,
                                            missing_ok=node.missing_ok)
                self.tx([deparse(single)], line, "as written", _rel_text(node.relation))

    def _no_form_reason(self, node, cmds, f) -> str:
        return (f"{f.rule}: {f.message} DB Sage has no online form for this statement; run it without --online in a "
                "quiet window, or rewrite it by hand")

    def _online_form(self, node, cmd) -> bool:
        t = cmd.subtype
        if t == AlterTableType.AT_AddConstraint:
            c = cmd.def_
            if c.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
                return not c.skip_validation
            if c.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
                return not c.indexname and not c.including and not c.options and not c.exclusions
            return False
        if t in (AlterTableType.AT_SetNotNull, AlterTableType.AT_AlterColumnType):
            return True
        if t == AlterTableType.AT_AddColumn:
            col = cmd.def_
            # lazy: pglast (the SQL parser) loads only when SQL is parsed
            from sage_agent.sqlkit.lint.helpers import rewriting_column_constraint

            cons = list(col.constraints or ())
            return any(c.contype == ConstrType.CONSTR_FOREIGN for c in cons) or \
                any(c.contype == ConstrType.CONSTR_DEFAULT and rewriting_column_constraint(c, self.major)
                    for c in cons)
        return False

    def _alter_online(self, node, cmd, text: str, line: int) -> None:
        rel, t = node.relation, cmd.subtype
        if t == AlterTableType.AT_AddConstraint:
            c = cmd.def_
            if c.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
                self._add_not_valid(node, c, line)
            else:
                self._unique(node, c, text, line)
        elif t == AlterTableType.AT_SetNotNull:
            self._not_null(rel, cmd.name, line)
        elif t == AlterTableType.AT_AddColumn:
            self._add_column(node, cmd, text, line)
        elif t == AlterTableType.AT_AlterColumnType:
            self._type_change(node, cmd, text, line)
        else:  # pragma: no cover - _online_form decides
            raise AssertionError(t)

    def _add_not_valid(self, node, c, line: int) -> None:
        c.skip_validation = True
        c.initially_valid = False
        single = ast.AlterTableStmt(relation=node.relation, objtype=node.objtype,
                                    cmds=(ast.AlterTableCmd(subtype=AlterTableType.AT_AddConstraint, def_=c),))
        table = _rel_text(node.relation)
        what = "FOREIGN KEY" if c.contype == ConstrType.CONSTR_FOREIGN else "CHECK"
        key = c.conname or self.key()
        self.tx([deparse(single)], line, f"ADD {what} scans the table under lock: added NOT VALID first", table,
                discover=None if c.conname else key)
        self.add(Step("validate", [f"ALTER TABLE {table} VALIDATE CONSTRAINT {{constraint}}"], line,
                      "checks existing rows without blocking reads or writes", table=table, constraint=key))

    def _unique(self, node, c, text: str, line: int) -> None:
        rel = node.relation
        primary = c.contype == ConstrType.CONSTR_PRIMARY
        cols = [k.sval for k in c.keys]
        name = c.conname or _derived_name(rel.relname, [] if primary else cols, "pkey" if primary else "key", line,
                                          text)
        table = _rel_text(rel)
        if primary:
            for col in cols:  # USING INDEX would SET NOT NULL with a scan under ACCESS EXCLUSIVE
                self._not_null(rel, col, line)
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in cols).as_string(None)
        nnd = " NULLS NOT DISTINCT" if c.nulls_not_distinct else ""
        self.add(Step("index", [f"CREATE UNIQUE INDEX CONCURRENTLY {sql.Identifier(name).as_string(None)} ON {table} "
                                f"({keys}){nnd}"], line,
                      "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE", table=table,
                      index=_index_name(rel, name)))
        kind = "PRIMARY KEY" if primary else "UNIQUE"
        defer = (" DEFERRABLE" if c.deferrable else "") + (" INITIALLY DEFERRED" if c.initdeferred else "")
        ident = sql.Identifier(name).as_string(None)
        self.tx([f"ALTER TABLE {table} ADD CONSTRAINT {ident} {kind} USING INDEX {ident}{defer}"], line,
                "attaches the finished index as the constraint (a catalog change)", table)

    def _not_null(self, rel, column: str, line: int) -> None:
        table = _rel_text(rel)
        check = _check_name(rel.relname, column)
        col, chk = sql.Identifier(column).as_string(None), sql.Identifier(check).as_string(None)
        self.tx([f"ALTER TABLE {table} ADD CONSTRAINT {chk} CHECK ({col} IS NOT NULL) NOT VALID"], line,
                "SET NOT NULL scans the table under ACCESS EXCLUSIVE: a NOT VALID check first", table)
        self.add(Step("validate", [f"ALTER TABLE {table} VALIDATE CONSTRAINT {{constraint}}"], line,
                      "proves no NULLs without blocking reads or writes", table=table, constraint=check))
        self.tx([f"ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL",
                 f"ALTER TABLE {table} DROP CONSTRAINT {chk}"], line,
                "SET NOT NULL uses the validated check (no scan), then the check goes", table)

    def _add_column(self, node, cmd, text: str, line: int) -> None:
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.sqlkit.lint.helpers import rewriting_column_constraint

        col = cmd.def_
        cons = list(col.constraints or ())
        default = next((c for c in cons if c.contype == ConstrType.CONSTR_DEFAULT), None)
        volatile = default is not None and rewriting_column_constraint(default, self.major)
        not_null = any(c.contype == ConstrType.CONSTR_NOTNULL for c in cons)
        fks = [c for c in cons if c.contype == ConstrType.CONSTR_FOREIGN]
        allowed = {ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_FOREIGN,
                   ConstrType.CONSTR_NULL}
        other = [c for c in cons if c.contype not in allowed]
        if other or (default is not None and not volatile and (fks or not_null)):
            raise NoOnlineForm(line, text, "ADD COLUMN with a volatile default and other column constraints (UNIQUE, "
                               "CHECK, PRIMARY KEY, GENERATED, IDENTITY) has no online form here: add the column, "
                               "then each constraint in its own statement")
        keep = [c for c in cons if c.contype in (ConstrType.CONSTR_NULL,)
                or (c.contype == ConstrType.CONSTR_DEFAULT and not volatile)
                or (c.contype == ConstrType.CONSTR_NOTNULL and not volatile)]
        col.constraints = tuple(keep) or None
        rel = node.relation
        table = _rel_text(rel)
        add = ast.AlterTableStmt(relation=rel, objtype=node.objtype, cmds=(ast.AlterTableCmd(
            subtype=AlterTableType.AT_AddColumn, def_=col, missing_ok=cmd.missing_ok),))
        ident = sql.Identifier(col.colname).as_string(None)
        if volatile:
            expr = deparse(default.raw_expr)
            self.tx([deparse(add), f"ALTER TABLE {table} ALTER COLUMN {ident} SET DEFAULT {expr}"], line,
                    "a volatile DEFAULT rewrites the table: the column is added empty, new rows get the default",
                    table)
            self.add(Step("backfill", [f"UPDATE {table} SET {ident} = {expr}"], line,
                          "existing rows get the default in batches", table=table,
                          backfill={"table": table, "set": f"{ident} = {expr}", "where": "", "only_null": ident}))
            if not_null:
                self._not_null(rel, col.colname, line)
        else:
            self.tx([deparse(add)], line, "as written, without its foreign key", table)
        for fk in fks:
            fk.fk_attrs = (ast.String(sval=col.colname),)
            self._add_not_valid(node, fk, line)

    def _type_change(self, node, cmd, text: str, line: int) -> None:
        """Expand/contract (expand.py): new column + sync trigger, backfill, indexes, NOT NULL, short swap."""
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.ops.online.expand import ident, names_for

        rel, coldef = node.relation, cmd.def_
        using = deparse(coldef.raw_default) if coldef.raw_default is not None else None
        newtype = deparse(coldef.typeName)
        if coldef.collClause is not None:
            newtype += " COLLATE " + ".".join(ident(n.sval) for n in coldef.collClause.collname)
        table, column = _rel_text(rel), cmd.name
        n = names_for(rel.relname, column)
        self._seq += 1
        spec = {"key": f"@x{self._seq}", "table": table, "name": _qualified(rel), "relname": rel.relname, "column": column,
                "newtype": newtype, "using": using}
        moved = self.moved.get(id(cmd))
        if moved:
            spec["moved"] = moved
        if id(cmd) in self.moved_by_later:  # the file's view statements run in a later swap of the same ALTER
            spec["moved_later"] = self.moved_by_later[id(cmd)]
        c, new = ident(column), ident(n["new"])
        expr = using or c
        self.add(Step("expand", [f"ALTER TABLE {table} ADD COLUMN {new} {newtype}",
                                 f"CREATE TRIGGER {ident(n['trigger'])} BEFORE INSERT OR UPDATE ON {table} (sets "
                                 f"{new} = {expr} on every write)"], line,
                      "ALTER COLUMN ... TYPE rewrites the table under ACCESS EXCLUSIVE: expand/contract instead "
                      "(the column moves to the end of the table)", table=table, expand=spec))
        self.add(Step("backfill", [f"UPDATE {table} SET {new} = {expr}"], line,
                      "existing rows get the converted value in batches", table=table,
                      backfill={"table": table, "set": f"{new} = {expr}", "where": "", "only_null": new}))
        self.add(Step("expand_index", [f"CREATE INDEX CONCURRENTLY ... every index on {c}, built again on {new}"],
                      line, "the indexes a rewrite would rebuild, built beside the old ones", table=table,
                      expand=spec))
        self.add(Step("expand_check", [f"ALTER TABLE {table} ADD CONSTRAINT {ident(n['chk'])} CHECK ({new} IS NOT "
                                       f"NULL) NOT VALID, then VALIDATE (only when {c} is NOT NULL)",
                                       f"every CHECK that uses {c} built again on {new} NOT VALID, then VALIDATE (one "
                                       "that was NOT VALID stays so)"], line,
                      "lets the swap SET NOT NULL without a scan and keep each CHECK", table=table, expand=spec))
        self.add(Step("swap", [f"swaps {table}.{c} for the {newtype} copy: ALTER TABLE {table} RENAME COLUMN {c} TO "
                               f"{ident(n['old'])}, then RENAME COLUMN {new} TO {c}",
                               f"{c} keeps its default, NOT NULL, indexes and comment; the trigger keeps "
                               f"{ident(n['old'])} current until *apply --complete drops it",
                               "in the same transaction, whatever the column has of these (the notes name each): "
                               "primary key, foreign keys (NOT VALID, then validated), identity, CHECK names, views"]
                      + ([f"the file's own view statements (lines {', '.join(map(str, moved['lines']))}) in this "
                          f"transaction: {'; '.join(moved['drop'])} first, then {'; '.join(moved['create'])}"]
                         if moved else []), line,
                      "the type change becomes visible in one short transaction; *apply --complete drops the old "
                      "column later, *rollback swaps back until then", table=table, expand=spec))

    def update(self, node: ast.UpdateStmt, text: str, line: int) -> None:
        if node.fromClause or node.returningClause or node.withClause or (node.whereClause is not None and isinstance(
                node.whereClause, ast.CurrentOfExpr)) or node.relation.inh is False:
            raise NoOnlineForm(line, text, "a backfill UPDATE is run in primary-key batches; this one has FROM, "
                               "RETURNING, WITH, WHERE CURRENT OF or ONLY, which batches cannot keep: write it as "
                               "UPDATE table SET ... [WHERE ...], or move it to a file without -- sage:online")
        where = deparse(node.whereClause) if node.whereClause is not None else ""
        alias = node.relation.alias.aliasname if node.relation.alias else None
        target = ast.UpdateStmt(relation=node.relation, targetList=node.targetList)
        set_text = deparse(target).split(" SET ", 1)[1]
        table = _rel_text(node.relation)
        self.add(Step("backfill", [text], line, "one UPDATE of every row holds its row locks until the end",
                      table=table, backfill={"table": table, "alias": alias, "set": set_text, "where": where,
                                             "only_null": ""}))
        self.rewritten.add(line)


def _subcommand(cmd) -> str:
    """`ADD COLUMN extra integer`, `ALTER COLUMN note SET NOT NULL`...: one ALTER TABLE subcommand, for a message."""
    text = deparse(ast.AlterTableStmt(relation=ast.RangeVar(relname="t", inh=True), objtype=ObjectType.OBJECT_TABLE,
                                      cmds=(cmd,)))
    return text.split(" ", 3)[3] if text.count(" ") >= 3 else AlterTableType(cmd.subtype).name


def _view_label(parts: list[str]) -> str:
    """`schema.view` as the file names it (an unqualified name is public's, as elsewhere in the online checks)."""
    return ".".join(parts) if len(parts) > 1 else f"public.{parts[0]}"


def _view_statement(node, views: set[str]) -> str | None:
    """The view a CREATE VIEW makes, or that a GRANT / REVOKE / COMMENT / ALTER VIEW statement is about when every
    object it names is in `views` (what a file runs after the type change to make its views again)."""
    if isinstance(node, ast.ViewStmt):
        return _view_label([p for p in (node.view.schemaname, node.view.relname) if p])
    if isinstance(node, ast.GrantStmt) and node.targtype.name == "ACL_TARGET_OBJECT" and \
            node.objtype.name == "OBJECT_TABLE":
        labels = {_view_label([p for p in (o.schemaname, o.relname) if p]) for o in node.objects or ()}
    elif isinstance(node, ast.CommentStmt) and node.objtype.name in ("OBJECT_VIEW", "OBJECT_COLUMN"):
        parts = [p.sval for p in node.object]
        labels = {_view_label(parts if node.objtype.name == "OBJECT_VIEW" else parts[:-1])}
    elif isinstance(node, ast.AlterTableStmt) and node.objtype.name == "OBJECT_VIEW":
        labels = {_view_label([p for p in (node.relation.schemaname, node.relation.relname) if p])}
    else:
        return None
    return next(iter(labels)) if labels and labels <= views else None


def _bare(col: ast.ColumnDef) -> bool:
    """A new column with nothing but its type (every existing row gets NULL): its type can be changed in place."""
    return col.raw_default is None and (col.identity or "\0") == "\0" and (col.generated or "\0") == "\0" and \
        all(c.contype == ConstrType.CONSTR_NULL for c in col.constraints or ())


def _defines(node, col: ast.ColumnDef) -> bool:
    return isinstance(node, ast.AlterTableStmt) and any(c.def_ is col for c in node.cmds or ()
                                                        if c.subtype == AlterTableType.AT_AddColumn)


def _statements_lock(texts: list[str], server_major: int, brief: bool) -> str:
    """The strongest table lock of the statements, and whether it lasts a rewrite or a scan."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import parse_sql

    from sage_agent.sqlkit.lint.locks import STRENGTH, statement_lock

    best = None
    for text in texts:
        try:
            nodes = [r.stmt for r in parse_sql(text)]
        except Exception:  # noqa: BLE001 - a display helper: the statement itself runs as written
            continue
        for node in nodes:
            info = statement_lock(node, server_major)
            if info.lock and (best is None or STRENGTH.get(info.lock, 0) > STRENGTH.get(best.lock, 0)):
                best = info
    if best is None:
        return "no table lock"
    where = f" on {best.table}" if best.table else ""
    if brief:
        return f"{best.lock}{where} briefly (catalog only, no scan)"
    how = " for the whole rewrite" if best.rewrites else " for the whole scan" if best.scans else ""
    return f"{best.lock}{where}{how}"


def _check_name(table: str, column: str) -> str:
    """The temporary CHECK of an online SET NOT NULL (never PostgreSQL 18's own <table>_<col>_not_null name)."""
    name = f"{table}_{column}_sage_nn"
    if len(name.encode()) > NAMEDATALEN:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import hashlib

        name = f"sage_nn_{hashlib.sha1(f'{table}.{column}'.encode()).hexdigest()[:16]}"
    return name


def versioned_plan(plan: OnlinePlan, statements: list, version: str) -> OnlinePlan:
    """`--versioned` (versions.py): the swaps wait for *apply --complete; the file's last step makes the version
    schema instead. Refused (NoOnlineForm): a file with no type change, and a statement after the first type change
    that is not one (it would run before the swap it follows in the file)."""
    first = next((s for s in plan.steps if s.kind == "expand"), None)
    if first is None:
        line = statements[0].line if statements else 1
        raise NoOnlineForm(line, statements[0].text if statements else "", "--versioned (or -- sage:online versioned) "
                           "makes a version schema for column type changes (ALTER TABLE ... ALTER COLUMN ... TYPE), "
                           "and this file has none: apply it with --online alone")
    lines = {s.line for s in plan.steps if s.kind == "expand"}
    for step in plan.steps[plan.steps.index(first):]:
        if step.line not in lines:
            text = next((s.text for s in statements if s.line == step.line), "; ".join(step.sql))
            raise NoOnlineForm(step.line, text, "under --versioned the swap of the type change above waits for *apply "
                               "--complete, so this statement would run before it, on the old column: put it in a "
                               "later file (after --complete), or drop --versioned")
    for step in plan.steps:
        if step.kind == "expand" and (step.expand.get("using") or step.expand.get("moved")):
            text = next((s.text for s in statements if s.line == step.line), "")
            raise NoOnlineForm(step.line, text, "--versioned does not take a USING expression (the trigger sets the "
                               "old column back from the new one by a plain cast) and does not move the file's DROP "
                               "VIEW / CREATE VIEW statements: change the type without USING and without the view "
                               "statements, or drop --versioned")
    steps = [s for s in plan.steps if s.kind != "swap"]
    tables = ", ".join(dict.fromkeys(s.table for s in steps if s.kind == "expand"))
    steps.append(Step("version", [f"CREATE SCHEMA <schema>_{version} with one view per changed table ({tables}): "
                                  "its columns in the order the table has after --complete, the new column under the "
                                  "column's name, security_invoker, the table's owner and privileges",
                                  "the sync trigger made two-way (a session whose search_path has the version schema "
                                  "sets the old column from the new one)"],
                      steps[-1].line, "clients built for the new type read and write it through the version schema; "
                      "the swap and the contract wait for *apply --complete", table=first.table,
                      expand=first.expand))
    return OnlinePlan(steps, plan.rewritten)


def plan_online(file_plan, server_major: int, versioned: bool = False) -> OnlinePlan:
    """The online sequence of one prepared migration file (applier.FilePlan). Raises NoOnlineForm. `versioned`
    (or the file's `-- sage:online versioned` line): see versioned_plan."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.split import split_sql

    # parse again: the planner changes the trees it deparses, and FilePlan.parsed belongs to the lint
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online.versions import wants_versioned

    statements = split_sql(file_plan.text, file_plan.migration.filename)
    plan = Planner(statements, file_plan.findings, server_major).plan()
    if versioned or wants_versioned(file_plan.text):
        plan = versioned_plan(plan, statements, file_plan.migration.version)
    return plan
