"""*rollback without loss: the reverse schema change, proven on a shadow copy, then one transaction on the target.

plan_reverse(ctx, meta) -> ReversePlan:
  1. the snapshot's schema is loaded into a shadow database (B) and the target's schema copied into another (S);
  2. on S, inside a transaction that is rolled back, the renames the migrations made are undone by name, and
     tables whose column order the diff could not restore (a dropped column in the middle) are set aside for a
     rebuild; the schema diff engine then plans S -> B;
  3. the kept data of the snapshot (sqlkit.destroys told *apply what to keep) is merged into the plan as data
     steps: rows of re-created tables, column values by primary key, deleted rows upserted back;
  4. PROOF: every step runs on S in one transaction, and the normalized `pg_dump --schema-only` (privileges
     included) of S must equal B's. Only then is the plan shown.
execute(ctx, plan) runs the same steps on the target in one transaction with the ledger update.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from psycopg import sql

from sage_agent.ops.result import OpError
from sage_agent.ops.schema.diff import Plan
from sage_agent.ops.schema.model import DatabaseSchema
from sage_agent.ops.snapshots.keep import KeptData
from sage_agent.ops.snapshots.store import HISTORY_SCHEMA, SnapshotMeta
from sage_agent.sqlkit.idents import quoted

DATA_PHASE = 36.95  # after tables, columns and defaults; before constraints (37), indexes, FKs (39), triggers
UPSERT_PHASE = 37.5  # after primary keys and unique constraints, before foreign keys


@dataclass
class Item:
    """One step of the rollback transaction: SQL, or an action on the connection (COPY, captured values)."""

    phase: float
    label: str
    sql: str | None = None
    action: Callable | None = None
    target_only: bool = False

    def run(self, conn, state: dict) -> None:
        if self.action is not None:
            self.action(conn, state)
        elif self.sql:
            conn.execute(self.sql)


@dataclass
class TableRows:
    table: str
    now: int | None
    after: int | None
    kept: int
    lost: int
    how: str


@dataclass
class ReversePlan:
    meta: SnapshotMeta
    items: list[Item]
    diff: Plan
    rows: list[TableRows]
    undone: list[str]  # migration versions that go back to pending
    renamed_back: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    values_lost: list[str] = field(default_factory=list)  # columns the reverse change drops
    expected: dict[str, int] = field(default_factory=dict)  # exact row counts after, where known
    snapshot_dump: list[str] = field(default_factory=list)  # normalized dump of the snapshot's schema (B)
    target_fingerprint: str = ""
    destroys: list = field(default_factory=list)  # sqlkit Destroyed: what this rollback drops (safety snapshot)
    shadow_major: int = 0  # the proof's server; the target's dump is compared with B's only on the same major

    @property
    def rows_lost(self) -> int:
        return sum(r.lost for r in self.rows)

    @property
    def rows_kept(self) -> int:
        return sum(r.kept for r in self.rows)

    def text(self) -> str:
        lines = [f"Rollback to snapshot {self.meta.name} ({self.meta.type}, taken {self.meta.created_at}): the reverse "
                 "schema change, proven on a shadow copy (pg_dump --schema-only of the result equals the snapshot's), "
                 "in ONE transaction.", ""]
        if self.renamed_back:
            lines.append("Renamed back: " + ", ".join(self.renamed_back))
        if self.rebuilt:
            lines.append("Rebuilt in the snapshot's column order (rows copied over): " + ", ".join(self.rebuilt))
        if self.restored:
            lines.append("Kept data restored: " + ", ".join(self.restored))
        lines.append("SQL:")
        for item in sorted(self.items, key=lambda i: i.phase):
            lines.append(f"  {item.sql.strip().rstrip(';')};" if item.sql else f"  -- {item.label}")
        lines += ["", "Rows per table (now -> after): kept, lost"]
        for r in self.rows:
            now = "-" if r.now is None else r.now
            after = "-" if r.after is None else r.after
            lines.append(f"  {r.table}: {now} -> {after}  kept {r.kept}, lost {r.lost}  ({r.how})")
        if self.values_lost:
            lines.append("Column values lost (columns added after the snapshot): " + ", ".join(self.values_lost))
        lines.append(f"Total: {self.rows_kept} rows kept, {self.rows_lost} rows lost")
        if self.undone:
            lines.append(f"Migrations back to pending: {', '.join(self.undone)}")
        return "\n".join(lines)


class ProofFailed(OpError):
    pass


# --- names ---------------------------------------------------------------------------------------------------
def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') and ident.endswith('"') else ident


def _split_qname(qname: str) -> tuple[str, str]:
    """'"My Schema".t' -> ('My Schema', 't')."""
    in_quote = False
    for i, ch in enumerate(qname):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "." and not in_quote:
            return _unquote(qname[:i]), _unquote(qname[i + 1:])
    return "public", _unquote(qname)


def _qkey(model: DatabaseSchema) -> dict[str, str]:
    """unquoted 'schema.table' -> the model's quoted qname."""
    return {".".join(_split_qname(q)): q for q in model.tables}


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


