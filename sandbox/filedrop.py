"""Simulator of the file drop (world.md §4): communes and departments without an API export
monthly files into a folder, with the faults of real life.

Not an HTTP service: for every source of dialect ``filedrop`` the simulator writes files under
``<root>/<source_id>/<agency_code>/`` (one folder per agency; ``<root>`` is
``<state_dir>/filedrop`` under the server) and keeps writing as the World's clock moves
(:meth:`FiledropSimulator.sync`, called by the server after ``/_sandbox/clock`` and
``/_sandbox/reset``). The agency of a row is its ``Mã đơn vị`` column, not the folder it lies in:
**a reader should scan the source folder recursively** (fixture files lie at its top level).

The canonical import format
---------------------------
Header row exactly :data:`HEADER` (world.md §4). Values (world.md is silent; ours):

====================== =====================================================================
column                 value
====================== =====================================================================
Kênh nộp               1 direct, 2 online, 3 postal
Giới tính              ``Nam`` / ``Nữ``
Ngày sinh              ``dd/MM/yyyy``, or ``yyyy`` when only the year is known
Ngày tiếp nhận, Ngày   ``dd/MM/yyyy HH:mm`` (Vietnam local time; seconds are not exported)
hẹn trả, Ngày kết
thúc, Ngày trả kết quả
Trạng thái             portal code 1-10; an unknown vendor status is written as the source
                       holds it (e.g. ``cho_duyet`` or ``99``)
Thanh toán trực tuyến  0 / 1 / 2
Lệ phí                 integer VND, no thousands separator
Ngày yêu cầu bổ sung,  every supplement round, oldest first, joined by ``"; "``; the two
Ngày bổ sung           columns align position by position (a pending round leaves its
                       ``Ngày bổ sung`` slot empty: ``"03/11/2026 08:00; "``)
Số hóa                 1 when a submitted component is digitised, else 0
Kết quả điện tử        1 when the result has an electronic file, else 0
====================== =====================================================================

Empty cell = no value. A file holds the state *at its export time*: the same dossier appears in
several files (re-exports, overlapping windows) and the newest export wins (the files' mtime is
set to the simulated export time).

Files and encodings
-------------------
``*.csv`` in one of (chosen per export, mostly an agency's habitual one, seeded):

* ``utf-8`` (no BOM) and ``utf-8-sig`` (BOM ``EF BB BF``): comma-separated, CRLF;
* ``utf-16-le``: Excel "Unicode text": BOM ``FF FE``, **tab-separated**, CRLF, yet named ``.csv``
  (staff rename it): a reader must sniff the delimiter;
* ``cp1258`` (Windows-1258), comma-separated: Vietnamese letters that Windows-1258 has no
  precomposed code for are written as base letter + combining tone mark (``ễ`` → ``ê`` + 0xDE), as
  Windows does; decode with ``cp1258`` and normalise to NFC. Characters the code page cannot hold
  at all take Windows' best fit (``Ð`` U+00D0 → ``Đ``; zero-width spaces dropped) or ``?``.

``*.xlsx`` (openpyxl, one sheet ``HoSo``, header in row 1): texts as text cells (``Số CCCD``
always text, leading zeros kept), codes and fees as numbers; dates either as text in the formats
above or, for some agencies (seeded), as real date cells formatted ``dd/mm/yyyy hh:mm`` /
``dd/mm/yyyy`` (openpyxl reads them back as ``datetime``).

Names: ``hoso_<yyyy>_<MM>.<ext>`` for the month's export, ``hoso_<yyyyMMdd>_<yyyyMMdd>.<ext>``
for an ad-hoc window.

The schedule and its faults (per agency and month, seeded by world seed, source, agency and month)
--------------------------------------------------------------------------------------------------
* mid-month export of the month so far around the 15th (share ``partial_rate``), same name as the
  month's file: the final export overwrites it;
* the month's final export in the first working days of the next month;
* **re-export** (``reexport_rate``): the same name again one to three weeks later, new content;
* **overlapping file** (``overlap_rate``): an ad-hoc window from the 16th to the 15th of the next
  month, overlapping both monthly files;
* **half-written** (``slow_tmp_rate``): an export appears first as ``<name>.tmp`` holding part of
  the bytes and is renamed to ``<name>`` 1-36 h later (then complete); **abandoned**
  (``abandoned_tmp_rate``): a ``<stem>_<HHmm>.<ext>.tmp`` that is never completed;
* **empty** (``empty_rate``): the export writes 0 bytes under the final name; a corrective re-export
  follows 1-3 days later;
* **malformed** (``malformed_rate``): an extra file ``<stem> (1).csv`` next to a good export, with a
  wrong header (unaccented, or a column missing), a truncated last row, or garbage bytes.

Every dossier in a malformed, empty or ``.tmp`` file is also in a good file (now or once the
pending export completes), so a reader that skips bad files loses nothing; it must not skip the
whole folder. The same seed and clock give byte-identical folders (xlsx timestamps included),
whatever the steps the clock took to get there.

Fixtures (world.md §7): canonical CSV files (UTF-8) are copied verbatim into the folder of the
source they are given for (a source not in the World gets a folder of its own and appears in the
state document).

``FiledropSimulator.files()`` and the state document list what was written (path, kind, fault,
encoding, export time, dossier codes) for tests; ``read_export`` is the sandbox's own reader.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import os
import random
import re
import shutil
import threading
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from tthc.model import Dossier
from tthc.timeutil import VN_TZ

HEADER: tuple[str, ...] = (
    "Mã hồ sơ",
    "Mã thủ tục",
    "Tên thủ tục",
    "Mã đơn vị",
    "Kênh nộp",
    "Họ tên người nộp",
    "Số CCCD",
    "Ngày sinh",
    "Giới tính",
    "Ngày tiếp nhận",
    "Ngày hẹn trả",
    "Ngày kết thúc",
    "Ngày trả kết quả",
    "Trạng thái",
    "Thanh toán trực tuyến",
    "Lệ phí",
    "Ngày yêu cầu bổ sung",
    "Ngày bổ sung",
    "Số hóa",
    "Kết quả điện tử",
)
ENCODINGS: tuple[str, ...] = ("utf-8", "utf-8-sig", "utf-16-le", "cp1258")
DATE_COLUMNS = ("Ngày tiếp nhận", "Ngày hẹn trả", "Ngày kết thúc", "Ngày trả kết quả")
INT_COLUMNS = ("Kênh nộp", "Thanh toán trực tuyến", "Lệ phí", "Số hóa", "Kết quả điện tử")
SEX_LABELS = {1: "Nam", 2: "Nữ"}
DT_FORMAT = "%d/%m/%Y %H:%M"
SHEET = "HoSo"
_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")
_BEST_FIT = {"\u00d0": "\u0110", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "", "\u2060": ""}


@dataclass
class FiledropConfig:
    root: Path = Path(".sandbox/filedrop")
    seed: int = 42
    partial_rate: float = 0.7
    reexport_rate: float = 0.3
    overlap_rate: float = 0.2
    slow_tmp_rate: float = 0.15
    abandoned_tmp_rate: float = 0.05
    empty_rate: float = 0.05
    malformed_rate: float = 0.08
    xlsx_share: float = 0.25
    encodings: dict[str, float] = field(
        default_factory=lambda: {"utf-8": 0.3, "utf-8-sig": 0.3, "utf-16-le": 0.2, "cp1258": 0.2}
    )
    habit: float = 0.75  # share of an agency's exports in its habitual format and encoding
    fixtures: list[tuple[str, Path]] = field(default_factory=list)  # (source_id, canonical CSV)

    RATES = (
        "partial_rate",
        "reexport_rate",
        "overlap_rate",
        "slow_tmp_rate",
        "abandoned_tmp_rate",
        "empty_rate",
        "malformed_rate",
        "xlsx_share",
        "habit",
    )

    def __post_init__(self) -> None:
        for k in self.RATES:
            v = getattr(self, k)
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise ValueError(f"filedrop {k} must be a number in 0..1, got {v!r}")
        unknown = sorted(set(self.encodings) - set(ENCODINGS))
        if unknown:
            raise ValueError(
                f"filedrop encodings: unknown {', '.join(unknown)} (known: {', '.join(ENCODINGS)})"
            )
        if not self.encodings or sum(self.encodings.values()) <= 0:
            raise ValueError("filedrop encodings: give at least one positive weight")
        self.root = Path(self.root)
        self.fixtures = [(str(s), Path(p)) for s, p in self.fixtures]


# ---- rendering ---------------------------------------------------------------------------------
def fmt_dt(v: datetime | None) -> str:
    return v.strftime(DT_FORMAT) if v is not None else ""


def fmt_birth(v: str | None) -> str:
    if not v:
        return ""
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        return f"{v[8:10]}/{v[5:7]}/{v[0:4]}"
    return v


def _num(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else ""


def render_row(dossier: Dossier) -> list[str]:
    """The canonical text row (one string per :data:`HEADER` column, ``""`` = empty) (pure)."""
    d = dossier
    raw = d.raw_issues or {}

    def pick(fieldname: str, rendered: str) -> str:
        if getattr(d, fieldname) is None and fieldname in raw:
            return str(raw[fieldname])
        return rendered

    if d.status is not None:
        status = str(d.status)
    else:
        status = d.status_raw or ""
    return [
        d.dossier_code or "",
        d.procedure_code or "",
        d.procedure_name or "",
        d.agency_code or "",
        pick("channel", _num(d.channel)),
        d.applicant_name or "",
        d.applicant_id_number or "",
        pick("applicant_birth_date", fmt_birth(d.applicant_birth_date)),
        pick("applicant_sex", SEX_LABELS.get(d.applicant_sex, "") if d.applicant_sex is not None else ""),
        pick("received_at", fmt_dt(d.received_at)),
        pick("due_at", fmt_dt(d.due_at)),
        pick("finished_at", fmt_dt(d.finished_at)),
        pick("returned_at", fmt_dt(d.returned_at)),
        status,
        pick("paid_online", _num(d.paid_online)),
        pick("fee", _num(d.fee)),
        "; ".join(fmt_dt(s.requested_at) for s in d.supplements),
        "; ".join(fmt_dt(s.completed_at) for s in d.supplements),
        "1" if any(a.digitized for a in d.attachments) else "0",
        "1" if d.result_file else "0",
    ]


def to_cp1258(text: str) -> bytes:
    """Windows-1258 bytes of ``text`` as Windows writes them (see the module docstring)."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        if ch in _BEST_FIT:
            out += _BEST_FIT[ch].encode("cp1258")
            continue
        nfd = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONE_MARKS))
        tones = "".join(c for c in nfd if c in _TONE_MARKS)
        try:
            out += (base + tones).encode("cp1258")
        except UnicodeEncodeError:
            out += b"?"
    return bytes(out)


