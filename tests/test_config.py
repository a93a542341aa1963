"""Settings: every SAGE_* variable typed in sage_agent/config.py; .env read like dotenv tools read it."""

from __future__ import annotations

import re
from pathlib import Path

from sage_agent.config import Settings, markdown_table, settings
from sage_agent.db.env import load_dotenv, resolve_target

REPO = Path(__file__).resolve().parents[1]


def test_dotenv_inline_comments_quotes_and_export(tmp_path):
    (tmp_path / ".env").write_text(
        "# local settings\n"
        "DATABASE_URL=postgresql://u:pw@h/db  # local dev\n"
        "export SUPABASE_DB_URL='postgresql://u:p#w@h:6543/db'\n"
        'SAGE_DB_MCP_COMMAND="npx server-postgres \\"postgresql://x\\""\n'
        "PLAIN=a b c\n"
        "DOLLAR=pa$$word\n"
        "EMPTY=\n")
    assert load_dotenv(tmp_path) == {
        "DATABASE_URL": "postgresql://u:pw@h/db",
        "SUPABASE_DB_URL": "postgresql://u:p#w@h:6543/db",  # a # inside quotes is part of the value
        "SAGE_DB_MCP_COMMAND": 'npx server-postgres "postgresql://x"',
        "PLAIN": "a b c",
        "DOLLAR": "pa$$word",  # no interpolation: passwords keep their $
        "EMPTY": "",
    }


def test_inline_comment_never_reaches_the_url(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "SUPABASE_DB_URL", "SUPABASE_DB_URL_DIRECT", "SAGE_DEV_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("SAGE_DEV_DB_URL=postgresql://u:pw@db.example:5432/app  # staging copy\n")
    assert resolve_target(tmp_path, "dev", None).url == "postgresql://u:pw@db.example:5432/app"


def test_settings_types_defaults_and_bad_values():
    assert settings({}) == Settings()
    s = settings({"SAGE_STATEMENT_TIMEOUT_MS": "900", "SAGE_APPLY_LOCK_WAIT_S": "0.5", "SAGE_PROMPT_CACHING": "no",
                  "SAGE_ROW_LIMIT": "lots", "SAGE_ENV": " dev "})
    assert (s.statement_timeout_ms, s.apply_lock_wait_s, s.prompt_caching, s.row_limit, s.env) == (
        900, 0.5, False, 200, "dev")


def test_every_sage_variable_in_the_code_is_a_setting():
    declared = set(re.findall(r"`(SAGE_[A-Z_]+)`", markdown_table()))
    used = set()
    for path in (REPO / "sage_agent").rglob("*.py"):
        used |= set(re.findall(r"\bSAGE_[A-Z][A-Z_]*[A-Z]\b", path.read_text(encoding="utf-8")))
    # SAGE_<ENV>_DB_URL are environments (db/env.py), not settings
    used -= {"SAGE_LOCAL_DB_URL", "SAGE_DEV_DB_URL", "SAGE_STAGING_DB_URL", "SAGE_PROD_DB_URL"}
    assert used - declared == set()


def test_readme_lists_every_setting():
    assert markdown_table() in (REPO / "README.md").read_text(encoding="utf-8")
