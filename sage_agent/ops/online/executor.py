"""Run one file's online sequence (planner.OnlinePlan) step by step, recording each step as done in the state
row (sage_online) so that a killed process, a terminated backend or Ctrl-C leaves a state `*apply` continues.

Every step takes its lock under a short lock_timeout and is retried with backoff (locks.py). Steps that can
run in a transaction record themselves done in that same transaction; CONCURRENTLY steps record "started"
first, so a run that finds an INVALID index of its own drops it and builds it again. The Supabase CLI's
history row is written in the transaction that deletes the state row: only a finished file is "applied".
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

from psycopg import sql

from sage_agent.ops.migrations.applier import FileOutcome, _error_text, reset_session
from sage_agent.ops.migrations.history import insert_version
from sage_agent.ops.online import expand as ex
from sage_agent.ops.online import state as st
from sage_agent.ops.online import versions as vs
from sage_agent.ops.online.backfill import BackfillError, BatchPolicy, run_backfill, stop_at_batch_boundary
from sage_agent.ops.online.locks import LockGaveUp, RetryPolicy, with_lock_retries
from sage_agent.ops.online.planner import OnlinePlan, Step


@dataclass
class OnlineOptions:
    retry: RetryPolicy
    batch: BatchPolicy
    statement_timeout: str  # for short steps (transactions, batches)
    long_timeout: str  # for index builds and validations, which block nobody ("0": none)


def options_from(settings, lock_timeout: str | None, statement_timeout: str | None, batch_rows: int | None,
                 batch_pause_ms: int | None) -> OnlineOptions:
    """SAGE_ONLINE_* settings, overridden by the run's own inputs."""
    lock_ms = settings.online_lock_timeout_ms
    if lock_timeout:
        lock_ms = _to_ms(lock_timeout)
    retry = RetryPolicy(lock_timeout_ms=lock_ms, retries=settings.online_retries,
                        backoff_ms=settings.online_backoff_ms, backoff_max_ms=settings.online_backoff_max_ms)
    batch = BatchPolicy(rows=batch_rows or settings.online_batch_rows,
                        pause_ms=settings.online_batch_pause_ms if batch_pause_ms is None else batch_pause_ms)
    return OnlineOptions(retry, batch, statement_timeout or f"{settings.statement_timeout_ms}ms",
                         statement_timeout or "0")


def _to_ms(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|min|h)?\s*", text)
    if not m:
        raise ValueError(f"lock_timeout {text!r}: use a number with ms, s, min or h")
    return int(m.group(1)) * {"ms": 1, None: 1, "s": 1000, "min": 60_000, "h": 3_600_000}[m.group(2)]


def steps_json(plan: OnlinePlan) -> list[dict]:
    """Every field of every step: a resumed run continues with these, whatever a later build would plan."""
    return [asdict(s) for s in plan.steps]


def file_checksum(file_plan) -> str:
    """What the state row knows the user's file by: its statements (whitespace aside), never DB Sage's own step
    text, so an upgrade of DB Sage that words or plans the steps differently still continues the file."""
    text = "\x1e".join(" ".join(t.split()) for t in file_plan.statements)
    return FILE_CHECKSUM + hashlib.sha256(text.encode()).hexdigest()


FILE_CHECKSUM = "file:"
DESCRIBED = {"expand_index", "expand_check", "swap"}  # steps whose text only describes what the expand record runs


def stored_plan(state: st.OnlineState) -> OnlinePlan:
    """The steps a state row of this build recorded when the file started (unknown fields of a later build go)."""
    known = {f.name for f in fields(Step)}
    return OnlinePlan([Step(**{k: v for k, v in d.items() if k in known}) for d in state.steps])


