"""sage watch on a real PostgreSQL: rounds find what the test creates (a blocked lock, a session idle in
transaction), the next round reports it resolved, --once exit codes, a webhook on a loopback server (and
one that is down), the history across restarts, the report at 60 and 160 columns, bad input."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from sage_agent.db.env import Target
from sage_agent.ops.watch.checks import Thresholds
from sage_agent.ops.watch.history import History, history_path
from sage_agent.ops.watch.runner import run_round, target_name, watch_context

ZERO = Thresholds(lock_wait_s=0, long_query_s=0, idle_in_tx_s=0)


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def blocked(db_url, db):
    """A holder idle in transaction with a row lock, and a waiter blocked on that row (in a thread)."""
    db.execute("create table acct (id int primary key, balance int); insert into acct values (1, 100)")
    holder = psycopg.connect(db_url, application_name="shop-api")
    holder.execute("update acct set balance = balance - 1 where id = 1")
    waiter = psycopg.connect(db_url, autocommit=True, application_name="shop-worker")
    thread = threading.Thread(target=lambda: waiter.execute("update acct set balance = balance + 1 where id = 1"),
                              daemon=True)
    thread.start()
    wait_until(lambda: db.execute("select %s = any(pg_blocking_pids(%s))",
                                  (holder.info.backend_pid, waiter.info.backend_pid)).fetchone()[0])

    def release() -> None:
        if not holder.closed:
            holder.rollback()
            holder.close()
        thread.join(10)

    yield {"holder": holder.info.backend_pid, "waiter": waiter.info.backend_pid, "release": release}
    release()
    waiter.close()


def one_round(project, url, checks, number=1, thresholds=ZERO, **kw):
    ctx = watch_context(project, Target("local", url, "test"), 10_000)
    with History(history_path(project)) as history:
        return run_round(ctx, checks, thresholds, history, number=number, **kw)


def test_a_round_finds_the_blocked_lock_and_the_idle_transaction_then_reports_them_resolved(project, db_url, blocked):
    first = one_round(project, db_url, ["locks", "idle-in-tx", "long-queries"])
    keys = {(o.check, o.key) for o in first.alerts}
    assert ("locks", f"pid {blocked['waiter']} blocked by {blocked['holder']}") in keys
    assert ("idle-in-tx", f"pid {blocked['holder']}") in keys
    assert ("long-queries", f"pid {blocked['waiter']}: update acct set balance = balance + 1 where id = 1") in keys
    assert {first.kind_of(o) for o in first.alerts} == {"new"}
    assert first.exit_code == 1
    lines = first.lines()
    assert any(line.startswith("  ALERT new   locks: ") and f"held by pid {blocked['holder']} (idle in transaction"
               in line and "shop-api" in line for line in lines), lines

    blocked["release"]()
    second = one_round(project, db_url, ["locks", "idle-in-tx", "long-queries"], number=2)
    assert second.alerts == [] and second.exit_code == 0
    resolved = {(c.observation.check, c.observation.key) for c in second.of_kind("resolved")}
    assert keys <= resolved
    assert "3 resolved since the last round" in second.summary()
    assert any(f"RESOLVED locks: pid {blocked['waiter']} blocked by {blocked['holder']}" in line
               for line in second.lines())


def test_a_round_never_reports_the_watch_itself(project, db_url, db, make_session):
    """A session of sage watch (application db-sage-watch) idle in transaction and blocking: never a finding;
    and the round's statements stay out of *hotpaths."""
    db.execute("create table jobs (id int primary key); insert into jobs values (1)")
    watcher = psycopg.connect(db_url, application_name="db-sage-watch")
    watcher.execute("select * from jobs for update")
    try:
        rnd = one_round(project, db_url, ["locks", "idle-in-tx", "long-queries", "vacuum", "wraparound",
                                          "replication", "audits"])
        assert [r.error for r in rnd.results] == [None] * 7
        assert not [o for o in rnd.alerts if o.check in ("locks", "idle-in-tx", "long-queries")], rnd.lines()
        hot = make_session(db_url).run_line("*hotpaths").result
        queries = {r["query"] for r in hot.data["top"]["total"]}
        # only the test's own statements: nothing of the round (sessions, locks, vacuum, lints, replication)
        assert queries == {"create table jobs (id int primary key)", "insert into jobs values ($1)",
                           "select * from jobs for update"}, queries
        assert hot.data["own_hidden"] > 0
    finally:
        watcher.rollback()
        watcher.close()


def test_once_exit_codes_and_history_across_restarts(project, db_url, db, run_sage):
    env = {"SAGE_WATCH_IDLE_IN_TX_S": "0"}
    clean = run_sage("watch", "--once", "--checks", "locks,idle-in-tx", "--db-url", db_url, cwd=project, env=env)
    assert clean.returncode == 0, clean.stderr
    assert "0 alert(s)" in clean.stdout

    idle = psycopg.connect(db_url, application_name="billing")
    idle.execute("select 1")
    try:
        alert = run_sage("watch", "--once", "--checks", "locks,idle-in-tx", "--db-url", db_url, cwd=project, env=env)
        assert alert.returncode == 1, alert.stderr
        assert f"ALERT new   idle-in-tx: pid {idle.info.backend_pid} (billing" in alert.stdout
        again = run_sage("watch", "--once", "--json", "--checks", "idle-in-tx", "--db-url", db_url, cwd=project,
                         env=env)
        doc = json.loads(again.stdout)
        assert again.returncode == 1 and doc["exit_code"] == 1
        assert len(doc["alerts"]) == 1
        assert doc["alerts"][0]["change"] != "new"  # the process before saw it: the file remembers
    finally:
        idle.close()
    gone = run_sage("watch", "--once", "--checks", "idle-in-tx", "--db-url", db_url, cwd=project, env=env)
    assert gone.returncode == 0, gone.stdout
    assert "1 resolved since the last round" in gone.stdout and "RESOLVED idle-in-tx" in gone.stdout
    with History(history_path(project)) as history:
        assert len(history.rounds(history.targets()[0])) == 4


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token", _Hook.received
    server.shutdown()
    server.server_close()


