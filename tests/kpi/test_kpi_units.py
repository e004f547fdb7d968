"""Provinces of agencies and dossiers: registry entries, code prefixes, the 2025 reorganisation."""

from __future__ import annotations

from datetime import date, datetime

from tests.kpi.kpi_data import OLD_UNIT, UNITS, registry
from tthc.codes import CCCD_PROVINCE_PREFIXES
from tthc.kpi import ProvinceResolver, load_unit_config


def test_shipped_legacy_table_maps_every_old_province_onto_the_34_new_units():
    from vietnam_provinces import Province

    new_codes = {int(p.code) for p in Province.iter_all()}
    assert len(new_codes) == 34
    units = load_unit_config()
    assert units.reorganisation_date == date(2025, 7, 1)
    old_codes = {int(p) for p in CCCD_PROVINCE_PREFIXES}  # the 63 legacy codes (domain.md §4)
    assert len(old_codes) == 63
    for old in old_codes:
        new = units.legacy_provinces.get(old, old)
        assert new in new_codes, old
    assert set(units.legacy_provinces) <= old_codes
    # 63 → 34 exactly; each new code is one of its predecessors' (domain.md §8)
    assert len({units.legacy_provinces.get(c, c) for c in old_codes}) == 34
    assert units.legacy_provinces[27] == 24  # new Bắc Ninh 24 ← old 24, 27
    assert units.legacy_provinces[74] == 79 and units.legacy_provinces[77] == 79  # TP.HCM
    assert units.h_codes["H40"] == 40


def test_registry_agencies_and_prefixes(tmp_path):
    r = ProvinceResolver(registry(tmp_path), UNITS)
    assert r.province_of("000.00.12.H40", datetime(2026, 7, 1)) == "H40"
    assert r.province_of("000.00.00.H37", datetime(2024, 1, 1)) == "H37"
    assert r.province_of("000.99.99.H40", datetime(2026, 7, 1)) == "H40"  # not listed: its prefix
    assert r.province_of(None) == "unknown"
    assert r.province_name("H40") == "Nghệ An"
    assert r.province_title("H40") == "tỉnh Nghệ An"
    assert r.province_title("H99") == "tỉnh H99"


def test_old_unit_before_reorganisation_counts_for_the_new_province(tmp_path):
    r = ProvinceResolver(registry(tmp_path), UNITS)
    # old Hà Nam (35) merged into Ninh Bình (37), which the registry names H37
    assert r.province_of(OLD_UNIT, datetime(2025, 6, 30, 23, 30)) == "H37"
    # from 1 July 2025 dossiers name new units: an old code is left as it is
    assert r.province_of(OLD_UNIT, datetime(2025, 7, 1, 0, 10)) == "H35"
    # a merged province the registry does not serve: the statistics code of the new unit
    units = UNITS.__class__(UNITS.reorganisation_date, {**UNITS.h_codes, "H30": 30}, {30: 31})
    r2 = ProvinceResolver(registry(tmp_path), units)
    assert r2.province_of("000.00.01.H30", date(2025, 3, 1)) == "P31"
    assert r2.province_name("P31") == "Thành phố Hải Phòng"
    assert r2.province_title("P31") == "Thành phố Hải Phòng"
