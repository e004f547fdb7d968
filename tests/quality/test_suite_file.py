"""The suite file is what a data steward reads: every rule named, graded and described in Vietnamese."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest

from sandbox.world_types import DEFECT_SEVERITY
from tthc.quality.validate import QualityError, default_suite_path, load_suite_spec, suite_rules

REQUIRED = ("dossier_code", "agency_code", "procedure_code", "received_at", "applicant_name", "status")


def test_suite_file_loads_and_every_expectation_is_annotated():
    raw = json.loads(default_suite_path().read_text(encoding="utf-8"))
    assert raw["name"] == "dossier"
    assert len(raw["expectations"]) >= 20
    for exp in raw["expectations"]:
        meta = exp["meta"]
        assert meta["rule_id"] and meta["severity"] in ("critical", "warning"), exp
        vi = meta["description_vi"]
        # Vietnamese with its diacritics, stored precomposed (NFC)
        assert any(ord(ch) > 127 for ch in vi), vi
        assert unicodedata.normalize("NFC", vi) == vi
    assert load_suite_spec()["name"] == "dossier"


def test_contract_rule_ids_and_severities():
    rules = suite_rules(load_suite_spec())
    for defect, severity in DEFECT_SEVERITY.items():
        if severity == "none" or defect == "missing_field":
            continue
        assert rules[defect] == severity, defect
    for col in REQUIRED:
        assert rules[f"required_{col}"] == "critical"
    family = {
        e["meta"]["rule_id"]
        for e in load_suite_spec()["expectations"]
        if e["meta"].get("family") == "missing_field"
    }
    assert family == {f"required_{c}" for c in REQUIRED}


def test_custom_expectations_are_in_the_suite():
    types = {e["type"] for e in load_suite_spec()["expectations"]}
    assert "expect_column_values_to_be_valid_cccd" in types
    assert "expect_column_values_to_match_dossier_code" in types
    assert "expect_column_pair_values_to_be_consistent_with_cccd" in types


def test_gx_builds_the_suite_with_our_severities():
    from tthc.quality.validate import _gx_suite

    spec = load_suite_spec()
    suite = _gx_suite(spec)
    assert len(suite.expectations) == len(spec["expectations"])
    for exp, src in zip(suite.expectations, spec["expectations"], strict=True):
        assert exp.expectation_type == src["type"]
        assert exp.meta["rule_id"] == src["meta"]["rule_id"]
        assert str(getattr(exp.severity, "value", exp.severity)) == src["meta"]["severity"]


def test_malformed_suite_is_rejected(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(
        json.dumps(
            {
                "name": "x",
                "expectations": [
                    {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "a"},
                        "meta": {"rule_id": "r"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(QualityError, match="severity"):
        load_suite_spec(p)


def test_importing_the_package_does_not_import_gx():
    code = (
        "import sys, tthc.quality, tthc.quality.validate; "
        "from tthc.quality import validate_dossiers, ValidationOutcome; "
        "assert 'great_expectations' not in sys.modules, 'GX imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_readme_lists_every_rule():
    readme = (default_suite_path().parent / "README.md").read_text(encoding="utf-8")
    for rule in suite_rules(load_suite_spec()):
        assert f"`{rule}`" in readme, rule