def _same_steps(state: st.OnlineState, plan: OnlinePlan) -> bool:
    """A row of a build before file checksums (steps: kind, line, text; checksum: of that text) matches this plan:
    the same steps from the same lines, and the same SQL where the step runs its text (the file's statement, as
    written or in its online form); an expand that ran has the table, column, type and USING the file gives now
    (its record in the row), and one that did not, the same text. Steps that only describe what the expand's
    record runs (indexes, checks, swap) may be worded differently."""
    if len(state.steps) != len(plan.steps):
        return False
    for old, new in zip(state.steps, plan.steps):
        if (old.get("kind"), old.get("line")) != (new.kind, new.line):
            return False
        if new.kind == "expand" and isinstance(state.names.get(new.expand["key"]), dict):
            info = state.names[new.expand["key"]]
            if any(info.get(k) != new.expand[k] for k in ("table", "column", "newtype", "using")):
                return False
        elif new.kind not in DESCRIBED and old.get("sql") != new.sql:
            return False
    return True


def resumable(state: st.OnlineState, file_plan, plan: OnlinePlan) -> OnlinePlan | None:
    """The plan to continue an unfinished online file with, or None when the file changed since it started. A row
    of this build: the steps it recorded, when the file's statements are the same. A row of an earlier build (its
    checksum is of its step text): this build's plan of the file, when it has the same steps (_same_steps)."""
    if state.checksum.startswith(FILE_CHECKSUM):
        return stored_plan(state) if state.checksum == file_checksum(file_plan) else None
    return plan if state.checksum == plan.checksum() or _same_steps(state, plan) else None


class StepFailed(Exception):
    pass


def _index_state(conn, name: str | None) -> str:
    """absent | valid | invalid"""
    row = conn.execute("select i.indisvalid from pg_index i where i.indexrelid = to_regclass(%s)", (name,)).fetchone()
    return "absent" if row is None else ("valid" if row[0] else "invalid")


def _constraint_names(conn, table: str) -> set[str]:
    return {r[0] for r in conn.execute("select conname from pg_constraint where conrelid = to_regclass(%s)",
                                       (table,))}


