from datetime import date

import pytest

from tthc.codes import CCCD_PROVINCE_PREFIXES
from tthc.units import agency_province, current_province, load_units

BEFORE, AFTER = date(2025, 6, 30), date(2025, 7, 1)


def test_legacy_table_covers_the_63_old_provinces_and_lands_on_34():
    t = load_units()
    assert {"0" + k for k in t.legacy_provinces} == set(CCCD_PROVINCE_PREFIXES)
    assert len(set(t.legacy_provinces.values())) == 34
    from vietnam_provinces import Province

    assert {int(c) for c in t.legacy_provinces.values()} == {p.code.value for p in Province.iter_all()}


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("27", "24", "Bắc Ninh"),  # old Bắc Ninh → new Bắc Ninh (code of Bắc Giang)
        ("24", "24", "Bắc Ninh"),
        ("74", "79", "Thành phố Hồ Chí Minh"),
        ("77", "79", "Thành phố Hồ Chí Minh"),
        ("36", "37", "Ninh Bình"),
        ("40", "40", "Nghệ An"),
    ],
)
def test_old_codes_map_to_current_provinces(old, new, name):
    u = current_province(old, BEFORE)
    assert (u.code, u.name, u.original_code) == (new, name, old)


def test_same_code_means_different_units_before_and_after():
    # 80 was Long An before the merger; from 1 July 2025 it is the new Tây Ninh
    assert current_province("80", BEFORE).name == "Tây Ninh"
    assert current_province("80", AFTER).name == "Tây Ninh"
    with pytest.raises(KeyError):
        current_province("27", AFTER)  # 27 is not a current code


def test_agency_province_from_h_code():
    assert agency_province("000.00.12.H40", AFTER).name == "Nghệ An"
    with pytest.raises(KeyError, match="H99"):
        agency_province("000.00.12.H99")
