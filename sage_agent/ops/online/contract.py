"""The end of an expand/contract, either way: `*apply --complete` (contract: drop the old columns and the sync
triggers) and `*rollback FILE` of an online file (undo its online steps, history row included).

Why `*rollback` is instant here: until the contract, the sync trigger keeps the old column current on every
write, so swapping the names back (one short transaction under the online lock_timeout, retried) loses no row
written meanwhile. A half-done file is undone the same way when every step done so far belongs to an
expand/contract (they only add a column, a trigger and indexes on that column); other done steps (an index,
a validated constraint, a data backfill) cannot be undone in one short transaction, so the answer is to
continue with `*apply` or go back to the snapshot `*apply` took.

A primary key's foreign keys come back NOT VALID in the swap-back and are validated afterwards, each in its own
transaction (a scan under SHARE UPDATE EXCLUSIVE: nobody waits). Until the last one is done the state row stays,
as `rolling_back` with the VALIDATE statements left, so a kill in between is finished by `*rollback FILE` again or
by the next `*apply` (finish_rollback), and `*migrations` says so.
"""

from __future__ import annotations

from pathlib import Path

from sage_agent.config import settings
from sage_agent.ops.migrations.history import delete_version
from sage_agent.ops.online import expand as ex
from sage_agent.ops.online import state as st
from sage_agent.ops.online import versions as vs
from sage_agent.ops.online.executor import options_from
from sage_agent.ops.online.locks import LockGaveUp, with_lock_retries
from sage_agent.ops.result import OpError, OpResult, Table

EXPAND_KINDS = {"expand", "backfill", "expand_index", "expand_check", "swap", "version"}
NOTHING = "nothing was changed"  # what a failed single transaction of _run_tx says: true of that transaction only
LOCK_HINT = "end that session (or wait for it)"


def find(conn, name: str) -> st.OnlineState | None:
    """The online state row a `*rollback` argument names: a version, `VERSION_name` or `VERSION_name.sql`."""
    wanted = Path(name.strip()).name.removesuffix(".sql")
    for state in st.read_all(conn).values():
        if wanted in (state.version, f"{state.version}_{state.name}"):
            return state
    return None


def _filename(state: st.OnlineState) -> str:
    return f"{state.version}_{state.name}.sql"