def cp1258_view(text: str) -> str:
    """What survives a round trip through Windows-1258, in NFC (ground truth for tests)."""
    return unicodedata.normalize("NFC", to_cp1258(text).decode("cp1258"))


def delimiter_for(encoding: str) -> str:
    return "\t" if encoding == "utf-16-le" else ","


def encode_csv(rows: Iterable[list[str]], encoding: str, header: Iterable[str] = HEADER) -> bytes:
    """A CSV export in one of :data:`ENCODINGS` (header first, CRLF)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter_for(encoding), lineterminator="\r\n")
    w.writerow(list(header))
    for r in rows:
        w.writerow(r)
    text = buf.getvalue()
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding == "utf-16-le":
        return b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "cp1258":
        return to_cp1258(text)
    raise ValueError(f"unknown encoding {encoding!r}")


def _parse_dt(text: str) -> datetime | None:
    for fmt in (DT_FORMAT, "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


def encode_xlsx(rows: Iterable[list[str]], *, date_cells: bool, when: datetime) -> bytes:
    """An XLSX export (deterministic bytes: document and zip timestamps are ``when``)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(list(HEADER))
    idx_dates = {HEADER.index(c) for c in DATE_COLUMNS}
    idx_ints = {HEADER.index(c) for c in INT_COLUMNS}
    idx_status = HEADER.index("Trạng thái")
    idx_birth = HEADER.index("Ngày sinh")
    for r in rows:
        values: list[Any] = []
        for i, v in enumerate(r):
            if v == "":
                values.append(None)
            elif i in idx_ints or (i == idx_status and v.isdigit()):
                values.append(int(v) if v.isdigit() else v)
            elif date_cells and i in idx_dates and _parse_dt(v) is not None:
                values.append(_parse_dt(v))
            elif date_cells and i == idx_birth and len(v) == 10 and _parse_dt(v) is not None:
                values.append(_parse_dt(v))
            else:
                values.append(v)
        ws.append(values)
        row = ws.max_row
        for i, v in enumerate(values):
            cell = ws.cell(row=row, column=i + 1)
            if isinstance(v, datetime):
                cell.number_format = "dd/mm/yyyy" if i == idx_birth else "dd/mm/yyyy hh:mm"
            elif isinstance(v, str):
                cell.data_type = "s"
    wb.properties.creator = "Bộ phận Một cửa"
    raw = io.BytesIO()
    wb.save(raw)
    return _normalise_zip(raw.getvalue(), when)


