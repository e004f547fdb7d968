"""Vietnamese personal names: repair, normalise and compare-ready keys (domain.md §9).

Two forms of a name exist side by side:

* the **display form** (:func:`clean_name`): what we keep, show and publish. Only defects that
  change no letter are removed: Unicode is NFC, broken encodings are repaired, whitespace and
  invisible characters are collapsed, and look-alikes of Đ/đ are replaced by the real letter.
  Case and tone-mark placement are left exactly as the source wrote them.
* the **matching key** (:func:`matching_key`): for equality tests only, never displayed. It is the
  display form case-folded, with every syllable written as its letters without the tone mark
  followed by a tone digit, and with the i/y spelling variant folded to ``i``.

Pipeline of :func:`clean_name`, in this order (each step depends on the previous one):

1. NFC (NFD input is common from Mac exports and some systems).
2. Encoding repair (:func:`repair_encoding`), done before any character is removed because the
   broken forms use characters later steps would drop (TCVN3 writes "ư" as a soft hyphen,
   UTF-8 "à" read as cp1252 ends in a no-break space):

   * mojibake, UTF-8 bytes read as cp1252/Latin-1 ("Nguyá»…n"): repaired by ``ftfy``
     (``fix_encoding``), which changes text only when its own detector recognises mojibake;
     the result is kept unless it leaves more invalid Vietnamese syllables than the input had.
   * legacy 8-bit Vietnamese encodings read as cp1252/Latin-1: TCVN3/ABC ("NguyÔn", "§øc"),
     VNI-Windows ("Nguyeãn", "Ñöùc") and Windows-1258 ("NguyêÞn"). No well-kept Python
     library converts TCVN3 or VNI, so this module carries their published mapping tables
     (TCVN 5712:1993 VN3; the VNI-Windows font layout); Windows-1258 uses the standard
     ``cp1258`` codec. Detection is by outcome: each candidate decoding is tried and kept only
     if it strictly lowers the number of tokens that are not valid Vietnamese syllables
     (:func:`is_vietnamese_syllable`; a token in mixed case such as "ChÝ" also counts as
     invalid) without making a valid token invalid. A correct Unicode name is therefore never
     converted (it has no invalid syllable to remove), names with letters outside cp1252 cannot
     be a legacy decoding at all, and anything undecidable is left as it is. Never raises.
     Limit: a string that reads as valid Vietnamese in its broken form (TCVN3 "Khóc" for
     "Khúc") or in two encodings (VNI "THÒ" = TCVN3 "THỀ" vs VNI "THỊ") cannot be decided from
     the text; on synthetic names about 99% of TCVN3/VNI/Windows-1258 strings are repaired. A
     source known to use one encoding can say so: ``repair_encoding(text, legacy=("vni",))``.

3. Đ/đ look-alikes: Ð (U+00D0, Icelandic eth), ð (U+00F0), Ɖ (U+0189), ɖ (U+0256) and
   D/d followed by a combining stroke overlay become Đ/đ (U+0110/U+0111).
4. Whitespace: every Unicode space (no-break, thin, ideographic, tabs, new lines) becomes one
   ASCII space; format characters (zero-width space/joiners, word joiner, BOM, soft hyphen,
   direction marks) are removed; runs are collapsed and the ends stripped.
5. NFC again.

The matching key then:

* case-folds (ID cards print names upper-case);
* treats apostrophe variants as ``'`` and hyphens/punctuation as separators (minority names
  such as "H'Hen Niê" or "Y-Moan");
* writes each syllable as its tone-less letters + a tone digit (1 sắc, 2 huyền, 3 hỏi, 4 ngã,
  5 nặng; none for ngang). Tone position is orthography only, so this makes old and new
  placement on oa/oe/uy (hòa/hoà, khỏe/khoẻ, thủy/thuỷ) identical, while any real difference of
  tone or vowel letter (Lan/Lân, Hà/Hạ, Diệp/Điệp) stays a difference;
* folds the i/y variant: a syllable whose whole vowel is ``y`` after a consonant onset is written
  with ``i`` (Quý/Quí, Kỳ/Kì, Lý/Lí, Mỹ/Mĩ, Sỹ/Sĩ, Vy/Vi). A vowel-initial ``y`` (Yến, Ý) and the
  ``uy``/``ay``/``ây`` vowels are unchanged.

:func:`ascii_fold` strips every diacritic and maps đ→d / Đ→D explicitly (NFD does not decompose
đ, so naive folding leaves it).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import ftfy

__all__ = [
    "LEGACY_ENCODINGS",
    "ascii_fold",
    "clean_name",
    "has_diacritics",
    "is_vietnamese_syllable",
    "join_registry",
    "key_tokens",
    "NameForms",
    "matching_key",
    "name_forms",
    "name_tokens",
    "repair_encoding",
    "skeleton",
    "split_name",
]

# ---- letters and tones ------------------------------------------------------------------------

#: Combining tone marks → tone digit used in matching keys (VNI numbering).
_TONE_DIGIT = {"\u0301": "1", "\u0300": "2", "\u0309": "3", "\u0303": "4", "\u0323": "5"}
_ACUTE, _DOT = "\u0301", "\u0323"

#: Letters without a tone mark (after case folding): Vietnamese ones plus f j w z, which occur in
#: loan words and minority names but start no Vietnamese syllable (they are not in ``_ONSETS``).
_BASE_LETTERS = frozenset("aăâbcdđeêfghijklmnoôơpqrstuưvwxyz")

#: Initial consonants, longest first so that greedy prefixes are tried before shorter ones.
_ONSETS = (
    "ngh", "ng", "nh", "ch", "gh", "gi", "kh", "ph", "qu", "th", "tr",
    "b", "c", "d", "đ", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "",
)  # fmt: skip

#: Valid rhymes (vowel nucleus + final), tone-less. ``y...`` rhymes occur after ``qu`` or alone.
_RHYMES = frozenset(
    """
    a ac ach ai am an ang anh ao ap at au ay
    ăc ăm ăn ăng ăp ăt
    âc âm ân âng âp ât âu ây
    e ec em en eng eo ep et
    ê êch êm ên ênh êp êt êu
    i ia ich im in inh ip it iu
    iêc iêm iên iêng iêp iêt iêu
    o oc oi om on ong op ot ooc oong
    oa oac oach oai oam oan oang oanh oao oap oat oay
    oăc oăm oăn oăng oăt
    oe oen oeo oet
    ô ôc ôi ôm ôn ông ôp ôt
    ơ ơi ơm ơn ơp ơt
    u ua uc ui um un ung up ut
    uân uâng uât uây
    uê uêch uênh
    uôc uôi uôm uôn uông uôt
    uơ
    uy uya uych uynh uyp uyt uyu
    uyên uyêt
    ư ưa ưc ưi ưm ưn ưng ưt ưu
    ươc ươi ươm ươn ương ươp ươt ươu
    y ych ynh yt yêm yên yêng yêt yêu
    """.split()
)
_STOP_FINALS = ("c", "ch", "p", "t")  # syllables ending in these take only sắc or nặng
_VOWELS = frozenset("aăâeêioôơuưy")
#: Rhymes found only in loan words and a handful of syllables: weak evidence against a decoding.
_RARE_RHYMES = frozenset("ooc oong oao oeo uơ uyu uya uych uyp oap oăc ych ec eng".split())

#: A syllable whose whole vowel is ``y`` after a consonant: the i/y variant (Quý/Quí, Kỳ/Kì).
_IY_RE = re.compile(r"^(ngh|ng|nh|ch|gh|kh|ph|qu|th|tr|[bcdđghklmnprstvx])y$")

#: Legacy 8-bit encodings :func:`repair_encoding` can detect and convert.
LEGACY_ENCODINGS = ("cp1258", "tcvn3", "vni")

# ---- look-alikes, spaces, punctuation ------------------------------------------------------------

_DJ_LOOKALIKES = str.maketrans(
    {"\u00d0": "\u0110", "\u0189": "\u0110", "\u00f0": "\u0111", "\u0256": "\u0111"}
)
_DJ_STROKE_RE = re.compile("([Dd])[\u0335\u0336]")
_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u02bb`\u00b4\u2032"})
_KEY_SEPARATORS_RE = re.compile(r"[-\u2010-\u2015\u2212.,;:()\[\]{}\"/\\_]+")
_FOLD_DJ = str.maketrans({"đ": "d", "Đ": "D"})

# ---- legacy encodings ------------------------------------------------------------------------------

#: TCVN3 (TCVN 5712:1993, "ABC", VN3) byte → character. Only lower case and the seven base
#: capitals exist; upper-case toned letters were written with a separate font at the lower-case
#: positions, so a decoded all-capitals name is upper-cased again (see :func:`_decode_tcvn3`).
_TCVN3: dict[int, str] = {
    **dict(zip([0xB5, 0xB8, 0xB6, 0xB7, 0xB9], "àáảãạ", strict=True)),
    **dict(zip([0xA8, 0xBB, 0xBE, 0xBC, 0xBD, 0xC6], "ăằắẳẵặ", strict=True)),
    **dict(zip([0xA9, 0xC7, 0xCA, 0xC8, 0xC9, 0xCB], "âầấẩẫậ", strict=True)),
    0xAE: "đ",
    **dict(zip([0xCC, 0xD0, 0xCE, 0xCF, 0xD1], "èéẻẽẹ", strict=True)),
    **dict(zip([0xAA, 0xD2, 0xD5, 0xD3, 0xD4, 0xD6], "êềếểễệ", strict=True)),
    **dict(zip([0xD7, 0xDD, 0xD8, 0xDC, 0xDE], "ìíỉĩị", strict=True)),
    **dict(zip([0xDF, 0xE3, 0xE1, 0xE2, 0xE4], "òóỏõọ", strict=True)),
    **dict(zip([0xAB, 0xE5, 0xE8, 0xE6, 0xE7, 0xE9], "ôồốổỗộ", strict=True)),
    **dict(zip([0xAC, 0xEA, 0xED, 0xEB, 0xEC, 0xEE], "ơờớởỡợ", strict=True)),
    **dict(zip([0xEF, 0xF3, 0xF1, 0xF2, 0xF4], "ùúủũụ", strict=True)),
    **dict(zip([0xAD, 0xF5, 0xF8, 0xF6, 0xF7, 0xF9], "ưừứửữự", strict=True)),
    **dict(zip([0xFA, 0xFD, 0xFB, 0xFC, 0xFE], "ỳýỷỹỵ", strict=True)),
    **dict(zip([0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7], "ĂÂÊÔƠƯĐ", strict=True)),
}

#: VNI-Windows: a base letter followed by one mark byte (shown as its cp1252 character).
#: Tone marks after a e i o u y ơ ư; circumflex+tone after a e o; breve+tone after a.
_VNI_TONE = {"ù": _ACUTE, "ø": "\u0300", "û": "\u0309", "õ": "\u0303", "ï": _DOT}
_VNI_CIRCUMFLEX = {"â": "", "á": _ACUTE, "à": "\u0300", "å": "\u0309", "ã": "\u0303", "ä": _DOT}
_VNI_BREVE = {"ê": "", "é": _ACUTE, "è": "\u0300", "ú": "\u0309", "ü": "\u0303", "ë": _DOT}
#: VNI single bytes that are whole letters (lower case; upper case by ``str.upper``).
_VNI_SINGLE = {"ô": "ơ", "ö": "ư", "ñ": "đ", "í": "í", "ì": "ì", "æ": "ỉ", "ó": "ĩ", "ò": "ị", "î": "ỵ"}


# ---- public API --------------------------------------------------------------------------------


def clean_name(name: str | None) -> str:
    """Display form: NFC, encoding repaired, Đ look-alikes fixed, whitespace collapsed.

    Case and tone-mark placement are kept as written; ``None`` gives ``""``.
    """
    if not name:
        return ""
    s = unicodedata.normalize("NFC", name)
    s, _ = repair_encoding(s)
    s = _DJ_STROKE_RE.sub(lambda m: "Đ" if m.group(1) == "D" else "đ", s)
    s = s.translate(_DJ_LOOKALIKES)
    s = _collapse_spaces(s)
    return unicodedata.normalize("NFC", s)


@dataclass(frozen=True, slots=True)
class NameForms:
    """Every form of one name the comparison needs, computed once (``repr`` hides the name)."""

    display: str  #: :func:`clean_name`
    tokens: tuple[str, ...]  #: display tokens, split as the key splits them
    keys: tuple[str, ...]  #: per-token matching keys
    plain: tuple[str, ...]  #: display tokens without diacritics (đ→d), case kept
    folded: tuple[str, ...]  #: per-token keys without tone digit or diacritic

    def __repr__(self) -> str:
        return f"NameForms(<redacted>, {len(self.tokens)} tokens)"

    @property
    def accented(self) -> bool:
        """Carries any diacritic or đ."""
        return self.plain != self.tokens


def name_forms(name: str | None) -> NameForms:
    """Display form, tokens, keys and ASCII folds of ``name`` in one pass."""
    display = clean_name(name)
    tokens = tuple(_KEY_SEPARATORS_RE.sub(" ", display.translate(_APOSTROPHES)).split())
    keys = tuple(_token_key(unicodedata.normalize("NFC", t.casefold())) for t in tokens)
    return NameForms(
        display=display,
        tokens=tokens,
        keys=keys,
        plain=tuple(_strip_diacritics(t) for t in tokens),
        folded=tuple(skeleton(k) for k in keys),
    )


def matching_key(name: str | None) -> str:
    """Canonical comparison key: two spellings of one name have equal keys. Never display it."""
    return " ".join(name_forms(name).keys)


def key_tokens(name: str | None) -> list[str]:
    """The matching key as a list of per-syllable keys (see the module docstring)."""
    return list(name_forms(name).keys)


def name_tokens(name: str | None) -> list[str]:
    """The display form split into tokens exactly as :func:`key_tokens` splits it (case kept)."""
    return list(name_forms(name).tokens)


def ascii_fold(name: str | None) -> str:
    """The display form without any diacritic, đ→d and Đ→D mapped explicitly; case kept."""
    return _strip_diacritics(clean_name(name))


def skeleton(token_key: str) -> str:
    """Letters of one key token without tone digit or any diacritic (``nguyên4`` → ``nguyen``)."""
    return "".join(c for c in _strip_diacritics(token_key) if not c.isdigit())


def has_diacritics(name: str | None) -> bool:
    """True when the display form carries any Vietnamese diacritic or đ (i.e. is not plain ASCII)."""
    display = clean_name(name)
    return _strip_diacritics(display) != display


def split_name(name: str | None, compound_family_names: Iterable[str] = ()) -> tuple[str, str, str]:
    """Split a full name into the population database's ``(Ho, ChuDem, Ten)``, display form.

    Vietnamese order is family name, middle name(s), given name: the first token is ``Ho``, the
    last ``Ten``, everything between ``ChuDem``. A one-token name is all ``Ten``. Multi-word family
    names ("Tôn Nữ", "Nguyễn Phúc", "Âu Dương") are ambiguous without a registry, so they are taken
    as one ``Ho`` only when listed in ``compound_family_names`` (compared by matching key) and a
    given name remains.
    """
    tokens = clean_name(name).split()
    if not tokens:
        return "", "", ""
    if len(tokens) == 1:
        return "", "", tokens[0]
    ho_len = 1
    compounds = {tuple(key_tokens(c)) for c in compound_family_names}
    for n in sorted({len(c) for c in compounds}, reverse=True):
        if n < len(tokens) and tuple(_token_key(t.casefold()) for t in tokens[:n]) in compounds:
            ho_len = n
            break
    return " ".join(tokens[:ho_len]), " ".join(tokens[ho_len:-1]), tokens[-1]


def join_registry(ho: str | None, chu_dem: str | None, ten: str | None) -> str:
    """Full name from the registry's parts, exactly as stored (parts stripped, one space between).

    No Unicode or case change: comparing this with a dossier's name as sent is what decides an
    *exact* match; :func:`matching_key` of it decides an equal-after-normalisation match.
    """
    return " ".join(p.strip() for p in (ho, chu_dem, ten) if p and p.strip())


def is_vietnamese_syllable(token: str) -> bool:
    """True when ``token`` is one well-formed Vietnamese syllable (case free).

    Checks: only Vietnamese letters; at most one tone mark, on a vowel where either the old or
    the new placement rule puts it; a valid initial consonant and rhyme; the c/k, g/gh, ng/ngh
    spelling rules; and that stop-final rhymes (-c -ch -p -t) carry sắc or nặng. Used to judge
    encoding repairs and whether a one-letter difference yields another real name.
    """
    return _parse_syllable(token) is not None


def _parse_syllable(token: str) -> tuple[str, str, str | None] | None:
    """``(onset, rhyme, tone mark)`` of a well-formed syllable, else None (see above)."""
    return _parse_folded(token.casefold())


@functools.lru_cache(maxsize=8192)  # syllables, not names: the vocabulary is small
def _parse_folded(token: str) -> tuple[str, str, str | None] | None:
    base_chars: list[str] = []
    tone, tone_at = None, -1
    for i, ch in enumerate(unicodedata.normalize("NFC", token)):
        nfd = unicodedata.normalize("NFD", ch)
        marks = [c for c in nfd if c in _TONE_DIGIT]
        if marks:
            if tone is not None or len(marks) > 1:
                return None
            tone, tone_at = marks[0], i
        base_chars.append(unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONE_DIGIT)))
    base = "".join(base_chars)
    if not base or len(base) != len(base_chars) or any(c not in _BASE_LETTERS for c in base):
        return None
    for onset in _ONSETS:
        if not base.startswith(onset):
            continue
        rhyme = base[len(onset) :]
        if onset == "gi" and rhyme == "":
            if tone is None or tone_at == 1:
                return onset, rhyme, tone  # gì
            continue
        if rhyme not in _RHYMES:
            continue
        if onset in ("c", "ng") and rhyme[0] in "ieêy":
            continue
        if onset == "g" and rhyme[0] in "eêy":
            continue
        if onset in ("k", "gh", "ngh") and rhyme[0] not in "ieêy":
            continue
        if onset == "qu" and rhyme[0] in "uư" or onset == "gi" and rhyme[0] == "i":
            continue  # quuý, giiêng: the glide is already in the onset
        if onset == "c" and rhyme.startswith(("oa", "oă", "oe")):
            continue  # spelt qu-: quà, not còa
        if rhyme[0] == "y" and len(rhyme) > 1 and rhyme[1] != "ê" and onset != "qu":
            continue  # ych, ynh, yt only in quých, quỳnh, quýt
        if rhyme.endswith(_STOP_FINALS) and tone not in (_ACUTE, _DOT):
            continue
        if tone is not None and tone_at - len(onset) not in _tone_positions(rhyme):
            continue
        return onset, rhyme, tone
    return None


def _tone_positions(rhyme: str) -> set[int]:
    """Where in ``rhyme`` a tone mark may sit, old or new placement."""
    n = 0
    while n < len(rhyme) and rhyme[n] in _VOWELS:
        n += 1
    vowels, final = rhyme[:n], rhyme[n:]
    marked = [i for i, c in enumerate(vowels) if c in "ăâêôơư"]
    if marked:
        return {marked[-1]}  # ươ: on ơ; uô, iê, uâ...: on the marked vowel
    if final:
        return {n - 1}  # hoàng, toán, huỳnh
    if n == 1:
        return {0}
    if vowels in ("oa", "oe", "uy"):
        return {0, 1}  # hòa / hoà, khỏe / khoẻ, thủy / thuỷ
    if n == 3:
        return {1}  # hoài, khuỷu
    return {0}  # mái, múa, mía, túi


def repair_encoding(text: str, legacy: Iterable[str] | None = None) -> tuple[str, str | None]:
    """Repair a name whose bytes were decoded with the wrong code page.

    Returns ``(text, fix)`` where ``fix`` is ``None`` (nothing done), ``"mojibake"`` (UTF-8 read as
    cp1252/Latin-1), ``"cp1258"``, ``"tcvn3"`` or ``"vni"`` (the first layer repaired when several
    were). Pure ASCII is returned unchanged at once; the function never raises.

    Decision rule, per layer (at most three layers, e.g. double mojibake): ftfy's ``fix_encoding``
    goes first (its detector decides whether the text is mojibake) and is kept unless it leaves
    more invalid syllables. Otherwise, if the text has invalid syllables, the re-decodings of its
    bytes are candidates (UTF-8, Windows-1258, TCVN3, VNI); one is accepted only if it lowers the
    number of invalid syllables without making a valid token invalid. Ties go to the candidate with
    the commoner tones and rhymes (hỏi, ngã and loan-word rhymes are rare), then to that order.
    A token in mixed case ("ChÝ") counts as invalid: names are lower, UPPER or Title case.

    Some strings are valid in two encodings (VNI "THÒ" is TCVN3 "THỀ" and VNI "THỊ"); a source
    known to use one legacy encoding can say so with ``legacy=("vni",)`` (names from
    ``LEGACY_ENCODINGS``; ``()`` turns legacy decoding off, ``None`` tries all).
    """
    if not text or text.isascii():
        return text, None
    allowed = frozenset(LEGACY_ENCODINGS if legacy is None else legacy)
    first_fix = None
    for _ in range(3):
        text, fix = _repair_layer(text, allowed)
        if fix is None:
            break
        first_fix = first_fix or fix
    return text, first_fix


def _repair_layer(text: str, allowed: frozenset[str]) -> tuple[str, str | None]:
    before = _token_validity(text)
    try:
        fixed = unicodedata.normalize("NFC", ftfy.fix_encoding(text))
    except Exception:  # a repair heuristic must never break the pipeline
        fixed = text
    if fixed != text and _token_validity(fixed).count(False) <= before.count(False):
        return fixed, "mojibake"
    if all(before):
        return text, None
    raw = _as_bytes(text)
    if raw is None:  # letters outside cp1252/Latin-1: cannot be a legacy 8-bit decoding
        return text, None
    ranked = []
    for order, (fix, decoder) in enumerate(_LEGACY_DECODERS):
        if fix != "mojibake" and fix not in allowed:
            continue
        candidate = decoder(text, raw)
        if candidate is None or candidate == text:
            continue
        valid = _token_validity(candidate)
        if valid.count(False) >= before.count(False):
            continue
        if len(valid) == len(before) and any(o and not c for o, c in zip(before, valid, strict=True)):
            continue  # it would break a token that was fine
        ranked.append((valid.count(False), _rarity(candidate), order, candidate, fix))
    if not ranked:
        return text, None
    _, _, _, best, fix = min(ranked)
    return best, fix


# ---- internals -------------------------------------------------------------------------------


def _strip_diacritics(s: str) -> str:
    nfd = unicodedata.normalize("NFD", s.translate(_FOLD_DJ))
    return unicodedata.normalize("NFC", "".join(c for c in nfd if not unicodedata.combining(c)))


def _collapse_spaces(s: str) -> str:
    out = []
    for c in s:
        if c.isspace():
            out.append(" ")
        elif unicodedata.category(c) == "Cf":
            continue  # zero-width space/joiners, word joiner, BOM, soft hyphen, direction marks
        else:
            out.append(c)
    return " ".join("".join(out).split())


def _token_key(token: str) -> str:
    """``hòa``/``hoà`` → ``hoa2``; ``Quý``/``quí`` → ``qui1`` (token already case-folded)."""
    nfd = unicodedata.normalize("NFD", token)
    tones = "".join(_TONE_DIGIT[c] for c in nfd if c in _TONE_DIGIT)
    base = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONE_DIGIT))
    base = _IY_RE.sub(lambda m: m.group(1) + "i", base)
    return base + tones


#: Extra cost of each tone over ngang, roughly -log of its share of Vietnamese syllables
#: (ngang ~27%, sắc ~22%, nặng ~19%, huyền ~18%, hỏi ~9%, ngã ~5%).
_TONE_RARITY = {"\u0301": 0.2, "\u0323": 0.35, "\u0300": 0.4, "\u0309": 1.1, "\u0303": 1.7}
_CASE_SEGMENT_RE = re.compile(r"[^'\-]+")


def _token_validity(text: str) -> list[bool]:
    """Per whitespace-separated token: is it a Vietnamese syllable (look-alikes and invisibles aside)?"""
    s = _DJ_STROKE_RE.sub(lambda m: "Đ" if m.group(1) == "D" else "đ", text).translate(_DJ_LOOKALIKES)
    # keep the soft hyphen: it is TCVN3's "ư", evidence of a legacy encoding
    s = "".join(c for c in s if c == "\u00ad" or unicodedata.category(c) != "Cf")
    return [_case_ok(t) and is_vietnamese_syllable(t) for t in s.split()]


def _case_ok(token: str) -> bool:
    """lower, UPPER or Title case (per part between apostrophes/hyphens: H'Hen, Y-Moan)."""
    for seg in _CASE_SEGMENT_RE.findall(token):
        letters = [c for c in seg if c.isalpha()]
        if letters and not (
            all(c.islower() for c in letters)
            or all(c.isupper() for c in letters)
            or (letters[0].isupper() and all(c.islower() for c in letters[1:]))
        ):
            return False
    return True


def _rarity(text: str) -> float:
    """How unusual a decoded name looks: rare tones and rare rhymes (tie-breaker only)."""
    cost = 0.0
    for token in text.split():
        parsed = _parse_syllable(token)
        if parsed is None or not _case_ok(token):
            cost += 5.0
            continue
        _, rhyme, tone = parsed
        cost += _TONE_RARITY.get(tone or "", 0.0) + (3.0 if rhyme in _RARE_RHYMES else 0.0)
    return cost


def _as_bytes(text: str) -> bytes | None:
    """The bytes a cp1252 (or Latin-1) decoder turned into ``text``; None if impossible."""
    out = bytearray()
    for c in text:
        try:
            out += c.encode("cp1252")
        except UnicodeEncodeError:
            if ord(c) < 0x100:
                out.append(ord(c))  # Latin-1 decoders keep 0x80-0x9F as C1 controls
            else:
                return None
    return bytes(out)


def _decode_utf8(text: str, raw: bytes) -> str | None:
    try:
        return unicodedata.normalize("NFC", raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def _decode_cp1258(text: str, raw: bytes) -> str | None:
    try:
        return unicodedata.normalize("NFC", raw.decode("cp1258"))
    except UnicodeDecodeError:
        return None


def _decode_tcvn3(text: str, raw: bytes) -> str:
    decoded = "".join(_TCVN3.get(b, c) for b, c in zip(raw, text, strict=True))
    # an all-capitals name was typed with the capitals font, at the lower-case positions
    letters = [c for c in text if c.isascii() and c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        decoded = decoded.upper()
    return unicodedata.normalize("NFC", decoded)


def _decode_vni(text: str, raw: bytes) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        low = c.lower()
        nxt = text[i + 1].lower() if i + 1 < n else ""
        letter, marks, used = c, "", 1
        if low in _VNI_SINGLE:
            letter = _VNI_SINGLE[low].upper() if c.isupper() else _VNI_SINGLE[low]
            if letter.lower() in "ơư" and nxt in _VNI_TONE:
                marks, used = _VNI_TONE[nxt], 2
        elif c.isascii() and low in "aeo" and nxt in _VNI_CIRCUMFLEX:
            marks, used = "\u0302" + _VNI_CIRCUMFLEX[nxt], 2
        elif c.isascii() and low == "a" and nxt in _VNI_BREVE:
            marks, used = "\u0306" + _VNI_BREVE[nxt], 2
        elif c.isascii() and low in "aeiouy" and nxt in _VNI_TONE:
            marks, used = _VNI_TONE[nxt], 2
        out.append(letter + marks)
        i += used
    return unicodedata.normalize("NFC", "".join(out))


_LEGACY_DECODERS = (
    ("mojibake", _decode_utf8),
    ("cp1258", _decode_cp1258),
    ("tcvn3", _decode_tcvn3),
    ("vni", _decode_vni),
)