# --- dumps ---------------------------------------------------------------------------------------------------
def normalized_schema_dump(url: str, server_major: int) -> list[str]:
    """pg_dump --schema-only (privileges included, owners left out) of the user schemas as its sorted statements:
    the normalizer *compare-schemas proves with."""
    # lazy: the thread pool loads only for parallel work
    from sage_agent.ops.schema.compare import normalized_dump

    return normalized_dump(url, server_major)


def without_shadow_extensions(want: list[str], now: list[str]) -> list[str]:
    """`want` (the snapshot's dump, read from the shadow it was loaded into) without the statements of the
    extensions every database of DB Sage's shadow server gets from its template1 (db.embedded.TUNING_EXTENSIONS),
    when the target has none of them: they are the shadow's, not the snapshot's (a rollback never changes them;
    a target without pg_stat_statements was reported as differing after every rollback)."""
    # lazy: the embedded server module loads only when a server is used
    from sage_agent.db.embedded import TUNING_EXTENSIONS

    def of_tuning(statement: str) -> bool:
        head = statement.split("\n", 1)[0]
        return any(re.match(rf"(CREATE EXTENSION IF NOT EXISTS|COMMENT ON EXTENSION) {name}\b", head)
                   for name in TUNING_EXTENSIONS)

    if any(of_tuning(s) for s in now):
        return want
    return [s for s in want if not of_tuning(s)]


def describe_difference(got: list[str], want: list[str], limit: int = 12) -> list[str]:
    """The statements only the snapshot has (-) and only the result has (+), first `limit` of each."""
    # lazy: the thread pool loads only for parallel work
    from sage_agent.ops.schema.compare import dump_difference

    missing, extra = dump_difference(got, want)
    out = [f"- {s.splitlines()[0][:200]}" for s in missing[:limit]]
    out += [f"+ {s.splitlines()[0][:200]}" for s in extra[:limit]]
    more = max(0, len(missing) - limit) + max(0, len(extra) - limit)
    return out + ([f"... {more} more"] if more else [])


