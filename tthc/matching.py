"""Reconciling a dossier's applicant with the population database's record (domain.md §9, world.md §5).

The lookup is by ID number, so the registry record returned is the *holder of that number*; this
module decides whether the applicant named on the dossier is that holder. It compares the name
(:func:`compare_names`) and the birth date (:func:`birth_dates_agree`) and assigns one of the match
classes of docs/contracts.md (:func:`classify`). Nothing here logs or raises with personal data,
and results (:class:`NameMatch`, :class:`MatchResult`) carry no name, number or date.

Name comparison (:class:`NameComparison`)
-----------------------------------------
``exact``
    The dossier's name as sent (ends stripped) is identical to ``join_registry(ho, chu_dem, ten)``.
``equal_after_normalisation``
    Equal matching keys (:func:`tthc.names.matching_key`): NFC/NFD, case, whitespace incl. NBSP and
    zero-width characters, mojibake and legacy encodings, Ð look-alikes, old/new tone placement,
    i/y variants.
``close``
    Not equal, but the same name with exactly one recognised defect (``NameMatch.kind``):

    * ``missing_middle``: same family name (first token) and given name (last token); one side's
      middle names are the other's with one or more left out (``Nguyễn An`` / ``Nguyễn Văn An``).
    * ``typo``: same number of tokens, exactly one token differs, by one letter edit
      (insert, delete, substitute or transpose; Damerau/OSA distance 1 on the letters without
      diacritics, via rapidfuzz) or by diacritics alone. For the **given name** the edit counts as
      a typo only if at least one of the two spellings could not be a real name: it is not a
      valid Vietnamese syllable (``Hùg``, ``Ngoc``), or its case breaks the style of the rest of
      its name (``Nguyễn Văn ùng``, ``Trần Thị yL``). Two plausible spellings are two real names
      (``Minh``/``Linh``, ``Lan``/``Lam``, ``Lan``/``Lân``, ``Hà``/``Hạ``), i.e. a different person.
      For the family and middle names a one-letter edit is a typo, but a diacritic-only change
      between two plausible spellings is still a different name (the rule above, everywhere).
    * ``swapped_middle``: same family and given name, the same middle names in another order
      (``Nguyễn Thị Thu Hà`` / ``Nguyễn Thu Thị Hà``); with the given name and the birth date
      equal this is taken as the same person (``accept_swapped_middle=False`` to send it to a
      steward instead). Given and middle swapped (``Lê Minh Anh`` / ``Lê Anh Minh``: siblings'
      names) is *different*.
    * ``unaccented``: one side carries no diacritic at all (a legacy ASCII-only system,
      ``NGUYEN VAN DUC``), equals the other after :func:`tthc.names.ascii_fold` (đ→d), and is
      visibly stripped: it has a token that is no valid syllable as written (``Nguyen``, ``Duc``)
      or the other side's diacritics are not on the given name alone (``La Thanh Thanh`` vs
      ``La Thanh Thành`` is another given name). Accepted risk: the diacritics that tell
      ``Lan`` from ``Lân`` are gone, so a stripped ``Nguyen Thi Lan`` is close to ``Nguyễn Thị Lân``;
      ``MatchPolicy(accept_unaccented=False)`` turns this kind off.

    The first three must also reach ``MatchPolicy.min_close_score`` (default 50) on the rapidfuzz
    score, which bounds how much of a long middle name may be missing.
``different``
    Anything else (more than one defect, a different given name, swapped given/middle, ...).

``NameMatch.score`` is rapidfuzz's normalised similarity (``fuzz.ratio``, 0-100) of the two
matching keys (for ``unaccented``: of the two case-folded spellings, at most 99); 100 only for
exact and normalised-equal names. It ranks cases for a data steward; apart from the
``min_close_score`` floor the decision follows the rules above, not the score.

Birth dates
-----------
Dates are ``YYYY-MM-DD`` (``YYYYMMDD`` and ``DD/MM/YYYY`` are accepted too) or a bare year
``YYYY``. Two full dates agree when equal; when either side knows only the year (the registry keeps
year-only dates for some citizens) the years are compared. A missing or unreadable date on either
side cannot confirm identity: ``birth_date_ok`` is False.

Match classes and the same-person policy
----------------------------------------
Evaluated in this order by :func:`classify`:

==========================  =====================================================  ===========
class                       when                                                    same_person
==========================  =====================================================  ===========
``invalid_id``              the caller says the ID number is not valid              False
``not_found``               no registry record for the number                       False
``birth_date_mismatch``     birth dates disagree (or one is missing) and the        False
                            names are not *different* (exact, normalised-equal,
                            close, or the dossier has no name)
``matched``                 exact name, birth dates agree                           True
``matched_normalised``      names equal after normalisation, birth dates agree      True
``name_mismatch``           names close, or different (then whatever the birth      see below
                            date)
``lookup_failed``           set by the caller when the lookup itself failed         False
==========================  =====================================================  ===========

The birth date is checked before the name, as the ground-truth world does (sandbox/world.py):
a close name with a wrong birth date is a ``birth_date_mismatch`` whose ``name_comparison`` says
``close``. Only a *different* name with a wrong birth date is a ``name_mismatch`` (the number
probably belongs to someone else).

``same_person`` is True exactly for ``matched``, ``matched_normalised``, and ``name_mismatch``
with a **close** name (one of the four kinds above) and **agreeing birth dates**. Different names
are never the same person and a close name never rescues a disagreeing birth date. Sex is
reported (``sex_ok``) but does not decide: a mistyped sex field is a known data-entry error
(defect ``cccd_sex``); ``MatchPolicy(sex_blocks_close=True)`` makes a sex recorded differently on
both sides block a close-name match. The policy switches live in :class:`MatchPolicy`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from tthc.names import NameForms, is_vietnamese_syllable, join_registry, name_forms

__all__ = [
    "Applicant",
    "MatchClass",
    "MatchPolicy",
    "MatchResult",
    "NameComparison",
    "NameMatch",
    "RegistryRecord",
    "birth_dates_agree",
    "classify",
    "compare_names",
    "lookup_failed",
    "parse_birth_date",
]


class NameComparison(StrEnum):
    EXACT = "exact"
    EQUAL_AFTER_NORMALISATION = "equal_after_normalisation"
    CLOSE = "close"
    DIFFERENT = "different"


class MatchClass(StrEnum):
    """The reconciliation match classes of docs/contracts.md (values are the contract strings)."""

    MATCHED = "matched"
    MATCHED_NORMALISED = "matched_normalised"
    NAME_MISMATCH = "name_mismatch"
    BIRTH_DATE_MISMATCH = "birth_date_mismatch"
    NOT_FOUND = "not_found"
    INVALID_ID = "invalid_id"
    LOOKUP_FAILED = "lookup_failed"


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """Switches of the same-person policy (defaults are the documented policy)."""

    accept_missing_middle: bool = True
    accept_typo: bool = True
    accept_swapped_middle: bool = True
    accept_unaccented: bool = True
    #: a sex recorded on both sides and different blocks a close-name match (off: a mistyped
    #: sex field is a common data-entry error, and the ID number already ties the record)
    sex_blocks_close: bool = False
    #: rapidfuzz score (0-100) a close name must reach
    min_close_score: float = 50.0


DEFAULT_POLICY = MatchPolicy()


@dataclass(frozen=True, slots=True)
class Applicant:
    """The applicant as the dossier states it."""

    name: str | None
    birth_date: str | None = None  # "YYYY-MM-DD" or "YYYY"
    sex: int | None = None  # 1 male, 2 female
    id_number: str | None = None

    def __repr__(self) -> str:  # personal data never in reprs (logs, tracebacks)
        return "Applicant(<redacted>)"

    @classmethod
    def from_dossier(cls, dossier: Any) -> Applicant:
        """From a :class:`tthc.model.Dossier` (or anything with its ``applicant_*`` attributes)."""
        return cls(
            name=getattr(dossier, "applicant_name", None),
            birth_date=getattr(dossier, "applicant_birth_date", None),
            sex=getattr(dossier, "applicant_sex", None),
            id_number=getattr(dossier, "applicant_id_number", None),
        )


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """The population database's view of the number's holder (``HoVaTen`` split, as returned)."""

    ho: str | None
    chu_dem: str | None
    ten: str | None
    birth_date: str | None  # "YYYY-MM-DD" or "YYYY"
    sex: int | None = None

    def __repr__(self) -> str:
        return "RegistryRecord(<redacted>)"

    @property
    def full_name(self) -> str:
        return join_registry(self.ho, self.chu_dem, self.ten)


@dataclass(frozen=True, slots=True)
class NameMatch:
    """Outcome of comparing two names. ``kind`` says which close defect (or why different)."""

    comparison: NameComparison
    score: float
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Outcome of reconciling one applicant; carries no personal data."""

    match_class: MatchClass
    name_score: float | None
    birth_date_ok: bool | None
    same_person: bool
    name_comparison: NameComparison | None = None
    name_kind: str | None = None
    sex_ok: bool | None = None


