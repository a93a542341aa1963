"""`sage watch` rounds: run the chosen checks, compare with the history, record, alert.

A round is bounded (every check runs under SAGE_WATCH_TIMEOUT_MS on the server and a failing check is
reported, not fatal), and Ctrl-C cancels the statement that is running on the server. The watch connects
as `db-sage-watch`, which every diagnostic leaves out, so a round never observes itself.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sage_agent.db.env import Target
from sage_agent.ops.watch.alerts import WebhookResult, post_webhook
from sage_agent.ops.watch.checks import CheckResult, Observation, RoundState, Thresholds, run_check
from sage_agent.ops.watch.history import Change, History
from sage_agent.session.context import OpContext, Settings

EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class WatchContext(OpContext):
    """An operation context whose connections say `db-sage-watch` (left out of every diagnostic)."""

    def connect(self, url: str | None = None, *, autocommit: bool = False, timeouts: bool = True):
        # lazy: psycopg loads on the first database call
        from sage_agent.db.connect import connect
        from sage_agent.ops.observe.own import WATCH_APPLICATION_NAME

        conn = connect(url or self.url, autocommit=autocommit,
                       statement_timeout_ms=self.settings.statement_timeout_ms if timeouts else None,
                       lock_timeout_ms=self.settings.lock_timeout_ms if timeouts else None,
                       application_name=WATCH_APPLICATION_NAME)
        self._connections.append(conn)
        return conn


def watch_context(project: Path, target: Target, timeout_ms: int) -> WatchContext:
    def refuse(_request) -> bool:
        return False  # the watch only reads: nothing to confirm

    return WatchContext(project=project, target=target, task=None, confirm_fn=refuse,
                        settings=Settings(statement_timeout_ms=timeout_ms, lock_timeout_ms=min(timeout_ms, 2_000)))


def target_name(target: Target) -> str:
    """How the history names a target: stable across restarts, never with a password."""
    return f"{target.env} (embedded)" if target.embedded else f"{target.env} {target.display_url}"


@dataclass
class Round:
    number: int
    target: str
    started: float
    duration_ms: float
    results: list[CheckResult]
    changes: dict[str, list[Change]]
    new_errors: list[str] = field(default_factory=list)   # checks that failed now and ran fine last time
    recovered: list[str] = field(default_factory=list)    # checks that failed last time and ran now
    webhook: WebhookResult | None = None
    round_id: int | None = None

    @property
    def alerts(self) -> list[Observation]:
        return [o for r in self.results for o in r.alerts]

    @property
    def errors(self) -> list[CheckResult]:
        return [r for r in self.results if r.error]

    def of_kind(self, kind: str) -> list[Change]:
        return [c for cs in self.changes.values() for c in cs if c.kind == kind]

    @property
    def exit_code(self) -> int:
        return EXIT_ALERT if self.alerts or self.errors else EXIT_OK

    def alert_changes(self) -> list[Change]:
        """What is worth telling a webhook: alerts that are new or worse, and alerts that went away."""
        return [c for c in self.of_kind("new") + self.of_kind("worse") if c.observation.alert] + \
            [c for c in self.of_kind("resolved") if c.observation.alert]

    def kind_of(self, obs: Observation) -> str:
        for c in self.changes.get(obs.check, []):
            if c.observation.key == obs.key:
                return c.kind
        return "new"

    def summary(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.started))
        alerts = self.alerts
        n_new = sum(1 for o in alerts if self.kind_of(o) == "new")
        n_worse = sum(1 for o in alerts if self.kind_of(o) == "worse")
        parts = [f"{len(alerts)} alert(s)" + (f" ({n_new} new, {n_worse} worse)" if alerts else "")]
        if self.errors:
            parts.append(f"{len(self.errors)} check(s) failed")
        parts.append(f"{len(self.of_kind('new'))} new, {len(self.of_kind('worse'))} worse, "
                     f"{len(self.of_kind('resolved'))} resolved since the last round")
        return (f"{stamp} round {self.number} on {self.target}: {len(self.results)} check(s) in "
                f"{self.duration_ms:.0f} ms: " + "; ".join(parts))

    def lines(self, detail_limit: int = 20) -> list[str]:
        """What stdout shows for the round: the summary, then every alert, failure and resolution."""
        out = [self.summary()]
        for o in self.alerts:
            out.append(f"  ALERT {self.kind_of(o):5} {o.check}: {o.message}")
        for r in self.errors:
            out.append(f"  ERROR {'new' if r.name in self.new_errors else 'still':5} {r.name}: could not run: {r.error}")
        for name in self.recovered:
            out.append(f"  OK    {name}: runs again")
        resolved = self.of_kind("resolved")
        for c in resolved[:detail_limit]:
            out.append(f"  RESOLVED {c.observation.check}: {c.observation.key} (was: {c.observation.message})")
        if len(resolved) > detail_limit:
            out.append(f"  ... and {len(resolved) - detail_limit} more resolved (sage watch --report --json)")
        noted = [c for c in self.of_kind("new") + self.of_kind("worse") if not c.observation.alert]
        for c in noted[:detail_limit]:
            out.append(f"  {c.kind:5} {c.observation.check}: {c.observation.message}")
        if len(noted) > detail_limit:
            out.append(f"  ... and {len(noted) - detail_limit} more below their thresholds")
        for r in self.results:
            if r.carried_from is not None:
                out.append(f"  note  {r.name}: catalog unchanged since round id {r.carried_from}: its findings carried "
                           "forward (rerun when the catalog changes or SAGE_WATCH_AUDIT_EVERY_S passes)")
            if r.reread is not None:
                out.append(f"  note  {r.name}: read again for the {r.reread[0]} relation(s) whose catalog rows changed"
                           f"{f' and without the {r.reread[1]} gone' if r.reread[1] else ''}; the others' findings kept")
            if r.truncated:
                out.append(f"  note  {r.name}: {r.truncated} more observation(s) than the {len(r.observations)} kept")
        if self.webhook is not None:
            out.append(f"  webhook: {self.webhook.describe()}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.number, "round_id": self.round_id, "target": self.target, "started": self.started,
            "duration_ms": round(self.duration_ms, 1), "exit_code": self.exit_code, "summary": self.summary(),
            "checks": [{"name": r.name, "status": r.status, "metric": r.metric, "metric_label": r.metric_label,
                        "carried_from": r.carried_from, "reread": r.reread,
                        "duration_ms": round(r.duration_ms, 1), "error": r.error, "truncated": r.truncated,
                        "observations": [_obs_json(o, self.kind_of(o)) for o in r.observations]}
                       for r in self.results],
            "alerts": [_obs_json(o, self.kind_of(o)) for o in self.alerts],
            "resolved": [_obs_json(c.observation, "resolved") for c in self.of_kind("resolved")],
            "new_errors": self.new_errors, "recovered": self.recovered,
            "webhook": self.webhook.to_json() if self.webhook else None,
        }


def _obs_json(o: Observation, change: str) -> dict[str, Any]:
    return {"check": o.check, "key": o.key, "severity": o.severity, "message": o.message, "value": o.value,
            "alert": o.alert, "change": change}


def run_round(ctx: WatchContext, checks: list[str], thresholds: Thresholds, history: History, *, number: int,
              webhook_url: str | None = None, webhook_timeout_s: float = 5.0, keep: int = 10_000,
              audit_every_s: float = 0.0, name: str | None = None, stop: threading.Event | None = None) -> Round:
    """One round: every check (each bounded, each failure caught), compared with the last round that ran
    it, recorded, and (when alerts changed) POSTed to the webhook. KeyboardInterrupt (or `stop` set while the
    checks ran) cancels the running statement on the server and propagates; nothing is recorded for an
    interrupted round. `name`: the target's name in the history (default: from its URL)."""
    target = name or target_name(ctx.target)
    started = time.time()
    t0 = time.perf_counter()
    state = RoundState(ctx, thresholds, history=history, target=target, audit_every_s=audit_every_s)
    try:
        results = _run_checks(checks, state)
    except KeyboardInterrupt:
        ctx.cancel_running()
        raise
    finally:
        ctx.close_all()
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt
    return finish_round(history, target, number, started, (time.perf_counter() - t0) * 1000, results,
                        webhook_url=webhook_url, webhook_timeout_s=webhook_timeout_s, keep=keep)


