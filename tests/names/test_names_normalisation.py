"""Unit tests of tthc.names: one group per normalisation case of domain.md §9 (synthetic names)."""

from __future__ import annotations

import unicodedata

import pytest

from tthc.names import (
    LEGACY_ENCODINGS,
    ascii_fold,
    clean_name,
    has_diacritics,
    is_vietnamese_syllable,
    join_registry,
    key_tokens,
    matching_key,
    name_forms,
    repair_encoding,
    skeleton,
    split_name,
)

NFC = "Nguyễn Thị Thủy"


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


# ---- NFC -----------------------------------------------------------------------------------------


def test_nfd_input_becomes_nfc_and_keys_equal():
    assert nfd(NFC) != NFC
    assert clean_name(nfd(NFC)) == NFC
    assert matching_key(nfd(NFC)) == matching_key(NFC)


def test_display_form_keeps_case_and_tone_placement():
    assert clean_name("NGUYỄN Văn Hòa") == "NGUYỄN Văn Hòa"
    assert clean_name("Hoà") == "Hoà"


# ---- mojibake ------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["sloppy-windows-1252", "latin-1"])
@pytest.mark.parametrize("name", ["Nguyễn Văn Đức", "Hoàng Thị Thuý", "TRƯƠNG ĐÌNH HÀ", "Phạm Ánh"])
def test_mojibake_repaired(name, codec):
    import ftfy.bad_codecs  # noqa: F401 - registers sloppy-windows-1252

    broken = name.encode("utf-8").decode(codec)
    assert broken != name
    assert clean_name(broken) == name
    assert repair_encoding(broken) == (name, "mojibake")


def test_mojibake_literal_and_double():
    assert clean_name("Nguyá»…n") == "Nguyễn"
    double = "Lực".encode().decode("latin-1").encode().decode("latin-1")
    assert clean_name(double) == "Lực"


@pytest.mark.parametrize(
    "name",
    [
        "Nguyễn Văn Đức",
        "Hà Lê",
        "Tô Lan",
        "Âu Dương Ý",
        "ÔNG THỊ ÁNH",
        "Hồ Ân",
        "Lê Thị Hà",
        "Ksor H'Hen Niê",
    ],
)
def test_correct_names_are_left_alone(name):
    """Repair happens only to mojibake: correct Unicode (incl. Latin-1-only letters) is untouched."""
    assert repair_encoding(name) == (name, None)
    assert clean_name(name) == name


# ---- legacy encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("NguyÔn V¨n §øc", "Nguyễn Văn Đức"),  # TCVN3 (ABC)
        ("Hµ Néi", "Hà Nội"),
        ("B¶o Th¾ng", "Bảo Thắng"),
        ("M\u00adêng Kh\u00ad¬ng", "Mường Khương"),  # TCVN3 "ư" is the soft-hyphen byte
        ("NGUYÔN", "NGUYỄN"),  # capitals font: lower-case codes in an all-caps name
    ],
)
def test_tcvn3(legacy, expected):
    assert clean_name(legacy) == expected
    assert repair_encoding(legacy)[1] == "tcvn3"


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("Nguyeãn Vaên Ñöùc", "Nguyễn Văn Đức"),  # VNI-Windows
        ("Xin chaøo caùc baïn", "Xin chào các bạn"),
        ("Vieät Nam", "Việt Nam"),
        ("NGUYEÃN VAÊN ÑÖÙC", "NGUYỄN VĂN ĐỨC"),
    ],
)
def test_vni(legacy, expected):
    assert clean_name(legacy) == expected
    assert repair_encoding(legacy)[1] == "vni"


def test_windows_1258():
    assert clean_name("NguyêÞn Vãn Ðýìc") == "Nguyễn Văn Đức"
    assert repair_encoding("NguyêÞn Vãn Ðýìc")[1] == "cp1258"