# --- planning ------------------------------------------------------------------------------------------------
def _rename_items(conn, meta: SnapshotMeta, model_b: DatabaseSchema, applied: list[str]) -> list[Item]:
    """Undo the migrations' renames by name (newest first), where the current schema and B agree it applies."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.schema.introspect import introspect_in_transaction

    items: list[Item] = []
    renames = [r for m in snapshot_chain(meta, applied) for r in m.renames]
    for r in reversed(renames):
        now = introspect_in_transaction(conn)
        tables_now, tables_b = _qkey(now), _qkey(model_b)
        if r.kind == "table":
            old_key, new_key = f"{r.schema_}.{r.old}", r.new
            if new_key not in tables_now or old_key in tables_now or old_key not in tables_b or new_key in tables_b:
                continue
            new_schema, new_table = new_key.split(".", 1)
            steps = []
            if new_schema != r.schema_:
                steps.append(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(_ident(new_schema, new_table),
                                                                           _ident(r.schema_)))
            if new_table != r.old:
                steps.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(r.schema_, new_table),
                                                                          _ident(r.old)))
            label = f"table {new_key} -> {old_key}"
        else:
            key = f"{r.schema_}.{r.table}"
            if key not in tables_now or key not in tables_b:
                continue
            cols_now = {_unquote(c) for c in now.tables[tables_now[key]].columns}
            cols_b = {_unquote(c) for c in model_b.tables[tables_b[key]].columns}
            if r.new not in cols_now or r.old in cols_now or r.old not in cols_b or r.new in cols_b:
                continue
            steps = [sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(_ident(r.schema_, r.table),
                                                                            _ident(r.new), _ident(r.old))]
            label = f"column {key}.{r.new} -> {r.old}"
        for step in steps:
            text = step.as_string(conn)
            conn.execute(text)
            items.append(Item(-3, label, sql=text))
    return items


def _order_breaks(ta, tb) -> bool:
    """True when adding B's missing columns at the end cannot give B's column order."""
    a_cols = [c.name for c in ta.ordered_columns()]
    b_cols = [c.name for c in tb.ordered_columns()]
    regenerated = {c for c in a_cols if c in tb.columns and
                   (ta.columns[c].generated, ta.columns[c].generation_expr) !=
                   (tb.columns[c].generated, tb.columns[c].generation_expr)}
    result = [c for c in a_cols if c in tb.columns and c not in regenerated]
    result += [c for c in b_cols if c not in result]
    return result != b_cols


def plan_reverse(ctx, meta: SnapshotMeta) -> ReversePlan:
    """Plan, merge kept data, and prove on a shadow copy. Raises ProofFailed (nothing changed) when unproven."""
    # lazy: psycopg loads on the first database call; the thread pool loads only for parallel work
    import psycopg

    from sage_agent.db.connect import connect
    from sage_agent.ops.schema.compare import _server_major, open_source, read_schema, shadow_copy
    from sage_agent.ops.schema.diff import diff_schemas
    from sage_agent.ops.schema.introspect import introspect_in_transaction
    from sage_agent.ops.snapshots.store import count_rows, list_tables, online_versions, user_schemas

    server_major = ctx.server.major
    admin_url = ctx.admin_url
    with ctx.connect(ctx.migration_url) as conn:
        schemas_now = user_schemas(conn)
        counts = count_rows(conn, list_tables(conn, schemas_now))
        history = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
        versions_now = [r[0] for r in conn.execute(
            "select version from supabase_migrations.schema_migrations order by 1")] if history else []
        online_now = online_versions(conn)
        undo_online = _online_undo(conn, online_now, meta)
        conn.rollback()
    fingerprint = _fingerprint(ctx.migration_url, server_major)
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
        ctx.say(f"loading snapshot {meta.name} into a shadow database and copying the current schema")
        fb = pool.submit(lambda: stack.enter_context(open_source(ctx, meta.name, admin_url, "snapshot")))
        fs = pool.submit(lambda: stack.enter_context(shadow_copy(admin_url, ctx.migration_url, "rollback",
                                                                 keep_privileges=True)))
        b, shadow = fb.result(), fs.result()
        fm = pool.submit(read_schema, b.url)
        shadow_major = _server_major(admin_url)
        snapshot_dump = normalized_schema_dump(b.url, shadow_major)
        model_b = fm.result()
        items: list[Item] = []
        with connect(shadow) as sconn:
            items += _rename_items(sconn, meta, model_b, versions_now)
            renamed = introspect_in_transaction(sconn)
            ra, rb = _qkey(renamed), _qkey(model_b)
            rebuild = sorted(k for k in set(ra) & set(rb) if not renamed.tables[ra[k]].partitioned
                             and _order_breaks(renamed.tables[ra[k]], model_b.tables[rb[k]]))
            for n, key in enumerate(rebuild):
                items += _set_aside(key, n)
            for item in items:
                if item.phase > -3:  # the renames ran already
                    item.run(sconn, {})
            model_a = introspect_in_transaction(sconn)
            sconn.rollback()
        diff = diff_schemas(model_a, model_b)
        plan = _assemble(meta, items + undo_online, diff, model_a, model_b, renamed, rebuild, counts, versions_now,
                         online_now)
        plan.snapshot_dump, plan.target_fingerprint = snapshot_dump, fingerprint
        plan.shadow_major = shadow_major
        ctx.say(f"proving the reverse change on a shadow copy ({len(plan.items)} steps)")
        try:
            run_items(shadow, plan, target=False, lock_timeout_ms=None)
        except psycopg.Error as exc:
            raise ProofFailed(
                f"the reverse change does not apply on a shadow copy of the database: {_pg_message(exc)}. "
                "Nothing was changed", f"roll back with --replace (replaces the schemas; the plan shows what is "
                f"lost), or fix the schema by hand: *compare-schemas {ctx.target.env} {meta.name}") from None
        after = normalized_schema_dump(shadow, shadow_major)
    if after != snapshot_dump:
        difference = describe_difference(after, snapshot_dump)
        raise ProofFailed(
            "the reverse change is not proven: pg_dump --schema-only of the shadow copy after the plan differs from "
            f"snapshot {meta.name}'s. Nothing was changed. Remaining difference (- only in the snapshot, + only "
            "after the plan):\n" + "\n".join(difference),
            f"*rollback {meta.name} --replace replaces the schemas whole (its plan shows the rows lost), or "
            f"inspect with *compare-schemas {ctx.target.env} {meta.name}")
    return plan


def _set_aside(key: str, n: int) -> list[Item]:
    schema, table = key.split(".", 1)
    temp = f"_sage_rebuild_{n}"

    def capture(conn, state: dict) -> None:
        conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT * FROM ONLY {}").format(
            _ident(temp), _ident(schema, table)))
        seqs = conn.execute("select a.attname, pg_sequence_last_value(pg_get_serial_sequence(%s, a.attname)::regclass)"
                            " from pg_attribute a where a.attrelid = %s::regclass and a.attnum > 0 and not "
                            "a.attisdropped and pg_get_serial_sequence(%s, a.attname) is not null",
                            (quoted(schema, table), quoted(schema, table), quoted(schema, table))).fetchall()
        state.setdefault("sequences", {})[key] = {c: int(v or 0) for c, v in seqs}

    return [Item(-2, f"keep the rows of {key} in a temporary table", action=capture),
            Item(-1, f"drop {key} to re-create it in the snapshot's column order",
                 sql=sql.SQL("DROP TABLE {} CASCADE").format(_ident(schema, table)).as_string(None))]


@dataclass
class _Keep:
    kept: KeptData
    folder: Path
    snapshot: str


def snapshot_chain(meta: SnapshotMeta, applied: list[str]) -> list[SnapshotMeta]:
    """`meta` and the *apply snapshots taken after it, of the same database, between its history and now, oldest
    first: what a rollback to `meta` undoes passes through them (a later file may have dropped a table: its
    rows are in that file's snapshot; a later file may have renamed one)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.keep import verify_files
    from sage_agent.ops.snapshots.store import list_snapshots, load_snapshot_meta

    folder = Path(meta.sql_path).parent
    base = set(meta.history_versions or [])
    now = set(applied)
    chain = [meta] + [m for m in list_snapshots(folder.parent.parent)
                      if m.name != meta.name and m.origin == "apply" and m.created_at >= meta.created_at
                      and m.database_id == meta.database_id and base <= set(m.history_versions or []) <= now]
    chain.sort(key=lambda m: (m.created_at, len(m.history_versions or [])))
    project = folder.parent.parent
    for m in chain[1:]:  # their metadata and kept files are trusted only when they match their checksums
        load_snapshot_meta(project, m.name)
        problems = verify_files(folder, m.kept)
        if problems:
            raise OpError(f"snapshot {m.name} (its kept data serves this rollback) is damaged: {'; '.join(problems)}; "
                          "nothing was changed", f"restore the files of {m.name}, or use *rollback --replace")
    return chain


def gather_keeps(meta: SnapshotMeta, applied: list[str]) -> dict[str, list[_Keep]]:
    """The kept data a rollback to `meta` can use, per table: the earliest whole copy first (closest to the
    snapshot's state), then column values kept before it."""
    folder = Path(meta.sql_path).parent
    chain = snapshot_chain(meta, applied)
    out: dict[str, list[_Keep]] = {}
    for m in chain:
        for k in m.kept:
            out.setdefault(k.table, []).append(_Keep(k, folder, m.name))
    for table, ks in out.items():
        whole = next((i for i, k in enumerate(ks) if k.kept.whole), None)
        if whole is None:
            continue
        columns_before = [k for k in ks[:whole] if not k.kept.whole]
        out[table] = [ks[whole]] + columns_before
    return out


def _started_after(meta, online_now: list[str]) -> list[str]:
    """Files whose online apply started after the snapshot (a snapshot older than the online_versions field:
    keep the rows of files it has as applied, i.e. expanded)."""
    had = meta.online_versions if meta.online_versions is not None else meta.history_versions or []
    return [v for v in online_now if v not in had]


def _online_undo(conn, online_now: list[str], meta) -> list[Item]:
    """The expand steps (sync trigger, its function in supabase_migrations, the new column) of type changes
    that started after the snapshot: the schema diff sees the column and the trigger but not the function."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.online import expand as ex
    from sage_agent.ops.online import state as st

    states = st.read_all(conn)
    statements = [text for v in _started_after(meta, online_now) if v in states
                  for info in ex.infos(states[v]) if not info.get("swapped") for text in ex.unexpand_sql(info)]
    if not statements:
        return []
    return [Item(99.4, f"undo the online expand of {', '.join(_started_after(meta, online_now))} (sync trigger, "
                       "function, new column)", sql=";\n".join(statements))]


def _assemble(meta, items, diff, model_a, model_b, renamed, rebuild, counts, versions_now,
              online_now: list[str] = ()) -> ReversePlan:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.destroys import Destroyed

    qa, qb, qr = _qkey(model_a), _qkey(model_b), _qkey(renamed)
    keeps = gather_keeps(meta, versions_now)
    kept = {t: ks[0].kept for t, ks in keeps.items()}
    readd: dict[str, set[str]] = {}  # table -> columns the diff re-adds that get kept values
    for key, ks in keeps.items():
        if key in qa and key in qb:
            cols_a = {_unquote(c) for c in model_a.tables[qa[key]].columns}
            readd[key] = {c for k in ks for c in k.kept.value_columns if c not in cols_a}
    # re-added columns with kept values: add them nullable, restore, then SET NOT NULL
    late_not_null: list[Item] = []
    for step in diff.steps:
        if step.kind == "column" and step.action == "create" and step.sql.endswith(" NOT NULL"):
            t, c = step.object.rsplit(".", 1)
            key = ".".join(_split_qname(t))
            if _unquote(c) in readd.get(key, set()):
                step.sql = step.sql[: -len(" NOT NULL")]
                late_not_null.append(Item(DATA_PHASE + 0.02, f"set NOT NULL on {step.object}",
                                          sql=f"ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"))
    out = list(items) + [Item(s.phase, f"{s.action} {s.kind} {s.object}", sql=s.sql) for s in diff.steps
                         if s.transactional] + late_not_null
    plan = ReversePlan(meta=meta, items=out, diff=diff, rows=[], undone=[])
    plan.renamed_back = [i.label for i in items if i.phase == -3]
    plan.rebuilt = list(rebuild)
    untransactional = [s for s in diff.steps if not s.transactional]
    if untransactional:
        raise ProofFailed("the reverse change needs statements that cannot run in a transaction: "
                          + "; ".join(s.sql for s in untransactional[:3]) + ". Nothing was changed",
                          f"*rollback {meta.name} --replace, or undo those objects by hand")
    n = 0
    for key, ks in sorted(keeps.items()):
        if key not in qb:
            continue
        first, rest = ks[0], ks[1:]
        plan.items += _data_items(first.folder, first.kept, n, model_b.tables[qb[key]], created=key not in qa,
                                  rebuilt=key in rebuild, rebuild_index=rebuild.index(key) if key in rebuild else 0)
        n += 1
        for extra in rest:  # values of columns an earlier file dropped, on top of the rows
            plan.items += _data_items(extra.folder, extra.kept, n, model_b.tables[qb[key]], created=False,
                                      rebuilt=False, rebuild_index=0, phase_shift=0.005)
            n += 1
        for k in ks:
            plan.restored.append(f"{key} ({k.kept.rows} rows{', whole' if k.kept.whole else ': ' + ', '.join(k.kept.value_columns)}"
                                 f" from {k.snapshot})")
    for key in rebuild:
        if key not in kept:
            plan.items += _data_items(None, None, 0, model_b.tables[qb[key]], created=True, rebuilt=True,
                                      rebuild_index=rebuild.index(key))
    if meta.history_versions is not None or versions_now:
        keep_versions = meta.history_versions or []
        plan.undone = [v for v in versions_now if v not in keep_versions]
        if plan.undone:
            plan.items.append(Item(99, f"migrations {', '.join(plan.undone)} back to pending", target_only=True,
                                   sql=sql.SQL("DELETE FROM supabase_migrations.schema_migrations WHERE version IN "
                                               "({})").format(sql.SQL(", ").join(map(sql.Literal, plan.undone)))
                                   .as_string(None)))
    # a file whose online apply started after the snapshot: its done steps are undone with the schema, so its
    # progress row goes too (else the next *apply would skip steps the rollback undid)
    started_after = _started_after(meta, online_now)
    if started_after:
        plan.items.append(Item(99.5, f"online progress of {', '.join(started_after)} cleared (started after the "
                                     "snapshot: *apply runs the file from its first step)", target_only=True,
                               sql=sql.SQL("DELETE FROM supabase_migrations.sage_online WHERE version IN ({})")
                               .format(sql.SQL(", ").join(map(sql.Literal, started_after))).as_string(None)))
    # rows: kept and lost per table
    inverse_renames = {}
    for label in plan.renamed_back:
        if label.startswith("table "):
            new, old = label[6:].split(" -> ")
            inverse_renames[new] = old
    for table in sorted(set(counts) | set(qb)):
        now = counts.get(table)
        final = inverse_renames.get(table, table)
        k = kept.get(final)
        if now is None and table in inverse_renames.values():
            continue  # shown under its current name
        if now is not None and final not in qb:
            plan.rows.append(TableRows(table, now, None, 0, now, "dropped: the table was created after the snapshot"))
            plan.destroys.append(Destroyed("table", *table.split(".", 1), action="DROP TABLE (rollback)"))
        elif now is None:
            after = k.rows if k and k.whole else 0
            plan.rows.append(TableRows(table, None, after, after, 0,
                                       "re-created with its kept rows" if k and k.whole else "re-created (empty)"))
            plan.expected[table] = after
        elif k and k.whole and not k.key:
            plan.rows.append(TableRows(table, now, k.rows, min(now, k.rows), max(0, now - k.rows),
                                       "no primary key: replaced by the kept rows"))
            plan.expected[final] = k.rows
        else:
            how = "renamed back" if final != table else ("rebuilt, every row copied" if final in rebuild else "unchanged")
            if k and k.whole:
                how += f"; {k.rows} kept rows upserted by primary key"
            elif k:
                how += f"; values of {', '.join(k.value_columns)} restored by primary key"
            plan.rows.append(TableRows(table if final == table else f"{table} -> {final}", now,
                                       None if k and k.whole else now, now, 0, how))
            if not (k and k.whole):
                plan.expected[final] = now
    for step in diff.steps:
        if step.kind == "column" and step.action == "drop" and step.data_loss:
            t, c = step.object.rsplit(".", 1)
            key = ".".join(_split_qname(t))
            plan.values_lost.append(f"{key}.{_unquote(c)}")
            plan.destroys.append(Destroyed("column", *key.split(".", 1), _unquote(c), "DROP COLUMN (rollback)"))
        elif step.kind == "column" and step.action == "alter" and step.data_loss:
            t, c = step.object.rsplit(".", 1)
            key = ".".join(_split_qname(t))
            plan.destroys.append(Destroyed("column", *key.split(".", 1), _unquote(c), "ALTER TYPE (rollback)"))
    return plan


def _data_items(folder: Path | None, k: KeptData | None, n: int, tb, *, created: bool, rebuilt: bool,
                rebuild_index: int, phase_shift: float = 0.0) -> list[Item]:
    """Steps that put rows and values back into table `tb` (the snapshot's definition)."""
    schema, table = _split_qname(tb.qname)
    target = _ident(schema, table)
    key = f"{schema}.{table}"
    b_cols = [(_unquote(c.name), c) for c in tb.ordered_columns() if not c.generated]
    kept_name = f"_sage_kept_{n}"
    items: list[Item] = []
    if k is not None:
        def load(conn, state: dict, k=k) -> None:
            conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                _ident(kept_name), sql.SQL(", ").join(sql.SQL("{} {}").format(_ident(c), sql.SQL(t))
                                                      for c, t in k.columns)))
            with open(folder / k.file, "rb") as fh, conn.cursor().copy(
                    sql.SQL("COPY {} FROM STDIN").format(_ident(kept_name))) as copy:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    copy.write(block)
        items.append(Item(DATA_PHASE + phase_shift, f"load kept data of {key} from supabase/snapshots/{k.file}",
                          action=load))
    kept_cols = {c for c, _ in k.columns} if k else set()
    identity = any(c.identity == "a" for _, c in b_cols)
    overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if identity else sql.SQL("")
    if rebuilt:
        temp = _ident(f"_sage_rebuild_{rebuild_index}")

        def refill(conn, state: dict, k=k) -> None:
            have = {r[0] for r in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
                (f"pg_temp._sage_rebuild_{rebuild_index}",)).fetchall()}
            cols, exprs = [], []
            join = sql.SQL("")
            for name, col in b_cols:
                if k is not None and not k.whole and name in kept_cols and name not in k.key:
                    cols.append(name)
                    exprs.append(sql.SQL("k.{}").format(_ident(name)))
                elif name in have:
                    cols.append(name)
                    exprs.append(sql.SQL("CAST(c.{} AS {})").format(_ident(name), sql.SQL(col.type)))
            if k is not None and not k.whole:
                join = sql.SQL(" LEFT JOIN {} k ON {}").format(_ident(kept_name), sql.SQL(" AND ").join(
                    sql.SQL("k.{0} = c.{0}").format(_ident(c)) for c in k.key))
            conn.execute(sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {} c{}").format(
                target, sql.SQL(", ").join(map(_ident, cols)), overriding, sql.SQL(", ").join(exprs), temp, join))
            _set_sequences(conn, schema, table, state.get("sequences", {}).get(key, {}))
        items.append(Item(DATA_PHASE + 0.01, f"copy the rows of {key} back (rebuilt)", action=refill))
        if k is not None and k.whole:
            items.append(_upsert(k, kept_name, target, b_cols))
        return items
    if k is None:
        return items
    if created:
        cols = [c for c, _ in k.columns if any(c == name for name, _ in b_cols)]

        def insert(conn, state: dict, k=k, cols=cols) -> None:
            conn.execute(sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {}").format(
                target, sql.SQL(", ").join(map(_ident, cols)), overriding, sql.SQL(", ").join(map(_ident, cols)),
                _ident(kept_name)))
            _set_sequences(conn, schema, table, k.sequences)
        items.append(Item(DATA_PHASE + 0.01, f"insert the kept rows of {key}", action=insert))
    elif k.whole and k.key:
        items.append(_upsert(k, kept_name, target, b_cols))
    elif k.whole:
        cols = [c for c, _ in k.columns if any(c == name for name, _ in b_cols)]
        items.append(Item(UPSERT_PHASE, f"replace the rows of {key} (no primary key) with the kept rows",
                          sql=None, action=lambda conn, state, cols=cols: (
                              conn.execute(sql.SQL("DELETE FROM {}").format(target)),
                              conn.execute(sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {}").format(
                                  target, sql.SQL(", ").join(map(_ident, cols)), overriding,
                                  sql.SQL(", ").join(map(_ident, cols)), _ident(kept_name))))))
    else:
        values = [c for c in k.value_columns if any(c == name for name, _ in b_cols)]
        if values:
            stmt = sql.SQL("UPDATE {} t SET {} FROM {} k WHERE {}").format(
                target, sql.SQL(", ").join(sql.SQL("{0} = k.{0}").format(_ident(c)) for c in values),
                _ident(kept_name), sql.SQL(" AND ").join(sql.SQL("t.{0} = k.{0}").format(_ident(c)) for c in k.key))
            items.append(Item(DATA_PHASE + 0.01 + phase_shift, f"restore {', '.join(values)} of {key} by primary key",
                              action=lambda conn, state, stmt=stmt: _quietly(conn, schema, table, stmt)))
    return items


