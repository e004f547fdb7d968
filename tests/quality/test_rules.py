"""Each rule fires on its crafted bad row, and on nothing else; odd-but-valid rows pass."""

from __future__ import annotations

import json

import pytest

from tests.quality.cases import BAD_CASES, CLEAN_CASES, DUPLICATE_CODE
from tthc.quality.validate import load_suite_spec, suite_rules

EXPECTED_FAILS: dict[str, int] = {}
for _case, _rule, _ in BAD_CASES:
    EXPECTED_FAILS[_rule] = EXPECTED_FAILS.get(_rule, 0) + 1
EXPECTED_FAILS["duplicate_code"] = 2


def _rules_of(outcome, row: int) -> set[str]:
    return {i["rule_id"] for i in outcome.record_issues if i["row"] == row}


@pytest.mark.parametrize(
    ("case", "rule"), [(c, r) for c, r, _ in BAD_CASES], ids=[c for c, _, _ in BAD_CASES]
)
def test_rule_fires_on_its_bad_row_only(crafted, case, rule):
    rows, bad_rows, _clean, outcome = crafted
    i = bad_rows[case]
    # exactly one clear reason per crafted defect
    assert _rules_of(outcome, i) == {rule}
    if rows[i].dossier_code is not None:
        code = rows[i].dossier_code
        assert rule in outcome.quarantined.get(code, []) + outcome.warnings.get(code, [])
    severity = suite_rules(load_suite_spec()).get(rule, "critical")
    assert (i in outcome.quarantined_rows) == (severity == "critical")


def test_every_rule_of_the_suite_is_exercised(crafted):
    rules = set(suite_rules(load_suite_spec())) - {"unknown_agency"}  # see test_known_agencies_parameter
    assert rules <= set(EXPECTED_FAILS), rules - set(EXPECTED_FAILS)


def test_rule_stats_count_exactly_the_crafted_rows(crafted):
    _rows, _bad, _clean, outcome = crafted
    stats = {s["rule_id"]: s for s in outcome.rule_stats}
    for rule, n in EXPECTED_FAILS.items():
        assert stats[rule]["failed"] == n, rule
        assert stats[rule]["success"] is False
        assert stats[rule]["evaluated"] >= n
    assert all(s["severity"] in ("critical", "warning") for s in stats.values())
    # a rule with no failure reports success and how many records it looked at
    assert outcome.row_count == len(_rows)


@pytest.mark.parametrize("case", [c for c, _ in CLEAN_CASES] + ["other_source_same_code"])
def test_clean_rows_pass(crafted, case):
    rows, _bad, clean_rows, outcome = crafted
    i = clean_rows[case]
    assert i not in outcome.quarantined_rows
    key = f"{rows[i].source_id}:{rows[i].dossier_code}"
    assert [r for r in outcome.record_issues if r["dossier_key"] == key] == []
    if case != "other_source_same_code":  # its code is quarantined in the other source
        assert rows[i].dossier_code in outcome.valid_codes


def test_cmnd_is_not_an_invalid_cccd(crafted):
    rows, _bad, clean_rows, outcome = crafted
    code = rows[clean_rows["cmnd_legacy"]].dossier_code
    assert code not in outcome.quarantined and code not in outcome.warnings


def test_duplicates_are_both_quarantined(crafted):
    rows, bad_rows, clean_rows, outcome = crafted
    a, b = bad_rows["duplicate_code_1"], bad_rows["duplicate_code_2"]
    assert a in outcome.quarantined_rows and b in outcome.quarantined_rows
    assert outcome.quarantined[DUPLICATE_CODE] == ["duplicate_code"]
    dup = [r for r in outcome.record_issues if r["rule_id"] == "duplicate_code"]
    assert [r["dossier_key"] for r in dup] == [f"src-a:{DUPLICATE_CODE}"] * 2
    assert [r["row"] for r in dup] == [a, b]
    # the same code in another source is not a duplicate
    assert clean_rows["other_source_same_code"] not in outcome.quarantined_rows


