"""The real Supabase CLI, when present: SUPABASE_CLI, then PATH, then the project's .tools/ (npm)."""

from __future__ import annotations

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


def find_cli(project: Path | None = None) -> SupabaseCli | None:
    candidates = [os.environ.get("SUPABASE_CLI"), shutil.which("supabase")]
    for base in filter(None, [project, Path(__file__).resolve().parents[2]]):
        candidates.append(str(base / ".tools" / "node_modules" / ".bin" / "supabase"))
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            try:
                out = subprocess.run([cand, "--version"], capture_output=True, text=True, timeout=20,
                                     stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                continue
            match = re.search(r"\d+\.\d+\.\d+", out.stdout + out.stderr)
            if out.returncode == 0 and match:
                return SupabaseCli(cand, match.group(0))
    return None
