"""Unit tests of tthc.matching: name comparison, birth dates, every match class, the policy."""

from __future__ import annotations

import unicodedata
from types import SimpleNamespace

import pytest

from tthc.matching import (
    Applicant,
    MatchClass,
    MatchPolicy,
    MatchResult,
    NameComparison,
    RegistryRecord,
    birth_dates_agree,
    classify,
    compare_names,
    lookup_failed,
    parse_birth_date,
)

REG = RegistryRecord("Nguyễn", "Thị", "Thủy", "1990-05-12", 2)
REG_FULL = "Nguyễn Thị Thủy"


def app(name: str | None = REG_FULL, birth: str | None = "1990-05-12", sex: int | None = 2) -> Applicant:
    return Applicant(name, birth, sex, "001190000123")


# ---- compare_names -------------------------------------------------------------------------------


def test_exact():
    m = compare_names("Nguyễn Văn An", "Nguyễn Văn An")
    assert (m.comparison, m.score) == (NameComparison.EXACT, 100.0)
    assert compare_names(" Nguyễn Văn An ", "Nguyễn Văn An").comparison is NameComparison.EXACT


@pytest.mark.parametrize(
    "variant",
    [
        unicodedata.normalize("NFD", REG_FULL),
        "NGUYỄN THỊ THỦY",
        "Nguyễn Thị Thuỷ",  # new tone placement
        "Nguyễn  Thị\u00a0Thủy\u200b",
        "Nguyá»…n Thá»‹ Thá»§y",  # mojibake
        "NguyÔn ThÞ Thñy",  # TCVN3
    ],
)
def test_equal_after_normalisation(variant):
    assert compare_names(variant, REG_FULL).comparison is NameComparison.EQUAL_AFTER_NORMALISATION


@pytest.mark.parametrize(
    ("dossier", "registry", "kind"),
    [
        ("Nguyễn An", "Nguyễn Văn An", "missing_middle"),
        ("Nguyễn Văn An", "Nguyễn An", "missing_middle"),
        ("Lê Thu Hà", "Lê Thị Thu Hà", "missing_middle"),
        ("Nguyễn Văn Hùg", "Nguyễn Văn Hùng", "typo"),  # given name typo, not a syllable
        ("Nguyễn Văn Hnùg", "Nguyễn Văn Hùng", "typo"),  # transposition
        ("Nguyễn Văn Hàgn", "Nguyễn Văn Hùng", "!different"),  # two edits
        ("Nguyễn Thị Ngoc", "Nguyễn Thị Ngọc", "typo"),  # lost tone, "Ngoc" is no syllable
        ("Ngyễn Văn An", "Nguyễn Văn An", "typo"),  # family name
        ("Võ Văn An", "Vũ Văn An", "typo"),  # family, one letter, both real
        ("Nguyễn Vưn An", "Nguyễn Văn An", "typo"),  # middle
        ("Nguyễn Thu Thị Hà", "Nguyễn Thị Thu Hà", "swapped_middle"),
        ("NGUYEN VAN DUC", "Nguyễn Văn Đức", "unaccented"),
        ("Dang Thi Quy", "Đặng Thị Quý", "unaccented"),
    ],
)
def test_close_kinds(dossier, registry, kind):
    m = compare_names(dossier, registry)
    if kind == "!different":
        assert m.comparison is NameComparison.DIFFERENT
    else:
        assert (m.comparison, m.kind) == (NameComparison.CLOSE, kind)
        assert 50 <= m.score < 100


@pytest.mark.parametrize(
    ("dossier", "registry", "reason"),
    [
        ("Nguyễn Văn Minh", "Nguyễn Văn Linh", "letter_given"),  # two real given names
        ("Nguyễn Thị Lan", "Nguyễn Thị Lam", "letter_given"),
        ("Nguyễn Thị Lân", "Nguyễn Thị Lan", "diacritic_given"),
        ("Trần Thị Hạ", "Trần Thị Hà", "diacritic_given"),
        ("Đỗ Thị Điệp", "Đỗ Thị Diệp", "diacritic_given"),  # đ vs d
        ("Trần Văn Hưng", "Trần Văn Hùng", "diacritic_given"),
        ("Lê Anh Minh", "Lê Minh Anh", "swapped_given"),
        ("Nguyễn Văn Tuấn", "Nguyễn Văn Long", "name_given"),
        ("Nguyễn Anh", "Nguyễn Văn An", "token_count"),  # missing middle *and* another given name
        ("La Thanh Thanh", "La Thanh Thành", "diacritic_given"),  # plain, but reads as a real name
        ("Văn An", "Nguyễn Văn An", "token_count"),  # missing family name
        ("", "Nguyễn Văn An", "missing"),
        (None, "Nguyễn Văn An", "missing"),
    ],
)
def test_different(dossier, registry, reason):
    m = compare_names(dossier, registry)
    assert (m.comparison, m.kind) == (NameComparison.DIFFERENT, reason)


