"""The privacy scan: search everything a run leaves behind for personal data.

After a run, :class:`Scanner` reads the places people and other systems see (task logs, e-mails and
their attachments, Airflow's metadata database incl. XCom, the warehouse tables that must not hold
personal data, the dashboard's pages and JSON, Data Docs if any exist, benchmark output) and looks
for two things:

* **planted markers** (:class:`Markers`): exact values of test citizens. ID numbers and phones as
  digits; names in every spelling the product could produce (NFC, NFD, upper case, without
  diacritics, old or new tone placement, ``đ``/``Ð``, odd spacing: all of them fold to one key,
  see :func:`fold`); birth dates in the formats the product writes (ISO ``yyyy-MM-dd``,
  ``dd/MM/yyyy``, ``yyyyMMdd``, also ``dd-MM-yyyy``); phones also as ``+84…`` and grouped.
* **shapes of personal data** whatever the value (the generic detectors):

  ``cccd``
      a 12-digit citizen ID: a run of exactly 12 digits whose first three digits are a legacy
      province code (``tthc.codes.CCCD_PROVINCE_PREFIXES``, all of them start with ``0``) and whose
      digits 4-6 give a birth year between 1900 and this year (digit 4 is 0-3). Because the run
      must be exactly 12 digits, it is never a piece of a longer number (``yyyyMMddHHmmss``
      timestamps, epoch milliseconds, counters). Not a hit either: a run inside a longer token made
      only of hex digits (hashes, hex ids such as ``a3f0791880123456``), the last group of a UUID,
      and a decimal fraction (``0.040123456789``). Timestamps ``yyyyMMddHHmm`` start with ``19`` or
      ``20``: no province code; dossier codes (``000.00.12.H40-250714-0001``) have no 12-digit run.
      A run glued to other letters (``CCCD079188012345``) still counts.
  ``labelled_id``
      a 9-digit old CMND (or any 12-digit number) right after an ID label (``CMND``, ``CCCD``,
      ``SoCMND``, ``SoDinhDanh``, ``id_number``, ``chứng minh``, ``định danh`` …, at most 12
      separator characters between): a bare 9-digit number is too common to be called a CMND.
  ``phone``
      a Vietnamese mobile number ``0[35789]xxxxxxxx`` (or ``+84…``, or grouped ``0912 345 678``)
      as a whole token, with the same exclusions as ``cccd``.

Digit markers of 10+ digits are also found inside longer digit runs (a 13-digit malformed number
that contains a planted CCCD is still that CCCD); shorter ones (8-digit dates, 9-digit CMNDs) only
as whole runs. Text is searched as written and, when it contains them, with JSON ``\\uXXXX``
escapes, HTML entities and URL escapes decoded.

A :class:`Hit` never carries the value: its excerpt masks the value found (``079*******45``,
initials for a name) and redacts the context (other digit runs masked, capitalised and non-ASCII
words cut to their first letter). File paths are searched too and shown with digit runs masked.

Tables that hold personal data on purpose, because publishing to the national portal and the
population-database lookups need it, are left out of the warehouse scan: see
:data:`PERSONAL_DATA_TABLES` and :data:`PERSONAL_DATA_COLUMNS`. Every other table is scanned,
including tables added later.

Lookups audited: :func:`check_lookup_audit` compares the warehouse's ``lookup_audit`` with the
population database's own log of request ids (``MaYeuCau``): every request the LGSP saw must have an
audit row saying who, when, why and how many.

Command line: ``tthc privacy-scan --home var/demo`` (see :func:`main`); exit code 1 on any hit.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import gzip
import html
import io
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit

from tthc.codes import CCCD_PROVINCE_PREFIXES
from tthc.privacy import mask_id, mask_name

# ---- what is left out on purpose -------------------------------------------------------------------

#: Warehouse tables that hold personal data by design (the dossier as pulled and published, and the
#: population-database answers, cached under a keyed hash). Not scanned.
PERSONAL_DATA_TABLES: tuple[str, ...] = ("raw_records", "dossiers", "dossier_history", "lookup_cache")
#: Columns of otherwise scanned tables that hold personal data by design: none. The outbox used to
#: keep a copy of each ``DongBoHoSoMC`` message (applicant name and ID number); since migration 0012
#: a dossier message's payload is derived from ``dossier_history`` when needed, and the outbox's
#: ``payload`` column holds progress entries only (codes, roles, dates), so it is scanned like the
#: rest: a dossier payload found there is a leak.
PERSONAL_DATA_COLUMNS: dict[str, tuple[str, ...]] = {}
#: Folders Great Expectations writes Data Docs and other files into when configured to.
DATA_DOCS_DIR_NAMES: tuple[str, ...] = ("data_docs", "uncommitted", "gx", "great_expectations")
#: File kinds that are not text and not searched (images, databases: databases are SQL targets).
BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .ico .webp .woff .woff2 .ttf .pyc .db .sqlite .sqlite3 .db-journal .db-wal .db-shm "
    ".pid .lock".split()
)
MAX_FILE_BYTES = 256 * 1024 * 1024

DETECTORS = (
    "marker:id_number",
    "marker:name",
    "marker:birth_date",
    "marker:phone",
    "marker:string",
    "cccd",
    "labelled_id",
    "phone",
)


# ---- markers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Markers:
    """Planted values to look for. ``strings`` are any other exact values (addresses, e-mails …).

    A marker file (``--markers``) is JSON with the same keys: ``{"id_numbers": [...], "names":
    [...], "birth_dates": ["1911-11-11", ...], "phones": [...], "strings": [...]}``.
    """

    id_numbers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    birth_dates: tuple[str, ...] = ()  # ISO yyyy-MM-dd
    phones: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Markers:
        unknown = set(data) - {"id_numbers", "names", "birth_dates", "phones", "strings"}
        if unknown:
            raise ValueError(f"unknown marker kinds: {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(str(v) for v in data.get(k) or ()) for k in data})

    @classmethod
    def load(cls, path: str | Path) -> Markers:
        return cls.from_mapping(json.loads(Path(path).read_text(encoding="utf-8")))

    def __bool__(self) -> bool:
        return any((self.id_numbers, self.names, self.birth_dates, self.phones, self.strings))

    def count(self) -> int:
        return sum(len(v) for v in (self.id_numbers, self.names, self.birth_dates, self.phones, self.strings))


# ---- normalisation -----------------------------------------------------------------------------------

_COMBINING = re.compile(r"[\u0300-\u036f\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_HSPACE = re.compile(r"[ \t\r\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_D_TABLE = str.maketrans({"đ": "d", "Đ": "d", "Ð": "d", "ð": "d", "ɖ": "d", "Ɖ": "d"})


def fold(text: str) -> str:
    """The matching key of a text: every spelling of a Vietnamese name folds to the same key.

    NFD, combining marks dropped (tones and vowel marks, so old and new tone placement agree),
    ``đ``/``Đ``/look-alike ``Ð`` → ``d``, case folded, zero-width characters removed, runs of
    horizontal white space (incl. NBSP) → one space. Newlines are kept, so lines still line up
    with the original text.
    """
    s = unicodedata.normalize("NFD", text.translate(_D_TABLE))
    s = _COMBINING.sub("", s).translate(_D_TABLE).casefold()
    s = _ZERO_WIDTH.sub("", s)
    return _HSPACE.sub(" ", s)


# ---- hits and reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One personal value found in one item (file, e-mail part, table row, page)."""

    target: str
    where: str  # redacted location: path › part, table row key, URL; with :line when known
    detector: str
    excerpt: str  # masked value in redacted context; never the value in clear
    count: int = 1  # occurrences of that value in the item