def test_legacy_decoding_can_be_restricted():
    assert repair_encoding("NguyÔn V¨n §øc", legacy=())[1] is None
    assert repair_encoding("NguyÔn V¨n §øc", legacy=("vni",))[1] is None
    assert repair_encoding("Nguyeãn Vaên Ñöùc", legacy=("vni",))[1] == "vni"
    assert set(LEGACY_ENCODINGS) == {"cp1258", "tcvn3", "vni"}


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "   ",
        "\x00\x01\x7f",
        "©®¶§¬µ",
        "ÿÿÿÿ",
        "Ã",
        "😀 Nguyễn",
        "阮文",
        "\u0301\u0300",
        "a" * 500,
        "Ð" * 40,
        "\ufffd\ufffd",
    ],
)
def test_never_crashes(junk):
    for fn in (clean_name, matching_key, ascii_fold, split_name, has_diacritics, key_tokens):
        fn(junk)
    repair_encoding(junk)


def test_none_is_empty():
    assert clean_name(None) == ""
    assert matching_key(None) == ""
    assert split_name(None) == ("", "", "")


# ---- whitespace and invisible characters --------------------------------------------------------


@pytest.mark.parametrize(
    "spaced",
    [
        "  Nguyễn   Thị  Thủy ",
        "Nguyễn\u00a0Thị\u00a0Thủy",
        "Nguyễn\tThị\nThủy",
        "Nguyễn\u3000Thị\u202fThủy",
        "Nguyễn \u200bThị\u200b Thủy\ufeff",
        "Ngu\u200dyễn Th\u2060ị Th\u00adủy",
        "\ufeffNguyễn\u2009Thị\u2002Thủy\u200e",
    ],
)
def test_whitespace_and_zero_width(spaced):
    assert clean_name(spaced) == NFC
    assert matching_key(spaced) == matching_key(NFC)


# ---- case ----------------------------------------------------------------------------------------


def test_case_folding():
    assert matching_key("NGUYỄN THỊ THỦY") == matching_key(NFC) == matching_key("nguyễn thị thủy")
    assert matching_key("ĐẶNG") == matching_key("đặng")


# ---- đ / Đ ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", ["\u00d0ặng \u00f0ức", "\u0189ặng \u0256ức", "D\u0335ặng d\u0336ức"])
def test_dj_lookalikes_become_dj(lookalike):
    assert clean_name(lookalike) == "Đặng đức"
    assert matching_key(lookalike) == matching_key("Đặng Đức")


def test_dj_is_a_letter_in_the_key_and_folds_to_d():
    assert matching_key("Điệp") != matching_key("Diệp")
    assert matching_key("Đức") != matching_key("Dức")
    assert ascii_fold("Đặng Văn Đức") == "Dang Van Duc"
    assert ascii_fold("đỗ thị ân") == "do thi an"
    assert ascii_fold("ĐINH") == "DINH"


# ---- tone placement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [("hòa", "hoà"), ("Khỏe", "Khoẻ"), ("Thủy", "Thuỷ"), ("Thúy", "Thuý"), ("HÒA", "HOÀ"), ("Thụy", "Thuỵ")],
)
def test_old_and_new_tone_placement_share_a_key(old, new):
    assert old != new
    assert matching_key(old) == matching_key(new)
    assert clean_name(old) == old  # display keeps the writer's style


@pytest.mark.parametrize(
    ("a", "b"),
    [("Lan", "Lân"), ("Hà", "Hạ"), ("Hương", "Hường"), ("Hùng", "Hưng"), ("Thu", "Thư"), ("Tâm", "Tám")],
)
def test_different_marks_stay_different(a, b):
    assert matching_key(a) != matching_key(b)


# ---- i / y ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "i"),
    [("Quý", "Quí"), ("Kỳ", "Kì"), ("Lý", "Lí"), ("Mỹ", "Mĩ"), ("Sỹ", "Sĩ"), ("Vy", "Vi"), ("QUÝ", "quí")],
)
def test_i_y_variants_share_a_key(y, i):
    assert matching_key(y) == matching_key(i)


@pytest.mark.parametrize(
    ("a", "b"), [("Huy", "Hui"), ("Tùy", "Tùi"), ("Ý", "Í"), ("Yến", "Iến"), ("Hải", "Hảy")]
)
def test_y_kept_where_it_is_not_the_variant(a, b):
    assert matching_key(a) != matching_key(b)