def _upsert(k: KeptData, kept_name: str, target, b_cols) -> Item:
    cols = [c for c, _ in k.columns if any(c == name for name, _ in b_cols)]
    rest = [c for c in cols if c not in k.key]
    update = (sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(_ident(c))
                                                                    for c in rest)) if rest else sql.SQL("DO NOTHING"))
    identity = any(c.identity == "a" for _, c in b_cols)
    stmt = sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {} ON CONFLICT ({}) {}").format(
        target, sql.SQL(", ").join(map(_ident, cols)), sql.SQL(" OVERRIDING SYSTEM VALUE") if identity else sql.SQL(""),
        sql.SQL(", ").join(map(_ident, cols)), _ident(kept_name), sql.SQL(", ").join(map(_ident, k.key)), update)
    return Item(UPSERT_PHASE, f"upsert the kept rows of {k.table} by primary key",
                action=lambda conn, state: _quietly(conn, k.schema_, k.name, stmt))


def _quietly(conn, schema: str, table: str, stmt) -> None:
    """Run a restore statement with the table's enabled user triggers switched off (an `updated_at` trigger must
    not stamp restored rows), and on again after, in the same transaction."""
    names = [r[0] for r in conn.execute(
        "select tgname from pg_trigger where tgrelid = %s::regclass and not tgisinternal and tgenabled = 'O'",
        (quoted(schema, table),)).fetchall()]
    for name in names:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(_ident(schema, table), _ident(name)))
    conn.execute(stmt)
    for name in names:
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(_ident(schema, table), _ident(name)))