@dataclass
class TargetReport:
    """What one target (a folder, a database, the dashboard …) was, and what was found in it."""

    name: str
    kind: str  # files | email | sql | http | text | data_docs | audit
    status: str = "scanned"  # scanned | absent | error | skipped
    items: int = 0  # files / e-mail parts / rows / pages / texts searched
    bytes: int = 0  # characters searched
    hits: list[Hit] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # per table rows, HTTP statuses, notes
    note: str = ""


@dataclass
class ScanReport:
    targets: list[TargetReport] = field(default_factory=list)

    def add(self, t: TargetReport) -> TargetReport:
        self.targets.append(t)
        return t

    @property
    def hits(self) -> list[Hit]:
        return [h for t in self.targets for h in t.hits]

    @property
    def ok(self) -> bool:
        return not self.hits and not any(t.status == "error" for t in self.targets)

    def target(self, name: str) -> TargetReport:
        return next(t for t in self.targets if t.name == name)

    def totals(self) -> dict[str, dict[str, Any]]:
        return {
            t.name: {"status": t.status, "items": t.items, "chars": t.bytes, "hits": len(t.hits)}
            for t in self.targets
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hits": len(self.hits),
            "targets": [{**asdict(t), "hits": [asdict(h) for h in t.hits]} for t in self.targets],
        }

    def format(self, *, max_hits: int = 50) -> str:
        lines = ["tthc privacy scan", "=" * 17]
        w = max((len(t.name) for t in self.targets), default=10)
        for t in self.targets:
            extra = f" — {t.note}" if t.note else ""
            lines.append(
                f"{t.name:<{w}}  {t.kind:<9} {t.status:<8} {t.items:>7} items {t.bytes:>11,} chars "
                f"{len(t.hits):>4} hits{extra}"
            )
        hits = self.hits
        if hits:
            lines += ["", f"{len(hits)} hit(s) (values masked):"]
            for h in hits[:max_hits]:
                lines.append(f"  [{h.detector}] {h.target}: {h.where} (x{h.count}): {h.excerpt}")
            if len(hits) > max_hits:
                lines.append(f"  … and {len(hits) - max_hits} more (see the JSON report)")
        errors = [t for t in self.targets if t.status == "error"]
        lines.append("")
        if hits or errors:
            lines.append(f"RESULT: FAIL ({len(hits)} hit(s), {len(errors)} target(s) could not be read)")
        else:
            lines.append("RESULT: OK (0 hits)")
        return "\n".join(lines)


# ---- detectors ---------------------------------------------------------------------------------------

_ALNUM = "0-9A-Za-z"
_CCCD_RE = re.compile(r"(?<![0-9])0\d\d[0-3]\d{8}(?![0-9])")
_PHONE_RE = re.compile(
    rf"(?<![{_ALNUM}+])(?:0|\+84[ .]?)[35789]\d{{8}}(?![{_ALNUM}])"
    rf"|\+84[ .]?[35789]\d{{2}}(?P<s1>[ .])\d{{3}}(?P=s1)\d{{3}}(?![{_ALNUM}])"
    rf"|(?<![{_ALNUM}])0[35789]\d{{2}}(?P<s2>[ .-])\d{{3}}(?P=s2)\d{{3}}(?![{_ALNUM}])"
    rf"|(?<![{_ALNUM}])0[35789]\d(?P<s3>[ .-])\d{{3}}(?P=s3)\d{{4}}(?![{_ALNUM}])"
)
_ID_LABEL = (
    r"cccd|cmnd|cmt|cmtnd|căn cước|can cuoc|chứng minh|chung minh|định danh|dinh danh|giấy tờ|giay to"
    r"|sodinhdanh|socmnd|socccd|sogiayto\w*|so_?cmnd|so_?cccd|so_?dinh_?danh|so_?giay_?to"
    r"|id_?number|id_?no|national_?id|citizen_?id"
)
_LABELLED_RE = re.compile(
    rf"(?i)(?<![0-9a-z])(?:{_ID_LABEL})[^\w\n]{{0,12}}(?<!\d)(\d{{12}}|\d{{9}})(?![0-9a-z])"
)
_HEX_TOKEN = re.compile(r"[0-9A-Fa-f]+")
_UUID_HEAD = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-$")
_DIGIT_RUN_8 = re.compile(r"\d{8,}")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CURRENT_YEAR = date.today().year


