"""Catalog errors point at a file and a line."""

from __future__ import annotations

from sage_agent.errors import LocatedError


class CatalogError(LocatedError):
    """A persona, task, template or checklist file that does not follow its format."""