def lookup_failed() -> MatchResult:
    """The result the caller records when the registry could not be asked (errors, time-outs)."""
    return MatchResult(MatchClass.LOOKUP_FAILED, None, None, False)


# ---- names -----------------------------------------------------------------------------------


def compare_names(
    dossier_name: str | None, registry_name: str | None, policy: MatchPolicy = DEFAULT_POLICY
) -> NameMatch:
    """Compare the dossier's full name with the registry's full name (see the module docstring)."""
    if not dossier_name or not registry_name or not dossier_name.strip() or not registry_name.strip():
        return NameMatch(NameComparison.DIFFERENT, 0.0, "missing")
    if dossier_name.strip() == registry_name.strip():
        return NameMatch(NameComparison.EXACT, 100.0)
    a, b = name_forms(dossier_name), name_forms(registry_name)
    if a.keys == b.keys:
        return NameMatch(NameComparison.EQUAL_AFTER_NORMALISATION, 100.0)
    if not a.keys or not b.keys:
        return NameMatch(NameComparison.DIFFERENT, 0.0, "missing")

    score = fuzz.ratio(" ".join(a.keys), " ".join(b.keys))
    kind = _close_kind(a, b, policy)
    if not kind.startswith("!") and score >= policy.min_close_score:
        return NameMatch(NameComparison.CLOSE, score, kind)
    if policy.accept_unaccented:
        unaccented = _unaccented_match(a, b)
        if unaccented is not None:
            return NameMatch(NameComparison.CLOSE, unaccented, "unaccented")
    return NameMatch(NameComparison.DIFFERENT, score, kind.lstrip("!"))