def _alnum_token(text: str, start: int, end: int) -> tuple[int, int]:
    """The maximal run of ASCII letters and digits around ``text[start:end]``."""
    a, b = start, end
    while a > 0 and text[a - 1].isascii() and text[a - 1].isalnum():
        a -= 1
    n = len(text)
    while b < n and text[b].isascii() and text[b].isalnum():
        b += 1
    return a, b


def _excluded_number(text: str, start: int, end: int) -> bool:
    """True for a digit run that is part of a hash, a UUID or a decimal fraction (module docstring)."""
    a, b = _alnum_token(text, start, end)
    if (a, b) != (start, end) and _HEX_TOKEN.fullmatch(text, a, b):
        return True  # inside a hex token: a hash or hex id
    if start >= 2 and text[start - 1] == "." and text[start - 2].isdigit():
        return True  # 0.040123456789: the fraction of a decimal number
    if start >= 24 and text[start - 1] == "-" and _UUID_HEAD.search(text, start - 24, start):
        return True  # last group of a UUID
    return False


def is_cccd(number: str) -> bool:
    """12 digits, a legacy province prefix, digit 4 in 0-3 and a birth year not in the future."""
    if len(number) != 12 or not number.isdigit() or number[:3] not in CCCD_PROVINCE_PREFIXES:
        return False
    d4 = int(number[3])
    if d4 > 3:
        return False
    year = 1900 + 100 * (d4 // 2) + int(number[4:6])
    return year <= _CURRENT_YEAR


@dataclass(frozen=True)
class _Found:
    detector: str
    key: str  # the value found (a marker: the marker as given): one hit per key and item
    needle: str  # the string searched for (a marker's variant), to count repeats; never reported
    start: int
    end: int
    view: str  # raw | json | html | url
    folded: bool = False  # start/end are offsets in fold(view text)


def _views(text: str) -> Iterator[tuple[str, str]]:
    yield "raw", text
    if "\\u" in text:
        decoded = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        try:  # surrogate pairs from JSON escapes of characters outside the BMP
            decoded = decoded.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeError:
            pass
        if decoded != text:
            yield "json", decoded
    if "&" in text and ";" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            yield "html", unescaped
    if _URL_ESCAPE.search(text):
        unquoted = unquote(text)
        if unquoted != text:
            yield "url", unquoted


class Detector:
    """Finds personal values in a text. Built once per scan (markers compiled)."""

    def __init__(self, markers: Markers | None = None, *, generic: bool = True) -> None:
        self.markers = markers or Markers()
        self.generic = generic
        # needle → (detector, marker as given). Digit markers: whole digit runs, or also inside a
        # longer run when 10+ digits long; everything else is searched in folded text.
        self._digit_exact: dict[str, tuple[str, str]] = {}
        self._digit_inner: dict[str, tuple[str, str]] = {}
        self._folded: dict[str, tuple[str, str]] = {}
        m = self.markers
        for n in m.id_numbers:
            n = n.strip()
            self._add(n, ("marker:id_number", n))
        for p in m.phones:
            digits = re.sub(r"\D", "", p)
            if digits.startswith("84"):
                digits = "0" + digits[2:]
            marker = ("marker:phone", digits)
            self._add(digits, marker)
            if digits.startswith("0") and len(digits) == 10:
                self._add("84" + digits[1:], marker)
                for grouped in (
                    f"{digits[:4]} {digits[4:7]} {digits[7:]}",
                    f"{digits[:4]}.{digits[4:7]}.{digits[7:]}",
                    f"{digits[:3]} {digits[3:6]} {digits[6:]}",
                ):
                    self._add(grouped, marker)
        for d in m.birth_dates:
            for variant in birth_date_variants(d):
                self._add(variant, ("marker:birth_date", d))
        for name in m.names:
            self._add(name, ("marker:name", name))
        for s in m.strings:
            self._add(s, ("marker:string", s))
        self._inner_lengths = sorted({len(k) for k in self._digit_inner})
        self._folded = dict(sorted(self._folded.items(), key=lambda kv: -len(kv[0])))

    def _add(self, needle: str, marker: tuple[str, str]) -> None:
        if not needle.strip():
            return
        if not needle.isdigit():  # names, dates with separators, malformed IDs ("ZZ0010999999X")
            self._folded[fold(needle).strip()] = marker
        elif len(needle) >= 10:
            self._digit_inner[needle] = marker
        else:
            self._digit_exact[needle] = marker

    # -- the search ----------------------------------------------------------------------------
    def find(self, text: str) -> list[tuple[_Found, str]]:
        """Every distinct value found, with the text of the view it was found in (first view wins)."""
        found: list[tuple[_Found, str]] = []
        seen: set[str] = set()
        for view, t in _views(text):
            for f in self._find_in(t, view):
                if f.key in seen:
                    continue
                seen.add(f.key)
                found.append((f, t))
        # a marker that is part of another one found in the same item ("Zyxwvu" of the full name,
        # maybe found in another view of the text) is the same leak: report the longer one
        folded = [f.needle for f, _ in found if f.folded]
        return [
            (f, t)
            for f, t in found
            if not (f.folded and any(f.needle in n and f.needle != n for n in folded))
        ]

    def _find_in(self, t: str, view: str) -> Iterator[_Found]:
        # planted digit values
        if self._digit_exact or self._digit_inner:
            for m in _DIGIT_RUN_8.finditer(t):
                run = m.group(0)
                if _excluded_number(t, m.start(), m.end()):
                    continue
                hit = self._digit_exact.get(run) or self._digit_inner.get(run)
                if hit:
                    yield _Found(hit[0], hit[1], run, m.start(), m.end(), view)
                    continue
                for n in self._inner_lengths:
                    if n >= len(run):
                        break
                    for i in range(len(run) - n + 1):
                        hit = self._digit_inner.get(run[i : i + n])
                        if hit:
                            a = m.start() + i
                            yield _Found(hit[0], hit[1], run[i : i + n], a, a + n, view)
                            break
        # planted strings and names, in folded form
        if self._folded:
            ft = fold(t)
            spans: list[tuple[int, int]] = []
            for needle, (det, marker) in self._folded.items():  # longest first
                pos = ft.find(needle)
                if pos < 0:
                    continue
                end = pos + len(needle)
                if any(a <= pos and end <= b for a, b in spans):
                    continue  # "Zyxwvu" inside the full name already found: the same leak
                spans.append((pos, end))
                yield _Found(det, marker, needle, pos, end, view, folded=True)
        if not self.generic:
            return
        for m in _CCCD_RE.finditer(t):
            v = m.group(0)
            if is_cccd(v) and not _excluded_number(t, m.start(), m.end()):
                yield _Found("cccd", v, v, m.start(), m.end(), view)
        for m in _LABELLED_RE.finditer(t):
            yield _Found("labelled_id", m.group(1), m.group(1), m.start(1), m.end(1), view)
        for m in _PHONE_RE.finditer(t):
            v = re.sub(r"\D", "", m.group(0))
            v = "0" + v[2:] if v.startswith("84") else v
            if not _excluded_number(t, m.start(), m.end()):
                yield _Found("phone", v, m.group(0), m.start(), m.end(), view)

    # -- reporting -----------------------------------------------------------------------------
    def hits(self, text: str, target: str, where: str) -> list[Hit]:
        """Every personal value in ``text`` as masked :class:`Hit` records (one per value)."""
        if not text:
            return []
        out: list[Hit] = []
        for f, t in self.find(text):
            line_no, excerpt = _excerpt(t, f)
            loc = f"{where}:{line_no}" if line_no else where
            view = "" if f.view == "raw" else f" [{f.view}-decoded]"
            out.append(Hit(target, loc + view, f.detector, excerpt, _count(t, f)))
        return out


def birth_date_variants(value: str) -> list[str]:
    """The ways the product writes a birth date (ISO, dd/MM/yyyy, yyyyMMdd, dd-MM-yyyy)."""
    v = value.strip()
    try:
        d = datetime.strptime(v[:10], "%Y-%m-%d").date()
    except ValueError:
        try:
            d = datetime.strptime(v, "%d/%m/%Y").date()
        except ValueError:
            return [v] if len(v) > 4 else []  # a year alone is not a usable marker
    return [d.isoformat(), d.strftime("%d/%m/%Y"), d.strftime("%Y%m%d"), d.strftime("%d-%m-%Y")]


def _count(text: str, f: _Found) -> int:
    return max(1, (fold(text) if f.folded else text).count(f.needle))


_REDACT_DIGITS = re.compile(r"\d{5,}")
_WORD = re.compile(r"\w+")
_KEEP_UPPER = frozenset(
    "INFO WARNING ERROR DEBUG CRITICAL GET POST PUT HTTP HTTPS JSON SQL UTF ID CSV".split()
)


def _redact_word(m: re.Match[str]) -> str:
    w = m.group(0)
    if w.isascii():
        if w.isdigit() or w.islower() or "_" in w or w in _KEEP_UPPER:
            return w
        if w[0].islower() and any(c.isupper() for c in w):  # camelCase keys
            return w
        if len(w) > 2 and w[0].isupper() and any(c.isupper() for c in w[1:]) and not w.isupper():
            return w  # SoDinhDanh, HoVaTen: field names, not names of people
    return w[0] + "…"


def redact(text: str) -> str:
    """Context around a hit made safe to print: digit runs of 5+ masked, capitalised and
    non-ASCII words cut to their first letter, control characters shown as spaces."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)
    text = _REDACT_DIGITS.sub(lambda m: mask_id(m.group(0)) or "", text)
    return _WORD.sub(_redact_word, text)


def _mask(detector: str, value: str) -> str:
    if detector in ("marker:name",):
        return f"«name {mask_name(value) or '?'}»"
    if detector == "marker:birth_date":
        return "«date **-**-****»"
    if detector == "marker:string":
        return f"«{value[:1]}…»"
    digits = re.sub(r"\D", "", value)
    return f"«{mask_id(digits) if digits else value[:1] + '…'}»"


def _excerpt(text: str, f: _Found, width: int = 32) -> tuple[int, str]:
    """(1-based line number, masked excerpt) of a finding."""
    start, end = f.start, f.end
    if f.folded:  # offsets are in fold(text): find the line (fold keeps newlines), then map back
        ft = fold(text)
        line_idx = ft.count("\n", 0, f.start)
        line_start = _nth_newline(text, line_idx)
        line_end = text.find("\n", line_start)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        if len(line) > 2_000_000:
            return line_idx + 1, "«value masked; line too long for an excerpt»"
        rel = f.start - (ft.rfind("\n", 0, f.start) + 1)
        s, e = _map_folded_span(line, rel, rel + (f.end - f.start))
        start, end = line_start + s, line_start + e
    line_no = text.count("\n", 0, start) + 1
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    le = len(text) if le < 0 else le
    left = text[max(ls, start - width) : start]
    right = text[end : min(le, end + width)]
    return line_no, redact(left) + _mask(f.detector, text[start:end]) + redact(right)


def _nth_newline(text: str, n: int) -> int:
    """Offset just after the ``n``-th newline of ``text`` (0 for ``n == 0``)."""
    pos = -1
    for _ in range(n):
        pos = text.find("\n", pos + 1)
    return pos + 1


def _map_folded_span(line: str, fstart: int, fend: int) -> tuple[int, int]:
    """Offsets in ``line`` of the span ``[fstart, fend)`` of ``fold(line)``: the line is folded
    again character by character, with the same collapsing of white space."""
    pos = 0
    start: int | None = None
    in_space = False
    for i, c in enumerate(line):
        fc = fold(c)
        if fc == " ":
            if in_space:
                fc = ""
            in_space = True
        elif fc:
            in_space = False
        n = len(fc)
        if start is None and n and pos + n > fstart:
            start = i
        pos += n
        if start is not None and pos >= fend:
            return start, i + 1
    return (start if start is not None else len(line)), len(line)


# ---- decoding what targets hold ----------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Bytes of a text file as text: UTF-8 (± BOM), UTF-16 with BOM, else Windows-1258 / Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if data[:4000].count(b"\x00") > len(data[:4000]) // 4:  # UTF-16 without BOM
        return data.decode("utf-16-le", errors="replace")
    try:
        return data.decode("cp1258")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def xlsx_text(data: bytes) -> list[tuple[str, str]]:
    """(sheet name, text) of every sheet of a workbook: one line per row, cells tab-separated."""
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out = []
    try:
        for ws in wb.worksheets:
            rows = []
            for row in ws.iter_rows(values_only=True):
                rows.append("\t".join("" if v is None else _cell_text(v) for v in row))
            out.append((ws.title, ws.title + "\n" + "\n".join(rows)))
    finally:
        wb.close()
    return out


def _cell_text(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class MailPart:
    label: str  # "headers", "part 2 text/csv ho-so.csv" …
    content: str | bytes  # text parts decoded to text; attachments as bytes
    ctype: str = ""
    filename: str = ""


def email_parts(data: bytes) -> list[MailPart]:
    """An e-mail as parts: decoded headers, then every MIME part decoded from base64 or
    quoted-printable (text parts as text, attachments as bytes with their file name)."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    out = [MailPart("headers", "\n".join(f"{k}: {v}" for k, v in msg.items()))]
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename() or ""
        label = f"part {i} {ctype}" + (f" {filename}" if filename else "")
        if i:
            out.append(MailPart(f"{label} headers", "\n".join(f"{k}: {v}" for k, v in part.items())))
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        if ctype.startswith("text/") and not filename:
            try:
                text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
            except LookupError:
                text = decode_text(payload)
            out.append(MailPart(label, text, ctype))
        else:
            out.append(MailPart(label, payload, ctype, filename))
    return out


def _value_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, memoryview):
        v = v.tobytes()
    if isinstance(v, bytes | bytearray):
        return decode_text(bytes(v))
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def safe_location(text: str) -> str:
    """A location (path, row key, URL) fit for the report: digit runs of 9+ masked."""
    return re.sub(r"\d{9,}", lambda m: mask_id(m.group(0)) or "", text)