def test_webhook_gets_new_and_resolved_alerts_once(project, db_url, blocked, hook):
    url, received = hook
    first = one_round(project, db_url, ["locks"], webhook_url=url)
    assert first.webhook is not None and first.webhook.ok and first.webhook.status == 204
    kind, payload = received[0]
    assert kind == "application/json"
    assert payload["source"] == "db-sage watch" and payload["round"] == 1
    assert [(a["check"], a["change"]) for a in payload["alerts"]] == [("locks", "new")]
    assert "secret-token" not in " ".join(first.lines())  # the path of a webhook is a secret
    assert any("webhook: POST http://127.0.0.1:" in line and "-> 204" in line for line in first.lines())

    same = one_round(project, db_url, ["locks"], number=2, thresholds=Thresholds(lock_wait_s=3600), webhook_url=url)
    assert len(received) == 1 and same.webhook is None  # nothing new or worse and nothing resolved: no POST

    blocked["release"]()
    one_round(project, db_url, ["locks"], number=3, webhook_url=url)
    assert len(received) == 1  # the alert that stopped in round 2 (below the new threshold) is no alert to resolve
    assert received[0][1]["resolved"] == []


def test_webhook_resolved_alert_is_posted(project, db_url, blocked, hook):
    url, received = hook
    one_round(project, db_url, ["locks"], webhook_url=url)
    blocked["release"]()
    one_round(project, db_url, ["locks"], number=2, webhook_url=url)
    assert len(received) == 2
    resolved = received[1][1]["resolved"]
    assert [r["key"] for r in resolved] == [f"pid {blocked['waiter']} blocked by {blocked['holder']}"]
    assert received[1][1]["alerts"] == []


def test_a_webhook_that_is_down_or_hangs_never_stops_the_round(project, db_url, blocked):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    down = one_round(project, db_url, ["locks"], webhook_url=f"http://127.0.0.1:{port}/x")
    assert down.round_id is not None and not down.webhook.ok
    assert any("webhook: POST http://127.0.0.1:" in line and "failed:" in line and "the round is recorded" in line
               for line in down.lines())

    silent = socket.socket()  # accepts the connection, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        started = time.monotonic()
        hung = one_round(project, db_url, ["locks", "idle-in-tx"], number=2, webhook_timeout_s=0.5,
                         webhook_url=f"http://127.0.0.1:{silent.getsockname()[1]}/x")
        assert time.monotonic() - started < 30
        assert hung.webhook.error.startswith("no answer within the timeout (timeout 0.5 s)")
        assert hung.round_id is not None
    finally:
        silent.close()
    with History(history_path(project)) as history:
        rounds = history.rounds(history.targets()[0])
        assert [r["webhook"]["ok"] for r in rounds] == [False, False]