def _set_sequences(conn, schema: str, table: str, before: dict[str, int]) -> None:
    """Identity/serial sequences of a re-created table continue after the old values and the restored rows."""
    for (column,) in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "and pg_get_serial_sequence(%s, attname) is not null", (quoted(schema, table), quoted(schema, table))).fetchall():
        top = conn.execute(sql.SQL("select max({})::bigint from {}").format(_ident(column), _ident(schema, table))
                           ).fetchone()[0]
        value = max(before.get(column, 0), top or 0)
        if value >= 1:
            conn.execute("select setval(pg_get_serial_sequence(%s, %s), %s)", (quoted(schema, table), column, value))


def _pg_message(exc) -> str:
    diag = getattr(exc, "diag", None)
    return ((diag.message_primary if diag and diag.message_primary else str(exc)) or "").strip()


def run_items(url: str, plan: ReversePlan, *, target: bool, lock_timeout_ms: int | None) -> None:
    """Every step in phase order in ONE transaction (commit at the end; any error rolls all of it back)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    state: dict = {}
    with connect(url) as conn:
        with conn.transaction():
            conn.execute("set local check_function_bodies = off")
            if lock_timeout_ms:
                conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_ms)}ms")))
            conn.execute("set local statement_timeout = 0")
            for item in sorted(plan.items, key=lambda i: i.phase):
                if item.target_only and not target:
                    continue
                item.run(conn, state)


def _fingerprint(url: str, server_major: int) -> str:
    return hashlib.sha256("\n;\n".join(normalized_schema_dump(url, server_major)).encode()).hexdigest()


def execute(ctx, plan: ReversePlan) -> None:
    """Re-check the schema is still the planned one, then run the plan on the target in one transaction."""
    # lazy: psycopg loads on the first database call
    import psycopg

    if _fingerprint(ctx.migration_url, ctx.server.major) != plan.target_fingerprint:
        raise OpError("the schema changed since the rollback was planned; nothing was changed",
                      f"run *rollback {plan.meta.name} again to plan against the current schema")
    try:
        run_items(ctx.migration_url, plan, target=True, lock_timeout_ms=int(ctx.settings.lock_timeout_ms))
    except psycopg.Error as exc:
        raise OpError(f"rollback to {plan.meta.name} failed and its transaction was rolled back: the database is "
                      f"unchanged. Cause: {_pg_message(exc)}",
                      f"fix the cause and run *rollback {plan.meta.name} again, or use --replace") from None


def verify(ctx, plan: ReversePlan) -> tuple[list[list[object]], list[str]]:
    """After commit: row counts where the plan knows them exactly, and the schema dump against the snapshot's."""
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import count_rows, list_tables, user_schemas

    with ctx.connect(ctx.migration_url) as conn:
        counts = count_rows(conn, list_tables(conn, user_schemas(conn)))
        conn.rollback()
    problems, rows = [], []
    for table, want in sorted(plan.expected.items()):
        got = counts.get(table)
        ok = got == want
        if not ok:
            problems.append(f"{table}: expected {want} rows, found {got}")
        rows.append([table, want, "-" if got is None else got, "ok" if ok else "MISMATCH"])
    now = normalized_schema_dump(ctx.migration_url, ctx.server.major)
    want = without_shadow_extensions(plan.snapshot_dump, now)
    if plan.shadow_major == ctx.server.major and now != want:
        problems.append("schema differs from the snapshot after the rollback:\n"
                        + "\n".join(describe_difference(now, want)))
    return rows, problems


HISTORY = HISTORY_SCHEMA