# ---- the scanner -------------------------------------------------------------------------------------


class Scanner:
    """Scans targets with one :class:`Detector`; every method returns (and records) a
    :class:`TargetReport` in :attr:`report`."""

    def __init__(self, markers: Markers | None = None, *, generic: bool = True) -> None:
        self.detector = Detector(markers, generic=generic)
        self.report = ScanReport()

    # -- plain text (benchmark output, captured logs) -------------------------------------------
    def text(self, name: str, texts: Mapping[str, str] | str, *, kind: str = "text") -> TargetReport:
        t = self.report.add(TargetReport(name, kind))
        items = {"text": texts} if isinstance(texts, str) else texts
        for where, s in items.items():
            self._scan(t, s, safe_location(where))
        return t

    def _scan(self, t: TargetReport, text: str, where: str) -> None:
        t.items += 1
        t.bytes += len(text)
        t.hits.extend(self.detector.hits(text, t.name, where))

    # -- files and folders -----------------------------------------------------------------------
    def files(
        self,
        name: str,
        paths: Iterable[str | Path],
        *,
        exclude: Iterable[str | Path] = (),
        kind: str = "files",
        missing_ok: bool = True,
    ) -> TargetReport:
        """Every file under ``paths`` (files or folders, recursively), by kind: text, ``.eml``
        (headers and MIME parts decoded, attachments by type), ``.xlsx``, ``.gz``. File names are
        searched too. Images and database files are skipped (counted in ``details``)."""
        t = self.report.add(TargetReport(name, kind))
        excluded = [Path(p).resolve() for p in exclude]
        roots = [Path(p) for p in paths]
        present = [p for p in roots if p.exists()]
        if not present:
            t.status = "absent" if missing_ok else "error"
            t.note = "nothing at " + ", ".join(safe_location(str(p)) for p in roots) if roots else "no paths"
            return t
        skipped = 0
        for root in present:
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for p in files:
                rp = p.resolve()
                if any(rp == e or e in rp.parents for e in excluded):
                    continue
                shown = str(p.relative_to(root.parent) if root.is_dir() else p.name)
                rel = safe_location(shown)
                self._scan_name(t, shown, rel)
                if p.suffix.lower() in BINARY_SUFFIXES:
                    skipped += 1
                    continue
                try:
                    if p.stat().st_size > MAX_FILE_BYTES:
                        t.details.setdefault("too_large", []).append(rel)
                        continue
                    data = p.read_bytes()
                except OSError as e:
                    t.details.setdefault("unreadable", []).append(f"{rel}: {type(e).__name__}")
                    continue
                self._scan_blob(t, p.name, data, rel)
                t.details["files"] = t.details.get("files", 0) + 1
        if skipped:
            t.details["binary_skipped"] = skipped
        return t

    def _scan_blob(self, t: TargetReport, filename: str, data: bytes, where: str, ctype: str = "") -> None:
        lower = filename.lower()
        try:
            if lower.endswith(".gz"):
                self._scan_blob(t, filename[:-3], gzip.decompress(data), where)
            elif lower.endswith(".eml") or ctype == "message/rfc822":
                parts = email_parts(data)
                t.details["email_parts"] = t.details.get("email_parts", 0) + len(parts)
                for part in parts:
                    sub = f"{where} › {safe_location(part.label)}"
                    if isinstance(part.content, str):
                        self._scan(t, part.content, sub)
                    else:
                        self._scan_name(t, part.filename, sub)
                        self._scan_blob(t, part.filename, part.content, sub, part.ctype)
            elif lower.endswith((".xlsx", ".xlsm")) or "spreadsheetml" in ctype:
                for sheet, text in xlsx_text(data):
                    self._scan(t, text, f"{where} › sheet {safe_location(sheet)}")
            else:
                self._scan(t, decode_text(data), where)
        except Exception as e:  # a corrupt file is reported, and still searched as bytes
            t.details.setdefault("decode_errors", []).append(f"{where}: {type(e).__name__}")
            self._scan(t, data.decode("latin-1"), where + " (raw bytes)")

    def _scan_name(self, t: TargetReport, name: str, where: str) -> None:
        """A file name is searched too (``cccd_079188012345.pdf``), without counting as an item."""
        if name:
            t.hits.extend(self.detector.hits(name, t.name, where + " (file name)"))

    # -- Data Docs -------------------------------------------------------------------------------
    def data_docs(self, name: str, roots: Iterable[str | Path], *, max_depth: int = 4) -> TargetReport:
        """GX folders (``data_docs``, ``uncommitted``, ``gx``, ``great_expectations``) under ``roots``:
        scanned when present, else the target is reported ``absent``."""
        found: list[Path] = []
        for root in {Path(r).resolve() for r in roots if Path(r).is_dir()}:
            found += _find_dirs(root, DATA_DOCS_DIR_NAMES, max_depth)
        found = sorted(set(found))
        if not found:
            t = self.report.add(TargetReport(name, "data_docs", status="absent"))
            t.note = "no Data Docs / GX folder was written (GX runs without a Data Docs site)"
            return t
        t = self.files(name, found, kind="data_docs")
        t.details["folders"] = [safe_location(str(p)) for p in found]
        return t

    # -- SQL databases ---------------------------------------------------------------------------
    def sql(
        self,
        name: str,
        url: str,
        *,
        tables: Sequence[str] | None = None,
        exclude_tables: Iterable[str] = (),
        exclude_columns: Mapping[str, Iterable[str]] | None = None,
        batch: int = 2000,
    ) -> TargetReport:
        """Every row of the chosen tables (all of them by default, less ``exclude_tables``): each
        column as text (JSON columns as JSON, bytes decoded), one item per row."""
        import sqlalchemy as sa

        t = self.report.add(TargetReport(name, "sql"))
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            t.status, t.note = "absent", "no database file"
            return t
        engine = sa.create_engine(url)
        try:
            insp = sa.inspect(engine)
            present = insp.get_table_names()
            wanted = list(tables) if tables is not None else present
            skip = set(exclude_tables)
            drop_cols = {k: set(v) for k, v in (exclude_columns or {}).items()}
            per_table: dict[str, int] = {}
            for table in wanted:
                if table in skip:
                    continue
                if table not in present:
                    per_table[table] = -1
                    continue
                tbl = sa.Table(table, sa.MetaData(), autoload_with=engine)
                cols = [c for c in tbl.columns if c.name not in drop_cols.get(table, set())]
                pk = [c.name for c in tbl.primary_key.columns] or [c.name for c in cols[:1]]
                n = 0
                with engine.connect() as conn:
                    result = conn.execution_options(stream_results=True).execute(sa.select(*cols))
                    for chunk in result.mappings().partitions(batch):
                        for row in chunk:
                            n += 1
                            key = ",".join(f"{k}={_value_text(row.get(k))[:80]}" for k in pk if k in row)
                            text = "\n".join(f"{c.name}={_value_text(row[c.name])}" for c in cols)
                            self._scan(t, text, f"{table}[{safe_location(key)}]")
                per_table[table] = n
            t.details["rows_per_table"] = per_table
            t.details["excluded_tables"] = sorted(skip & set(present))
            if drop_cols:
                t.details["excluded_columns"] = {k: sorted(v) for k, v in drop_cols.items()}
        except Exception as e:
            t.status, t.note = "error", f"{type(e).__name__}: {safe_location(str(e))[:200]}"
        finally:
            engine.dispose()
        return t

    def warehouse(self, url: str, name: str = "warehouse") -> TargetReport:
        """The warehouse, less the tables and columns that hold personal data by design."""
        return self.sql(name, url, exclude_tables=PERSONAL_DATA_TABLES, exclude_columns=PERSONAL_DATA_COLUMNS)

    # -- HTTP (the dashboard) --------------------------------------------------------------------
    def http(
        self,
        name: str,
        fetch: Callable[[str], tuple[int, str, str]],
        start: Sequence[str],
        *,
        prefix: str | None = None,
        max_pages: int = 400,
    ) -> TargetReport:
        """Fetch ``start`` paths and every same-app page reachable from them, breadth first, at
        most ``max_pages``: links (``href``/``src``) and the choices of GET forms (each option of
        each ``<select>``, one control changed at a time from the page's own query, as a person
        would), when they start with ``prefix``. Each body and its headers is scanned.
        ``fetch(path) -> (status, headers as text, body)``."""
        t = self.report.add(TargetReport(name, "http"))
        queue = [_canonical_url(p) for p in dict.fromkeys(start)]
        seen: set[str] = set(queue)
        statuses: dict[str, int] = {}
        while queue and len(statuses) < max_pages:
            path = queue.pop(0)
            try:
                status, headers, body = fetch(path)
            except Exception as e:
                statuses[path] = -1
                t.details.setdefault("errors", []).append(f"{safe_location(path)}: {type(e).__name__}")
                continue
            statuses[path] = status
            self._scan(t, headers + "\n\n" + body, safe_location(path))
            if prefix is None:
                continue
            for target in _page_links(path, body):
                if target.startswith(prefix) and target not in seen:
                    seen.add(target)
                    queue.append(target)
        t.details["unvisited"] = len(queue)
        t.details["pages"] = len(statuses)
        t.details["status_counts"] = _counts(statuses.values())
        bad = sorted(p for p, s in statuses.items() if s != 200)
        if bad:
            t.details["not_200"] = [f"{safe_location(p)}: {statuses[p]}" for p in bad]
        return t


