"""A labelled set of dossier-vs-registry pairs for measuring the same-person decision.

Generated deterministically (fixed seed) from lists of real Vietnamese family, middle and given
names; every person is synthetic. Each pair is one registry record (the holder of the ID number)
and what a dossier says about its applicant, labelled with the truth: is the applicant that person?

Positive kinds (same person, spelt or entered differently) cover domain.md §9: NFD, old/new tone
placement, Đ look-alikes and ASCII-only spelling (đ→d), i/y variants, upper case, extra and
zero-width spaces, a missing middle name, one-letter typos, swapped middle names, mojibake and
legacy encodings (TCVN3, VNI, Windows-1258), year-only birth dates, and combinations.

Negative kinds (different people) are the hard ones: another given name with the same family and
middle names (often one letter away: Minh/Linh), twins (same family name and birth date),
given names that differ only by a diacritic (Lan/Lân, Hà/Hạ, Diệp/Điệp), given and middle names
swapped, namesakes with another birth date, and the same negatives with normalisation noise on top.

Used by ``tests/matching`` and ``bench/match_accuracy.py``; nothing here prints a name.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import ftfy.bad_codecs  # noqa: F401 - registers the "sloppy-windows-1252" codec

from tthc.matching import Applicant, RegistryRecord

SEED = 20261101

FAMILY = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý", "Đào", "Đoàn", "Vương", "Trịnh", "Trương", "Đinh", "Lâm", "Phùng",
    "Mai", "Tô", "Hà", "Tạ", "Lương", "Cao", "Quách", "Kiều", "Đàm", "Thái", "Châu", "Lưu",
    "Triệu", "Mạc", "Tăng", "Chu", "La", "Nông", "Khúc", "Hứa", "Âu", "Lại", "Giang", "Ông",
]  # fmt: skip
MIDDLE_MALE = [
    "Văn", "Hữu", "Đức", "Công", "Quang", "Minh", "Thanh", "Xuân", "Ngọc", "Bá", "Đình", "Trọng",
    "Quốc", "Mạnh", "Tuấn", "Hoàng", "Gia", "Duy", "Thế", "Việt", "Khắc", "Chí", "Tiến", "Hồng",
    "Văn Hữu", "Đức Minh", "Quang Huy", "Minh Đức", "Thanh Tùng", "Hữu Phước",
]  # fmt: skip
MIDDLE_FEMALE = [
    "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Mỹ", "Thúy", "Thủy", "Hồng", "Bích", "Diệu",
    "Phương", "Hoài", "Thùy", "Khánh", "Bảo", "Cẩm", "Tuyết", "Quỳnh", "Ánh", "Như", "Hải",
    "Thị Thu", "Thị Ngọc", "Thị Kim", "Thị Mỹ", "Ngọc Bảo", "Thị Thanh", "Thị Hồng",
]  # fmt: skip
GIVEN_MALE = [
    "An", "Bình", "Cường", "Dũng", "Đức", "Giang", "Hải", "Hiếu", "Hòa", "Hoàng", "Hùng", "Huy",
    "Khánh", "Khoa", "Kiên", "Long", "Lực", "Mạnh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân",
    "Quang", "Quý", "Sơn", "Tài", "Thắng", "Thành", "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng",
    "Việt", "Vinh", "Kỳ", "Sỹ", "Đạt", "Định", "Đông", "Bảo", "Khải", "Lộc", "Thuận", "Quyết",
    "Chiến", "Hậu", "Luân", "Nhân", "Thông", "Tín", "Trí", "Khang", "Triều", "Hiển", "Lợi", "Thụy",
]  # fmt: skip
GIVEN_FEMALE = [
    "Lan", "Hà", "Hương", "Hoa", "Mai", "Ngọc", "Linh", "Trang", "Thảo", "Hằng", "Nga", "Thủy",
    "Thúy", "Huyền", "Nhung", "Yến", "Vy", "Uyên", "Quyên", "Oanh", "Xuân", "Trinh", "Phương",
    "Diệp", "Hạnh", "Loan", "Ly", "My", "Nhi", "Thư", "Vân", "Hiền", "Dung", "Liên", "Nguyệt",
    "Tuyết", "Ánh", "Châu", "Khuê", "Duyên", "Thoa", "Nhàn", "Quỳnh", "Tâm", "Trâm", "Bích",
    "Ngân", "Hồng", "Cúc", "Đào", "Kiều", "Huệ", "Sương", "Thơ", "Thắm", "Gấm", "Hảo", "Mỹ",
]  # fmt: skip

#: Given names that differ only by a diacritic and are both real names: different people.
DIACRITIC_PAIRS = [
    ("Lan", "Lân"), ("Hà", "Hạ"), ("Hương", "Hường"), ("Hùng", "Hưng"), ("Thanh", "Thành"),
    ("Tuấn", "Tuân"), ("Hoa", "Hòa"), ("Nga", "Ngà"), ("Thu", "Thư"), ("Tú", "Tư"),
    ("Yến", "Yên"), ("Linh", "Lĩnh"), ("Lâm", "Lam"), ("Anh", "Ánh"), ("Quyên", "Quyền"),
    ("Đông", "Đồng"), ("Phương", "Phượng"), ("Dung", "Dũng"), ("Diệp", "Điệp"), ("Tâm", "Tám"),
    ("Vân", "Văn"), ("Trang", "Tráng"), ("Mai", "Mại"), ("Ngân", "Ngần"),
]  # fmt: skip
#: Given names one letter apart, both real names: different people.
ONE_LETTER_PAIRS = [
    ("Minh", "Linh"), ("Lan", "Lam"), ("Tâm", "Tân"), ("An", "Anh"), ("Trang", "Trung"),
    ("Hà", "Hải"), ("Sơn", "Sen"), ("Vinh", "Vĩnh"), ("Long", "Loan"), ("Hoa", "Hoan"),
    ("Nam", "Năm"), ("Khang", "Khanh"), ("Thanh", "Thạnh"), ("Hiền", "Hiển"), ("Mai", "Mi"),
    ("Tú", "Tùng"), ("Hưng", "Hương"), ("Bình", "Bính"), ("Lực", "Lộc"), ("Tín", "Tiến"),
    ("Hậu", "Hiệu"), ("Nhi", "Nhu"), ("Hiếu", "Hiền"),
]  # fmt: skip
#: (new placement, old placement) on oa/oe/uy without a final consonant.
TONE_PLACEMENT = [
    ("Hoà", "Hòa"), ("Thuỷ", "Thủy"), ("Thuý", "Thúy"), ("Thuỵ", "Thụy"), ("Khoẻ", "Khỏe"),
    ("Loà", "Lòa"), ("Hoạ", "Họa"), ("Tuý", "Túy"), ("Xoè", "Xòe"), ("Thoả", "Thỏa"),
]  # fmt: skip
#: i/y spelling variants of one name.
IY_VARIANTS = [
    ("Quý", "Quí"), ("Kỳ", "Kì"), ("Lý", "Lí"), ("Mỹ", "Mĩ"), ("Sỹ", "Sĩ"), ("Vy", "Vi"),
    ("Ly", "Li"), ("My", "Mi"), ("Kỷ", "Kỉ"), ("Thy", "Thi"),
]  # fmt: skip

#: Given names that also serve as middle names (for the swapped given/middle negatives).
SWAPPABLE = ["Minh", "Anh", "Thanh", "Lan", "Hồng", "Phương", "Ngọc", "Quang", "Hoàng", "Khánh", "Bảo",
             "Xuân", "Hải", "Tuấn", "Linh", "Mai", "Trung", "Kiên", "Châu", "Giang"]  # fmt: skip

_KEYBOARD = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "g": "fh", "h": "gj", "i": "uo",
    "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "q": "w", "r": "et",
    "s": "ad", "t": "ry", "u": "yi", "v": "cb", "x": "zc", "y": "tu",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """One dossier-vs-registry case. ``repr`` hides the names (they are synthetic, still)."""

    kind: str
    same_person: bool
    name: str
    birth_date: str | None
    sex: int | None
    ho: str
    chu_dem: str
    ten: str
    reg_birth_date: str
    reg_sex: int

    def __repr__(self) -> str:
        return f"LabelledPair(kind={self.kind!r}, same_person={self.same_person})"

    @property
    def applicant(self) -> Applicant:
        return Applicant(self.name, self.birth_date, self.sex)

    @property
    def registry(self) -> RegistryRecord:
        return RegistryRecord(self.ho, self.chu_dem, self.ten, self.reg_birth_date, self.reg_sex)


@dataclass(frozen=True, slots=True)
class Person:
    ho: str
    chu_dem: str
    ten: str
    birth_date: str  # "YYYY-MM-DD" or "YYYY"
    sex: int

    @property
    def full(self) -> str:
        return " ".join(p for p in (self.ho, self.chu_dem, self.ten) if p)

    def with_(self, **kw: str | int) -> Person:
        d = {"ho": self.ho, "chu_dem": self.chu_dem, "ten": self.ten, "birth_date": self.birth_date}
        d["sex"] = self.sex
        d.update(kw)
        return Person(**d)  # type: ignore[arg-type]


# ---- transformations of a name (all deterministic given the rng) -------------------------------


def to_nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def to_upper(s: str) -> str:
    return s.upper()


def add_spaces(s: str, rng: random.Random) -> str:
    parts = s.split(" ")
    seps = ["  ", "\u00a0", " \u200b", "\t", "\u3000", " \u00a0 ", "\u202f"]
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(seps) + p
    if rng.random() < 0.5:
        i = rng.randrange(1, len(out))
        if out[i - 1].isalpha() and out[i].isalpha():
            out = out[:i] + rng.choice(["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad"]) + out[i:]
    return rng.choice(["", " ", "\u00a0"]) + out + rng.choice(["", " ", "\u200b", "\u00a0 "])


def to_mojibake(s: str, rng: random.Random) -> str:
    codec = rng.choice(["sloppy-windows-1252", "latin-1"])
    return s.encode("utf-8").decode(codec)


def to_ascii(s: str) -> str:
    s = s.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def to_lookalike(s: str) -> str:
    return s.replace("Đ", "\u00d0").replace("đ", "\u00f0")


_TONES = {"\u0301": 0, "\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0323": 4}
_VNI_TONE = "ùøûõï"
_VNI_CIRC = "áàåãä"
_VNI_BREVE = "éèúüë"
_VNI_I = "íìæóò"


def _split_letter(ch: str) -> tuple[str, str, int | None]:
    """A letter as (base, vowel mark, tone index)."""
    nfd = unicodedata.normalize("NFD", ch)
    base, mark, tone = nfd[0], "", None
    for c in nfd[1:]:
        if c in _TONES:
            tone = _TONES[c]
        else:
            mark += c
    return base, mark, tone


def to_vni(s: str) -> str:
    """Unicode → VNI-Windows bytes shown as cp1252 characters (what an old system stored)."""
    out = []
    for ch in unicodedata.normalize("NFC", s):
        low = ch.lower()
        if low == "đ":
            seq = "ñ"
        else:
            base, mark, tone = _split_letter(low)
            if base not in "aeiouy" or not (mark or tone is not None):
                seq = low
            elif mark == "\u0302":
                seq = base + ("â" if tone is None else _VNI_CIRC[tone])
            elif mark == "\u0306":
                seq = base + ("ê" if tone is None else _VNI_BREVE[tone])
            elif mark == "\u031b":
                seq = ("ô" if base == "o" else "ö") + ("" if tone is None else _VNI_TONE[tone])
            elif base == "i":
                seq = _VNI_I[tone]
            elif base == "y" and tone == 4:
                seq = "î"
            else:
                seq = base + _VNI_TONE[tone]
        out.append(seq.upper() if ch.isupper() else seq)
    return "".join(out)


def to_tcvn3(s: str) -> str:
    """Unicode → TCVN3 bytes shown as cp1252 characters; capitals kept only where TCVN3 has them."""
    from tthc.names import _TCVN3

    inverse = {v: k for k, v in _TCVN3.items()}
    out = []
    for ch in unicodedata.normalize("NFC", s):
        if ch in inverse:
            out.append(bytes([inverse[ch]]).decode("sloppy-windows-1252"))
        elif ch.lower() in inverse:
            out.append(bytes([inverse[ch.lower()]]).decode("sloppy-windows-1252"))
        else:
            out.append(ch)
    return "".join(out)


def to_cp1258(s: str) -> str:
    """Unicode → Windows-1258 (tone marks as combining bytes) read back as cp1252."""
    chunks = []
    for ch in unicodedata.normalize("NFC", s):
        nfd = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in nfd if c in _TONES)
        rest = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONES))
        chunks.append(rest + tones)
    return "".join(chunks).encode("cp1258").decode("sloppy-windows-1252")


def one_letter_typo(token: str, rng: random.Random) -> str:
    """Insert, delete, substitute (keyboard neighbour) or transpose one letter of ``token``."""
    for _ in range(50):
        op = rng.choice(["delete", "double", "substitute", "transpose"])
        i = rng.randrange(len(token))
        if op == "delete" and len(token) > 2:
            out = token[:i] + token[i + 1 :]
        elif op == "double":
            out = token[: i + 1] + token[i] + token[i + 1 :]
        elif op == "substitute" and token[i].lower() in _KEYBOARD:
            repl = rng.choice(_KEYBOARD[token[i].lower()])
            out = token[:i] + (repl.upper() if token[i].isupper() else repl) + token[i + 1 :]
        elif op == "transpose" and i + 1 < len(token) and token[i] != token[i + 1]:
            out = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        else:
            continue
        if out.lower() != token.lower():
            return out
    return token + token[-1]


# ---- generation ---------------------------------------------------------------------------------


def _birth_date(rng: random.Random) -> str:
    d = date(1945, 1, 1) + timedelta(days=rng.randrange(0, 365 * 62))
    return d.isoformat()


def _person(rng: random.Random, *, sex: int | None = None, ten: str | None = None, chu_dem: str | None = None,
            ho: str | None = None) -> Person:  # fmt: skip
    sex = sex or rng.choice([1, 2])
    middles = MIDDLE_MALE if sex == 1 else MIDDLE_FEMALE
    givens = GIVEN_MALE if sex == 1 else GIVEN_FEMALE
    return Person(
        ho=ho if ho is not None else rng.choice(FAMILY),
        chu_dem=chu_dem if chu_dem is not None else rng.choice(middles),
        ten=ten or rng.choice(givens),
        birth_date=_birth_date(rng),
        sex=sex,
    )


def _pair(
    kind: str, same: bool, reg: Person, name: str, birth: str | None = None, sex: int | None = -1
) -> LabelledPair:
    return LabelledPair(
        kind=kind,
        same_person=same,
        name=name,
        birth_date=reg.birth_date if birth is None else birth,
        sex=reg.sex if sex == -1 else sex,
        ho=reg.ho,
        chu_dem=reg.chu_dem,
        ten=reg.ten,
        reg_birth_date=reg.birth_date,
        reg_sex=reg.sex,
    )


def flip_tone_placement(name: str) -> str:
    """Rewrite oa/oe/uy syllables in the other tone-placement style (new ↔ old)."""
    flip = {}
    for new, old in TONE_PLACEMENT:
        flip.update({new: old, old: new, new.upper(): old.upper(), old.upper(): new.upper()})
    return " ".join(flip.get(t, t) for t in name.split(" "))


def build_pairs(seed: int = SEED, per_kind: int = 16) -> list[LabelledPair]:
    """The whole labelled set, in a fixed order (same seed → identical list)."""
    rng = random.Random(seed)
    pairs: list[LabelledPair] = []

    def positives(
        kind: str, make: Callable[[Person], str], person: Callable[[], Person] | None = None
    ) -> None:
        for _ in range(per_kind):
            p = person() if person else _person(rng)
            pairs.append(_pair(kind, True, p, make(p)))

    # -- same person ------------------------------------------------------------------------
    positives("exact", lambda p: p.full)
    positives("nfd", lambda p: to_nfd(p.full))
    positives("upper", lambda p: to_upper(p.full))
    positives("spaces", lambda p: add_spaces(p.full, rng))

    def tone_person() -> Person:
        new, old = rng.choice(TONE_PLACEMENT)
        where = rng.choice(["ten", "chu_dem"])
        return _person(rng).with_(**{where: new if rng.random() < 0.5 else old})  # registry either style

    positives("old_new_tone", lambda p: flip_tone_placement(p.full), tone_person)

    def iy_person() -> Person:
        a, b = rng.choice(IY_VARIANTS)
        where = rng.choice(["ten", "ho"]) if a in ("Lý", "Ly") else "ten"
        return _person(rng).with_(**{where: a if rng.random() < 0.5 else b})

    def iy_swap(p: Person) -> str:
        for a, b in IY_VARIANTS:
            for x, y in ((a, b), (b, a)):
                if x in p.full.split(" "):
                    return " ".join(y if t == x else t for t in p.full.split(" "))
        return p.full

    positives("i_y_variant", iy_swap, iy_person)

    def dj_person() -> Person:
        return _person(rng, ho=rng.choice(["Đặng", "Đỗ", "Đào", "Đoàn", "Đinh", "Đàm"]))

    positives("dj_lookalike", lambda p: to_lookalike(p.full), dj_person)
    positives(
        "ascii_only", lambda p: rng.choice([to_ascii, lambda s: to_ascii(s).upper()])(p.full), dj_person
    )

    def two_middle_person() -> Person:
        sex = rng.choice([1, 2])
        middles = [m for m in (MIDDLE_MALE if sex == 1 else MIDDLE_FEMALE) if " " in m]
        return _person(rng, sex=sex, chu_dem=rng.choice(middles))

    def drop_middle(p: Person) -> str:
        mids = p.chu_dem.split(" ")
        mids.pop(rng.randrange(len(mids)))
        return " ".join([p.ho, *mids, p.ten])

    positives("missing_middle", drop_middle, two_middle_person)
    positives("missing_middle_single", lambda p: f"{p.ho} {p.ten}")
    # the registry lacks the middle name the dossier carries
    for _ in range(per_kind // 2):
        p = _person(rng)
        reg = p.with_(chu_dem="")
        pairs.append(_pair("missing_middle_registry", True, reg, p.full))

    def typo(p: Person) -> str:
        tokens = p.full.split(" ")
        i = rng.randrange(len(tokens))
        tokens[i] = one_letter_typo(tokens[i], rng)
        return " ".join(tokens)

    positives("typo", typo)

    def typo_family_middle(p: Person) -> str:
        if rng.random() < 0.5:
            return " ".join([one_letter_typo(p.ho, rng), p.chu_dem, p.ten])
        first, *rest = p.chu_dem.split(" ")
        return " ".join([p.ho, one_letter_typo(first, rng), *rest, p.ten])

    positives("typo_family_middle", typo_family_middle)

    def swap_middle(p: Person) -> str:
        mids = p.chu_dem.split(" ")
        return " ".join([p.ho, *reversed(mids), p.ten])

    positives("swapped_middle", swap_middle, two_middle_person)
    positives("mojibake", lambda p: to_mojibake(p.full, rng))
    positives("mojibake_upper", lambda p: to_mojibake(p.full.upper(), rng))
    positives("tcvn3", lambda p: to_tcvn3(p.full))
    positives("vni", lambda p: to_vni(p.full))
    positives("cp1258", lambda p: to_cp1258(p.full))
    for _ in range(per_kind):  # registry knows only the year; the dossier has a full date
        p = _person(rng)
        reg = p.with_(birth_date=p.birth_date[:4])
        pairs.append(
            _pair("registry_year_only", True, reg, rng.choice([p.full, to_nfd(p.full)]), p.birth_date)
        )
    for _ in range(per_kind // 2):  # the dossier knows only the year
        p = _person(rng)
        pairs.append(_pair("dossier_year_only", True, p, p.full, p.birth_date[:4]))
    combos: list[Callable[[str], str]] = [
        lambda s: to_nfd(s.upper()),
        lambda s: add_spaces(to_nfd(s), rng),
        lambda s: to_mojibake(add_spaces(s, rng), rng),
        lambda s: to_upper(add_spaces(s, rng)),
        lambda s: to_lookalike(to_upper(s)),
    ]
    positives("combined_noise", lambda p: rng.choice(combos)(p.full), dj_person)
    positives("combined_tone_nfd", lambda p: to_nfd(flip_tone_placement(p.full)), tone_person)
    positives("combined_missing_middle_upper", lambda p: to_upper(drop_middle(p)), two_middle_person)

    # -- different people -----------------------------------------------------------------------
    def negatives(kind: str, make: Callable[[], tuple[Person, Person]], noise: bool = False) -> None:
        for _ in range(per_kind):
            reg, other = make()
            name = other.full
            if noise:
                name = rng.choice(
                    [to_nfd, to_upper, lambda s: add_spaces(s, rng), lambda s: to_mojibake(s, rng)]
                )(name)
            pairs.append(_pair(kind, False, reg, name, other.birth_date, other.sex))

    def diff_given() -> tuple[Person, Person]:
        reg = _person(rng)
        givens = GIVEN_MALE if reg.sex == 1 else GIVEN_FEMALE
        other_ten = rng.choice([g for g in givens if g != reg.ten and not _iy_same(g, reg.ten)])
        return reg, reg.with_(ten=other_ten)

    def twins() -> tuple[Person, Person]:
        reg = _person(rng)
        sex = rng.choice([1, 2])
        other = _person(rng, sex=sex, ho=reg.ho)
        if sex == reg.sex and rng.random() < 0.6:
            other = other.with_(chu_dem=reg.chu_dem)
        if other.ten == reg.ten or _iy_same(other.ten, reg.ten):
            other = other.with_(ten=rng.choice([g for g in GIVEN_FEMALE + GIVEN_MALE if g != reg.ten]))
        return reg, other.with_(birth_date=reg.birth_date)

    def diacritic_given() -> tuple[Person, Person]:
        a, b = rng.choice(DIACRITIC_PAIRS)
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
        reg = _person(rng, ten=a)
        return reg, reg.with_(ten=b)

    def one_letter_given() -> tuple[Person, Person]:
        a, b = rng.choice(ONE_LETTER_PAIRS)
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
        reg = _person(rng, ten=a)
        return reg, reg.with_(ten=b)

    def swapped_given_middle() -> tuple[Person, Person]:
        a, b = rng.sample(SWAPPABLE, 2)
        reg = _person(rng, chu_dem=a, ten=b)
        return reg, reg.with_(chu_dem=b, ten=a)

    def namesake() -> tuple[Person, Person]:
        reg = _person(rng)
        other_year = int(reg.birth_date[:4]) + rng.choice([-30, -12, -5, -1, 1, 3, 9, 21])
        other = reg.with_(birth_date=f"{other_year}{reg.birth_date[4:]}".replace("-02-29", "-02-28"))
        if rng.random() < 0.3:
            reg = reg.with_(birth_date=reg.birth_date[:4])
        return reg, other

    def unrelated() -> tuple[Person, Person]:
        reg = _person(rng)
        other = _person(rng)
        while other.ten == reg.ten:
            other = _person(rng)
        return reg, other.with_(birth_date=reg.birth_date)

    def missing_middle_diff_given() -> tuple[Person, Person]:
        reg, other = diff_given()
        return reg, other.with_(chu_dem="")

    def year_only_diff_given() -> tuple[Person, Person]:
        reg, other = diff_given()
        return reg.with_(birth_date=reg.birth_date[:4]), other

    negatives("neg_diff_given", diff_given)
    negatives("neg_twins", twins)
    negatives("neg_diacritic_given", diacritic_given)
    negatives("neg_one_letter_given", one_letter_given)
    negatives("neg_swapped_given_middle", swapped_given_middle)
    negatives("neg_namesake_other_birth", namesake)
    negatives("neg_unrelated_same_birth", unrelated)
    negatives("neg_missing_middle_diff_given", missing_middle_diff_given)
    negatives("neg_year_only_diff_given", year_only_diff_given)
    negatives("neg_diacritic_given_noisy", diacritic_given, noise=True)
    negatives("neg_one_letter_given_noisy", one_letter_given, noise=True)
    negatives("neg_swapped_given_middle_noisy", swapped_given_middle, noise=True)
    return pairs


def _iy_same(a: str, b: str) -> bool:
    return any({a, b} == {x, y} for x, y in IY_VARIANTS)