def _unaccented_match(a: NameForms, b: NameForms) -> float | None:
    """Score when one name is the other typed without diacritics, visibly so; else None.

    *Visibly* unaccented: the plain side has no diacritic at all, and either has a token that is no
    Vietnamese syllable as written (``Nguyen``, ``Duc``) or the other side carries a diacritic
    somewhere else than on the given name alone. A plain name that reads as a correct one
    (``La Thanh Thanh``) against a name accented on the given name only (``La Thanh Thành``) is not
    taken as stripped: that is another given name.
    """
    if a.accented == b.accented:
        return None
    plain, accented = (b, a) if a.accented else (a, b)
    if plain.folded != accented.folded:
        return None
    accented_at = [i for i, (t, p) in enumerate(zip(accented.tokens, accented.plain, strict=True)) if t != p]
    plain_invalid = not all(is_vietnamese_syllable(t) for t in plain.tokens)
    only_given = accented_at == [len(accented.tokens) - 1]
    if only_given and not plain_invalid:
        return None
    # how far the two spellings are apart, for ranking only (structure decided the match)
    return min(99.0, fuzz.ratio(plain.display.casefold(), accented.display.casefold()))


def _close_kind(a: NameForms, b: NameForms, policy: MatchPolicy) -> str:
    """Which single defect separates two names; ``"!reason"`` when they are judged different."""
    ka, kb = a.keys, b.keys
    if len(ka) == len(kb):
        diffs = [i for i, (x, y) in enumerate(zip(ka, kb, strict=True)) if x != y]
        if len(diffs) == 1:
            i = diffs[0]
            given = i == len(ka) - 1
            verdict = _token_typo(a, b, i, given)
            if verdict == "typo":
                return "typo" if policy.accept_typo else "!typo"
            return "!" + verdict + ("_given" if given else ("_family" if i == 0 else "_middle"))
        if len(ka) >= 4 and ka[0] == kb[0] and ka[-1] == kb[-1] and Counter(ka[1:-1]) == Counter(kb[1:-1]):
            return "swapped_middle" if policy.accept_swapped_middle else "!swapped_middle"
        if Counter(ka) == Counter(kb):
            return "!swapped_given"
        return "!several_tokens"
    short, long_ = (ka, kb) if len(ka) < len(kb) else (kb, ka)
    if (
        len(short) >= 2
        and short[0] == long_[0]
        and short[-1] == long_[-1]
        and _is_subsequence(short[1:-1], long_[1:-1])
    ):
        return "missing_middle" if policy.accept_missing_middle else "!missing_middle"
    return "!token_count"


def _token_typo(a: NameForms, b: NameForms, i: int, given: bool) -> str:
    """``typo`` or the reason why token ``i`` of two names makes them different names."""
    # letters only: without tones and diacritics, with and without the i/y folding
    distance = min(
        OSA.distance(a.folded[i], b.folded[i]),
        OSA.distance(a.plain[i].casefold(), b.plain[i].casefold()),
    )
    if distance > 1:
        return "name"
    # could each spelling be a real name? a syllable, in the case the rest of its name uses
    valid_a, valid_b = _plausible_token(a, i), _plausible_token(b, i)
    if distance == 0:  # diacritics only: Lan/Lân, Hà/Hạ, Diệp/Điệp
        return "diacritic" if valid_a and valid_b else "typo"
    if given and valid_a and valid_b:  # Minh/Linh, Lan/Lam: two real given names
        return "letter"
    return "typo"