def _canonical_url(url: str) -> str:
    """Path plus sorted, non-empty query parameters: one spelling per page."""
    parts = urlsplit(url)
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if v)
    return parts.path + ("?" + urlencode(query) if query else "")


_FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_SELECT_RE = re.compile(r"<select\b[^>]*\bname\s*=\s*[\"']([^\"']+)[\"'][^>]*>(.*?)</select>", re.S | re.I)
_OPTION_RE = re.compile(r"<option\b[^>]*\bvalue\s*=\s*[\"']([^\"']*)[\"']", re.I)
_LINK_RE = re.compile(r"(?:href|src)\s*=\s*[\"']([^\"'#]+)", re.I)


def _page_links(path: str, body: str) -> list[str]:
    """Same-site links of a page and the pages its GET forms lead to (canonical URLs)."""
    out: list[str] = []
    for link in _LINK_RE.findall(body):
        target = urljoin(path, html.unescape(link))
        if not (urlsplit(target).scheme or urlsplit(target).netloc):
            out.append(_canonical_url(target))
    here = urlsplit(path)
    own = dict(parse_qsl(here.query))
    for form in _FORM_RE.finditer(body):
        attrs = form.group(1)
        if re.search(r"method\s*=\s*[\"']?post", attrs, re.I):
            continue
        m = re.search(r"action\s*=\s*[\"']([^\"']*)", attrs, re.I)
        action = urljoin(path, html.unescape(m.group(1))) if m else path
        if urlsplit(action).scheme or urlsplit(action).netloc:
            continue
        base = own if urlsplit(action).path == here.path else {}
        for select in _SELECT_RE.finditer(form.group(2)):
            name = html.unescape(select.group(1))
            for value in _OPTION_RE.findall(select.group(2)):
                query = {**base, name: html.unescape(value)}
                out.append(_canonical_url(urlsplit(action).path + "?" + urlencode(query)))
    return out