# ---- key shape -----------------------------------------------------------------------------------


def test_key_is_toneless_letters_plus_tone_digit():
    assert key_tokens("Nguyễn Văn Hòa") == ["nguyên4", "văn", "hoa2"]
    assert skeleton("nguyên4") == "nguyen"
    forms = name_forms("Nguyễn  Văn\u00a0Hòa")
    assert forms.tokens == ("Nguyễn", "Văn", "Hòa")
    assert forms.plain == ("Nguyen", "Van", "Hoa")
    assert forms.accented
    assert "Nguy" not in repr(forms)


def test_minority_names_with_apostrophes_and_hyphens():
    assert matching_key("H\u2019Hen Niê") == matching_key("H'Hen Niê")
    assert matching_key("Y-Moan Ênuôl") == matching_key("Y Moan Ênuôl")


def test_has_diacritics():
    assert has_diacritics("Lê Lan")
    assert has_diacritics("Dang Đuc")
    assert not has_diacritics("Nguyen Van An")


def test_clean_is_idempotent():
    for name in ["NguyÔn V¨n §øc", "Nguyá»…n", "  \u00d0ặng \u200b ", nfd(NFC), "Nguyeãn"]:
        once = clean_name(name)
        assert clean_name(once) == once


# ---- split and join --------------------------------------------------------------------------------


def test_split_name():
    assert split_name("Nguyễn Văn An") == ("Nguyễn", "Văn", "An")
    assert split_name("  Nguyễn\u00a0Thị  Thu Hà ") == ("Nguyễn", "Thị Thu", "Hà")
    assert split_name("Lê An") == ("Lê", "", "An")
    assert split_name("An") == ("", "", "An")
    assert split_name(nfd("Trần Thủy"))[1:] == ("", "Thủy")
    assert split_name("TÔN NỮ THỊ NINH") == ("TÔN", "NỮ THỊ", "NINH")


def test_split_name_compound_family_names():
    compounds = ["Tôn Nữ", "Âu Dương"]
    assert split_name("Tôn Nữ Thị Ninh", compounds) == ("Tôn Nữ", "Thị", "Ninh")
    assert split_name("TÔN NỮ THỊ NINH", compounds) == ("TÔN NỮ", "THỊ", "NINH")
    assert split_name("Âu Dương Phong", compounds) == ("Âu Dương", "", "Phong")
    assert split_name("Tôn Nữ", compounds) == ("Tôn", "", "Nữ")  # a given name must remain


def test_join_registry():
    assert join_registry("Nguyễn", "Văn", "An") == "Nguyễn Văn An"
    assert join_registry(" Lê ", "", "An ") == "Lê An"
    assert join_registry("Lê", None, "An") == "Lê An"
    assert join_registry(None, None, None) == ""
    assert join_registry(*split_name("Nguyễn Thị Thu Hà")) == "Nguyễn Thị Thu Hà"
    decomposed = nfd("Thủy")
    assert join_registry("Trần", "", decomposed) == "Trần " + decomposed  # no Unicode change


# ---- syllables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ok",
    [
        "Nguyễn",
        "nghĩa",
        "Quỳnh",
        "quý",
        "gì",
        "giếng",
        "khuỷu",
        "hoà",
        "hòa",
        "người",
        "Thuở",
        "Đức",
        "kiều",
        "Ý",
    ],
)
def test_valid_syllables(ok):
    assert is_vietnamese_syllable(ok)


@pytest.mark.parametrize(
    "bad",
    [
        "Nguyen",
        "Duc",
        "Baù",
        "kan",
        "ci",
        "ngi",
        "ghan",
        "ngọć",
        "Hùg",
        "thì\u0301",
        "bých",
        "Ksor",
        "qa",
        "mâ",
        "Quuý",
        "còa",
        "giìn",
        "ChÝ".casefold() + "́",
    ],
)
def test_invalid_syllables(bad):
    assert not is_vietnamese_syllable(bad)
