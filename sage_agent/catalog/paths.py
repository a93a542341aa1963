"""Where the shipped catalog lives: inside an installed wheel, or at the repo root in a checkout."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def catalog_root() -> Path:
    installed = PACKAGE_DIR / "_catalog"
    if (installed / "personas").is_dir():
        return installed
    checkout = PACKAGE_DIR.parent
    if (checkout / "personas").is_dir():
        return checkout
    raise FileNotFoundError(f"DB Sage catalog not found (looked in {installed} and {checkout})")


def personas_dir() -> Path:
    return catalog_root() / "personas"


def tasks_dir() -> Path:
    return catalog_root() / "tasks"


def knowledge_dir() -> Path:
    return catalog_root() / "knowledge"