def _counts(values: Iterable[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _find_dirs(root: Path, names: Sequence[str], max_depth: int) -> list[Path]:
    skip = {".git", ".venv", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache", "site-packages"}
    out: list[Path] = []

    def walk(p: Path, depth: int) -> None:
        try:
            children = list(p.iterdir())
        except OSError:
            return
        for c in children:
            if not c.is_dir() or c.is_symlink() or c.name in skip:
                continue
            if c.name in names:
                out.append(c)
            elif depth < max_depth:
                walk(c, depth + 1)

    if root.name in names:
        out.append(root)
    walk(root, 1)
    return out


# ---- lookups audited ---------------------------------------------------------------------------------

#: Population-database endpoints whose requests ask about people (status polls only name a job).
LOOKUP_ENDPOINTS = ("TraCuuThongTinCongDan", "YeuCauDanhSach", "TrangThai", "KetQua")


def check_lookup_audit(
    scanner: Scanner,
    warehouse_url: str,
    lgsp_audit: Sequence[Mapping[str, Any]] | None,
    *,
    name: str = "lookup audit",
) -> TargetReport:
    """Every request the population database logged (its ``MaYeuCau``) has a ``lookup_audit`` row
    with who (officer, service, integration), when, why (purpose) and how many (at least as many
    numbers as the LGSP saw in that request); audit rows are searched for personal data by the
    warehouse scan. ``lgsp_audit`` is the LGSP's own log (the sandbox's ``/_sandbox/state``
    ``audit``); without it only the audit rows themselves are checked."""
    import sqlalchemy as sa

    t = scanner.report.add(TargetReport(name, "audit"))
    engine = sa.create_engine(warehouse_url)
    try:
        if not sa.inspect(engine).has_table("lookup_audit"):
            t.status, t.note = "absent", "no lookup_audit table"
            return t
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.text("SELECT * FROM lookup_audit")).mappings()]
    except Exception as e:
        t.status, t.note = "error", f"lookup_audit unreadable: {type(e).__name__}"
        return t
    finally:
        engine.dispose()
    t.items = len(rows)
    problems: list[str] = []
    for r in rows:
        missing = [
            k
            for k in ("requested_at", "officer", "service_code", "integration_code", "purpose")
            if not r.get(k)
        ]
        if missing:
            problems.append(f"audit row {safe_location(str(r['request_id']))} lacks {', '.join(missing)}")
    by_id = {str(r["request_id"]): r for r in rows}
    if lgsp_audit is None:
        t.note = "the population database's own log was not available: audit rows checked only"
    else:
        asked: dict[str, int] = {}
        for e in lgsp_audit:
            rid = e.get("MaYeuCau")
            if not rid or e.get("endpoint") not in LOOKUP_ENDPOINTS:
                continue
            asked[str(rid)] = max(asked.get(str(rid), 0), int(e.get("asked") or 0))
        unaudited = sorted(set(asked) - set(by_id))
        for rid in unaudited:
            problems.append(
                f"request {safe_location(rid)} reached the population database without an audit row"
            )
        for rid, n in sorted(asked.items()):
            row = by_id.get(rid)
            if row is not None and int(row.get("count") or 0) < n:
                problems.append(
                    f"request {safe_location(rid)}: audit says {row.get('count')} numbers, the LGSP saw {n}"
                )
        t.details.update(
            lgsp_requests=len(asked),
            lgsp_log_entries=len(lgsp_audit),
            audit_rows=len(rows),
            audited=len(set(asked) & set(by_id)),
            unaudited=len(unaudited),
            audit_rows_without_lgsp_entry=len(set(by_id) - set(asked)),
        )
    t.details["audit_problems"] = problems
    if problems:
        t.status = "error"
        t.note = f"{len(problems)} audit problem(s): " + "; ".join(problems[:5])
    return t


# ---- the dashboard in process ------------------------------------------------------------------------

UI_START_PAGES = (
    "/tthc/",
    "/tthc/indicators/",
    "/tthc/dq/",
    "/tthc/sync/",
    "/tthc/lookup/",
    "/tthc/runs/",
    "/tthc/api/overview.json",
)


def asgi_client_fetcher(client: Any, token: str) -> Callable[[str], tuple[int, str, str]]:
    """A fetcher for :meth:`Scanner.http` over a FastAPI/Starlette ``TestClient``."""

    def fetch(path: str) -> tuple[int, str, str]:
        r = client.get(path, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)
        return r.status_code, "\n".join(f"{k}: {v}" for k, v in r.headers.items()), r.text

    return fetch


def requests_fetcher(
    base_url: str, token: str, timeout: float = 30.0
) -> Callable[[str], tuple[int, str, str]]:
    """A fetcher for a running Airflow API server (``base_url`` like ``http://127.0.0.1:8080``)."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def fetch(path: str) -> tuple[int, str, str]:
        r = session.get(base_url.rstrip("/") + path, timeout=timeout, allow_redirects=False)
        return r.status_code, "\n".join(f"{k}: {v}" for k, v in r.headers.items()), r.text

    return fetch


def inprocess_ui(scanner: Scanner, *, name: str = "dashboard", max_pages: int = 200) -> TargetReport:
    """Crawl the dashboard inside Airflow's own API app (in this process, Airflow configured from
    the environment), with a token minted by Airflow's auth manager."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    with contextlib.redirect_stdout(io.StringIO()):  # the simple auth manager prints passwords
        app = create_app()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="privacy-scan", role="admin"))
    with TestClient(app) as client:
        fetch = asgi_client_fetcher(client, token)
        return scanner.http(name, fetch, UI_START_PAGES, prefix="/tthc/", max_pages=max_pages)