def _run_tx(ctx, conn, statements, after, what: str, table: str | None, long: bool = False) -> None:
    """One short transaction under the online lock_timeout, retried naming the holder (`long`: a validation,
    which blocks nobody, under the long statement_timeout). `statements`: a list, or a function that runs them
    in the transaction (what it runs is read from the catalog there)."""
    opts = options_from(settings(), None, None, None, None)

    def run() -> None:
        with conn.transaction():
            conn.execute("select set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                         (f"{opts.retry.lock_timeout_ms}ms", opts.long_timeout if long else opts.statement_timeout))
            if callable(statements):
                statements(conn)
            else:
                for text in statements:
                    conn.execute(text, prepare=False)
            after()

    try:
        with_lock_retries(conn, run, opts.retry, table=table, what=what, say=ctx.say)
    except LockGaveUp as exc:
        raise OpError(f"{exc}; {NOTHING}", f"{LOCK_HINT}, then {what} again", exit_code=1) from None
    except ex.CannotCarry as exc:
        raise OpError(f"{what}: a view over the changed column cannot be dropped and made again in one short "
                      f"transaction: {exc}; {NOTHING}", f"drop or change that, then {what} again",
                      exit_code=1) from None


def undo_plan(state: st.OnlineState, conn) -> tuple[list[str], list[str]]:
    """(statements that undo the file's online steps, reasons it cannot be undone here). The views a swap back
    drops and makes again are the ones over the column now (undo runs them from the catalog again, in its
    transaction). Raises ex.CannotCarry when one of them cannot be made again."""
    expand_lines = {s["line"] for s in state.steps if s["kind"] == "expand"}
    other = [f"step {n} ({s['kind']}, line {s['line']})" for n, s in enumerate(state.steps[:state.done], 1)
             if s["kind"] not in EXPAND_KINDS or s["line"] not in expand_lines]
    if other:
        return [], other
    statements: list[str] = vs.drop_sql(state.names.get(vs.KEY) or {})
    for info in reversed(ex.infos(state)):
        if info.get("swapped"):
            statements += ex.unswap_sql(ex.undo_views(conn, info))
        else:
            statements += ex.unexpand_sql(info)
    return statements, []


def undo(conn, state: st.OnlineState) -> None:
    """Run the undo_plan in the caller's transaction, each swap back with the views over its column read here."""
    for text in vs.drop_sql(state.names.get(vs.KEY) or {}):  # the views read the new column: they go first
        conn.execute(text, prepare=False)
    for info in reversed(ex.infos(state)):
        if info.get("swapped"):
            ex.run_swap(conn, info, ex.unswap_sql, info["column"])
        else:
            for text in ex.unexpand_sql(info):
                conn.execute(text, prepare=False)


def finish_rollback(ctx, conn, state: st.OnlineState) -> list[str]:
    """Validate the foreign keys an interrupted *rollback FILE put back NOT VALID, one transaction each (each
    recorded done in its own transaction), then drop the state row. Returns the statements run."""
    filename, ran = _filename(state), []
    table = (ex.infos(state) or [{}])[0].get("table")
    while state.current.get("validate"):
        text = state.current["validate"][0]

        def after(state=state) -> None:
            state.current = {**state.current, "validate": state.current["validate"][1:]}
            st.save(conn, state)

        _run_tx(ctx, conn, [text], after, f"*rollback {filename} (validating a foreign key)", table, long=True)
        ran.append(text)
    conn.execute(f"delete from {st.TABLE} where version = %s and status = 'rolling_back'", (state.version,))
    return ran


def _validations_or_say(ctx, conn, state: st.OnlineState) -> list[str]:
    """finish_rollback, with an error that says the swap back is done and how the rest is finished."""
    # lazy: psycopg loads on the first database call
    import psycopg

    try:
        return finish_rollback(ctx, conn, state)
    except (psycopg.Error, OpError) as exc:
        cause = _cause(exc)
        left = len(state.current.get("validate", []))
        raise OpError(f"{_filename(state)} is swapped back (pending again, every row kept), but {left} foreign key(s) "
                      f"it put back NOT VALID are not validated yet: {cause}",
                      f"*rollback {_filename(state)} again (or *apply) validates them; *migrations shows the file as "
                      "`rollback unfinished` until then", exit_code=1) from None


def rollback_online(ctx, state: st.OnlineState, conn) -> OpResult:
    """*rollback FILE: swap an expanded type change back, or undo a half-done online file's expand steps."""
    filename = _filename(state)
    if state.status == "rolling_back":
        return _finish_rollback_op(ctx, conn, state)
    try:
        statements, blockers = undo_plan(state, conn)
    except ex.CannotCarry as exc:
        raise OpError(f"*rollback {filename}: a view over the changed column cannot be dropped and made again in one "
                      f"short transaction: {exc}; nothing was changed",
                      f"drop or change that, then *rollback {filename} again", exit_code=1) from None
    if blockers:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.migrations.commands import snapshot_before

        how = "is applied with an expanded type change" if state.status == "expanded" else \
            f"is half done online ({state.describe()})"
        snapshot = snapshot_before(ctx.project, filename)
        back = (f"*rollback {snapshot} (the snapshot *apply took) goes back to before the file" if snapshot else
                "*rollback SNAPSHOT goes back to a snapshot taken before the file (*apply took none: --snapshot no)")
        raise OpError(f"{filename} {how}, and its done steps {', '.join(blockers)} are not part of an "
                      "expand/contract: they cannot be undone in one short transaction",
                      ("" if state.status == "expanded" else f"*apply continues it from step {state.done + 1}; or ")
                      + back, exit_code=1)
    applied = state.status == "expanded"
    infos = ex.infos(state)
    validations = [text for i in infos if i.get("swapped") for text in ex.validate_sql(i)]
    what = ", ".join(f"{i['table']}.{i['column']} back to {i['oldtype']}" for i in infos) or "nothing to undo yet"
    ctx.confirm_destructive(
        f"Undo the online change of {filename} on {ctx.target.display_url}: {what}; the new column(s) are dropped "
        "(every row written meanwhile is kept: the trigger kept the old column current)"
        + ("; the file goes back to pending." if applied else "; the file stays pending."),
        plan="\n".join(statements + validations) or "(no schema change: only the online state row goes)")
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.locking import migration_lock

    with migration_lock(ctx, "*rollback"):
        def after() -> None:
            if applied:
                delete_version(conn, state.version)
            if validations:  # kept until the foreign keys put back NOT VALID are validated: a kill is resumable
                state.status, state.current, state.detail = "rolling_back", {"validate": validations}, None
                st.save(conn, state)
            else:
                st.finish(conn, state.version)

        _run_tx(ctx, conn, lambda conn: undo(conn, state), after, f"*rollback {filename}",
                infos[0]["table"] if infos else None)
        statements += _validations_or_say(ctx, conn, state)
    rows = [[i["table"], i["column"], i["newtype"], i["oldtype"], "swapped back" if i.get("swapped") else
             "new column dropped"] for i in infos]
    return OpResult(operation="db-rollback",
                    summary=f"Undid the online change of {filename}: "
                            f"{'it is pending again' if applied else 'nothing of it is left'}, every row kept",
                    facts={"migration": filename, "statements": len(statements), "pending_again": applied},
                    tables=[Table(title="Columns", columns=["table", "column", "new type", "back to", "how"],
                                  rows=rows)],
                    next_steps=["*migrations"], data={"statements": statements})


def _finish_rollback_op(ctx, conn, state: st.OnlineState) -> OpResult:
    """*rollback FILE again after a rollback stopped before its validations: only those are left to run."""
    filename, left = _filename(state), list(state.current.get("validate", []))
    ctx.confirm_destructive(
        f"Finish the rollback of {filename} on {ctx.target.display_url}: the swap back is done; {len(left)} foreign "
        "key(s) it put back NOT VALID are validated (a scan each; reads and writes go on). The file stays pending.",
        plan="\n".join(left) or "(nothing left: only the online state row goes)")
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.migrations.locking import migration_lock

    with migration_lock(ctx, "*rollback"):
        ran = _validations_or_say(ctx, conn, state)
    return OpResult(operation="db-rollback",
                    summary=f"Finished the rollback of {filename}: {len(ran)} foreign key(s) validated; it is pending",
                    facts={"migration": filename, "statements": len(ran), "pending_again": True},
                    next_steps=["*migrations"], data={"statements": ran})


def _contract_plan(state: st.OnlineState) -> list[str]:
    """What --complete runs for one file: a versioned file's swaps first (each its own transaction, then the
    foreign-key validations), then one transaction: the version schema, the old columns and the triggers dropped."""
    out = []
    if vs.KEY in state.names:
        for info in ex.infos(state):
            if not info.get("swapped"):
                out += ex.swap_sql(info)
            out += ex.validate_sql(info)
    return out + vs.drop_sql(state.names.get(vs.KEY) or {}) + \
        [s for info in ex.infos(state) for s in ex.contract_sql(info)]


def _cause(exc: Exception) -> str:
    """The first line of what stopped a step, without _run_tx's claim about its own transaction."""
    return exc.message.removesuffix(f"; {NOTHING}") if isinstance(exc, OpError) else str(exc).splitlines()[0]


def _swap_versioned(ctx, conn, state: st.OnlineState, progress: dict) -> None:
    """The swaps of a versioned file (each recorded in the state row in its own transaction, so a kill is resumed by
    --complete again), then the validations of the foreign keys they re-created NOT VALID. `progress["at"]` names
    the column under way; state.names takes a swap only once its transaction has committed."""
    filename = _filename(state)
    for key in ex.info_keys(state):
        info = state.names[key]
        progress["at"] = info
        if not info.get("swapped"):
            made: dict = {}

            def run(conn, info=info) -> None:
                made.update(ex.run_swap(conn, info, ex.swap_sql, info["column"]), swapped=True)

            def record(key=key) -> None:
                st.save(conn, st.OnlineState(**{**vars(state), "names": {**state.names, key: made}}))

            _run_tx(ctx, conn, run, record, f"*apply --complete {filename} (the swap)", info["table"])
            state.names[key] = made
        for text in ex.validate_sql(state.names[key]):
            progress["validating"] = True
            _run_tx(ctx, conn, [text], lambda: None, f"*apply --complete {filename} (validating a foreign key)",
                    info["table"], long=True)
        progress.pop("validating", None)
    progress["at"] = None


def _stopped(exc: Exception, state: st.OnlineState, progress: dict, completed: list[str], later: list[str]) -> OpError:
    """What a failed --complete changed and what it did not, and the next step: each swap of a versioned file and
    each file's contract commits on its own, so "nothing was changed" is true only when none of them has."""
    cause, filename = _cause(exc), _filename(state)
    col = lambda i: f"{i['table']}.{i['column']}"  # noqa: E731
    swapped = [col(i) for i in ex.infos(state) if i.get("swapped")] if vs.KEY in state.names else []
    done = [f"{', '.join(completed)} completed (old columns dropped)"] if completed else []
    if swapped:
        done.append(f"{', '.join(swapped)} swapped (recorded)" + (
            f", but the foreign key(s) {col(progress['at'])}'s swap put back NOT VALID are not validated yet"
            if progress.get("validating") else ""))
    first = LOCK_HINT if isinstance(exc, OpError) and (exc.hint or "").startswith(LOCK_HINT) else "fix that"
    if not done:
        return OpError(f"*apply --complete stopped in {filename}: {cause}; {NOTHING}",
                       f"{first}, then *apply --complete again", exit_code=1)
    left = [f"{col(i)} not swapped" for i in ex.infos(state) if vs.KEY in state.names and not i.get("swapped")]
    left.append("the version schema, the old columns and the sync triggers stay" if vs.KEY in state.names else
                f"{filename}'s old columns and sync triggers stay")
    if later:
        left.append(f"{', '.join(later)} not started")
    at = progress.get("at")
    go_on = f"it goes on from {col(at)} without swapping twice" if at and not progress.get("validating") else \
        "it goes on without swapping twice" if swapped else f"it goes on with {filename}"
    back = f"*rollback {filename} swaps the done ones back (every row kept)" if swapped else \
        f"*rollback {filename} undoes it (instant, every row kept)"
    return OpError(f"*apply --complete stopped in {filename}: {cause}. done: {'; '.join(done)}; "
                   f"not done: {'; '.join(left)}", f"{first}, then *apply --complete again: {go_on}; or {back}",
                   exit_code=1)


def complete(ctx, conn, target: str | None) -> OpResult:
    """*apply --complete: drop the old columns and sync triggers of expanded type changes (destructive)."""
    states = [s for s in st.read_all(conn).values() if s.status == "expanded"]
    if target:
        wanted = Path(target.strip()).name.removesuffix(".sql")
        states = [s for s in states if wanted in (s.version, f"{s.version}_{s.name}")]
    if not states:
        summary = f"{target} has no expanded type change to complete" if target else \
            "No expanded type change waits for --complete"
        return OpResult(operation="db-apply-migration", summary=summary, facts={"completed": 0},
                        next_steps=["*migrations"])
    plan, rows, versioned = [], [], []
    for state in states:
        plan += _contract_plan(state)
        for info in ex.infos(state):
            rows.append([_filename(state), info["table"], info["old"], info["oldtype"]])
        if vs.KEY in state.names:
            versioned.append(state)
    swap = "" if not versioned else (
        f" First the swap of {', '.join(_filename(s) for s in versioned)} (versioned): the base table's column takes "
        "the new type, so every client still on the base schema must be stopped or redeployed on the version "
        f"schema ({', '.join(x for s in versioned for x in s.names[vs.KEY].get('schemas', []))}) before this; the "
        "version schema is dropped with the old columns (statements prepared through it go on against the table).")
    ctx.confirm_destructive(
        f"Complete {len(states)} expanded type change(s) on {ctx.target.display_url}: drop the old column(s) "
        f"{', '.join(r[1] + '.' + r[2] for r in rows)} and their sync triggers.{swap} After this, *rollback FILE is "
        "no longer instant.", plan="\n".join(plan))
    # lazy: psycopg loads on the first database call
    import psycopg

    from sage_agent.ops.migrations.locking import migration_lock

    completed: list[str] = []
    with migration_lock(ctx, "*apply --complete"):
        for n, state in enumerate(states):
            progress: dict = {}
            try:
                if vs.KEY in state.names:  # its swaps run here, each committed on its own
                    _swap_versioned(ctx, conn, state, progress)
                statements = vs.drop_sql(state.names.get(vs.KEY) or {}) + \
                    [s for info in ex.infos(state) for s in ex.contract_sql(info)]
                _run_tx(ctx, conn, statements, lambda state=state: st.finish(conn, state.version),
                        f"*apply --complete {_filename(state)}", ex.infos(state)[0]["table"])
            except (OpError, psycopg.Error) as exc:
                raise _stopped(exc, state, progress, completed, [_filename(s) for s in states[n + 1:]]) from None
            completed.append(_filename(state))
    return OpResult(operation="db-apply-migration",
                    summary=f"Completed {len(states)} expanded type change(s): old columns and triggers dropped",
                    facts={"completed": len(states)},
                    tables=[Table(title="Dropped", columns=["migration", "table", "column", "type"], rows=rows)],
                    next_steps=["*migrations"], data={"statements": plan})
