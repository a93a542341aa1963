"""The schema-diff conformance suite: our own DDL pairs for the behaviours pg-schema-diff's acceptance cases check.

Each case (tests/schema_diff_cases/*.yaml) has DDL for A and for B, written with `@S` (and `@T`) for the case's
own schema(s). The runner builds A and B, plans A -> B with *compare-schemas' engine, applies the plan to a copy
of A and compares the normalized `pg_dump --schema-only` (privileges included) of the result with B's, using a
normalization of its own (not the engine's). Cases run in batches (one database pair per batch, one schema per
case); a batch whose plan does not apply, or leaves lines no case owns, is split in halves until each failure
has one owner, so a clean run costs one comparison per batch.

Outcomes: `target` (the dumps are equal after the plan), `hazard` (the plan is blocked with an explanation),
`differs` (dump lines remain), `apply-failed` (a step fails), `cannot-run` (this server rejects the case's DDL).
`overclaim` counts cases the engine called PROVEN while the referee's dumps differ: the target is zero.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import psycopg

CASES_DIR = Path(__file__).resolve().parent / "schema_diff_cases"


@dataclass
class Case:
    feature: str
    name: str
    a: str
    b: str
    index: int
    expect: str = "target"  # target | hazard
    min_major: int = 0
    alone: bool = False  # touches database-wide objects (extensions): runs in a batch of its own

    @property
    def schema(self) -> str:
        return f"sd_{self.feature}_{self.index:03d}"

    def sql(self, side: str) -> str:
        text = self.a if side == "a" else self.b
        return text.replace("@T", self.schema + "_t").replace("@S", self.schema)

    def schemas(self) -> list[str]:
        both = self.a + self.b
        return [self.schema] + ([self.schema + "_t"] if "@T" in both else [])


@dataclass
class Outcome:
    case: Case
    status: str
    proven: bool = False
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == self.case.expect

    @property
    def overclaim(self) -> bool:
        return self.proven and self.status != "target"


@dataclass
class Report:
    major: int
    outcomes: list[Outcome] = field(default_factory=list)
    comparisons: int = 0

    def by_feature(self) -> dict[str, tuple[int, int, int]]:
        """feature -> (passed, runnable, cannot run)."""
        out: dict[str, list[int]] = {}
        for o in self.outcomes:
            row = out.setdefault(o.case.feature, [0, 0, 0])
            if o.status == "cannot-run":
                row[2] += 1
                continue
            row[1] += 1
            row[0] += o.passed
        return {k: tuple(v) for k, v in sorted(out.items())}

    @property
    def runnable(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "cannot-run"]

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.runnable)

    @property
    def overclaims(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.overclaim]


def load_cases(folder: Path = CASES_DIR) -> list[Case]:
    import yaml

    cases: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        feature = path.stem
        shared = doc.get("both", "") or ""
        for i, item in enumerate(doc["cases"]):
            both = (shared + "\n" + (item.get("both") or "")).strip()
            cases.append(Case(feature=feature, name=item["name"], index=i,
                              a=(both + "\n" + (item.get("a") or "")).strip(),
                              b=(both + "\n" + (item.get("b") or "")).strip(),
                              expect=item.get("expect", "target"), min_major=int(item.get("min_major", 0)),
                              alone=bool(item.get("alone", False))))
    return cases


# --- the referee: a normalization of pg_dump written independently of the engine's ----------------------------
def referee_dump(url: str, major: int) -> list[str]:
    from sage_agent.db.binaries import find_binary
    from sage_agent.db.schemas import MANAGED_SCHEMAS
    from sage_agent.db.tools import tool_env

    args = [str(find_binary("pg_dump", major)), "--schema-only", "--no-owner"]
    for pattern in MANAGED_SCHEMAS:
        args += ["-N", pattern]
    text = subprocess.run(args, env=tool_env(url), capture_output=True, text=True, check=True).stdout
    kept = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("--", "SET ", "\\"))
            and not ln.startswith("SELECT pg_catalog.set_config")]
    out: list[str] = []
    for piece in "\n".join(kept).split(";\n"):
        if out and (piece.startswith((" ", "\t")) or piece == "END" or piece.startswith("END\n")):
            out[-1] = out[-1] + ";\n" + piece  # a statement inside a BEGIN ATOMIC body, or its END
        else:
            out.append(piece)
    return sorted(s.strip() for s in out if s.strip())


_OWNER = re.compile(r"\bsd_[a-z0-9_]+?_\d{3}\b")


def _owners(text: str) -> set[str]:
    return set(_OWNER.findall(text))


# --- running ---------------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, admin_url: str, project: Path) -> None:
        from sage_agent.db.env import Target

        self.admin = admin_url
        with psycopg.connect(admin_url) as conn:
            self.major = conn.info.server_version // 10000
        self.ctx = SimpleNamespace(admin_url=admin_url, project=project, target=Target("local", admin_url, "test"))
        self.report = Report(self.major)
        self.timings: list[dict] = []

    def _build(self, url: str, cases: list[Case], side: str) -> dict[str, str]:
        """Each case in its own transaction; returns schema -> error for the cases this server rejects."""
        errors: dict[str, str] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            for c in cases:
                try:
                    with conn.transaction():
                        for s in c.schemas():
                            conn.execute(f"create schema {s}")
                        conn.execute(c.sql(side))
                except psycopg.Error as exc:
                    errors[c.schema] = f"{side.upper()}: {str(exc).strip().splitlines()[0]}"
        return errors

    def _drop_case(self, url: str, case: Case) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for s in case.schemas():
                conn.execute(f"drop schema if exists {s} cascade")

    def run(self, cases: list[Case]) -> Report:
        runnable = [c for c in cases if c.min_major <= self.major]
        for c in cases:
            if c.min_major > self.major:
                self.report.outcomes.append(Outcome(c, "cannot-run", detail=f"needs PostgreSQL {c.min_major}"))
        # cases that expect a blocked plan go together: the main batch's plan then applies in one go
        self._batch([c for c in runnable if not c.alone and c.expect != "hazard"])
        self._batch([c for c in runnable if not c.alone and c.expect == "hazard"])
        for c in runnable:
            if c.alone:
                self._batch([c])
        self.report.outcomes.sort(key=lambda o: (o.case.feature, o.case.index))
        return self.report

    def _batch(self, cases: list[Case]) -> None:
        """All cases in one database pair and one comparison. Cases whose plan is blocked (hazard) or whose step
        fails are taken out of the plan, which is then proven again on a fresh copy of A, until it applies."""
        from sage_agent.db.shadow import create_database, drop_database
        from sage_agent.ops.schema.compare import compare, prove, shadow_copy
        from sage_agent.ops.schema.diff import Plan

        if not cases:
            return
        tag = secrets.token_hex(3)
        names = [f"sdc_a_{tag}", f"sdc_b_{tag}"]
        urls = [create_database(self.admin, n) for n in names]
        try:
            errors = self._build(urls[0], cases, "a")
            errors.update(self._build(urls[1], cases, "b"))
            live: dict[str, Case] = {}
            for c in cases:
                if c.schema in errors:
                    self.report.outcomes.append(Outcome(c, "cannot-run", detail=errors[c.schema]))
                    for url in urls:
                        self._drop_case(url, c)
                else:
                    live[c.schema] = c
            if not live:
                return
            after: list[list[str]] = []
            self.report.comparisons += 1
            cmp = compare(self.ctx, urls[0], urls[1],
                          inspect=lambda url: after.append(referee_dump(url, self.major)))
            target = referee_dump(urls[1], self.major)
            plan, proof = cmp.plan, cmp.proof
            self.timings.append(cmp.timings)
            engine_proven = bool(proof and proof.proven)
            out: dict[str, Outcome] = {}
            for text in plan.blockers:
                for o in _owners(text):
                    o = o[:-2] if o.endswith("_t") else o
                    if o in live:
                        out[o] = Outcome(live[o], "hazard", engine_proven, text[:400])
            failed = proof.failed_step if proof else None
            error = proof.error if proof else ""
            while out and not after or failed:
                if failed:
                    owners = {o[:-2] if o.endswith("_t") else o for o in _owners(failed)} & set(live)
                    if not owners:  # a step no case owns failed: nothing to attribute, every case fails
                        owners = set(live) - set(out)
                    for o in owners:
                        out[o] = Outcome(live[o], "apply-failed", engine_proven, f"{error} -- at: {failed[:300]}")
                steps = [st for st in plan.steps
                         if not ({o[:-2] if o.endswith("_t") else o for o in _owners(st.sql)} & set(out))]
                after.clear()
                self.report.comparisons += 1
                with shadow_copy(self.admin, urls[0], "sdc") as shadow:
                    again = prove(Plan(steps=steps, drift=plan.drift), shadow, cmp.model_b,
                                  inspect=lambda url: after.append(referee_dump(url, self.major)))
                failed, error = again.failed_step, again.error
                if not failed and not after:  # nothing applied: the copy is A as it is
                    after.append(referee_dump(urls[0], self.major))
            result = after[0] if after else referee_dump(urls[0], self.major)
            r, t = Counter(result), Counter(target)
            owned: dict[str, list[str]] = {}
            orphans = []
            for line in sorted((t - r).elements()) + sorted((r - t).elements()):
                owners = {o[:-2] if o.endswith("_t") else o for o in _owners(line)}
                if not owners:
                    orphans.append(line)
                for o in owners:
                    owned.setdefault(o, []).append(line)
            for schema, c in live.items():
                if schema in out:
                    self.report.outcomes.append(out[schema])
                elif owned.get(schema) or orphans:
                    lines = owned.get(schema, []) + orphans
                    self.report.outcomes.append(Outcome(c, "differs", engine_proven, " | ".join(lines)[:600]))
                else:
                    self.report.outcomes.append(Outcome(c, "target", engine_proven))
        finally:
            for n in names:
                drop_database(self.admin, n)


def run_suite(admin_url: str, cases: list[Case] | None = None) -> Report:
    with tempfile.TemporaryDirectory(prefix="sage-sdc-") as tmp:
        return Runner(admin_url, Path(tmp)).run(cases if cases is not None else load_cases())


def summary(report: Report) -> str:
    lines = [f"PostgreSQL {report.major}: {report.passed}/{len(report.runnable)} cases end as expected "
             f"({len(report.outcomes) - len(report.runnable)} cannot run here), {len(report.overclaims)} PROVEN "
             f"plans whose dump differs, {report.comparisons} comparisons"]
    for feature, (ok, n, skipped) in report.by_feature().items():
        lines.append(f"  {feature:28} {ok:3}/{n:<3}" + (f"  ({skipped} cannot run)" if skipped else ""))
    for o in report.outcomes:
        if o.status == "cannot-run":
            lines.append(f"  CANNOT RUN {o.case.feature} #{o.case.index} {o.case.name!r}: {o.detail[:200]}")
    for o in report.runnable:
        if not o.passed:
            lines.append(f"  FAIL {o.case.feature} #{o.case.index} {o.case.name!r}: {o.status}: {o.detail[:300]}")
    return "\n".join(lines)