# ---- the command line --------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--home",
        default=None,
        help="a demo home (var/demo after `make demo`): its task logs, mail, reports, Airflow DB, "
        "warehouse and dashboard are scanned",
    )
    p.add_argument(
        "--markers", default=None, help="JSON file of planted values (see tthc.privacy_scan.Markers)"
    )
    p.add_argument("--logs", nargs="*", default=[], help="more log files or folders")
    p.add_argument("--mail", nargs="*", default=[], help="more folders of .eml files")
    p.add_argument("--files", nargs="*", default=[], help="more files or folders (reports, exports …)")
    p.add_argument("--text", nargs="*", default=[], help="captured outputs (e.g. benchmark stdout) to scan")
    p.add_argument("--airflow-db", default=None, help="SQLAlchemy URL of Airflow's metadata database")
    p.add_argument(
        "--warehouse", default=None, help="SQLAlchemy URL of the warehouse (default $TTHC_WAREHOUSE_URL)"
    )
    p.add_argument("--ui-url", default=None, help="a running Airflow API server (with --token)")
    p.add_argument("--token", default=None, help="Airflow API token for --ui-url")
    p.add_argument("--no-ui", action="store_true", help="do not scan the dashboard")
    p.add_argument(
        "--max-pages", type=int, default=200, help="dashboard pages to visit at most (default 200)"
    )
    p.add_argument("--population-url", default=None, help="the LGSP sandbox, for its own log of lookups")
    p.add_argument("--json", default=None, help="write the full report (masked) as JSON here")