def sage_watch(capsys, project, *args: str) -> tuple[int, str, str]:
    """`sage watch ARGS` in this process (the CLI's own entry point), with what it printed."""
    from sage_agent.cli import main

    capsys.readouterr()
    code = main(["watch", *args, "--project", str(project)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_unreachable_database_is_an_alert_and_the_round_completes(project, capsys):
    gone = socket.socket()
    gone.bind(("127.0.0.1", 0))
    port = gone.getsockname()[1]
    gone.close()
    # a password no other test's text holds: the redaction registers it for the whole process
    url = f"postgresql://postgres:Gone7pw@127.0.0.1:{port}/nowhere"
    code, out, err = sage_watch(capsys, project, "--once", "--checks", "locks,vacuum", "--db-url", url)
    assert code == 1
    assert "ERROR new   locks: could not run:" in out and "ERROR new   vacuum: could not run:" in out
    assert "Gone7pw" not in out + err


def test_audits_rerun_only_when_the_catalog_changes(project, db_url, db):
    first = one_round(project, db_url, ["audits"], audit_every_s=3600)
    audits = first.results[0]
    assert audits.carried_from is None and audits.fingerprint
    second = one_round(project, db_url, ["audits"], number=2, audit_every_s=3600)
    assert second.results[0].carried_from == first.round_id
    assert second.results[0].metric == audits.metric
    db.execute("create table public.open_to_all (id int primary key)")
    third = one_round(project, db_url, ["audits"], number=3, audit_every_s=3600)
    assert third.results[0].carried_from is None
    rls = next(o for o in third.results[0].observations if o.key == "rls_disabled_in_public")
    assert "public.open_to_all" in rls.message and rls.alert
    assert third.kind_of(rls) in ("new", "worse")
    every = one_round(project, db_url, ["audits"], number=4, audit_every_s=0)
    assert every.results[0].carried_from is None


def test_audits_lint_the_schemas_the_project_config_exposes(project, db_url, db):
    """As *rls-audit: a local project's supabase/config.toml [api] schemas are the exposed ones; a change to the
    file starts the audit over (the scope's key)."""
    db.execute("create table public.open (id int); create schema private; create table private.secrets (id int);"
               "grant usage on schema private to anon; grant select on private.secrets, public.open to anon")
    config = project / "supabase" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[api]\nschemas = ["private"]\n')
    first = one_round(project, db_url, ["audits"], audit_every_s=0)
    rls = next(o for o in first.results[0].observations if o.key == "rls_disabled_in_public")
    assert "private.secrets" in rls.message and "public.open" not in rls.message
    config.write_text('[api]\nenabled = false\n')
    second = one_round(project, db_url, ["audits"], number=2, audit_every_s=0)
    assert [o for o in second.results[0].observations if o.key == "rls_disabled_in_public"] == []


# Every rule of both audits has findings here, several with more than three places (the summary names three).
AUDITED = """
create table public.no_rls (id bigint primary key, password text, api_key text);
create table public.pol_no_rls (id bigint primary key, user_id uuid);
create policy p on public.pol_no_rls for select using (user_id = auth.uid());
alter table public.pol_no_rls disable row level security;
create table public.rls_no_pol (id bigint primary key);
alter table public.rls_no_pol enable row level security;
create table public.always_true (id bigint primary key, user_id uuid);
alter table public.always_true enable row level security;
create policy always_true_del on public.always_true for delete to authenticated using (true);
create policy sel_a on public.always_true for select to authenticated using ((select auth.uid()) = user_id);
create policy sel_b on public.always_true for select to authenticated using (auth.uid() is not null);
create view public.definer_view as select id from public.rls_no_pol;
create function public.mutable() returns int language sql as 'select 1';
create function public.definer() returns int language sql security definer set search_path = '' as 'select 1';
grant execute on function public.definer() to anon, authenticated;
create table public."Orders" (id serial primary key, "CustomerId" int references public.no_rls (id),
  placed timestamp, note varchar(20), ref int references public.pol_no_rls (id));
create index orders_a on public."Orders" (note);
create index orders_b on public."Orders" (note);
create table public.tiny (id smallint generated always as identity primary key, code varchar(5));
select setval(pg_get_serial_sequence('public.tiny', 'id'), 30000);
create sequence public."Odd Seq" as int;
create table public.item (id int primary key default nextval('public."Odd Seq"'), at timestamp);
alter sequence public."Odd Seq" owned by public.item.id;
select setval('public."Odd Seq"', 1200000000);
create table public.logs (line text);
create table public.events (at timestamp, "Kind" text);
create table public.users2 (id int primary key);
create table public.accounts (id bigint primary key);
create table public.carts (id bigint primary key);
"""


def test_the_watch_keeps_exactly_what_full_audit_runs_find(project, db_url, db, make_session):
    """The one-statement summary equals *rls-audit + *schema-audit (full runs, through the session), rule by
    rule: count, worst severity and the first three places; the round's observations are built from it."""
    from sage_agent.ops.security.summary import group, scope, summarize
    from sage_agent.ops.watch.checks import audit_result

    db.execute(AUDITED)
    session = make_session(db_url)
    rls = session.run_line("*rls-audit").result
    schema = session.run_line("*schema-audit").result
    level = {"ERROR": "error", "WARN": "warning", "INFO": "info"}
    full = group([(f["name"], level[f["level"]], f"{f['metadata']['schema']}.{f['metadata']['name']}")
                  for f in rls.data["lints"]] +
                 [(f["rule"], f["severity"], f["location"]) for f in schema.data["findings"]])
    with psycopg.connect(db_url) as conn:
        major = conn.info.server_version // 10000
        fast, _, run = summarize(conn, scope(conn, major), major)
    assert run.full and fast == full
    rules = {r.rule: r for r in fast}
    # the cases that need care: mixed severities (worst wins), quoted sequence names, the naming rules, > 3 places
    assert rules["int_id_near_overflow"].severity == "error"  # tiny at 92% (error), item at 56% (warning)
    assert rules["int_id_near_overflow"].first == ("public.item.id", "public.tiny.id")
    assert rules["naming_not_snake_case"].first == ('public.Orders', 'public.Orders.CustomerId', 'public.events.Kind')
    assert {"rls_disabled_in_public", "sensitive_columns_exposed", "duplicate_index", "timestamp_without_time_zone",
            "varchar_n", "nullable_foreign_key", "naming_mixed_plurality", "no_primary_key", "prefer_bigint_ids",
            "unindexed_foreign_keys", "rls_policy_always_true", "function_search_path_mutable"} <= set(rules)
    assert rules["rls_disabled_in_public"].count > 3
    rnd = one_round(project, db_url, ["audits"])
    expected = audit_result(full, ZERO)
    assert sorted((o.key, o.severity, o.message, o.value, o.alert) for o in rnd.results[0].observations) == \
        sorted((o.key, o.severity, o.message, o.value, o.alert) for o in expected.observations)
    assert rnd.results[0].metric == expected.metric


def test_a_first_read_in_slices_on_two_connections_keeps_what_one_read_keeps(db_url, db, monkeypatch):
    """The first read of every relation, cut into many slices taken by two connections at once, stores the same
    rows, counts and totals as one statement on one connection, and summarises the same; a second connection that
    cannot be opened fails the read (it is not a partial one)."""
    from sage_agent.ops.security import summary
    from sage_agent.ops.security.summary import scope, summarize

    def kept(store) -> tuple[list, list, list]:
        return (*(sorted(store.db.execute(f"select * from {t} where tid = ?", (store.tid,)).fetchall())
                  for t in ("audit_rows", "audit_totals")), [store.counts(cat) for cat in range(len(summary.COUNTED))])

    db.execute(AUDITED)
    with psycopg.connect(db_url, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        sc = scope(conn, major)
        one, one_store, _ = summarize(conn, sc, major)
        monkeypatch.setattr(summary, "SLICE", 5)
        read_by: list[str] = []
        read_slice = summary._read_slice

        def counted(*args, **kwargs):
            read_by.append(threading.current_thread().name)
            return read_slice(*args, **kwargs)

        monkeypatch.setattr(summary, "_read_slice", counted)
        opened: list[int] = []

        def connect():
            c = psycopg.connect(db_url, autocommit=True)
            opened.append(c.info.backend_pid)
            return c

        two, two_store, run = summarize(conn, sc, major, connect=connect, parallel=2)
        assert run.full and two == one
        assert kept(two_store) == kept(one_store) and len(kept(one_store)[0]) > 40
        assert two_store.meta()["totals"] == one_store.meta()["totals"]
        assert len(read_by) > 10 and len(opened) == 1 and len(set(read_by)) == 2  # both connections read slices

        def refused():
            raise psycopg.OperationalError("connection refused")

        with pytest.raises(psycopg.OperationalError, match="refused"):
            summarize(conn, sc, major, connect=refused, parallel=2)


def test_a_first_read_pauses_the_cycle_collector_only_while_it_reads_even_when_it_fails(db_url, db, monkeypatch):
    """The read of every relation runs without the cycle collector (its passes over the rows being built cost CPU
    for nothing); afterwards, and after a read that failed, it runs again. A read of a few changed relations
    leaves it alone."""
    import gc

    from sage_agent.ops.security import summary
    from sage_agent.ops.security.summary import scope, summarize

    seen: list[bool] = []
    read_slice = summary._read_slice

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return read_slice(*args, **kwargs)

    monkeypatch.setattr(summary, "_read_slice", watched)
    db.execute(AUDITED)
    with psycopg.connect(db_url, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        sc = scope(conn, major)
        _, store, run = summarize(conn, sc, major)
        assert run.full and seen == [False] and gc.isenabled()

        def refused():
            raise psycopg.OperationalError("connection refused")

        monkeypatch.setattr(summary, "SLICE", 5)
        with pytest.raises(psycopg.OperationalError):
            summarize(conn, sc, major, connect=refused, parallel=2)
        assert gc.isenabled()
        monkeypatch.setattr(summary, "SLICE", 10_000)
        db.execute("create table public.later (id int)")
        seen.clear()
        _, _, run = summarize(conn, sc, major, store)
        assert not run.full and seen == [True]


# Policies for each policy lint, the three of them reading one deparse of each policy in the watch's read; realtime's
# policies count for auth_rls_initplan only (as splinter).
POLICIES = """
create table public.meta_pol (id bigint primary key, owner uuid);
alter table public.meta_pol enable row level security;
create policy by_meta on public.meta_pol for select to authenticated
  using ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin');
create schema if not exists realtime;
create table realtime.msgs (id bigint primary key, owner uuid);
alter table realtime.msgs enable row level security;
create policy rt_all on realtime.msgs for all to authenticated using (true);
create policy rt_own on realtime.msgs for select to authenticated using (auth.uid() = owner);
"""


def test_the_first_read_in_oid_ranges_keeps_each_relations_findings_of_the_full_audits(project, db_url, db,
                                                                                       make_session, monkeypatch):
    """A first round reads every relation in slices of consecutive oids (one range each, on two connections): the
    findings it keeps per relation are, one by one, those of full *rls-audit and *schema-audit runs."""
    from sage_agent.ops.security import summary
    from sage_agent.ops.security.summary import scope, summarize

    db.execute(AUDITED + POLICIES)
    session = make_session(db_url)
    rls = session.run_line("*rls-audit").result
    schema = session.run_line("*schema-audit").result
    full = sorted([(f["name"], f"{f['metadata']['schema']}.{f['metadata']['name']}") for f in rls.data["lints"]] +
                  [(f["rule"], f["location"]) for f in schema.data["findings"]])
    monkeypatch.setattr(summary, "SLICE", 4)
    read: list[tuple[bool, int]] = []
    read_slice = summary._read_slice

    def spied(conn, part, *args):
        read.append((part.ranged, len(part.oids)))
        return read_slice(conn, part, *args)

    monkeypatch.setattr(summary, "_read_slice", spied)
    with psycopg.connect(db_url, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        _, store, run = summarize(conn, scope(conn, major), major,
                                  connect=lambda: psycopg.connect(db_url, autocommit=True), parallel=2)
    assert run.full and len(read) > 10 and all(ranged and n <= 4 for ranged, n in read)
    # the rows kept as findings (unused_index keeps candidates, int_id columns, table_name every table: the
    # statistics, the sequences and the counts decide those)
    kept = sorted(store.db.execute("select rule, location from audit_rows where tid = ? and rule not in "
                                   "('unused_index', 'int_id', 'table_name')", (store.tid,)).fetchall())
    rules = {rule for rule, _ in kept}
    assert kept == [f for f in full if f[0] in rules]
    assert {"rls_policy_always_true", "auth_rls_initplan", "rls_references_user_metadata",
            "multiple_permissive_policies", "policy_exists_rls_disabled", "naming_not_snake_case",
            "timestamp_without_time_zone", "duplicate_index", "unindexed_foreign_keys"} <= rules
    assert ("auth_rls_initplan", "realtime.msgs") in kept and ("rls_policy_always_true", "realtime.msgs") not in full
    assert ("rls_references_user_metadata", "public.meta_pol") in kept


# DDL of every kind the incremental path must notice, each changing what the audits find: (what, statement).
STEPS = [
    ("create", 'create table public.fresh (id int, "Bad" timestamp, token text)'),
    ("rename a table", "alter table public.fresh rename to fresh_renamed"),
    ("rename a column", 'alter table public.fresh_renamed rename column "Bad" to bad'),
    ("revoke", "revoke all on public.no_rls from anon, authenticated, public"),
    ("grant", "grant select on public.no_rls to anon"),
    ("enable rls", "alter table public.fresh_renamed enable row level security"),
    ("create a policy", "create policy mine on public.fresh_renamed for update to authenticated using (true)"),
    ("alter a policy", "alter policy sel_b on public.always_true using ((select auth.uid()) is not null)"),
    ("drop a policy", "drop policy always_true_del on public.always_true"),
    ("drop an index", "drop index public.orders_b"),
    ("drop a foreign key", 'alter table public."Orders" drop constraint "Orders_ref_fkey"'),
    ("add a column", "alter table public.accounts add column created timestamp"),
    ("drop a column", "alter table public.accounts drop column created"),
    ("a column grant", "revoke all on public.logs from anon, authenticated, public; "
                       "grant select (line) on public.logs to authenticated"),
    ("create a view", "create view public.logs_v as select line from public.logs"),
    ("drop a table", "drop table public.fresh_renamed"),
    ("a new role", "create role watch_member nologin; revoke all on public.users2 from anon, authenticated, public; "
                   "grant select on public.users2 to watch_member"),
    ("role membership", "grant watch_member to anon with inherit true"),
]


def test_after_ddl_the_watch_reads_only_what_changed_and_finds_what_a_full_rerun_finds(db_url, db):
    """Per-relation findings kept from the last audit and read again only for relations whose catalog rows
    changed equal a full rerun of both audits, rule by rule, after each kind of DDL; only what changed is read
    again (role membership changes what every relation's findings mean: it starts over)."""
    from sage_agent.ops.security.summary import scope, summarize

    db.execute(AUDITED)
    with psycopg.connect(db_url, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        before, cache, run = summarize(conn, scope(conn, major), major)
        assert run.full
        relations = cache.relations()
        for what, ddl in STEPS:
            db.execute(ddl)
            sc = scope(conn, major)
            incremental, cache, run = summarize(conn, sc, major, cache)
            full, _, full_run = summarize(conn, sc, major)
            assert full_run.full
            assert incremental == full, what
            assert incremental != before, f"{what}: the step must change a finding"
            if what in ("a new role", "role membership"):
                assert run.full, what
            else:
                assert not run.full and 1 <= run.changed + run.gone <= 4 < relations, (what, run)
            before = incremental


def test_the_audits_cache_survives_a_restart_and_a_broken_one_starts_over(project, db_url, db):
    """A round after DDL in a new process reads the per-relation findings from .sage/watch.sqlite (and reads
    again only what changed); an unreadable cache is no error: the audits start over."""
    def exposed(rnd) -> float:
        return next(o for o in rnd.results[0].observations if o.key == "rls_disabled_in_public").value

    db.execute(AUDITED)
    first = one_round(project, db_url, ["audits"], audit_every_s=3600)
    db.execute("create table public.later (id int)")
    with History(history_path(project)) as history:
        cached = history.audit_store(target_name(Target("local", db_url, "test")))
        assert cached.meta() is not None and cached.rows_kept() > 0
    second = one_round(project, db_url, ["audits"], number=2, audit_every_s=3600)
    assert second.results[0].carried_from is None and second.results[0].reread == (1, 0)
    assert exposed(second) == exposed(first) + 1  # public.later
    third = one_round(project, db_url, ["audits"], number=3, audit_every_s=3600)
    assert third.results[0].carried_from == second.round_id
    with History(history_path(project)) as history:
        history.db.execute("delete from audit_rows where rowid = (select min(rowid) from audit_rows)")
    db.execute("drop table public.later")
    fourth = one_round(project, db_url, ["audits"], number=4, audit_every_s=3600)
    assert not fourth.errors and fourth.results[0].reread is None  # read whole again
    assert exposed(fourth) == exposed(first)
    with History(history_path(project)) as history:
        history.db.execute("update audit_meta set meta = '{not json'")  # every target's
    db.execute("create table public.later (id int)")
    fifth = one_round(project, db_url, ["audits"], number=5, audit_every_s=3600)
    assert not fifth.errors and fifth.results[0].reread is None and exposed(fifth) == exposed(first) + 1
    db.execute("create table public.after (id int)")
    sixth = one_round(project, db_url, ["audits"], number=6, audit_every_s=3600)
    assert sixth.results[0].reread == (1, 0) and exposed(sixth) == exposed(first) + 2


def test_a_history_file_of_the_earlier_store_format_is_read_whole_once_then_incrementally(project, db_url, db):
    """.sage/watch.sqlite from before the counts were packed (format 2: a row per relation and catalog in
    audit_counts): the first round reads every relation again, drops the old table, and the next round after DDL
    reads only what changed."""
    import json as json_

    db.execute(AUDITED)
    one_round(project, db_url, ["audits"], audit_every_s=3600)
    with History(history_path(project)) as history:
        store = history.audit_store(target_name(Target("local", db_url, "test")))
        meta = store.meta()
        history.db.execute("create table audit_counts (tid integer not null, cat integer not null, "
                           "relid integer not null, n integer not null, primary key (tid, cat, relid)) without rowid")
        history.db.execute("insert into audit_counts values (?, 0, 1, 1)", (store.tid,))
        history.db.execute("update audit_meta set meta = ?", (json_.dumps({**meta, "format": 2}),))
    db.execute("create table public.later (id int)")
    second = one_round(project, db_url, ["audits"], number=2, audit_every_s=3600)
    assert not second.errors and second.results[0].reread is None  # read whole: the old format names no state
    with History(history_path(project)) as history:
        assert history.db.execute("select count(*) from sqlite_master where name = 'audit_counts'").fetchone()[0] == 0
    db.execute("create table public.after (id int)")
    third = one_round(project, db_url, ["audits"], number=3, audit_every_s=3600)
    assert third.results[0].reread == (1, 0)


def test_audits_rerun_when_a_role_joins_anon(project, db_url, db):
    """Privileges granted through role membership change what anon can read: the fingerprint sees it."""
    db.execute("create role watch_reader nologin; create table public.via_role (id bigint primary key); "
               "revoke all on public.via_role from anon, authenticated; grant select on public.via_role to watch_reader")
    first = one_round(project, db_url, ["audits"], audit_every_s=3600)
    assert not any(o.key == "rls_disabled_in_public" for o in first.results[0].observations)
    db.execute("grant watch_reader to anon with inherit true")  # no catalog row of the table changes
    second = one_round(project, db_url, ["audits"], number=2, audit_every_s=3600)
    assert second.results[0].carried_from is None
    rls = next(o for o in second.results[0].observations if o.key == "rls_disabled_in_public")
    assert "public.via_role" in rls.message


def test_report_at_60_and_160_columns(project, db_url, blocked, capsys, monkeypatch, make_session):
    one_round(project, db_url, ["locks", "idle-in-tx"])
    blocked["release"]()
    for n in range(2, 5):
        one_round(project, db_url, ["locks", "idle-in-tx"], number=n)
    monkeypatch.setenv("NO_COLOR", "1")
    for width in (60, 160):
        monkeypatch.setenv("COLUMNS", str(width))
        code, out, err = sage_watch(capsys, project, "--report", "--db-url", db_url)
        assert code == 0, err
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= width, out
        chart = [line for line in lines if line.startswith("│ locks")]
        assert chart and "█▁▁▁" in chart[0], out  # 1 blocked session, then none
        assert ("blocked sessions" in out) == (width == 160), out  # the metric's name where there is room
        assert "4 round(s) recorded" in out
    out = make_session(db_url).run_line("*watch-report --limit 2")
    assert out.exit_code == 0, out.error
    assert len(out.result.tables[1].rows) == 2 and out.result.tables[1].truncated
    assert out.result.facts["rounds"] == 4
    assert out.result.facts["history"] == ".sage/watch.sqlite"  # relative to the project, like other paths


def test_bad_input(project, db_url, capsys, make_session):
    for args, message in ((["--every", "0"], "the interval must be more than 0"),
                          (["--every", "soon"], "give a duration such as 30s"),
                          (["--checks", "locks,deadlocks"], "unknown check deadlocks: choose from locks, long-queries"),
                          (["--webhook", "ftp://example.com/x"], "--webhook must be an http:// or https:// URL"),
                          (["--rounds", "0"], "--rounds must be 1 or more"),
                          (["--report", "--once"], "--report only reads the history")):
        code, out, err = sage_watch(capsys, project, *args, "--db-url", db_url)
        assert code == 2, (args, out, err)
        assert message in err, (args, err)
    assert not history_path(project).exists()  # nothing ran
    assert make_session(db_url).run_line("*watch-report --limit 0").exit_code == 2
    empty = make_session(db_url).run_line("*watch-report")
    assert empty.exit_code == 0 and empty.result.summary == "no watch history yet (.sage/watch.sqlite does not exist)"


def test_ctrl_c_between_rounds_stops_with_130_and_keeps_the_history(project, db_url):
    from tests.conftest import sage_env

    proc = subprocess.Popen([sys.executable, "-m", "sage_agent", "watch", "--every", "1h", "--checks", "locks",
                             "--db-url", db_url], cwd=project, env=sage_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "round 1" in first, first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "stopped (Ctrl-C) after 1 round(s)" in err
    with History(history_path(project)) as history:
        assert history.count(history.targets()[0]) == 1


def test_ctrl_c_during_a_round_records_nothing(project, db_url, monkeypatch):
    from sage_agent.ops.watch import checks

    def interrupted(state):
        raise KeyboardInterrupt

    monkeypatch.setitem(checks.CHECKS, "vacuum", interrupted)
    with pytest.raises(KeyboardInterrupt):
        one_round(project, db_url, ["locks", "vacuum"])
    with History(history_path(project)) as history:
        assert history.targets() == []


def test_history_is_bounded(project, db_url):
    for n in range(1, 5):
        one_round(project, db_url, ["locks"], number=n, keep=2)
    with History(history_path(project)) as history:
        target = history.targets()[0]
        assert history.count(target) == 2
        assert history.db.execute("select count(*) from metrics").fetchone()[0] == 2


def test_thresholds_come_from_the_settings():
    from sage_agent.config import settings

    t = Thresholds.from_settings(settings({"SAGE_WATCH_LOCK_WAIT_S": "0.5", "SAGE_WATCH_XID_AGE_PCT": "10",
                                           "SAGE_WATCH_AUDIT_SEVERITY": "warning"}))
    assert (t.lock_wait_s, t.xid_age_pct, t.audit_severity, t.idle_in_tx_s) == (0.5, 10.0, "warning", 60.0)
    assert Thresholds.from_settings(settings({"SAGE_WATCH_AUDIT_SEVERITY": "loud"})).audit_severity == "error"


def test_wraparound_alerts_at_its_threshold_and_ignores_partitioned_parents(project, db_url, db):
    db.execute("create table public.ev (id int, at date) partition by range (at)")
    db.execute("create table public.ev_2026 partition of public.ev for values from ('2026-01-01') to ('2027-01-01')")
    quiet = one_round(project, db_url, ["wraparound"])
    assert quiet.results[0].observations == []  # a partitioned parent has no xid age (not 2^31-1)
    loud = one_round(project, db_url, ["wraparound"], number=2, thresholds=Thresholds(xid_age_pct=0))
    name = db_url.rsplit("/", 1)[1]
    assert any(o.key == f"database {name}" and o.alert for o in loud.alerts)


def test_targets_file_watches_every_database_and_a_broken_one_does_not_stop_the_others(project, db_url, db, capsys,
                                                                                        monkeypatch):
    gone = socket.socket()
    gone.bind(("127.0.0.1", 0))
    port = gone.getsockname()[1]
    gone.close()
    (project / "fleet.yaml").write_text(f"""
- name: shop
  url: {db_url}
  tags: [eu]
- name: down
  url: postgresql://postgres:hunter2@127.0.0.1:{port}/nowhere
  tags: [eu]
- name: unset
  url: ${{WATCH_TEST_UNSET_URL}}
""")
    monkeypatch.delenv("WATCH_TEST_UNSET_URL", raising=False)
    idle = psycopg.connect(db_url, application_name="billing")
    idle.execute("select 1")
    idle_pid = idle.info.backend_pid
    monkeypatch.setenv("SAGE_WATCH_IDLE_IN_TX_S", "0")
    try:
        code, out, err = sage_watch(capsys, project, "--once", "--targets", "fleet.yaml", "--checks", "idle-in-tx")
    finally:
        idle.close()
    assert code == 1, err
    summaries = [line for line in out.splitlines() if " round 1 on " in line]
    assert [line.split(" round 1 on ")[1].split(":")[0] for line in summaries] == ["shop", "down", "unset"]
    assert f"ALERT new   idle-in-tx: pid {idle_pid} (billing" in out
    assert out.count("ERROR new   idle-in-tx: could not run:") == 2
    assert "WATCH_TEST_UNSET_URL" in out and "hunter2" not in out + err

    code, out, err = sage_watch(capsys, project, "--once", "--targets", "fleet.yaml", "--only", "eu", "--checks",
                                "idle-in-tx", "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["target"] for d in docs] == ["shop", "down"]
    assert docs[0]["exit_code"] == 0 and docs[0]["resolved"][0]["key"] == f"pid {idle_pid}"

    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = sage_watch(capsys, project, "--report", "--targets", "fleet.yaml")
    assert code == 0, err
    assert "── shop ──" in out and "── down ──" in out and "── unset ──" in out
    assert "2 round(s) recorded for shop" in out and "1 round(s) recorded for unset" in out

    for args, message in ((["--targets", "fleet.yaml", "--db-url", db_url], "--targets names its own databases"),
                          (["--targets", "missing.yaml"], "no such targets file"),
                          (["--only", "eu"], "--only and --parallel go with --targets FILE"),
                          (["--targets", "fleet.yaml", "--only", "asia"], "--only asia: no target has that tag")):
        code, out, err = sage_watch(capsys, project, "--once", *args)
        assert code == 2 and message in err, (args, err)


def test_the_vacuum_check_reads_only_tables_that_can_have_a_finding_and_misses_none(project, db_url, db):
    """sage watch asks *vacuum for the candidate tables only (SQL-side): the findings are exactly the full report's."""
    from sage_agent.ops.observe.diagnostics import vacuum_report

    # each table can have a finding for one reason only, so each condition of the candidate filter is exercised
    db.execute("create table public.churn (id int primary key, v int)")  # dead tuples past the threshold
    db.execute("insert into public.churn select g, g from generate_series(1, 5000) g; analyze public.churn")
    # autovacuum could clean the dead tuples before the check reads them: a SHARE UPDATE EXCLUSIVE lock held on another
    # connection makes it skip the table; and the update's counts are flushed to the statistics at once, not after
    # the 10 s idle interval a busy backend may wait for (pg_stat_force_next_flush below)
    guard = psycopg.connect(db_url, autocommit=False)
    guard.execute("lock table public.churn in share update exclusive mode")
    db.execute("update public.churn set v = v + 1")
    db.execute("create table public.noauto (id int) with (autovacuum_enabled = off)")  # its reloptions
    db.execute("insert into public.noauto values (1); analyze public.noauto")
    db.execute("create table public.fresh (id int) with (autovacuum_enabled = off)")  # rows, never analyzed
    db.execute("insert into public.fresh select generate_series(1, 500)")
    db.execute("create table public.quiet (id int primary key); insert into public.quiet values (1)")
    db.execute("analyze public.quiet")
    db.execute("select pg_stat_force_next_flush()")
    ctx = watch_context(project, Target("local", db_url, "test"), 10_000)
    wait_until(lambda: vacuum_report(ctx, table="public.churn", limit=5).data["tables"][0]["dead"] >= 5000)
    full = vacuum_report(ctx, table=None, limit=100)
    only = vacuum_report(ctx, table=None, limit=100, findings_only=True)
    assert {(f.rule, f.location) for f in full.findings} >= {
        ("vacuum.over_threshold", "public.churn"), ("vacuum.autovacuum_disabled", "public.noauto"),
        ("vacuum.never_analyzed", "public.fresh")}
    assert [f.model_dump() for f in only.findings] == [f.model_dump() for f in full.findings]
    assert only.facts["over_threshold"] == full.facts["over_threshold"]
    shown = {t["table"] for t in only.data["tables"]}
    assert "public.quiet" in {t["table"] for t in full.data["tables"]} and "public.quiet" not in shown
    guard.close()


def test_replication_reports_an_inactive_slot_then_resolves_it(project, db_url, db):
    """On a primary: an inactive physical slot retaining WAL is observed (alert at its byte threshold)."""
    slot = f"watch_test_{db_url.rsplit('/', 1)[1]}"
    db.execute("select pg_create_physical_replication_slot(%s, true)", (slot,))
    try:
        db.execute("create table public.wal_filler as select g from generate_series(1, 20000) g")
        quiet = one_round(project, db_url, ["replication"])
        seen = next(o for o in quiet.results[0].observations if o.key == f"slot {slot}")
        assert not seen.alert and seen.severity == "warning" and "is inactive and retains" in seen.message
        loud = one_round(project, db_url, ["replication"], number=2, thresholds=Thresholds(replication_lag_bytes=1))
        assert any(o.key == f"slot {slot}" for o in loud.alerts)
        assert loud.results[0].metric and loud.results[0].metric > 0
    finally:
        db.execute("select pg_drop_replication_slot(%s)", (slot,))
    gone = one_round(project, db_url, ["replication"], number=3)
    assert f"slot {slot}" in {c.observation.key for c in gone.of_kind("resolved")}


def test_the_report_counts_the_vacuum_findings_the_round_reported(project, db_url, db, capsys, monkeypatch):
    """A round with new vacuum findings (never analyzed, autovacuum off: none past its threshold) never shows
    `vacuum 0` in the report's chart."""
    db.execute("create table public.fresh (id int) with (autovacuum_enabled = off)")
    db.execute("insert into public.fresh select generate_series(1, 500)")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = sage_watch(capsys, project, "--once", "--checks", "vacuum", "--db-url", db_url)
    assert "1 new" in out and "new   vacuum: autovacuum is disabled on public.fresh" in out, out
    code, out, err = sage_watch(capsys, project, "--report", "--db-url", db_url)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("│ vacuum"))
    assert [cell.strip() for cell in row.split("│")[1:4]] == ["vacuum", "1", "1"], out
    assert "tables with a vacuum finding" in row


class _RawHook(_Hook):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()


def test_a_password_a_check_sees_never_leaves_in_the_webhook_nor_on_stdout(project, db_url, db, capsys,
                                                                          monkeypatch):
    """Texts a check shows as the database gives them: a table named with a connection string (the audits'
    finding names it), a session whose application_name and last query hold one. The webhook body, --json and
    text stdout carry them redacted."""
    monkeypatch.setenv("SAGE_WATCH_IDLE_IN_TX_S", "0")
    db.execute('create table public."postgresql://app:Hunter2xyz@db.example.com/prod" (id int)')
    _RawHook.bodies = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _RawHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    leaky = psycopg.connect(db_url, application_name="postgresql://app:Hunter2xyz@db.example.com/prod")
    leaky.execute("select 'postgres://etl:Hunter2xyz@10.0.0.5/warehouse' as dsn")
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        code, out, err = sage_watch(capsys, project, "--once", "--json", "--checks", "idle-in-tx,audits",
                                    "--webhook", hook, "--db-url", db_url)
        assert code == 1, err
        alerts = {a["check"]: a["message"] for a in json.loads(out)["alerts"]}
        assert "(postgresql://app:***@db.example.com/prod, " in alerts["idle-in-tx"]
        assert "public.postgresql://app:***@db.example.com/prod" in alerts["audits"]
        assert len(_RawHook.bodies) == 1
        sent = {a["check"]: a["message"] for a in json.loads(_RawHook.bodies[0])["alerts"]}
        assert sent == alerts
        assert "'postgres://etl:***@10.0.0.5/warehouse'" in sent["idle-in-tx"]
        assert b"Hunter2xyz" not in _RawHook.bodies[0]
        assert "Hunter2xyz" not in out + err

        code, out, err = sage_watch(capsys, project, "--once", "--checks", "idle-in-tx,audits", "--db-url", db_url)
        assert code == 1 and "ALERT same  audits: " in out and "public.postgresql://app:***@db.example.com/prod" in out
        assert "Hunter2xyz" not in out + err
    finally:
        leaky.close()
        server.shutdown()
        server.server_close()


def test_the_history_file_stores_no_password_a_session_query_showed(project, db_url, db):
    """A session's query holds a connection string with a password (idle in transaction, and one still running):
    the round records them, and no byte of .sage/watch.sqlite (nor its WAL) carries the password."""
    db.execute('create table public."postgresql://app:Hunter2abc@db.example.com/prod" (id int)')
    idle = psycopg.connect(db_url, application_name="postgresql://app:Hunter2abc@db.example.com/prod")
    idle.execute("select 'postgres://etl:Hunter2abc@10.0.0.5/warehouse' as dsn")
    busy = psycopg.connect(db_url, autocommit=True)
    running = threading.Thread(target=lambda: busy.execute(
        "select pg_sleep(3), 'postgresql://etl:Hunter2abc@10.0.0.5/warehouse' as dsn"), daemon=True)
    running.start()
    try:
        wait_until(lambda: db.execute("select count(*) from pg_stat_activity where state = 'active' "
                                      "and query like '%pg_sleep(3)%' and pid <> pg_backend_pid()").fetchone()[0])
        rnd = one_round(project, db_url, ["long-queries", "idle-in-tx", "audits"])
        shown = "\n".join(rnd.lines())
        assert "'postgres://etl:***@10.0.0.5/warehouse'" in shown, shown  # it was seen, and shown redacted
        assert "'postgresql://etl:***@10.0.0.5/warehouse'" in shown, shown
        again = one_round(project, db_url, ["long-queries", "idle-in-tx", "audits"], number=2)
        assert not [c for cs in again.changes.values() for c in cs if c.kind == "new"]  # the same, not new
    finally:
        running.join(10)
        busy.close()
        idle.close()
    files = sorted(history_path(project).parent.glob("watch.sqlite*"))
    assert files, list(history_path(project).parent.iterdir())
    stored = b"".join(f.read_bytes() for f in files)
    assert b"10.0.0.5/warehouse" in stored  # the texts are there, only their passwords are not
    assert b"Hunter2abc" not in stored