class Runner:
    def __init__(self, conn, file_plan, plan: OnlinePlan, opts: OnlineOptions, *, say: Callable[[str], None],
                 progress, should_stop: Callable[[], bool]):
        self.conn, self.file_plan, self.plan, self.opts = conn, file_plan, plan, opts
        self.say, self.progress, self.should_stop = say, progress, should_stop
        mig = file_plan.migration
        self.state = st.OnlineState(mig.version, mig.name, file_checksum(file_plan), steps_json(plan))

    # --- the kinds of step ---
    def _set_local(self, long: bool = False) -> None:
        self.conn.execute("select set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                          (f"{self.opts.retry.lock_timeout_ms}ms",
                           self.opts.long_timeout if long else self.opts.statement_timeout))

    def _set_session(self, long: bool) -> None:
        self.conn.execute("select set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                          (f"{self.opts.retry.lock_timeout_ms}ms",
                           self.opts.long_timeout if long else self.opts.statement_timeout))

    def _done(self, i: int) -> None:
        self.state.done, self.state.current, self.state.status, self.state.detail = i + 1, {}, "running", None
        st.save(self.conn, self.state)

    def _retried(self, step: Step, fn: Callable[[], None]) -> None:
        with_lock_retries(self.conn, fn, self.opts.retry, table=step.table, what=f"line {step.line}",
                          say=self.say)

    def tx(self, i: int, step: Step) -> None:
        self._retried(step, lambda: self._tx(i, step))

    def validate(self, i: int, step: Step) -> None:
        self._retried(step, lambda: self._validate(i, step))

    def _tx(self, i: int, step: Step) -> None:
        conn = self.conn
        with conn.transaction():
            self._set_local()
            before = _constraint_names(conn, step.table) if step.discover else set()
            for text in step.sql:
                conn.execute(text, prepare=False)
            if step.discover:
                new = sorted(_constraint_names(conn, step.table) - before)
                if len(new) != 1:
                    raise StepFailed(f"expected one new constraint on {step.table}, found {new or 'none'}")
                self.state.names[step.discover] = new[0]
            self._done(i)

    def _validate(self, i: int, step: Step) -> None:
        name = self.state.names.get(step.constraint, step.constraint) if step.constraint.startswith("@") else \
            step.constraint
        if name.startswith("@"):
            raise StepFailed("the constraint to validate was not recorded by the step that added it")
        text = step.sql[0].replace("{constraint}", sql.Identifier(name).as_string(self.conn))
        with self.conn.transaction():
            self._set_local(long=True)
            self.conn.execute(text, prepare=False)
            self._done(i)

    def index(self, i: int, step: Step) -> None:
        self._build(i, step)
        self._done(i)

    def _build(self, i: int, step: Step, extra: dict | None = None) -> None:
        """CREATE INDEX CONCURRENTLY of one index, recorded as under way in state.current (with `extra`)."""
        conn = self.conn
        cur = self.state.current
        if cur.get("step") != i or cur.get("index") != step.index:  # first attempt: was the index there before us
            self.state.current = {**(extra or {}), "step": i, "index": step.index,
                                  "preexisting": _index_state(conn, step.index) != "absent"}
            st.save(conn, self.state)
        mine = not self.state.current.get("preexisting")
        have = _index_state(conn, step.index)
        if mine and have == "valid":  # built by a run that was killed before it could record it
            return
        if mine and have == "invalid":
            self.say(f"dropping the INVALID index {step.index} left by an interrupted build, then building it again")
            self._drop_invalid(step)

        def build() -> None:
            self._set_session(long=True)
            try:
                conn.execute(step.sql[0], prepare=False)
            finally:
                if not conn.broken:
                    self._set_session(long=False)

        def cleanup() -> None:
            if mine and not conn.broken and _index_state(conn, step.index) == "invalid":
                self._drop_invalid(step)

        try:
            with_lock_retries(conn, build, self.opts.retry, table=step.table, what=f"line {step.line}: index "
                              f"{step.index}", say=self.say, cleanup=cleanup)
        except Exception:
            if not conn.broken:
                cleanup()
            raise

    # --- expand/contract of a column type change (expand.py) ---
    def _info(self, step: Step) -> dict:
        info = self.state.names.get(step.expand["key"])
        if not isinstance(info, dict):
            raise StepFailed("the expand step's record is missing from supabase_migrations.sage_online")
        return info

    def expand(self, i: int, step: Step) -> None:
        spec, conn = step.expand, self.conn

        def run() -> None:
            with conn.transaction():
                self._set_local()
                problems = ex.column_problems(conn, spec["table"], spec["column"], spec["newtype"])
                if problems:
                    raise StepFailed(f"line {step.line}: the type change of {spec['column']} has no faithful online "
                                     f"form: {'; '.join(problems)}")
                info = ex.read_info(conn, spec["table"], spec["column"], spec["newtype"], spec["using"],
                                    spec["relname"])
                for text in ex.expand_sql(info):
                    conn.execute(text, prepare=False)
                self.state.names[spec["key"]] = info
                self._done(i)

        self._retried(step, run)

    def expand_index(self, i: int, step: Step) -> None:
        info = self._info(step)
        cur = self.state.current
        built = list(cur.get("built", [])) if cur.get("step") == i else []
        for ix, tmp, text in ex.builds(info):
            if tmp in built:
                continue
            on = info["column"] if tmp == (info.get("pk") or {}).get("old") else info["new"]
            self.say(f"building {tmp} on {on} (for {ix['name']})")
            sub = Step("index", [text], step.line, table=step.table, index=ex.qualified_index(ix, tmp))
            self._build(i, sub, {"built": built})
            built.append(tmp)
            self.state.current = {"step": i, "built": built}
            st.save(self.conn, self.state)
        self._done(i)

    def expand_check(self, i: int, step: Step) -> None:
        """The constraints the swap needs on the new column, each added NOT VALID (a catalog change) and then
        validated in its own transaction: `c_sage_new IS NOT NULL` when the column is NOT NULL, and a copy of every
        CHECK that uses the column (one that was NOT VALID stays so)."""
        info, conn = self._info(step), self.conn
        adds = [(c["tmp"], c["sql"], c["valid"]) for c in info.get("checks", [])]
        if info["not_null"]:
            adds.insert(0, (info["chk"], f"ALTER TABLE {info['table']} ADD CONSTRAINT {ex.ident(info['chk'])} CHECK "
                                         f"({ex.ident(info['new'])} IS NOT NULL) NOT VALID", True))
        for name, add, valid in adds:
            if name not in _constraint_names(conn, info["table"]):  # a resumed run may have added it
                def run_add(add: str = add) -> None:
                    with conn.transaction():
                        self._set_local()
                        conn.execute(add, prepare=False)
                self._retried(step, run_add)
            if valid:
                def run_validate(name: str = name) -> None:
                    with conn.transaction():
                        self._set_local(long=True)
                        conn.execute(f"ALTER TABLE {info['table']} VALIDATE CONSTRAINT {ex.ident(name)}", prepare=False)
                self._retried(step, run_validate)
        self._done(i)

    def swap(self, i: int, step: Step) -> None:
        info, conn = self._info(step), self.conn

        def run() -> None:
            with conn.transaction():
                self._set_local()
                try:  # the views over the column as they are now: one made since the expand moves too
                    done = ex.run_swap(conn, info, ex.swap_sql, info["column"], step.expand.get("moved"))
                except ex.CannotCarry as exc:
                    raise StepFailed(f"line {step.line}: the swap cannot carry a view over {info['table']}."
                                     f"{info['column']} made since the change started: {exc} (nothing of the swap "
                                     "was done; drop or change that, then *apply continues)") from None
                self.state.names[step.expand["key"]] = {**done, "swapped": True}
                st.save(conn, self.state)

        if not info.get("swapped"):  # a run killed after the swap continues with the validations
            self._retried(step, run)
        for text in ex.validate_sql(info):  # the foreign keys the swap re-created NOT VALID
            def validate(text: str = text) -> None:
                with conn.transaction():
                    self._set_local(long=True)
                    conn.execute(text, prepare=False)
            self._retried(step, validate)
        self._done(i)

    def version(self, i: int, step: Step) -> None:
        """The version schema(s) of the file's type changes, and the sync triggers made two-way, in one short
        transaction (versions.py); the swap waits for *apply --complete."""
        conn, mig = self.conn, self.file_plan.migration

        def run() -> None:
            with conn.transaction():
                self._set_local()
                statements, record = vs.create_sql(conn, ex.infos(self.state), mig.version)
                for text in statements:
                    conn.execute(text, prepare=False)
                self.state.names[vs.KEY] = record
                self._done(i)

        self._retried(step, run)

    def _drop_invalid(self, step: Step) -> None:
        def drop() -> None:
            self._set_session(long=False)
            self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {step.index}")

        with_lock_retries(self.conn, drop, self.opts.retry, table=step.table,
                          what=f"dropping the INVALID index {step.index}", say=self.say)

    def drop_index(self, i: int, step: Step) -> None:
        conn = self.conn
        if self.state.current.get("step") == i and _index_state(conn, step.index) == "absent":
            self._done(i)  # dropped by a run killed before it could record it
            return
        self.state.current = {"step": i, "index": step.index}
        st.save(conn, self.state)

        def drop() -> None:
            self._set_session(long=False)
            conn.execute(step.sql[0], prepare=False)

        with_lock_retries(conn, drop, self.opts.retry, table=None, what=f"line {step.line}: DROP INDEX", say=self.say)
        self._done(i)

    def direct(self, i: int, step: Step) -> None:
        self._set_session(long=True)
        self.conn.execute(step.sql[0], prepare=False)
        self._set_session(long=False)
        self._done(i)

    def backfill(self, i: int, step: Step) -> bool:
        with stop_at_batch_boundary(self.say) as flag:
            finished = run_backfill(self.conn, step, self.state, i, retry=self.opts.retry, batch=self.opts.batch,
                                    statement_timeout=self.opts.statement_timeout, say=self.say,
                                    progress=self.progress, should_stop=lambda: flag() or self.should_stop())
        if finished:
            self._done(i)
        return finished

    # --- the file ---
    def run(self) -> FileOutcome:
        # lazy: psycopg loads on the first database call
        import psycopg

        conn, mig, plan = self.conn, self.file_plan.migration, self.plan
        started = time.perf_counter()
        outcome = FileOutcome(mig, "success", len(self.file_plan.chunks))
        step: Step | None = None
        try:
            reset_session(conn, self.opts.statement_timeout, f"{self.opts.retry.lock_timeout_ms}ms")
            st.ensure(conn)
            existing = st.read(conn, mig.version)
            resumed = resumable(existing, self.file_plan, plan) if existing is not None else None
            if existing is not None and resumed is None:
                outcome.status = "failed"
                earlier = "" if existing.checksum.startswith(FILE_CHECKSUM) else \
                    " (or an earlier build of DB Sage, which started it, planned it into other steps)"
                outcome.error = (f"{mig.filename} changed after its online apply started{earlier} (step "
                                 f"{existing.done + 1} of {len(existing.steps)} was next): the steps done so far "
                                 "stay; put the file back as it was to continue, *rollback it, or finish by hand and "
                                 "*repair it applied")
                return outcome
            if existing is None:
                st.start(conn, self.state)
            else:
                if not existing.checksum.startswith(FILE_CHECKSUM):  # an earlier build's row: this build's from now
                    existing.checksum, existing.steps = file_checksum(self.file_plan), steps_json(resumed)
                    st.upgrade(conn, existing)
                self.state, self.plan = existing, resumed
                plan = resumed
                if existing.done:
                    self.say(f"{mig.filename}: continuing the online apply at step {existing.done + 1} of "
                             f"{len(plan.steps)} ({existing.done} done before)")
            for i in range(self.state.done, len(plan.steps)):
                step = plan.steps[i]
                self.say(f"{mig.filename} step {i + 1}/{len(plan.steps)}: {step.show(self.opts.batch.rows)}")
                if step.kind == "backfill":
                    if not self.backfill(i, step):
                        self.state.status, self.state.detail = "interrupted", "stopped by Ctrl-C at a batch boundary"
                        st.save(conn, self.state)
                        outcome.status = "interrupted"
                        outcome.line = step.line
                        outcome.error = (f"stopped at a batch boundary: {self.state.describe()}; every finished "
                                         "batch is committed; *apply continues where it stopped")
                        return outcome
                else:
                    getattr(self, step.kind)(i, step)
                outcome.applied.append(i + 1)
            step = None
            with conn.transaction():  # the history row: the file's whole schema change is visible now
                self._set_local()
                insert_version(conn, mig.version, mig.name, self.file_plan.statements)
                if any(s.kind in ("swap", "version") for s in plan.steps):  # old columns wait for --complete
                    self.state.status, self.state.detail, self.state.current = "expanded", None, {}
                    st.save(conn, self.state)
                else:
                    st.finish(conn, mig.version)
        except (psycopg.Error, LockGaveUp, StepFailed, BackfillError) as exc:
            if isinstance(exc, psycopg.Error):
                message, _ = _error_text(exc)
            else:
                message = str(exc)
            outcome.status = "failed"
            outcome.connection_lost = bool(conn.closed or conn.broken)
            n = len(plan.steps)
            where = f"step {self.state.done + 1} of {n}" if step is not None else "recording the finished file"
            outcome.line = step.line if step is not None else None
            if outcome.connection_lost:
                outcome.error = (f"the connection to the server was lost at {where} ({message.splitlines()[0]}); "
                                 f"{self.state.done} of {n} online steps are committed and recorded; *apply continues "
                                 "from there")
            else:
                outcome.error = (f"{where} failed: {message}\n{self.state.done} of {n} online steps are committed; "
                                 "the file has no history row yet. Fix the cause, then *apply continues from there")
                try:
                    self.state.status, self.state.detail = "failed", message.splitlines()[0][:500]
                    st.save(conn, self.state)
                except psycopg.Error:
                    pass
        finally:
            outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome


def run_online(conn, file_plan, plan: OnlinePlan, opts: OnlineOptions, *, say: Callable[[str], None],
               progress) -> FileOutcome:
    """Apply one file online on an autocommit connection holding *apply's lock. Ctrl-C in a backfill stops it at
    the next batch boundary (elsewhere it interrupts the statement, which leaves a state the next run continues)."""
    return Runner(conn, file_plan, plan, opts, say=say, progress=progress, should_stop=lambda: False).run()