def run_cli(a: argparse.Namespace) -> int:
    markers = Markers.load(a.markers) if a.markers else Markers()
    scanner = Scanner(markers)
    home = Path(a.home).resolve() if a.home else None
    logs = [Path(p) for p in a.logs]
    mail = [Path(p) for p in a.mail]
    files = [Path(p) for p in a.files]
    airflow_db, warehouse = a.airflow_db, a.warehouse
    population = a.population_url
    if home is not None:
        if not home.is_dir():
            print(f"privacy-scan: no such home {home}", file=sys.stderr)
            return 2
        logs += [home / "airflow" / "logs", *sorted(home.glob("*.log"))]
        mail.append(home / "mail")
        files.append(home / "reports")
        airflow_db = airflow_db or f"sqlite:///{home / 'airflow' / 'airflow.db'}"
        warehouse = warehouse or f"sqlite:///{home / 'warehouse.db'}"
        population = population or _sandbox_population_url(home / "sandbox" / "state.json")
        _use_home_environment(home, warehouse)
    warehouse = warehouse or os.environ.get("TTHC_WAREHOUSE_URL")

    scanner.files("task logs", logs)
    scanner.files("e-mails", mail, kind="email")
    if files:
        scanner.files("reports and files", files)
    if a.text:
        scanner.text(
            "captured output", {p: Path(p).read_text(encoding="utf-8", errors="replace") for p in a.text}
        )
    roots = [p for p in (home, Path.cwd(), os.environ.get("AIRFLOW_HOME")) if p]
    scanner.data_docs("data docs", roots)
    if airflow_db:
        scanner.sql("airflow metadata (xcom …)", airflow_db)
    if warehouse:
        if scanner.warehouse(warehouse).status == "scanned":
            lgsp = _population_audit(population) if population else None
            check_lookup_audit(scanner, warehouse, lgsp)
    if not a.no_ui:
        if a.ui_url:
            if not a.token:
                print("privacy-scan: --ui-url needs --token", file=sys.stderr)
                return 2
            fetch = requests_fetcher(a.ui_url, a.token)
            scanner.http("dashboard", fetch, UI_START_PAGES, prefix="/tthc/", max_pages=a.max_pages)
        elif home is not None:
            try:
                inprocess_ui(scanner, max_pages=a.max_pages)
            except Exception as e:  # Airflow not initialised in that home: say so, do not hide it
                t = scanner.report.add(TargetReport("dashboard", "http", status="error"))
                t.note = f"could not start the dashboard in process: {type(e).__name__}"
    print(scanner.report.format())
    if a.json:
        Path(a.json).write_text(json.dumps(scanner.report.to_dict(), ensure_ascii=False, indent=1), "utf-8")
    return 0 if scanner.report.ok else 1


def _sandbox_population_url(state_file: Path) -> str | None:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (state.get("urls") or {}).get("population")


def _population_audit(url: str) -> list[dict[str, Any]] | None:
    import requests

    try:
        return requests.get(f"{url.rstrip('/')}/_sandbox/state", timeout=10).json().get("audit")
    except (requests.RequestException, ValueError):
        return None


def _use_home_environment(home: Path, warehouse: str) -> None:
    """Point Airflow (for the in-process dashboard) and the warehouse at a demo home."""
    from tthc.paths import REPO_ROOT

    os.environ.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "TTHC_WAREHOUSE_URL": warehouse,
        }
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tthc privacy-scan", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_cli(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