def _run_checks(checks: list[str], state: RoundState) -> list[CheckResult]:
    """The checks in order, except the audits: the slowest check when the catalog changed, on a connection of
    their own, they run on a thread beside the others (the round takes the longer of the two, not the sum).
    An interrupt cancels what runs on both and waits for the thread before it propagates."""
    if "audits" not in checks or len(checks) == 1:
        return [run_check(check, state) for check in checks]
    box: dict[str, CheckResult] = {}
    side = threading.Thread(target=lambda: box.__setitem__("audits", run_check("audits", state)),
                            name="sage-watch-audits", daemon=True)
    side.start()
    try:
        rest = {check: run_check(check, state) for check in checks if check != "audits"}
    except BaseException:
        state.ctx.cancel_running()
        side.join()
        raise
    side.join()
    return [box["audits"] if check == "audits" else rest[check] for check in checks]


def failed_round(history: History, target: str, checks: list[str], problem: str, *, number: int,
                 webhook_url: str | None = None, webhook_timeout_s: float = 5.0, keep: int = 10_000) -> Round:
    """A round of a target that cannot be used at all (a bad URL, an unset ${VAR}): every check failed."""
    return finish_round(history, target, number, time.time(), 0.0, [CheckResult(c, error=problem) for c in checks],
                        webhook_url=webhook_url, webhook_timeout_s=webhook_timeout_s, keep=keep)