def _plausible_token(forms: NameForms, i: int) -> bool:
    """Token ``i`` is a Vietnamese syllable written in the same case style as the rest of the name."""
    token = forms.tokens[i]
    if not is_vietnamese_syllable(token):
        return False
    others = Counter(_case_style(t) for j, t in enumerate(forms.tokens) if j != i)
    if not others:
        return True
    style, count = others.most_common(1)[0]
    if style == "mixed" or count * 2 <= sum(others.values()):
        return True  # no clear style to compare with
    mine = _case_style(token)
    return mine == style or (len(token) == 1 and mine in ("upper", "title") and style in ("upper", "title"))


def _case_style(token: str) -> str:
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return "mixed"
    if all(c.isupper() for c in letters):
        return "upper"
    if all(c.islower() for c in letters):
        return "lower"
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return "title"
    return "mixed"


def _is_subsequence(short: tuple[str, ...], long_: tuple[str, ...]) -> bool:
    it = iter(long_)
    return all(tok in it for tok in short)


# ---- birth dates ---------------------------------------------------------------------------------

_FULL_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_COMPACT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DMY_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_YEAR_RE = re.compile(r"^(\d{4})$")


def parse_birth_date(value: str | None) -> tuple[int, int | None, int | None] | None:
    """``(year, month, day)`` or ``(year, None, None)`` for a bare year; None when unreadable."""
    if value is None:
        return None
    s = str(value).strip()
    if m := _FULL_RE.match(s) or _COMPACT_RE.match(s):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _DMY_RE.match(s):
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _YEAR_RE.match(s):
        return int(m.group(1)), None, None
    else:
        return None
    try:
        date(y, mo, d)
    except ValueError:
        return None
    return y, mo, d


def birth_dates_agree(applicant_date: str | None, registry_date: str | None) -> bool:
    """Full dates must be equal; if either side is a bare year, the years must be equal."""
    a, b = parse_birth_date(applicant_date), parse_birth_date(registry_date)
    if a is None or b is None:
        return False
    if a[1] is None or b[1] is None:
        return a[0] == b[0]
    return a == b


# ---- classification ------------------------------------------------------------------------------


def classify(
    applicant: Applicant | Mapping[str, Any] | Any,
    registry: RegistryRecord | Mapping[str, Any] | Any | None,
    id_valid: bool,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> MatchResult:
    """Match class and same-person decision for one applicant (see the module docstring).

    ``applicant``: an :class:`Applicant`, a mapping with ``name``/``birth_date``/``sex``, or a
    dossier (``applicant_*`` attributes). ``registry``: a :class:`RegistryRecord`, a mapping or
    object with ``ho``/``chu_dem``/``ten``/``birth_date``/``sex``, or None when not found.
    ``lookup_failed`` is not decided here: use :func:`lookup_failed`.
    """
    if not id_valid:
        return MatchResult(MatchClass.INVALID_ID, None, None, False)
    if registry is None:
        return MatchResult(MatchClass.NOT_FOUND, None, None, False)
    app = _as_applicant(applicant)
    reg = _as_registry(registry)

    name = compare_names(app.name, reg.full_name, policy)
    bd_ok = birth_dates_agree(app.birth_date, reg.birth_date)
    sex_ok = (app.sex == reg.sex) if app.sex in (1, 2) and reg.sex in (1, 2) else None

    names_differ = name.comparison is NameComparison.DIFFERENT and name.kind != "missing"
    if not bd_ok and not names_differ:
        # a close or missing name does not hide a birth-date error: reported via name_comparison
        cls, same = MatchClass.BIRTH_DATE_MISMATCH, False
    elif name.comparison is NameComparison.EXACT:
        cls, same = MatchClass.MATCHED, True
    elif name.comparison is NameComparison.EQUAL_AFTER_NORMALISATION:
        cls, same = MatchClass.MATCHED_NORMALISED, True
    else:
        cls = MatchClass.NAME_MISMATCH
        same = (
            name.comparison is NameComparison.CLOSE
            and bd_ok
            and not (policy.sex_blocks_close and sex_ok is False)
        )
    return MatchResult(cls, name.score, bd_ok, same, name.comparison, name.kind, sex_ok)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _as_applicant(obj: Any) -> Applicant:
    if isinstance(obj, Applicant):
        return obj
    if not isinstance(obj, Mapping) and hasattr(obj, "applicant_name"):
        return Applicant.from_dossier(obj)
    return Applicant(_get(obj, "name"), _get(obj, "birth_date"), _get(obj, "sex"), _get(obj, "id_number"))


def _as_registry(obj: Any) -> RegistryRecord:
    if isinstance(obj, RegistryRecord):
        return obj
    return RegistryRecord(
        _get(obj, "ho"), _get(obj, "chu_dem"), _get(obj, "ten"), _get(obj, "birth_date"), _get(obj, "sex")
    )
