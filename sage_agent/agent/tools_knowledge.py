"""`read_knowledge(topic)` over knowledge/data/*.md (topics are `## ` headings) and `render_template`."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from sage_agent.catalog.paths import knowledge_dir
from sage_agent.ops.result import OpError


@lru_cache(maxsize=1)
def knowledge_sections() -> dict[str, tuple[str, str]]:
    """'file-stem: Heading' -> (heading, text)."""
    out: dict[str, tuple[str, str]] = {}
    folder = knowledge_dir() / "data"
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        current, lines = None, []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                if current:
                    out[f"{path.stem}: {current}"] = (current, "\n".join(lines).strip())
                current, lines = line[3:].strip(), [line]
            elif current:
                lines.append(line)
        if current:
            out[f"{path.stem}: {current}"] = (current, "\n".join(lines).strip())
    return out


def knowledge_files() -> list[str]:
    return sorted({k.split(":", 1)[0] for k in knowledge_sections()})


def read_knowledge(topic: str) -> str:
    sections = knowledge_sections()
    if not sections:
        return "No knowledge files are installed (knowledge/data/ is empty)."
    topic = (topic or "").strip()
    if not topic:
        return "Topics (file: heading):\n" + "\n".join(sections)
    low = topic.lower()
    exact = [k for k in sections if k.lower() == low or sections[k][0].lower() == low]
    if not exact:
        exact = [k for k in sections if low in k.lower()]
    if not exact:
        close = difflib.get_close_matches(low, [k.lower() for k in sections], n=5, cutoff=0.3)
        names = [k for k in sections if k.lower() in close]
        raise OpError(f"no knowledge topic matches {topic!r}",
                      "closest: " + "; ".join(names) if names else "call read_knowledge with topic '' for the list")
    if len(exact) > 4 and low in {k.split(':')[0] for k in exact}:
        return f"{topic} has these topics:\n" + "\n".join(exact)
    return "\n\n".join(f"[{k}]\n{sections[k][1]}" for k in exact[:4])


def _templates_dir() -> Path:
    return knowledge_dir() / "templates"


def template_names() -> list[str]:
    folder = _templates_dir()
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def render_template(name: str, values: dict | None) -> str:
    """Render one template through the catalog's renderer (the one *create-doc uses): declared variables
    only, required ones named when missing, identifiers quoted by the `ident` filter."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.catalog.templates import TemplateError, list_templates
    from sage_agent.catalog.templates import render_template as render

    try:
        return render(name.removesuffix(".yml"), dict(values or {}))
    except TemplateError as exc:
        raise OpError(str(exc), "templates: " + ", ".join(sorted(list_templates()))) from None
