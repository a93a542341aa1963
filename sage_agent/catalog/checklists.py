"""Checklists in knowledge/checklists/: `# Checklist: Title`, a paragraph, `## Section`s of `- [ ] item` lines,
each optionally ending with `check: <id>` in backticks (decided automatically by DB Sage)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.paths import knowledge_dir

CHECK_IDS = (
    "rls_enabled_public", "no_rls_enabled_no_policy", "primary_keys", "fk_indexes", "no_duplicate_indexes",
    "timestamptz_only", "no_security_definer_views", "function_search_path_set", "no_extension_in_public",
    "no_auth_users_exposed", "no_invalid_indexes", "no_not_valid_constraints", "sequences_headroom",
    "migrations_lint_clean", "migrations_applied_in_order", "snapshot_recent", "backup_recent",
    "pg_stat_statements_enabled", "no_long_running_queries", "no_idle_in_transaction", "wraparound_ok",
    "rls_policy_uses_initplan", "no_user_metadata_in_policies",
)
_TITLE = re.compile(r"^# Checklist:\s*(?P<title>.+?)\s*$")
_SECTION = re.compile(r"^## (?P<name>.+?)\s*$")
_ITEM = re.compile(r"^- \[[ xX]\] (?P<text>.+?)\s*$")
_CHECK = re.compile(r"\s*`check:\s*(?P<id>[a-z0-9_]+)`\s*$")


class ChecklistItem(BaseModel):
    id: str  # "<section number>.<item number>", e.g. "2.3": what answers refer to
    section: str
    text: str
    check: str | None = None
    line: int


class ChecklistSection(BaseModel):
    title: str
    items: list[ChecklistItem]


class Checklist(BaseModel):
    name: str  # file stem without -checklist, e.g. dba-predeploy
    path: str
    title: str
    description: str
    sections: list[ChecklistSection]

    @property
    def items(self) -> list[ChecklistItem]:
        return [i for s in self.sections for i in s.items]


def checklist_name(path: Path) -> str:
    return Path(path).stem.removesuffix("-checklist")


def parse_checklist(path: Path) -> Checklist:
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    title = None
    description: list[str] = []
    sections: list[ChecklistSection] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if title is None:
            m = _TITLE.match(line)
            if not m:
                raise CatalogError(path, lineno, "a checklist starts with `# Checklist: <Title>`")
            title = m.group("title")
            continue
        m = _SECTION.match(line)
        if m:
            sections.append(ChecklistSection(title=m.group("name"), items=[]))
            continue
        m = _ITEM.match(line)
        if m:
            if not sections:
                raise CatalogError(path, lineno, "an item before the first `## Section` heading")
            text = m.group("text")
            check = None
            cm = _CHECK.search(text)
            if cm:
                check = cm.group("id")
                text = text[: cm.start()].rstrip()
                if check not in CHECK_IDS:
                    raise CatalogError(path, lineno, f"unknown check id {check!r} (known: {', '.join(CHECK_IDS)})")
            elif "check:" in text:
                raise CatalogError(path, lineno, "malformed check marker (expected `check: <id>` in backticks at the end)")
            section = sections[-1]
            item_id = f"{len(sections)}.{len(section.items) + 1}"
            section.items.append(ChecklistItem(id=item_id, section=section.title, text=text, check=check, line=lineno))
            continue
        if line.startswith("- "):
            raise CatalogError(path, lineno, "a list item must be a checkbox `- [ ] text`")
        if line.startswith("#") and not line.startswith("## "):
            raise CatalogError(path, lineno, "unexpected heading (only `## Section` after the title)")
        if not sections:
            description.append(line.strip())
    if title is None:
        raise CatalogError(path, None, "empty checklist")
    if not sections or not any(s.items for s in sections):
        raise CatalogError(path, None, "a checklist needs at least one `## Section` with `- [ ]` items")
    for s in sections:
        if not s.items:
            raise CatalogError(path, None, f"section {s.title!r} has no items")
    return Checklist(name=checklist_name(path), path=str(path), title=title, description=" ".join(description),
                     sections=sections)


def list_checklists(directory: Path | None = None) -> dict[str, Path]:
    folder = directory or knowledge_dir() / "checklists"
    return {checklist_name(p): p for p in sorted(folder.glob("*.md"))}
