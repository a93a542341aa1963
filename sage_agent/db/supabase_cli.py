"""The real Supabase CLI, when present: SUPABASE_CLI, then PATH, then the project's .tools/ (npm)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sage_agent.db.redact import redact


@dataclass(frozen=True)
class SupabaseCli:
    path: str
    version: str

    def run(self, args: list[str], *, cwd: Path, timeout: float = 120, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1", **(env or {})}
        proc = subprocess.run([self.path, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=full_env, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(redact(f"supabase {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()}"))
        return proc


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "db-sage" / "supabase-cli.json"


def _fingerprint(cand: str) -> str:
    """What changes when the program at `cand` is replaced: its real path, size, inode and change time (npm keeps
    a fixed mtime in its tarballs, so mtime alone would miss an upgrade)."""
    real = os.path.realpath(cand)
    st = os.stat(real)
    return f"{real}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def _cached_versions() -> dict[str, str]:
    try:
        doc = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(doc, dict) else {}


def _remember(key: str, version: str) -> None:
    """Best effort: a home that cannot be written only costs the next run its `--version` call."""
    path = _cache_file()
    doc = _cached_versions()
    doc[key] = version
    doc = dict(list(doc.items())[-16:])  # a few installs at most
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def find_cli(project: Path | None = None) -> SupabaseCli | None:
    """The first working CLI. Its version comes from `supabase --version` once per installed binary, then from
    a small cache under ~/.cache/db-sage: the CLI needs about 2 s of CPU just to start (several seconds on a busy
    machine), which `*env-check`, `*bootstrap` and `*migration-new` paid on every run."""
    candidates = [os.environ.get("SUPABASE_CLI"), shutil.which("supabase")]
    for base in filter(None, [project, Path(__file__).resolve().parents[2]]):
        candidates.append(str(base / ".tools" / "node_modules" / ".bin" / "supabase"))
    cached: dict[str, str] | None = None
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            try:
                key = _fingerprint(cand)
            except OSError:
                continue
            if cached is None:
                cached = _cached_versions()
            if key in cached:
                return SupabaseCli(cand, cached[key])
            try:
                out = subprocess.run([cand, "--version"], capture_output=True, text=True, timeout=20,
                                     stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                continue
            match = re.search(r"\d+\.\d+\.\d+", out.stdout + out.stderr)
            if out.returncode == 0 and match:
                _remember(key, match.group(0))
                return SupabaseCli(cand, match.group(0))
    return None
