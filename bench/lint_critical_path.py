"""Critical path of `sage lint --reporter json FILE` on two processes, from the CPU (process_time) of each
process's phases. On an idle 2-core machine each process has a core, so the wall time is about this path: an
estimate from measured CPU for a machine too busy to measure wall time on (bench/results/lint.md says which).

    path = before the fork + max(parent: max(P1, P2) + O1 + U1, child: max(P2 + U2, max(P1, P2) + O1) + O2)
           + the parent's concluding and the JSON report

    TREE=/path/to/other/checkout python bench/lint_critical_path.py FILE   # compare two trees, alternating by hand
"""
import os, sys, time
T0 = time.process_time()
sys.path.insert(0, os.environ.get("TREE") or str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import gc; gc.disable()
from pathlib import Path
from sage_agent.sqlkit.lint import parallel
from sage_agent.ops.lint import runner, reporters
from sage_agent.ops.lint.config import select_rules, LintConfig
import tempfile
LOG = os.path.join(tempfile.mkdtemp(prefix="sage-critical-path-"), "phases.log")
open(LOG, "w").close()
PARENT = os.getpid()
def wrap(name):
    real = getattr(parallel, name)
    def w(*a, **k):
        c = time.process_time(); r = real(*a, **k)
        with open(LOG, "a") as f:
            f.write(f"{'p' if os.getpid() == PARENT else 'c'} {name} {time.process_time() - c:.4f}\n")
        return r
    setattr(parallel, name, w)
wrap("build_statements"); wrap("check_statements")
marks = {}
real_ltp = parallel.lint_two_parts
def ltp(*a, **k):
    marks["fork"] = time.process_time(); out = real_ltp(*a, **k); marks["back"] = time.process_time(); return out
parallel.lint_two_parts = ltp
rules = select_rules(LintConfig())
rep = runner.lint_file(Path(sys.argv[1]), rules, 18, False, jobs=2)
t = time.process_time()
out = reporters.as_json(runner.LintRun([rep], rules=rules))
print(f"lint_file return {t - marks['back']:.2f} json {time.process_time() - t:.2f}")
T1 = time.process_time()
ph = {"p": [], "c": []}; names = {"p": [], "c": []}
for line in open(LOG):
    who, name, t = line.split(); ph[who].append(float(t)); names[who].append(name)
p_checks = [t for t, n in zip(ph["p"], names["p"]) if n == "check_statements"]
pick = lambda who, n: [t for t, m in zip(ph[who], names[who]) if m == n]
P1 = pick("p", "build_statements")[0]; P2 = pick("c", "build_statements")[0]
U2, O2 = pick("c", "check_statements")
if len(p_checks) == 2:  # this round: ordered rules first, memory sent, then the rest
    O1, U1 = p_checks
    branch = max(max(P1, P2) + O1 + U1, max(P2 + U2, max(P1, P2) + O1) + O2)
    own = P1 + O1 + U1
else:  # before: every rule on part one, then the memory
    R1 = p_checks[0]
    branch = max(P1, P2) + max(R1, U2) + O2
    own = P1 + R1
seg_parent = marks["back"] - marks["fork"]
rest_parent = seg_parent - own  # recv, unpickle, conclude inside lint_two_parts
path = (marks["fork"] - T0) + branch + rest_parent + (T1 - marks["back"])
total = T1 - T0 + P2 + U2 + O2
print(f"{os.environ.get('TREE', 'this tree')}: before fork {marks['fork'] - T0:.2f} | P1 {P1:.2f} part-one rules {sum(p_checks):.2f} | P2 {P2:.2f} U2 {U2:.2f} O2 {O2:.2f} | "
      f"conclude etc {rest_parent:.2f} after {T1 - marks['back']:.2f} | critical path {path:.2f} of {total:.2f} CPU s | {len(rep.findings)} findings")
