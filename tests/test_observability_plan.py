"""Plan analysis on EXPLAIN JSON documents (pure functions), including shapes hard to provoke quickly."""

from sage_agent.ops.observe.plan import PlanCatalog, analyse_plan, parse_plan, render_plan


def node(node_type, children=(), **kw):
    raw = {"Node Type": node_type, "Startup Cost": 0.0, "Total Cost": 100.0, "Plan Rows": 10, "Plan Width": 8}
    raw.update(kw)
    if children:
        raw["Plans"] = list(children)
    return raw


def plan(root, **top):
    return [{"Plan": root, "Planning Time": 0.1, "Execution Time": 12.0, **top}]


def test_sort_and_hash_spill_and_nested_loop():
    doc = plan(node(
        "Sort", [node(
            "Nested Loop", [
                node("Seq Scan", **{"Relation Name": "a", "Alias": "a", "Actual Rows": 5000, "Actual Loops": 1,
                                    "Actual Total Time": 3.0}),
                node("Seq Scan", **{"Relation Name": "b", "Alias": "b", "Actual Rows": 1, "Actual Loops": 5000,
                                    "Actual Total Time": 0.01, "Filter": "(b.a_id = a.id)",
                                    "Rows Removed by Filter": 99}),
            ], **{"Actual Rows": 5000, "Actual Loops": 1, "Actual Total Time": 9.0, "Join Type": "Inner"}),
        ], **{"Sort Method": "external merge", "Sort Space Type": "Disk", "Sort Space Used": 9000,
              "Actual Rows": 5000, "Actual Loops": 1, "Actual Total Time": 11.0, "Sort Key": ["a.x"]}))
    root, top = parse_plan(doc)
    findings = analyse_plan(root, PlanCatalog(table_rows={"a": 5000, "b": 100}, leading_columns={"b": {"id"}}))
    rules = {f.rule for f in findings}
    assert {"plan.sort_spill", "plan.nested_loop_rows", "plan.filter_discards"} <= rules
    lines, rows = render_plan(root)
    assert lines[0].startswith("Sort") and any(l.startswith("└─ Nested Loop") for l in lines)
    assert rows[2][0].strip().endswith("Seq Scan on a") and rows[2][4] == 1
    assert top["Execution Time"] == 12.0


def test_hash_spill_and_plain_explain_has_no_actuals():
    doc = plan(node("Hash Join", [
        node("Seq Scan", **{"Relation Name": "big", "Alias": "big", "Plan Rows": 2_000_000}),
        node("Hash", [node("Seq Scan", **{"Relation Name": "small", "Alias": "s"})], **{"Hash Batches": 8,
                                                                                      "Peak Memory Usage": 4096}),
    ], **{"Hash Cond": "(big.small_id = s.id)"}))
    root, _ = parse_plan(doc)
    findings = analyse_plan(root, PlanCatalog(table_rows={"big": 2_000_000, "small": 10},
                                              leading_columns={"big": {"id"}, "small": {"id"}}))
    rules = {f.rule: f for f in findings}
    assert "plan.hash_spill" in rules and "plan.seq_scan_large" in rules
    assert "big.small_id" in rules["plan.join_without_index"].message
    assert "plan.misestimate" not in rules  # no actual rows without ANALYZE
    _, rows = render_plan(root)
    assert rows[0][3] is None