def test_severity_split(crafted):
    rows, bad_rows, _clean, outcome = crafted
    rules = suite_rules(load_suite_spec())
    for code, ids in outcome.quarantined.items():
        assert ids == sorted(ids)
        assert all(rules.get(r, "critical") == "critical" for r in ids), code
    for code, ids in outcome.warnings.items():
        assert all(rules[r] == "warning" for r in ids), code
    # a record with warnings only is publishable
    warn_code = rows[bad_rows["cccd_sex"]].dossier_code
    assert warn_code in outcome.valid_codes and warn_code not in outcome.quarantined
    crit_code = rows[bad_rows["cccd_prefix"]].dossier_code
    assert crit_code not in outcome.valid_codes
    assert {r["severity"] for r in outcome.record_issues} == {"critical", "warning"}
    assert not outcome.success


def test_missing_code_is_named_by_row(crafted):
    _rows, bad_rows, _clean, outcome = crafted
    i = bad_rows["required_dossier_code"]
    assert i in outcome.quarantined_rows
    assert not [k for k in outcome.quarantined if k.startswith("#")]  # no fake codes for the warehouse
    assert {
        "dossier_key": f"src-a:#{i}",
        "dossier_code": f"#{i}",
        "rule_id": "required_dossier_code",
        "severity": "critical",
        "row": i,
    } in outcome.record_issues


def test_unparseable_field_replaces_required_field(crafted):
    _rows, _bad, _clean, outcome = crafted
    stats = {s["rule_id"]: s for s in outcome.rule_stats}
    assert stats["required_received_at"]["failed"] == 1  # only the truly missing one
    assert stats["unparseable_received_at"]["severity"] == "critical"


def test_outcome_serialises(crafted):
    _rows, _bad, _clean, outcome = crafted
    d = json.loads(outcome.to_json(include_gx_result=True))
    assert set(d) >= {"rule_stats", "record_issues", "quarantined", "warnings", "valid_codes", "gx_result"}
    assert d["rule_stats"][0].keys() == {"rule_id", "severity", "evaluated", "failed", "success"}
    assert d["record_issues"][0].keys() == {"dossier_key", "dossier_code", "rule_id", "severity", "row"}


def test_dataframe_input_gives_the_same_outcome(crafted):
    import pandas as pd

    from tthc.quality.validate import validate_dossiers

    rows, _bad, _clean, outcome = crafted
    df = pd.DataFrame([d.to_row() for d in rows])
    again = validate_dossiers(df)
    assert again.quarantined == outcome.quarantined
    assert again.warnings == outcome.warnings
    assert again.record_issues == outcome.record_issues


def test_empty_batch():
    from tthc.quality.validate import validate_dossiers

    out = validate_dossiers([])
    assert out.row_count == 0 and out.quarantined == {} and out.valid_codes == [] and out.success


def test_known_agencies_parameter():
    from tests.quality.cases import good_dossier
    from tthc.quality.validate import validate_dossiers

    rows = [good_dossier(1), good_dossier(2, agency_code="000.00.99.H40")]
    without = validate_dossiers(rows)
    assert "unknown_agency" not in {s["rule_id"] for s in without.rule_stats}  # not given: not evaluated
    out = validate_dossiers(rows, known_agencies={"000.00.12.H40"})
    assert out.warnings == {rows[1].dossier_code: ["unknown_agency"]}
    assert out.rule("unknown_agency")["failed"] == 1
    assert out.quarantined == {}


def test_warehouse_accepts_the_outcome(crafted):
    """``tthc.warehouse.repo.save_validation`` reads rule stats and issues as mappings."""
    _rows, _bad, _clean, outcome = crafted
    for s in outcome.rule_stats:
        assert int(s["evaluated"]) >= 0 and int(s["failed"]) >= 0 and s.get("success") in (True, False)
    for i in outcome.record_issues:
        assert str(i["dossier_code"]) and i["rule_id"] and i["severity"] in ("critical", "warning")