def finish_round(history: History, target: str, number: int, started: float, duration_ms: float,
                 results: list[CheckResult], *, webhook_url: str | None, webhook_timeout_s: float,
                 keep: int) -> Round:
    last_status = {r.name: history.last_status(target, r.name) for r in results}
    changes = {r.name: history.compare(target, r) for r in results}
    rnd = Round(number, target, started, duration_ms, results, changes,
                new_errors=[r.name for r in results if r.error and last_status[r.name] != "error"],
                recovered=[r.name for r in results if not r.error and last_status[r.name] == "error"])
    if webhook_url and (rnd.alert_changes() or rnd.new_errors or rnd.recovered):
        rnd.webhook = post_webhook(webhook_url, webhook_payload(rnd), webhook_timeout_s)
    rnd.round_id = history.record(target, started, duration_ms, results, changes,
                                  json.dumps(rnd.webhook.to_json()) if rnd.webhook else None, keep)
    return rnd


def webhook_payload(rnd: Round) -> dict[str, Any]:
    """What the webhook receives: the round's summary line, every current alert (with new/worse/same), what
    was resolved, and which checks failed (a `text` field too, for chat webhooks that show only that)."""
    doc = rnd.to_json()
    return {"source": "db-sage watch", "text": rnd.summary(), "target": rnd.target, "round": rnd.number,
            "started": rnd.started, "alerts": doc["alerts"],
            "resolved": [r for r in doc["resolved"] if r["alert"]],
            "failed_checks": [{"check": r.name, "error": r.error} for r in rnd.errors]}


@dataclass
class Watched:
    """One database the watch looks at: its name in the history and its context, or why it cannot be used."""

    name: str
    ctx: WatchContext | None
    problem: str | None = None


def watch_loop(targets: list[Watched], checks: list[str], thresholds: Thresholds, history_file: Path, *,
               every_s: float, rounds: int | None, emit: Callable[[Round], None], webhook_url: str | None = None,
               webhook_timeout_s: float = 5.0, keep: int = 10_000, audit_every_s: float = 0.0, parallel: int = 1,
               sleep: Callable[[float], None] = time.sleep) -> list[Round]:
    """Rounds every `every_s` seconds (start to start; a slow round is followed at once, never overlapped)
    until `rounds` are done (None: until Ctrl-C). Several targets are watched `parallel` at a time, each
    with its own history connection; their rounds are emitted in the targets' order. Returns the last round
    of each target. Ctrl-C cancels what runs on every target and records nothing of the cut round."""
    stop = threading.Event()
    histories = [History(history_file) for _ in targets]  # opened here, one after the other: never two at once

    def one(index: int, number: int) -> Round:
        target, history = targets[index], histories[index]
        kw = {"number": number, "webhook_url": webhook_url, "webhook_timeout_s": webhook_timeout_s, "keep": keep}
        if target.ctx is None:
            return failed_round(history, target.name, checks, target.problem or "cannot be used", **kw)
        rnd = run_round(target.ctx, checks, thresholds, history, audit_every_s=audit_every_s, name=target.name,
                        stop=stop, **kw)
        history.flush()  # the audits' per-relation findings, for the next process (after the round, not in it)
        return rnd

    try:
        return _loop(targets, one, stop, rounds, every_s, emit, parallel, sleep)
    finally:
        for history in histories:
            history.close()


def _loop(targets: list[Watched], one: Callable[[int, int], Round], stop: threading.Event, rounds: int | None,
          every_s: float, emit: Callable[[Round], None], parallel: int, sleep: Callable[[float], None]) -> list[Round]:
    # lazy: the thread pool loads only for parallel work
    from concurrent.futures import ThreadPoolExecutor

    last: list[Round] = []
    number = 0
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets))), thread_name_prefix="sage-watch") as pool:
        while rounds is None or number < rounds:
            number += 1
            begun = time.monotonic()
            if len(targets) == 1:
                last = [one(0, number)]
            else:
                futures = [pool.submit(one, i, number) for i in range(len(targets))]
                try:
                    last = [f.result() for f in futures]
                except KeyboardInterrupt:
                    stop.set()
                    for t in targets:
                        if t.ctx is not None:
                            t.ctx.cancel_running()
                    for f in futures:
                        f.cancel()
                    raise
            for rnd in last:
                emit(rnd)
            if rounds is not None and number >= rounds:
                break
            wait = every_s - (time.monotonic() - begun)
            if wait > 0:
                sleep(wait)
    return last
