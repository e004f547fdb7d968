from pathlib import Path

import pytest

from tthc.registry import RegistryError, load_registry

GOOD = """
defaults:
  lookback_hours: 48
sources:
  - source_id: xa_an_binh
    agency_code: 000.01.05.H40
    agency_name: UBND xã An Bình
    level: commune
    dialect: igate
    conn_id: igate_xa_an_binh
    stewards: [a@example.gov.vn]
  - source_id: so_tu_phap
    agency_code: 000.00.12.H40
    agency_name: Sở Tư pháp
    level: department
    dialect: onegate
    conn_id: onegate_stp
    lookback_hours: 24
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_and_overrides(tmp_path):
    reg = load_registry(write(tmp_path, GOOD))
    a, b = reg.sources
    assert a.lookback_hours == 48 and b.lookback_hours == 24
    assert a.dag_id == "tthc_source_xa_an_binh"
    assert reg.agency_codes == {"000.01.05.H40", "000.00.12.H40"}


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("dialect: onegate", "dialect: soap", "dialect"),
        ("agency_code: 000.00.12.H40", "agency_code: 12-H40", "agency_code"),
        ("lookback_hours: 24", "lookback_hours: -1", "lookback_hours"),
        ("conn_id: onegate_stp", "conn_id: onegate_stp\n    colour: blue", "colour"),
        ("stewards: [a@example.gov.vn]", "stewards: [not-an-address]", "stewards"),
    ],
)
def test_bad_entry_names_file_entry_and_field(tmp_path, old, new, field):
    p = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(RegistryError) as e:
        load_registry(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg
    assert ("so_tu_phap" in msg) or ("xa_an_binh" in msg)


def test_duplicate_source_id(tmp_path):
    p = write(tmp_path, GOOD.replace("source_id: so_tu_phap", "source_id: xa_an_binh"))
    with pytest.raises(RegistryError, match="duplicate"):
        load_registry(p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")
    with pytest.raises(RegistryError, match="YAML"):
        load_registry(write(tmp_path, "sources: [unclosed"))


def test_project_registry_is_valid():
    reg = load_registry()
    assert reg.sources