def test_unaccented_accepted_risk_is_documented_behaviour():
    """A stripped name cannot carry the mark that separates Lan from Lân: close by policy."""
    assert compare_names("Nguyen Thi Lan", "Nguyễn Thị Lân").kind == "unaccented"
    # ...but a plain name that reads as a correct one is not taken as stripped
    assert compare_names("Lê Thị Lan", "Lê Thị Lân").comparison is NameComparison.DIFFERENT


def test_unaccented_can_be_turned_off():
    m = compare_names("Nguyen Van Duc", "Nguyễn Văn Đức", MatchPolicy(accept_unaccented=False))
    assert m.comparison is NameComparison.DIFFERENT


# ---- birth dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("1990-05-12", (1990, 5, 12)),
        ("19900512", (1990, 5, 12)),
        ("12/05/1990", (1990, 5, 12)),
        ("1990", (1990, None, None)),
        (" 1990 ", (1990, None, None)),
        ("1990-02-30", None),
        ("90-05-12", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_birth_date(value, parsed):
    assert parse_birth_date(value) == parsed


def test_birth_dates_agree():
    assert birth_dates_agree("1990-05-12", "1990-05-12")
    assert not birth_dates_agree("1990-05-13", "1990-05-12")
    assert birth_dates_agree("1990-05-12", "1990")  # year-only registry: by year
    assert not birth_dates_agree("1991-05-12", "1990")
    assert birth_dates_agree("1990", "1990-05-12")  # year-only dossier
    assert not birth_dates_agree(None, "1990-05-12")
    assert not birth_dates_agree("1990-05-12", None)


# ---- classify: every match class -----------------------------------------------------------------


def test_matched():
    r = classify(app(), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok, r.name_score) == (
        MatchClass.MATCHED,
        True,
        True,
        100.0,
    )
    assert r.name_comparison is NameComparison.EXACT


def test_matched_normalised():
    r = classify(app("NGUYỄN THỊ THUỶ"), REG, id_valid=True)
    assert (r.match_class, r.same_person) == (MatchClass.MATCHED_NORMALISED, True)


def test_matched_with_year_only_registry():
    reg = RegistryRecord("Nguyễn", "Thị", "Thủy", "1990", 2)
    assert classify(app(), reg, id_valid=True).match_class is MatchClass.MATCHED
    r = classify(app(birth="1991-05-12"), reg, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok) == (MatchClass.BIRTH_DATE_MISMATCH, False, False)


def test_birth_date_mismatch():
    r = classify(app(birth="1990-05-21"), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok) == (MatchClass.BIRTH_DATE_MISMATCH, False, False)
    r = classify(app("nguyễn thị thủy", birth="1990-05-21"), REG, id_valid=True)
    assert r.match_class is MatchClass.BIRTH_DATE_MISMATCH


def test_missing_dossier_birth_date_cannot_confirm():
    r = classify(app(birth=None), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok) == (MatchClass.BIRTH_DATE_MISMATCH, False, False)


def test_name_mismatch_close_is_same_person_when_birth_date_agrees():
    r = classify(app("Nguyễn Thủy"), REG, id_valid=True)
    assert (r.match_class, r.name_comparison, r.name_kind) == (
        MatchClass.NAME_MISMATCH,
        NameComparison.CLOSE,
        "missing_middle",
    )
    assert r.same_person and r.birth_date_ok
    assert 0 < r.name_score < 100


def test_close_name_and_wrong_birth_date_is_a_birth_date_mismatch():
    r = classify(app("Nguyễn Thủy", birth="1991-05-12"), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok) == (MatchClass.BIRTH_DATE_MISMATCH, False, False)
    assert (r.name_comparison, r.name_kind) == (NameComparison.CLOSE, "missing_middle")
    r = classify(app(None, birth="1991-05-12"), REG, id_valid=True)  # no name on the dossier
    assert r.match_class is MatchClass.BIRTH_DATE_MISMATCH


def test_different_name_and_wrong_birth_date_is_a_name_mismatch():
    r = classify(app("Trần Văn Long", birth="1971-01-02", sex=1), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.birth_date_ok) == (MatchClass.NAME_MISMATCH, False, False)


def test_missing_name_with_agreeing_birth_date_is_a_name_mismatch():
    r = classify(app(None), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.name_kind) == (MatchClass.NAME_MISMATCH, False, "missing")


def test_name_mismatch_different_is_never_same_person():
    r = classify(app("Nguyễn Thị Thùy"), REG, id_valid=True)  # Thùy vs Thủy: another name
    assert (r.match_class, r.name_comparison, r.same_person) == (
        MatchClass.NAME_MISMATCH,
        NameComparison.DIFFERENT,
        False,
    )
    assert r.birth_date_ok


def test_sex_is_reported_and_blocks_close_names_only_on_request():
    r = classify(app("Nguyễn Thủy", sex=1), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.sex_ok) == (MatchClass.NAME_MISMATCH, True, False)
    assert classify(app("Nguyễn Thủy", sex=None), REG, id_valid=True).sex_ok is None
    strict = MatchPolicy(sex_blocks_close=True)
    assert not classify(app("Nguyễn Thủy", sex=1), REG, id_valid=True, policy=strict).same_person
    assert classify(app("Nguyễn Thủy", sex=None), REG, id_valid=True, policy=strict).same_person


def test_equal_name_with_other_sex_still_matched():
    r = classify(app(sex=1), REG, id_valid=True)
    assert (r.match_class, r.same_person, r.sex_ok) == (MatchClass.MATCHED, True, False)


def test_not_found():
    r = classify(app(), None, id_valid=True)
    assert (r.match_class, r.same_person, r.name_score, r.birth_date_ok) == (
        MatchClass.NOT_FOUND,
        False,
        None,
        None,
    )


def test_invalid_id_wins_over_everything():
    r = classify(app(), REG, id_valid=False)
    assert (r.match_class, r.same_person) == (MatchClass.INVALID_ID, False)
    assert classify(app(), None, id_valid=False).match_class is MatchClass.INVALID_ID


def test_lookup_failed_is_the_callers():
    r = lookup_failed()
    assert (r.match_class, r.same_person) == (MatchClass.LOOKUP_FAILED, False)


def test_match_class_values_are_the_contract_strings():
    assert {m.value for m in MatchClass} == {
        "matched",
        "matched_normalised",
        "name_mismatch",
        "birth_date_mismatch",
        "not_found",
        "invalid_id",
        "lookup_failed",
    }
    assert MatchClass.MATCHED == "matched"


# ---- inputs and privacy --------------------------------------------------------------------------


def test_accepts_mappings_and_dossier_like_objects():
    registry = {"ho": "Nguyễn", "chu_dem": "Thị", "ten": "Thủy", "birth_date": "1990-05-12", "sex": 2}
    applicant = {"name": REG_FULL, "birth_date": "1990-05-12", "sex": 2}
    assert classify(applicant, registry, id_valid=True).match_class is MatchClass.MATCHED
    dossier = SimpleNamespace(
        applicant_name=REG_FULL, applicant_birth_date="1990-05-12", applicant_sex=2, applicant_id_number="x"
    )
    citizen = SimpleNamespace(ho="Nguyễn", chu_dem="Thị", ten="Thủy", birth_date="1990", sex=2)
    assert classify(dossier, citizen, id_valid=True).match_class is MatchClass.MATCHED


def test_registry_without_middle_name():
    reg = RegistryRecord("Lê", "", "An", "1980-01-01", 1)
    assert reg.full_name == "Lê An"
    r = classify(Applicant("Lê Văn An", "1980-01-01", 1), reg, id_valid=True)
    assert (r.name_kind, r.same_person) == ("missing_middle", True)


def test_no_personal_data_in_reprs():
    a = app()
    r = classify(a, REG, id_valid=True)
    for text in (repr(a), repr(REG), repr(r), str(r)):
        assert "Nguy" not in text and "1990" not in text and "0011900" not in text
    assert isinstance(r, MatchResult)


def test_policy_switches():
    strict = MatchPolicy(accept_missing_middle=False, accept_typo=False, accept_swapped_middle=False)
    assert classify(app("Nguyễn Thủy"), REG, id_valid=True, policy=strict).same_person is False
    assert classify(app("Nguyễn Thị Thủyy"), REG, id_valid=True, policy=strict).same_person is False
    assert classify(app("Nguyễn Thị Thủyy"), REG, id_valid=True).same_person is True
    reg4 = RegistryRecord("Nguyễn", "Thị Thu", "Hà", "1990-05-12", 2)
    swapped = Applicant("Nguyễn Thu Thị Hà", "1990-05-12", 2)
    assert classify(swapped, reg4, id_valid=True).same_person is True
    assert classify(swapped, reg4, id_valid=True, policy=strict).same_person is False