def _normalise_zip(data: bytes, when: datetime) -> bytes:
    utc = (when - timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ")  # core.xml times are UTC
    stamp = (
        max(1980, when.year),
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second - when.second % 2,
    )
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=stamp)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the wall clock on save
                text = content.decode("utf-8")
                for tag in ("dcterms:created", "dcterms:modified"):
                    text = re.sub(rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{utc}\g<2>", text)
                content = text.encode("utf-8")
            dst.writestr(zi, content)
    return out.getvalue()


def _decode_cut(data: bytes, encoding: str) -> str:
    """Decode; a file cut inside its last character loses that character only."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        if e.reason in ("unexpected end of data", "truncated data"):
            return data[: e.start].decode(encoding)
        raise


def decode_csv_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a CSV export: BOMs first, then strict UTF-8, else Windows-1258 (NFC)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode_cut(data[3:], "utf-8"), "utf-8-sig"
    if data.startswith(b"\xff\xfe"):
        return _decode_cut(data[2:], "utf-16-le"), "utf-16-le"
    try:
        return _decode_cut(data, "utf-8"), "utf-8"
    except UnicodeDecodeError:
        return unicodedata.normalize("NFC", data.decode("cp1258", errors="replace")), "cp1258"


def read_export(path: str | Path) -> tuple[list[str], list[list[Any]], str]:
    """The sandbox's own reader: (header, rows, encoding or "xlsx"). Raises on unreadable files."""
    p = Path(path)
    data = p.read_bytes()
    if not data:
        return [], [], "empty"
    if p.suffix.lower() == ".xlsx" or data.startswith(b"PK\x03\x04"):
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
        if not rows:
            return [], [], "xlsx"
        return [str(h) if h is not None else "" for h in rows[0]], rows[1:], "xlsx"
    text, enc = decode_csv_bytes(data)
    if not text:
        return [], [], enc
    first = text.split("\n", 1)[0]
    delim = "\t" if first.count("\t") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
    return rows[0], rows[1:], enc


# ---- the schedule ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportEvent:
    """One thing that happens in an agency folder at a simulated moment."""

    at: datetime
    seq: int  # order among events at the same moment
    agency: str
    name: str  # final file name in the agency folder
    period: tuple[date, date]  # receipt dates [start, end) of the dossiers exported
    fmt: str  # "csv" | "xlsx"
    encoding: str  # for csv
    kind: str  # "partial" | "final" | "reexport" | "overlap" | "corrective"
    # None | slow_tmp | abandoned_tmp | empty | wrong_header | truncated_row | garbage
    fault: str | None = None
    finish_at: datetime | None = None  # slow_tmp: when the .tmp is renamed
    snapshot_at: datetime | None = None  # content as of (default: at)


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def _work_moment(rng: random.Random, day: date) -> datetime:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    minutes = 8 * 60 + rng.randrange(8 * 60)  # 08:00-15:59
    return datetime.combine(day, time(minutes // 60, minutes % 60, rng.randrange(60)))


class _Planner:
    def __init__(self, cfg: FiledropConfig, source_id: str, agency: str) -> None:
        self.cfg = cfg
        self.source_id = source_id
        self.agency = agency
        arng = random.Random(f"{cfg.seed}/filedrop/{source_id}/{agency}/habit")
        self.fmt = "xlsx" if arng.random() < cfg.xlsx_share else "csv"
        self.encoding = self._pick_encoding(arng)

    def _pick_encoding(self, rng: random.Random) -> str:
        items = [(k, v) for k, v in self.cfg.encodings.items() if v > 0]
        total = sum(v for _, v in items)
        x = rng.random() * total
        for k, v in items:
            x -= v
            if x < 0:
                return k
        return items[-1][0]

    def _style(self, rng: random.Random) -> tuple[str, str]:
        fmt = (
            self.fmt
            if rng.random() < self.cfg.habit
            else ("xlsx" if rng.random() < self.cfg.xlsx_share else "csv")
        )
        enc = self.encoding if rng.random() < self.cfg.habit else self._pick_encoding(rng)
        return fmt, enc

    def month(self, m: date) -> list[ExportEvent]:
        """Every event caused by month ``m``'s exports (some fall in the next month)."""
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}/filedrop/{self.source_id}/{self.agency}/{m:%Y-%m}")
        nxt = _next_month(m)
        fmt, enc = self._style(rng)
        stem = f"hoso_{m:%Y}_{m:%m}"
        name = f"{stem}.{fmt}"
        period = (m, nxt)
        mains: list[tuple[datetime, str]] = []
        if rng.random() < cfg.partial_rate:
            mains.append((_work_moment(rng, m + timedelta(days=14 + rng.randrange(3))), "partial"))
        mains.append((_work_moment(rng, nxt + timedelta(days=rng.randrange(5))), "final"))
        if rng.random() < cfg.reexport_rate:
            mains.append((_work_moment(rng, nxt + timedelta(days=7 + rng.randrange(14))), "reexport"))
        events: list[ExportEvent] = []
        seq = 0
        for at, kind in mains:
            # each export may take a different encoding when re-exported by someone else
            e_enc = enc if kind == "final" or rng.random() < cfg.habit else self._pick_encoding(rng)
            events.extend(self._with_faults(rng, at, name, period, fmt, e_enc, kind, seq))
            seq += 10
        if rng.random() < cfg.overlap_rate:
            start = m + timedelta(days=15)
            end = nxt + timedelta(days=15)
            ofmt, oenc = self._style(rng)
            oname = f"hoso_{start:%Y%m%d}_{end - timedelta(days=1):%Y%m%d}.{ofmt}"
            at = _work_moment(rng, end + timedelta(days=rng.randrange(3)))
            events.extend(self._with_faults(rng, at, oname, (start, end), ofmt, oenc, "overlap", seq))
        return events

    def _with_faults(
        self,
        rng: random.Random,
        at: datetime,
        name: str,
        period: tuple[date, date],
        fmt: str,
        enc: str,
        kind: str,
        seq: int,
    ) -> list[ExportEvent]:
        cfg = self.cfg
        base = ExportEvent(at, seq, self.agency, name, period, fmt, enc, kind)
        out: list[ExportEvent] = []
        r = rng.random()
        if r < cfg.empty_rate:
            out.append(_replace(base, fault="empty"))
            fix = at + timedelta(days=1 + rng.randrange(3), minutes=rng.randrange(240))
            out.append(_replace(base, at=fix, seq=seq + 1, kind="corrective"))
        elif r < cfg.empty_rate + cfg.slow_tmp_rate:
            finish = at + timedelta(hours=1 + rng.randrange(36), minutes=rng.randrange(60))
            out.append(_replace(base, fault="slow_tmp", finish_at=finish))
        else:
            out.append(base)
        if rng.random() < cfg.abandoned_tmp_rate:
            out.append(
                _replace(
                    base, at=at - timedelta(minutes=5 + rng.randrange(50)), seq=seq + 2, fault="abandoned_tmp"
                )
            )
        if rng.random() < cfg.malformed_rate:
            fault = ("wrong_header", "truncated_row", "garbage")[rng.randrange(3)]
            out.append(
                _replace(
                    base,
                    at=at + timedelta(minutes=1 + rng.randrange(30)),
                    seq=seq + 3,
                    fault=fault,
                    snapshot_at=at,
                )
            )
        return out


def _replace(e: ExportEvent, **kw: Any) -> ExportEvent:
    return replace(e, **kw)


# ---- simulator ---------------------------------------------------------------------------------
def _epoch(when: datetime) -> float:
    return when.replace(tzinfo=VN_TZ).timestamp()


def _stable_rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest())


@dataclass
class _SourceData:
    """Every visible version of a source's dossiers, grouped per dossier (for as-of snapshots)."""

    keys: list[tuple[Any, ...]]
    times: dict[tuple[Any, ...], list[datetime]]
    records: dict[tuple[Any, ...], list[Any]]
    agency_of: dict[tuple[Any, ...], str]
    received: dict[tuple[Any, ...], date]

    def as_of(self, t: datetime, agency: str, period: tuple[date, date]) -> list[Any]:
        out = []
        for k in self.keys:
            if self.agency_of[k] != agency or not period[0] <= self.received[k] < period[1]:
                continue
            i = bisect.bisect_right(self.times[k], t) - 1
            if i >= 0:
                out.append(self.records[k][i])
        out.sort(key=lambda r: (r.dossier.received_at or datetime.min, r.dossier.dossier_code or ""))
        return out


class FiledropSimulator:
    """Writes and re-writes the export folders of every ``filedrop`` source of the World."""

    def __init__(self, holder: Any, config: FiledropConfig | None = None) -> None:
        self.holder = holder  # WorldHolder or None (fixtures only)
        self.config = config or FiledropConfig()
        self._lock = threading.RLock()
        self._synced_now: datetime | None = None
        self._manifest: dict[str, dict[str, Any]] = {}  # relative path -> what is there
        self._log: list[dict[str, Any]] = []
        self._sources: dict[str, tuple[str, ...]] = {}  # source id -> agency codes
        self._world_sources: set[str] = set()  # the sources the World generates files for
        self._plans: dict[tuple[str, str, date], list[ExportEvent]] = {}  # deterministic: cached
        self.counts: dict[str, int] = {"syncs": 0, "events": 0, "rebuilds": 0}

    @property
    def root(self) -> Path:
        return self.config.root.resolve()

    # ---- lifecycle -------------------------------------------------------------------------
    def filedrop_sources(self) -> list[Any]:
        if self.holder is None:
            return []
        with self.holder.lock:
            return [s for s in self.holder.world.sources if s.dialect == "filedrop"]

    def start(self) -> FiledropSimulator:
        with self._lock:
            self._sources = {s.source_id: tuple(s.agency_codes) for s in self.filedrop_sources()}
            self._world_sources = set(self._sources)
            for sid, _ in self.config.fixtures:
                self._sources.setdefault(sid, ())
            self._wipe()
            self.sync()
        return self

    def stop(self) -> None:
        pass

    def _wipe(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sid in self._sources:
            folder = self.root / sid
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            if sid in self._world_sources:
                for agency in self._sources[sid]:
                    (folder / agency).mkdir()
        self._manifest.clear()
        self._synced_now = None
        self._seed_fixtures()

    def _seed_fixtures(self) -> None:
        for sid, path in self.config.fixtures:
            dest = self.root / sid / path.name
            shutil.copyfile(path, dest)
            codes, agencies = _fixture_codes(path)
            if agencies and not self._sources.get(sid):
                self._sources[sid] = tuple(agencies)
            self._record(dest, {"kind": "fixture", "fault": None, "encoding": "utf-8", "codes": codes})

    # ---- sync ------------------------------------------------------------------------------
    def sync(self) -> dict[str, Any]:
        """Carry out every scheduled event up to the World's now (a clock moved back rebuilds)."""
        with self._lock:
            if self.holder is None:
                self.counts["syncs"] += 1
                return {"events": 0}
            with self.holder.lock:
                w = self.holder.world
                now = w.now
                if self._synced_now is not None and now < self._synced_now:
                    self.counts["rebuilds"] += 1
                    self._wipe()
                since = self._synced_now
                first = self._first_month(w)
                events: list[tuple[datetime, str, int, str, ExportEvent]] = []
                for sid in sorted(self._world_sources):
                    for agency in self._sources[sid]:
                        m = first
                        while m <= now.date():
                            for e in self._plan(sid, agency, m):
                                for when, step in self._steps(e):
                                    if when <= now and (since is None or when > since):
                                        events.append((when, f"{sid}/{agency}", e.seq, step, e))
                            m = _next_month(m)
                # the versions are read only when something is exported
                needed = sorted({where.split("/", 1)[0] for _w, where, _s, _st, _e in events})
                sources = {sid: self._source_data(w, sid) for sid in needed}
            events.sort(key=lambda x: x[:4])
            for when, where, _seq, step, e in events:
                sid = where.split("/", 1)[0]
                self._run(sid, sources[sid], e, step, when)
            self._synced_now = now
            self.counts["syncs"] += 1
            self.counts["events"] += len(events)
            return {"now": now.isoformat(timespec="seconds"), "events": len(events)}

    @staticmethod
    def _steps(e: ExportEvent) -> list[tuple[datetime, str]]:
        if e.fault == "slow_tmp" and e.finish_at is not None:
            return [(e.at, "tmp"), (e.finish_at, "finish")]
        return [(e.at, "write")]

    def _plan(self, sid: str, agency: str, month: date) -> list[ExportEvent]:
        key = (sid, agency, month)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Planner(self.config, sid, agency).month(month)
        return plan

    def _first_month(self, w: Any) -> date:
        cfg = getattr(w, "config", None)
        if cfg is not None and getattr(cfg, "anchor", None) is not None:
            return _month_start((cfg.anchor - timedelta(days=cfg.history_days)).date())
        days = [
            (r.dossier.received_at or r.visible_at).date()
            for sid in self._world_sources
            for r in w.records(sid)
        ]
        return _month_start(min(days)) if days else _month_start(w.now.date())

    def _source_data(self, w: Any, sid: str) -> _SourceData:
        agencies = self._sources[sid]
        times: dict[tuple[Any, ...], list[datetime]] = {}
        records: dict[tuple[Any, ...], list[Any]] = {}
        for r in w.versions(sid):
            d = r.dossier
            k = (r.dossier_index, d.source_record_id or d.dossier_code or "")
            times.setdefault(k, []).append(r.visible_at)
            records.setdefault(k, []).append(r)
        agency_of: dict[tuple[Any, ...], str] = {}
        received: dict[tuple[Any, ...], date] = {}
        for k, recs in records.items():
            codes = [r.dossier.agency_code for r in recs if r.dossier.agency_code in agencies]
            if codes:
                agency_of[k] = codes[-1]
            else:  # agency code missing in the source's data: it still sits in some agency's folder
                agency_of[k] = agencies[int(hashlib.sha256(repr(k).encode()).hexdigest(), 16) % len(agencies)]
            got = next((r.dossier.received_at for r in recs if r.dossier.received_at is not None), None)
            received[k] = (got or times[k][0]).date()
        return _SourceData(list(records), times, records, agency_of, received)

    # ---- writing ---------------------------------------------------------------------------
    def _content(self, e: ExportEvent, data: _SourceData, when: datetime) -> tuple[bytes, list[str]]:
        recs = data.as_of(e.snapshot_at or e.at, e.agency, e.period)
        rows = [render_row(r.dossier) for r in recs]
        codes = [r[0] for r in rows]
        if e.fmt == "xlsx":
            return encode_xlsx(rows, date_cells=self._date_cells(e), when=when), codes
        return encode_csv(rows, e.encoding), codes

    def _date_cells(self, e: ExportEvent) -> bool:
        # the agency's habit (seeded), independent of which export this is
        return _stable_rng(self.config.seed, "filedrop-cells", e.agency).random() < 0.5

    def _run(self, sid: str, data: _SourceData, e: ExportEvent, step: str, when: datetime) -> None:
        folder = self.root / sid / e.agency
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / e.name
        info = {
            "kind": e.kind,
            "fault": e.fault,
            "encoding": "xlsx" if e.fmt == "xlsx" else e.encoding,
            "exported_at": (e.snapshot_at or e.at).isoformat(timespec="seconds"),
            "agency": e.agency,
        }
        if step == "finish":
            tmp = folder / (e.name + ".tmp")
            content, codes = self._content(e, data, when)
            _write(tmp, content, when)
            os.replace(tmp, final)
            self._forget(tmp)
            self._record(final, dict(info, fault=None, codes=codes, completed_from_tmp=True))
            return
        if e.fault == "empty":
            _write(final, b"", when)
            self._record(final, dict(info, codes=[]))
            return
        rng = _stable_rng(
            self.config.seed, "filedrop-fault", sid, e.agency, e.name, e.at.isoformat(), e.fault
        )
        if e.fault in ("wrong_header", "truncated_row", "garbage"):
            # an extra broken copy next to the good export, always CSV in the export's encoding
            stem, _, _ext = e.name.rpartition(".")
            bad = folder / f"{stem} (1).csv"
            recs = data.as_of(e.snapshot_at or e.at, e.agency, e.period)
            rows = [render_row(r.dossier) for r in recs]
            _write(bad, _malformed(e.fault, rows, e.encoding, rng), when)
            self._record(bad, dict(info, encoding=e.encoding, codes=[r[0] for r in rows]))
            return
        content, codes = self._content(e, data, when)
        if step == "tmp":
            tmp = folder / (e.name + ".tmp")
            _write(tmp, content[: max(1, len(content) * (3 + rng.randrange(5)) // 10)], when)
            self._record(tmp, dict(info, codes=codes))
            return
        if e.fault == "abandoned_tmp":
            stem, _, ext = e.name.rpartition(".")
            tmp = folder / f"{stem}_{e.at:%H%M}.{ext}.tmp"
            _write(tmp, content[: max(1, len(content) * (2 + rng.randrange(6)) // 10)], when)
            self._record(tmp, dict(info, codes=codes))
            return
        tmp = folder / (e.name + ".tmp")
        _write(tmp, content, when)
        os.replace(tmp, final)  # the export tool writes a temporary file, then renames it
        self._forget(tmp)
        self._record(final, dict(info, codes=codes))

    def _record(self, path: Path, info: dict[str, Any]) -> None:
        rel = str(path.relative_to(self.root))
        entry = dict(info, path=rel, bytes=path.stat().st_size)
        self._manifest[rel] = entry
        self._log.append({k: v for k, v in entry.items() if k != "codes"})
        if len(self._log) > 2000:
            del self._log[:1000]

    def _forget(self, path: Path) -> None:
        self._manifest.pop(str(path.relative_to(self.root)), None)

    # ---- inspection ------------------------------------------------------------------------
    def files(self, source_id: str | None = None) -> list[dict[str, Any]]:
        """What lies in the folders now (relative path, kind, fault, encoding, export time, codes)."""
        with self._lock:
            out = [dict(v) for v in self._manifest.values()]
        if source_id is not None:
            out = [f for f in out if f["path"].split("/", 1)[0] == source_id]
        return sorted(out, key=lambda f: f["path"])

    def folder(self, source_id: str) -> Path:
        return self.root / source_id

    def sources_info(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "source_id": sid,
                    "dialect": "filedrop",
                    "folder": str(self.root / sid),
                    "agency_folders": (
                        {a: str(self.root / sid / a) for a in agencies} if sid in self._world_sources else {}
                    ),
                    "agency_codes": list(agencies),
                    "recursive": True,
                    "host": "127.0.0.1",
                    "port": None,
                    "extra": {"folder": str(self.root / sid)},
                }
                for sid, agencies in self._sources.items()
            ]

    def state(self) -> dict[str, Any]:
        with self._lock:
            files = list(self._manifest.values())
            by_fault: dict[str, int] = {}
            for f in files:
                key = f["fault"] or ("tmp" if f["path"].endswith(".tmp") else "ok")
                by_fault[key] = by_fault.get(key, 0) + 1
            return {
                "root": str(self.root),
                "synced_now": self._synced_now.isoformat(timespec="seconds") if self._synced_now else None,
                "counts": dict(self.counts),
                "files": len(files),
                "files_by_fault": by_fault,
                "rates": {k: getattr(self.config, k) for k in FiledropConfig.RATES},
                "encodings": dict(self.config.encodings),
                "recent": list(self._log[-200:]),
            }


def _write(path: Path, content: bytes, when: datetime) -> None:
    with open(path, "wb") as fh:
        fh.write(content)
    t = _epoch(when)
    os.utime(path, (t, t))


def _malformed(fault: str, rows: list[list[str]], encoding: str, rng: random.Random) -> bytes:
    if fault == "wrong_header":
        if rng.random() < 0.5:  # the header typed again without accents
            header = [unicodedata.normalize("NFD", h).encode("ascii", "ignore").decode() for h in HEADER]
            header = [h.replace("đ", "d").replace("Đ", "D") for h in header]
            return encode_csv(rows, encoding, header)
        drop = rng.randrange(len(HEADER))  # a column deleted before export
        header = [h for i, h in enumerate(HEADER) if i != drop]
        return encode_csv(([v for i, v in enumerate(r) if i != drop] for r in rows), encoding, header)
    content = encode_csv(rows, encoding)
    if fault == "truncated_row":
        body = content.rstrip(b"\r\n\x00")
        last = max(body.rfind(b"\n"), 0)
        cut = last + max(2, (len(body) - last) * (2 + rng.randrange(5)) // 10)
        if encoding == "utf-16-le":
            cut -= cut % 2
        return body[:cut]
    # garbage: the first part of a good export, then binary junk (a copy that went wrong)
    keep = len(content) * (3 + rng.randrange(5)) // 10
    junk = bytes(rng.randrange(256) for _ in range(256 + rng.randrange(1024)))
    return content[:keep] + b"\x00\x00" + junk


def _fixture_codes(path: Path) -> tuple[list[str], list[str]]:
    """Dossier and agency codes of a canonical fixture CSV (best effort; the file is copied as is)."""
    try:
        header, rows, _enc = read_export(path)
    except Exception:  # noqa: BLE001 - a deliberately broken fixture is still copied
        return [], []
    if "Mã hồ sơ" not in header:
        return [], []
    i, j = header.index("Mã hồ sơ"), header.index("Mã đơn vị") if "Mã đơn vị" in header else None
    codes = [str(r[i]) for r in rows if len(r) > i and r[i]]
    agencies: list[str] = []
    if j is not None:
        for r in rows:
            if len(r) > j and r[j] and r[j] not in agencies:
                agencies.append(str(r[j]))
    return codes, agencies
