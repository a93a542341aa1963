"""The Supabase platform every local and shadow database carries: pgcrypto and uuid-ossp in `extensions` (DB Sage's
SQL stand-ins on the embedded PostgreSQL 18, which lacks the modules, checked here against the real modules on
PostgreSQL 15), storage, auth.users/auth.identities, the realtime publication; a baseline on shadows of any
server; and a clear "not available locally" for extensions such as pg_net."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from sage_agent.db.baseline import standin_script

# auth.users and auth.identities as supabase/auth v2.196.0's migrations leave them (name, type, nullable).
AUTH_USERS = [
    "instance_id uuid", "id uuid not null", "aud character varying", "role character varying",
    "email character varying", "encrypted_password character varying", "email_confirmed_at timestamp with time zone",
    "invited_at timestamp with time zone", "confirmation_token character varying",
    "confirmation_sent_at timestamp with time zone", "recovery_token character varying",
    "recovery_sent_at timestamp with time zone", "email_change_token_new character varying",
    "email_change character varying", "email_change_sent_at timestamp with time zone",
    "last_sign_in_at timestamp with time zone", "raw_app_meta_data jsonb", "raw_user_meta_data jsonb",
    "is_super_admin boolean", "created_at timestamp with time zone", "updated_at timestamp with time zone",
    "phone text", "phone_confirmed_at timestamp with time zone", "phone_change text",
    "phone_change_token character varying", "phone_change_sent_at timestamp with time zone",
    "confirmed_at timestamp with time zone", "email_change_token_current character varying",
    "email_change_confirm_status smallint", "banned_until timestamp with time zone",
    "reauthentication_token character varying", "reauthentication_sent_at timestamp with time zone",
    "is_sso_user boolean not null", "deleted_at timestamp with time zone", "is_anonymous boolean not null",
]
AUTH_IDENTITIES = [
    "provider_id text not null", "user_id uuid not null", "identity_data jsonb not null", "provider text not null",
    "last_sign_in_at timestamp with time zone", "created_at timestamp with time zone",
    "updated_at timestamp with time zone", "email text", "id uuid not null",
]
STORAGE_OBJECTS = [
    "id uuid not null", "bucket_id text", "name text", "owner uuid", "created_at timestamp with time zone",
    "updated_at timestamp with time zone", "last_accessed_at timestamp with time zone", "metadata jsonb",
    "path_tokens text[]", "version text", "owner_id text", "user_metadata jsonb", "archived_at timestamp with time zone",
    "is_delete_marker boolean not null", "is_versioned boolean not null",
]
STORAGE_BUCKETS = [
    "id text not null", "name text not null", "owner uuid", "created_at timestamp with time zone",
    "updated_at timestamp with time zone", "public boolean", "avif_autodetection boolean", "file_size_limit bigint",
    "allowed_mime_types text[]", "owner_id text", "type storage.buckettype not null", "versioning_status text not null",
]


def columns(conn, table: str) -> list[str]:
    rows = conn.execute(
        "select attname, format_type(atttypid, 0), attnotnull from pg_attribute "
        "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum", (table,)).fetchall()
    return [f"{n} {t.replace('(0)', '')}" + (" not null" if nn else "") for n, t, nn in rows]


def platform_checks(conn) -> None:
    exts = dict(conn.execute("select e.extname, n.nspname from pg_extension e "
                             "join pg_namespace n on n.oid = e.extnamespace").fetchall())
    assert exts["pgcrypto"] == "extensions" and exts["uuid-ossp"] == "extensions"
    assert columns(conn, "auth.users") == AUTH_USERS
    assert columns(conn, "auth.identities") == AUTH_IDENTITIES
    assert columns(conn, "storage.objects") == STORAGE_OBJECTS
    assert columns(conn, "storage.buckets") == STORAGE_BUCKETS
    rls = dict(conn.execute("select oid::regclass::text, relrowsecurity from pg_class where oid in "
                            "('storage.objects'::regclass, 'storage.buckets'::regclass, 'auth.users'::regclass)"
                            ).fetchall())
    assert rls == {"storage.objects": True, "storage.buckets": True, "auth.users": True}
    grants = conn.execute("select has_table_privilege('authenticated', 'storage.objects', 'insert'), "
                          "has_table_privilege('anon', 'storage.objects', 'select'), "
                          "has_table_privilege('authenticated', 'auth.users', 'select')").fetchone()
    assert grants == (True, True, False)
    assert conn.execute("select storage.foldername('a/b/c.png'), storage.filename('a/b/c.png'), "
                        "storage.extension('a/b/c.tar.gz')").fetchone() == (["a", "b"], "c.png", "gz")
    assert conn.execute("select count(*) from pg_publication where pubname = 'supabase_realtime'").fetchone()[0] == 1
    assert conn.execute("select extensions.uuid_generate_v5(extensions.uuid_ns_dns(), 'example.com')::text"
                        ).fetchone()[0] == "cfbff0d1-9375-5685-968c-48ce8b15ae17"


def test_embedded_databases_carry_the_platform(db):
    platform_checks(db)
    # the stand-in is a real extension there: a migration's CREATE EXTENSION works as on Supabase
    db.execute("create extension if not exists pgcrypto with schema extensions")
    db.execute('drop extension "uuid-ossp"')
    db.execute('create extension "uuid-ossp" with schema extensions')
    assert db.execute("select extensions.uuid_generate_v4() is not null").fetchone()[0]


@pytest.mark.pg15
def test_pg15_databases_carry_the_platform_with_the_real_modules(pg15_url):
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        platform_checks(conn)
        comment = conn.execute("select obj_description(oid, 'pg_extension') from pg_extension "
                               "where extname = 'pgcrypto'").fetchone()[0]
        assert "DB Sage" not in comment  # Debian's own module, not the stand-in


def test_storage_refuses_direct_deletes_and_long_bucket_names(db):
    db.execute("insert into storage.buckets (id, name) values ('b', 'b')")
    db.execute("insert into storage.objects (bucket_id, name) values ('b', 'x/y.txt')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Direct deletion from storage tables"):
        db.execute("delete from storage.objects")
    with pytest.raises(psycopg.errors.RaiseException, match="too long"):
        db.execute("insert into storage.buckets (id, name) values ('c', repeat('n', 101))")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("insert into storage.objects (bucket_id, name) values ('nope', 'z')")


# --- the stand-ins against the real modules (PostgreSQL 15 has both) ------------------------------------------
@pytest.fixture
def both(pg15_url):
    """A PostgreSQL 15 database with the real modules in `extensions` and the stand-ins in `standin`."""
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute("create schema standin")
        conn.execute(standin_script("pgcrypto", "standin"))
        conn.execute(standin_script("uuid-ossp", "standin"))
        yield conn


def same(conn, expr: str, *params) -> object:
    """Evaluate `expr` with the real module and with the stand-in; they must agree."""
    real = conn.execute("select " + expr.replace("X.", "extensions."), params).fetchone()[0]
    ours = conn.execute("select " + expr.replace("X.", "standin."), params).fetchone()[0]
    assert ours == real, expr
    return real


LONG = "x" * 200
TYPES = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "SHA256", "sha-1", "Sha-512"]


@pytest.mark.pg15
@pytest.mark.parametrize("data", ["", "abc", "a" * 55, "a" * 56, "a" * 64, LONG, "héllo wörld ✓"])
def test_digest_and_hmac_match_pgcrypto(both, data):
    for t in TYPES:
        same(both, "X.digest(%s::text, %s)", data, t)
        same(both, "X.digest(convert_to(%s, 'UTF8'), %s)", data, t)
        same(both, "X.hmac(%s::text, 'key', %s)", data, t)
        same(both, "X.hmac(%s::text, %s::text, %s)", data, LONG, t)  # a key longer than the block
        same(both, "X.hmac(convert_to(%s, 'UTF8'), '\\x00ff'::bytea, %s)", data, t)


@pytest.mark.pg15
def test_bcrypt_matches_pgcrypto(both):
    for password, salt in [("pw", "$2a$04$abcdefghijklmnopqrstuv"), ("password123", "$2a$06$EVc49tV8vNv45Kn9eIu6Au"),
                           ("", "$2a$04$......................"), ("x" * 80, "$2a$05$0123456789abcdefghijkl"),
                           ("p@ss w0rd!", "$2a$04$ZZZZZZZZZZZZZZZZZZZZZZ")]:
        same(both, "X.crypt(%s, %s)", password, salt)
    # a salt from our gen_salt works with the real crypt, and a real hash verifies with ours
    salt = both.execute("select standin.gen_salt('bf', 4)").fetchone()[0]
    assert salt.startswith("$2a$04$") and len(salt) == 29
    same(both, "X.crypt('secret', %s)", salt)
    assert both.execute("select standin.gen_salt('bf')").fetchone()[0].startswith("$2a$06$")
    real = both.execute("select extensions.crypt('secret', extensions.gen_salt('bf', 4))").fetchone()[0]
    assert both.execute("select standin.crypt('secret', %s) = %s", (real, real)).fetchone()[0] is True


@pytest.mark.pg15
@pytest.mark.parametrize("call,message", [
    ("X.digest('a', 'foo')", 'Cannot use "foo": No such hash algorithm'),
    ("X.hmac('a', 'k', 'nope')", 'Cannot use "nope": No such hash algorithm'),
    ("X.gen_random_bytes(0)", "Length not in range"),
    ("X.gen_random_bytes(1025)", "Length not in range"),
    ("X.gen_salt('bf', 3)", "gen_salt: Incorrect number of rounds"),
    ("X.gen_salt('bf', 32)", "gen_salt: Incorrect number of rounds"),
    ("X.gen_salt('foo')", "gen_salt: Unknown salt algorithm"),
])
def test_errors_match_pgcrypto(both, call, message):
    for schema in ("extensions.", "standin."):
        with pytest.raises(psycopg.Error) as info:
            both.execute("select " + call.replace("X.", schema))
        assert info.value.diag.message_primary == message


@pytest.mark.pg15
@pytest.mark.parametrize("call,names", [
    ("standin.crypt('pw', 'ab')", "crypt() with a DES or other salt"),
    ("standin.crypt('pw', '$1$abcdefgh')", "crypt() with a md5 ($1$) salt"),
    ("standin.gen_salt('md5')", "gen_salt('md5')"),
    ("standin.digest('a', 'sha3-256')", "digest/hmac with type 'sha3-256'"),
    ("standin.pgp_sym_encrypt('a', 'k')", "pgp_sym_encrypt()"),
    ("standin.encrypt('a', 'k', 'aes')", "encrypt()"),
])
def test_what_the_standin_lacks_says_so(both, call, names):
    with pytest.raises(psycopg.errors.FeatureNotSupported) as info:
        both.execute("select " + call)
    assert info.value.diag.message_primary.startswith(f"not available locally: {names} needs the pgcrypto module")
    assert "major_version = 15" in info.value.diag.message_hint


@pytest.mark.pg15
def test_random_functions_have_the_real_shapes(both):
    for n in (1, 13, 14, 15, 1024):
        assert both.execute("select length(standin.gen_random_bytes(%s))", (n,)).fetchone()[0] == n
    distinct = both.execute("select count(distinct standin.gen_random_bytes(16)) from generate_series(1, 200)"
                            ).fetchone()[0]
    assert distinct == 200
    for fn, version in (("uuid_generate_v1", 1), ("uuid_generate_v1mc", 1), ("uuid_generate_v4", 4)):
        for schema in ("extensions", "standin"):
            u = both.execute(f"select uuid_send({schema}.{fn}())").fetchone()[0]
            assert u[6] >> 4 == version and u[8] >> 6 == 2, (schema, fn)
    for schema in ("extensions", "standin"):  # v1mc: the multicast bit of the node is set
        assert both.execute(f"select uuid_send({schema}.uuid_generate_v1mc())").fetchone()[0][10] & 1 == 1
    # the v1 timestamp (100-ns intervals since 1582-10-15) is now
    ts = both.execute("""
        with u as (select encode(uuid_send(standin.uuid_generate_v1()), 'hex') h)
        select ((('x' || substr(h, 14, 3) || substr(h, 9, 4) || substr(h, 1, 8))::bit(60)::bigint
                 - 122192928000000000) / 10000000.0) - extract(epoch from now()) from u""").fetchone()[0]
    assert abs(float(ts)) < 60


@pytest.mark.pg15
@pytest.mark.parametrize("name", ["", "example.com", "https://supabase.com/x?y=1", "ünïcode", LONG])
def test_name_based_uuids_match_uuid_ossp(both, name):
    for ns in ("uuid_ns_dns", "uuid_ns_url", "uuid_ns_oid", "uuid_ns_x500", "uuid_nil"):
        same(both, f"X.uuid_generate_v3(X.{ns}(), %s)", name)
        same(both, f"X.uuid_generate_v5(X.{ns}(), %s)", name)


@pytest.mark.pg15
def test_standins_have_the_modules_signatures(both):
    query = """select p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.provolatile,
                      p.proisstrict
               from pg_proc p where p.pronamespace = %s::regnamespace and p.proname not like '\\_sage\\_%%'
               order by 1, 2"""
    # the real modules' functions only (the schema also holds pg_stat_statements, created for tuning)
    real = [r for r in both.execute(query.replace("order by", """and not exists (select from pg_depend d
                join pg_extension e on e.oid = d.refobjid where d.objid = p.oid and d.deptype = 'e'
                and e.extname not in ('pgcrypto', 'uuid-ossp')) order by"""), ("extensions",)).fetchall()]
    ours = both.execute(query, ("standin",)).fetchall()
    assert len(real) == 46 and ours == real


# --- shadows on a server without DB Sage's baseline ---------------------------------------------------------
@pytest.fixture(scope="module")
def bare15():
    """A PostgreSQL 15 server whose template1 has no DB Sage baseline (a SAGE_SHADOW_URL of the user's). Kept
    outside pytest's basetemp, which a concurrent pytest run may prune (as conftest's servers are)."""
    import tempfile

    from sage_agent.db import baseline
    from sage_agent.db.embedded import EmbeddedServer
    from conftest import PG15_BIN

    if not (PG15_BIN / "pg_ctl").exists():
        pytest.skip("Debian PostgreSQL 15 server not installed (apt-get install postgresql-15)")
    base = Path(tempfile.mkdtemp(prefix="sage-test-bare15-"))
    server = EmbeddedServer(base / "pg", fast=True, port_seed=str(base))
    server.bin_dir = PG15_BIN
    real_install = baseline.install_baseline
    baseline.install_baseline = lambda url: None
    try:
        server.start()
    finally:
        baseline.install_baseline = real_install
    yield server.url()
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.pg15
def test_shadows_get_the_baseline_on_any_server(bare15):
    from sage_agent.db.shadow import shadow_database

    with psycopg.connect(bare15) as conn:  # nothing there to begin with
        assert conn.execute("select to_regnamespace('extensions') is null and to_regnamespace('storage') is null"
                            ).fetchone()[0]
    with shadow_database(bare15, "t") as url, psycopg.connect(url, autocommit=True) as conn:
        platform_checks(conn)


@pytest.mark.pg15
def test_dry_run_of_a_db_url_target_on_a_bare_shadow_server(bare15, pg15_url, project, make_session, monkeypatch):
    monkeypatch.setenv("SAGE_SHADOW_URL", bare15)
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_items.sql").write_text(
        "create table public.items (id uuid primary key default extensions.uuid_generate_v4(),\n"
        "  token text default encode(extensions.gen_random_bytes(8), 'hex'));\n"
        "create policy items_owner on storage.objects for select using ((storage.foldername(name))[1] = 'x');\n")
    outcome = make_session(pg15_url).run_line("*dry-run items")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result.data["error"] is None and outcome.result.data["verdict"] != "unsafe"


# --- extensions Supabase has and a local server does not -----------------------------------------------------
UNAVAILABLE = Path(__file__).parent / "fixtures" / "supabase_unavailable" / "webhooks"


def _unavailable_project(tmp_path: Path) -> Path:
    dest = tmp_path / "webhooks"
    shutil.copytree(UNAVAILABLE, dest)
    return dest


def _check_unavailable(url: str, tmp_path: Path, make_session) -> None:
    project = _unavailable_project(tmp_path)
    applied = make_session(url, yes=True, project_dir=project).run_line("*apply --snapshot=no")
    assert applied.exit_code == 1
    assert applied.result.summary.startswith(
        "Migration failed at 20240901000000_webhooks.sql:4: not available locally: extension pg_net "
        "(Supabase's asynchronous HTTP client (database webhooks, net.http_post))")
    assert "--db-url" in applied.result.data["error"] and "rolled back" in " ".join(applied.result.notes)
    dry = make_session(url, project_dir=project).run_line("*dry-run webhooks")
    assert dry.exit_code == 1
    assert dry.result.data["error"].startswith("20240901000000_webhooks.sql:4: not available locally: extension pg_net")
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('public.orders')").fetchone()[0] is None


def test_pg_net_is_not_available_locally_with_file_and_line(db_url, tmp_path, make_session):
    _check_unavailable(db_url, tmp_path, make_session)


@pytest.mark.pg15
def test_pg_net_is_not_available_on_pg15_either(pg15_url, tmp_path, make_session):
    _check_unavailable(pg15_url, tmp_path, make_session)


@pytest.mark.parametrize("message,name", [
    ('extension "pg_net" is not available', "pg_net"),
    ('could not open extension control file "/usr/share/postgresql/15/extension/supabase_vault.control": '
     'No such file or directory', "supabase_vault"),
    ("relation \"x\" does not exist", None),
])
def test_unavailable_extension_is_recognised(message, name):
    from sage_agent.ops.migrations.platform import explain_unavailable, unavailable_extension

    assert unavailable_extension(message) == name
    explained = explain_unavailable(message, 15)
    assert (explained is None) == (name is None)
    if name:
        assert explained.startswith(f"not available locally: extension {name}")


def test_a_database_with_the_earlier_baseline_is_brought_up_to_date(pg_server):
    """Clusters made by an earlier DB Sage: their template1 has the first baseline (a short auth.users, no storage);
    new databases from it get the current one, auth.users gaining the columns it lacked."""
    from sage_agent.db.baseline import BASELINE_VERSION, baseline_version, ensure_baseline
    from sage_agent.db.shadow import create_database, drop_database

    url = create_database(pg_server.url(), "t_old_baseline", template="template0")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("""
                create schema auth;
                create table auth.users (instance_id uuid, id uuid primary key default gen_random_uuid(),
                  aud varchar(255), role varchar(255), email varchar(255) unique, encrypted_password varchar(255),
                  email_confirmed_at timestamptz, phone text unique, raw_app_meta_data jsonb default '{}'::jsonb,
                  raw_user_meta_data jsonb default '{}'::jsonb, is_anonymous boolean not null default false,
                  created_at timestamptz default now(), updated_at timestamptz default now(), deleted_at timestamptz);
                insert into auth.users (id, email) values ('00000000-0000-4000-8000-000000000001', 'old@example.com');
                comment on schema auth is 'DB Sage local baseline: Supabase-compatible auth schema';
            """)
            assert baseline_version(conn) == 0
        assert ensure_baseline(url) is True
        with psycopg.connect(url, autocommit=True) as conn:
            assert baseline_version(conn) == BASELINE_VERSION
            assert sorted(columns(conn, "auth.users")) == sorted(AUTH_USERS)
            assert conn.execute("select email from auth.users").fetchone()[0] == "old@example.com"
            assert conn.execute("select to_regclass('storage.objects') is not null "
                                "and to_regclass('auth.identities') is not null").fetchone()[0]
        assert ensure_baseline(url) is False  # current: nothing to do
    finally:
        drop_database(pg_server.url(), "t_old_baseline")
