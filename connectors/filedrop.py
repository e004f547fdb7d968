"""The file drop (world.md §4): communes and departments without an API export ``*.csv`` or
``*.xlsx`` files with the canonical Vietnamese header into a folder per source. :func:`scan` reads a
folder and returns the records of every new or changed file, plus one :class:`FileOutcome` per file.

What is read
------------
* Regular files of the folder and of its sub-folders (one per agency in some deployments; hidden
  folders and symlinks are not entered), in name order; names are relative paths (``a/b.csv``).
* **Half-written files are left alone** (status ``skipped``): names ending ``.tmp``, ``.part``,
  ``.partial``, ``.crdownload``, ``.download``, names starting ``~$`` (Excel's lock file) or ``.``
  (LibreOffice locks, rsync temporaries); files modified less than ``settle_seconds`` before ``now``;
  files whose size or modification time changed while they were read. They are looked at again by
  the next scan. Other extensions are skipped too, except ``.xls`` (rejected with a hint: save as
  ``.xlsx``).
* **Re-exports**: the caller passes the ``(name, sha256)`` pairs already processed (the pipeline's
  file manifest). A file whose pair is in it is ``unchanged`` and yields no record; the same name
  with new content is read again. :attr:`FileDropBatch.to_record` is what the caller must add to
  its manifest (loaded *and* rejected files: a rejected file is reported once, and a corrected
  re-export, having a new hash, is read again). Skipped files are never recorded.
* **A malformed file is rejected whole** (status ``rejected``, a reason in Vietnamese and English,
  no record from it) while the folder's other files are still read: empty, too large, undecodable,
  NUL bytes in a text file, wrong header (missing or repeated columns), a row with fewer fields than
  the header or with values beyond it (truncated or ragged), an unclosed quote, an unreadable
  workbook, no data row. Problems of single values (a bad date) are not a file problem: they reach
  the record's ``raw_issues`` through the mapping and validation quarantines that record.

Encodings (CSV)
---------------
In this order: a BOM (UTF-8 → ``utf-8-sig``; FF FE / FE FF → UTF-16); no BOM but the NUL pattern of
UTF-16 (in the first 4 KiB, at least 30% of the odd-position bytes are 0 and almost none of the even
ones → UTF-16 LE; mirrored → BE); strict UTF-8 (UTF-8 validates itself: legacy 8-bit Vietnamese text
is practically never valid UTF-8). Otherwise the file is 8-bit: ``cp1258`` and the best guesses of
``charset-normalizer`` (well kept; it does list cp1258, but it cannot tell it from cp1252/cp1250 on
short files with certainty) are each decoded strictly, NFC-normalised (Windows-1258 writes tone marks
as combining characters), and scored by Vietnamese plausibility: the share of the words containing a
non-ASCII letter that are valid Vietnamese syllables (:func:`tthc.names.is_vietnamese_syllable`).
The best score wins, ties going to ``cp1258``; below :data:`MIN_PLAUSIBILITY` the file is rejected as
undecodable rather than loaded as garbage.

Header and values
-----------------
The delimiter is the one of comma, semicolon and tab that splits the header line into the most
known column names. Header names are compared by :func:`tthc.names.matching_key` (NFC, case, spaces
and tone-mark placement "hóa"/"hoá" do not matter) and mapped to the canonical keys, which are the
column names of the department view (``connectors.sqldb.VIEW_COLUMNS``): one mapping serves both.
Optional columns ``Ngày cập nhật`` and ``Số lần bổ sung`` are used when present; unknown extra
columns are ignored (named in the outcome's ``reason``). CSV values are kept as text; XLSX cells as
openpyxl gives them (datetimes, numbers). A completely empty row is skipped. Dates are
``dd/MM/yyyy`` or ``dd/MM/yyyy HH:mm`` (see :func:`connectors.sqldb.map_row`). ``Ngày yêu cầu bổ
sung`` / ``Ngày bổ sung`` may list every supplement round, oldest first, separated by ``;`` and
aligned by position (a pending round leaves its completion empty): each becomes a supplement.

Each record is a dict of canonical keys plus ``_file`` (file name), ``_row`` (row number as a
spreadsheet shows it: the header is row 1), ``_file_sha256`` and ``_exported_at`` (the file's
modification time, naive Vietnam time, ISO): the dialect has no update time, so :func:`to_dossier`
uses the export time as ``updated_at`` unless the file has ``Ngày cập nhật``.

Reasons and logs name files, row numbers and column names, never a value.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import re
import stat
import time
import unicodedata
import zipfile
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from charset_normalizer import from_bytes

from connectors.mapping import storable_code
from connectors.sqldb import _parse_datetime, map_row
from tthc.model import Dossier
from tthc.names import is_vietnamese_syllable, matching_key
from tthc.timeutil import VN_TZ, to_vn_naive

log = logging.getLogger(__name__)

#: The canonical header of world.md §4, as canonical key → Vietnamese column name.
HEADER: dict[str, str] = {
    "ma_ho_so": "Mã hồ sơ",
    "ma_tthc": "Mã thủ tục",
    "ten_tthc": "Tên thủ tục",
    "ma_don_vi": "Mã đơn vị",
    "kenh_nop": "Kênh nộp",
    "ho_ten_chu_ho_so": "Họ tên người nộp",
    "so_cccd": "Số CCCD",
    "ngay_sinh": "Ngày sinh",
    "gioi_tinh": "Giới tính",
    "ngay_tiep_nhan": "Ngày tiếp nhận",
    "ngay_hen_tra": "Ngày hẹn trả",
    "ngay_ket_thuc": "Ngày kết thúc",
    "ngay_tra_kq": "Ngày trả kết quả",
    "trang_thai": "Trạng thái",
    "thanh_toan_truc_tuyen": "Thanh toán trực tuyến",
    "le_phi": "Lệ phí",
    "ngay_yc_bo_sung": "Ngày yêu cầu bổ sung",
    "ngay_bo_sung": "Ngày bổ sung",
    "co_so_hoa": "Số hóa",
    "co_kq_dien_tu": "Kết quả điện tử",
}
#: Columns used when present (not part of the required header).
OPTIONAL_HEADER: dict[str, str] = {"ngay_cap_nhat": "Ngày cập nhật", "so_lan_bo_sung": "Số lần bổ sung"}

PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download")
PARTIAL_PREFIXES = ("~$", ".")
DATA_SUFFIXES = (".csv", ".xlsx")
DEFAULT_SETTLE_SECONDS = 300.0
DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024
#: Minimum share of non-ASCII words that must be Vietnamese syllables for an 8-bit decoding.
MIN_PLAUSIBILITY = 0.6
DELIMITERS = (",", ";", "\t")

Status = Literal["loaded", "rejected", "skipped", "unchanged"]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file. ``sha256`` is None for skipped files (not read)."""

    name: str
    sha256: str | None
    status: Status
    reason: str | None = None
    rows: int = 0
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(slots=True)
class FileDropBatch:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[FileOutcome] = field(default_factory=list)
    superseded: int = 0  # rows dropped because a newer export of the same dossier was read too

    @property
    def to_record(self) -> set[tuple[str, str]]:
        """``(name, sha256)`` pairs the caller adds to its manifest: loaded and rejected files."""
        return {(f.name, f.sha256) for f in self.files if f.status in ("loaded", "rejected") and f.sha256}

    def by_status(self, status: Status) -> list[FileOutcome]:
        return [f for f in self.files if f.status == status]


class FileRejected(Exception):
    """A file that cannot be loaded; ``reason`` is "Vietnamese / English", without data values."""

    def __init__(self, vi: str, en: str) -> None:
        self.reason = f"{vi} / {en}"
        super().__init__(self.reason)


# ---- scanning a folder ---------------------------------------------------------------------------------


def scan(
    folder: str | os.PathLike[str],
    processed: Collection[tuple[str, str]] = frozenset(),
    now: datetime | float | None = None,
    *,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    recursive: bool = True,
    dedupe: bool = True,
) -> FileDropBatch:
    """Read every new or changed data file of ``folder`` (see the module docstring).

    ``dedupe``: one dossier often lies in several files read together (monthly export, re-export,
    overlapping ad-hoc window). A row is identified by ``Mã hồ sơ`` with the values a new version
    does not change (receipt time, ID number, procedure, agency); of rows equal on all five only
    the one of the newest export (``_exported_at``, then the later file, then the later row) is
    returned, so validation does not mistake two exports for a ``duplicate_code``. Two rows sharing
    a code but not the rest (the real defect) are both kept, and so are two rows of *one* file that
    are equal on the five but differ elsewhere (one export cannot say which is newer).
    ``FileOutcome.rows`` counts the rows each file held, before this.

    File names in the outcomes, the records and the ``(name, sha256)`` pairs are paths relative to
    ``folder`` with ``/`` separators (``000.00.12.H40/hoso_2026_10.csv`` in an agency sub-folder).

    ``now`` is the wall-clock time used for the settle check: a ``datetime`` (naive = Vietnam time)
    or epoch seconds; None → the current time. A missing folder raises ``FileNotFoundError``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"file-drop folder does not exist: {root.name}")
    now_ts = _epoch(now)
    done = set(processed)
    batch = FileDropBatch()
    for name, entry in _walk(root, "", recursive):
        outcome, records = _process_entry(name, entry, done, now_ts, settle_seconds, max_file_bytes)
        batch.files.append(outcome)
        batch.records.extend(records)
    if dedupe:
        before = len(batch.records)
        batch.records = _newest_per_dossier(batch.records)
        batch.superseded = before - len(batch.records)
    counts = {s: len(batch.by_status(s)) for s in ("loaded", "rejected", "skipped", "unchanged")}
    log.info(
        "file drop %s: %d records (%d superseded by newer exports); files %s",
        root.name,
        len(batch.records),
        batch.superseded,
        counts,
    )
    for f in batch.files:
        if f.status == "rejected":
            log.warning("file drop %s: rejected %s: %s", root.name, f.name, f.reason)
    return batch


_IDENTITY = ("ma_ho_so", "ngay_tiep_nhan", "so_cccd", "ma_tthc", "ma_don_vi")


def _identity(record: Mapping[str, Any]) -> str | None:
    """The dossier a row is a version of (see :func:`scan`); None when it has no code."""
    code = code_of(record)
    if code is None:
        return None
    parts: list[Any] = [code]
    for key in _IDENTITY[1:]:
        value = record.get(key)
        if key == "ngay_tiep_nhan":
            try:  # a text cell and a date cell of the same moment are the same value
                value = _parse_datetime(value)
            except (ValueError, OverflowError):
                pass
        elif isinstance(value, str):
            value = value.strip()
        parts.append(value.isoformat() if isinstance(value, datetime) else value)
    return json.dumps(parts, ensure_ascii=False, default=str)


def _newest_per_dossier(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dossier identity (the newest export), in the order the rows were read."""
    keys = [_identity(r) for r in records]
    best: dict[str, int] = {}
    for i, (r, key) in enumerate(zip(records, keys, strict=True)):
        if key is None:
            continue
        j = best.get(key)
        if j is None or str(r.get("_exported_at") or "") >= str(records[j].get("_exported_at") or ""):
            best[key] = i  # later files and rows win ties: the scan reads in name order
    keep = set(best.values())
    for i, key in enumerate(keys):
        if key is None or i in keep:
            continue
        j = best[key]
        if records[i].get("_file") == records[j].get("_file") and _content(records[i]) != _content(
            records[j]
        ):
            # one export holding two different contents for one dossier: neither is "newer", so both
            # go on and validation holds them back (duplicate_code) instead of one silently winning
            keep.add(i)
    return [r for i, (r, key) in enumerate(zip(records, keys, strict=True)) if key is None or i in keep]


def _content(record: Mapping[str, Any]) -> str:
    """A row's values without its position (two identical rows of one file are one row)."""
    return json.dumps({k: v for k, v in record.items() if k != "_row"}, sort_keys=True, default=str)


def _walk(root: Path, rel: str, recursive: bool) -> Iterable[tuple[str, os.DirEntry[str]]]:
    """``(relative name, entry)`` in name order; sub-folders entered (not symlinked or hidden ones)."""
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        if recursive and entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith(PARTIAL_PREFIXES):
                yield from _walk(root, name, recursive)
            continue
        yield name, entry


def _epoch(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return (now if now.tzinfo is not None else now.replace(tzinfo=VN_TZ)).timestamp()
    return float(now)


def _process_entry(
    name: str,
    entry: os.DirEntry[str],
    processed: set[tuple[str, str]],
    now_ts: float,
    settle: float,
    max_bytes: int,
) -> tuple[FileOutcome, list[dict[str, Any]]]:
    if entry.is_symlink():
        return FileOutcome(name, None, "skipped", "Liên kết tượng trưng, bỏ qua / symbolic link, ignored"), []
    if not entry.is_file(follow_symlinks=False):
        return FileOutcome(name, None, "skipped", "Không phải tệp / not a regular file"), []
    lower = entry.name.lower()
    if lower.endswith(PARTIAL_SUFFIXES) or entry.name.startswith(PARTIAL_PREFIXES):
        return FileOutcome(name, None, "skipped", "Tệp đang ghi dở / file still being written"), []
    if not lower.endswith(DATA_SUFFIXES) and not lower.endswith(".xls"):
        return FileOutcome(name, None, "skipped", "Không phải tệp dữ liệu / not a .csv or .xlsx file"), []
    try:
        before = entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # renamed away between listing and reading
        return FileOutcome(name, None, "skipped", "Tệp đã bị chuyển đi / file disappeared"), []
    if now_ts - before.st_mtime < settle:
        return FileOutcome(name, None, "skipped", "Tệp mới ghi, chờ ổn định / file too recent, waiting"), []
    path = Path(entry.path)
    if before.st_size > max_bytes:
        sha = _hash_file(path)
        reason = FileRejected(
            f"Tệp quá lớn (> {max_bytes} byte)", f"file too large (> {max_bytes} bytes)"
        ).reason
        return _final(name, sha, processed, "rejected", reason), []
    try:
        data = path.read_bytes()
        after = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return FileOutcome(name, None, "skipped", "Tệp đã bị chuyển đi / file disappeared"), []
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(
        data
    ) != after.st_size:
        return FileOutcome(name, None, "skipped", "Tệp đang thay đổi / file changed while read"), []
    if not stat.S_ISREG(after.st_mode):
        return FileOutcome(name, None, "skipped", "Không phải tệp / not a regular file"), []
    sha = hashlib.sha256(data).hexdigest()
    if (name, sha) in processed:
        return FileOutcome(name, sha, "unchanged"), []
    exported_at = to_vn_naive(datetime.fromtimestamp(after.st_mtime, tz=VN_TZ)).replace(microsecond=0)
    try:
        if lower.endswith(".xls"):
            raise FileRejected(
                "Định dạng Excel cũ (.xls) không được hỗ trợ, hãy lưu thành .xlsx",
                "old Excel format (.xls) is not supported, save as .xlsx",
            )
        parsed = read_xlsx(data) if lower.endswith(".xlsx") else read_csv(data)
    except FileRejected as exc:
        return FileOutcome(name, sha, "rejected", exc.reason), []
    records = [
        {
            **values,
            "_file": name,
            "_row": row_no,
            "_file_sha256": sha,
            "_exported_at": exported_at.isoformat(timespec="seconds"),
        }
        for row_no, values in parsed.rows
    ]
    reason = None
    if parsed.ignored_columns:
        reason = "Bỏ qua cột không dùng / ignored columns: " + ", ".join(parsed.ignored_columns)
    return (
        FileOutcome(name, sha, "loaded", reason, len(records), parsed.encoding, parsed.delimiter),
        records,
    )


def _final(name: str, sha: str, processed: set[tuple[str, str]], status: Status, reason: str) -> FileOutcome:
    if (name, sha) in processed:
        return FileOutcome(name, sha, "unchanged")
    return FileOutcome(name, sha, status, reason)


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- parsing one file ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedFile:
    rows: list[tuple[int, dict[str, Any]]]  # (row number, canonical values)
    encoding: str | None = None
    delimiter: str | None = None
    ignored_columns: tuple[str, ...] = ()


def _header_key(label: Any) -> str:
    if not isinstance(label, str):
        return ""
    return matching_key(label.replace("\ufeff", ""))


_KNOWN_COLUMNS: dict[str, str] = {_header_key(v): k for k, v in {**HEADER, **OPTIONAL_HEADER}.items()}


def _match_header(cells: Iterable[Any]) -> tuple[list[str | None], list[str], list[str], list[str]]:
    """Canonical key per column (None for an unknown one), missing required names, repeated
    names, unknown names."""
    keys: list[str | None] = []
    seen: set[str] = set()
    repeated: list[str] = []
    unknown: list[str] = []
    for cell in cells:
        label = "" if cell is None else str(cell).strip()
        key = _KNOWN_COLUMNS.get(_header_key(label))
        if key is not None and key in seen:
            repeated.append(label)
        if key is not None:
            seen.add(key)
        elif label:
            unknown.append(label[:60])
        keys.append(key)
    missing = [label for key, label in HEADER.items() if key not in seen]
    return keys, missing, repeated, unknown


def _check_header(missing: list[str], repeated: list[str]) -> None:
    if missing and len(missing) == len(HEADER):
        raise FileRejected(
            "Dòng tiêu đề không đúng mẫu (không nhận ra cột nào)",
            "wrong header: no known column (not the canonical import format)",
        )
    if missing:
        names = ", ".join(missing)
        raise FileRejected(f"Thiếu cột: {names}", f"missing columns: {names}")
    if repeated:
        names = ", ".join(repeated)
        raise FileRejected(f"Cột bị lặp: {names}", f"repeated columns: {names}")


def _blank_cell(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _rows_to_records(
    table_rows: Iterable[tuple[int, list[Any]]], keys: list[str | None], *, pad: bool = False
) -> list[tuple[int, dict[str, Any]]]:
    """Canonical dicts of the data rows. ``pad``: short rows are normal (a spreadsheet omits trailing
    empty cells), else a short row is a truncated/ragged file."""
    width = len(keys)
    out: list[tuple[int, dict[str, Any]]] = []
    for row_no, cells in table_rows:
        if all(_blank_cell(c) for c in cells):
            continue  # an empty line / spreadsheet row
        if pad and len(cells) < width:
            cells = [*cells, *([None] * (width - len(cells)))]
        if len(cells) < width:
            raise FileRejected(
                f"Dòng {row_no} thiếu trường ({len(cells)}/{width}): tệp bị cắt hoặc lệch cột",
                f"row {row_no} has {len(cells)} of {width} fields: truncated or ragged file",
            )
        if any(not _blank_cell(c) for c in cells[width:]):
            raise FileRejected(
                f"Dòng {row_no} có giá trị ngoài các cột tiêu đề: lệch cột",
                f"row {row_no} has values beyond the header's columns: ragged file",
            )
        out.append((row_no, {k: cells[i] for i, k in enumerate(keys) if k is not None}))
    if not out:
        raise FileRejected("Tệp không có dòng dữ liệu", "no data rows")
    return out


# -- CSV -------------------------------------------------------------------------------------------------


def read_csv(data: bytes) -> ParsedFile:
    """Decode, sniff the delimiter, check the header and read every row (see the module docstring)."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise FileRejected("Tệp rỗng", "empty file")
    text, encoding = decode_text(data)
    if "\x00" in text:
        raise FileRejected("Tệp chứa ký tự NUL: không phải tệp văn bản", "NUL characters: not a text file")
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        raise FileRejected("Dòng đầu tiên trống: thiếu dòng tiêu đề", "first line is empty: no header")
    best: tuple[int, str] | None = None
    for delimiter in DELIMITERS:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        known = sum(1 for c in cells if _KNOWN_COLUMNS.get(_header_key(c.strip())) is not None)
        if best is None or known > best[0]:
            best = (known, delimiter)
    assert best is not None
    delimiter = best[1]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    table_rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            table_rows.append((len(table_rows) + 1, row))
    except csv.Error as exc:
        if "field limit" in str(exc):  # csv's own guard against runaway fields
            limit = csv.field_size_limit()
            raise FileRejected(
                f"Dòng {len(table_rows) + 1} có ô dữ liệu dài hơn {limit} ký tự: dữ liệu bất thường",
                f"row {len(table_rows) + 1} has a field longer than {limit} characters",
            ) from None
        raise FileRejected(
            "Tệp CSV sai cấu trúc (dấu ngoặc kép không đóng?)", "malformed CSV (unclosed quote?)"
        ) from None
    keys, missing, repeated, unknown = _match_header(table_rows[0][1])
    _check_header(missing, repeated)
    rows = _rows_to_records(table_rows[1:], keys)
    return ParsedFile(rows, encoding, delimiter, tuple(unknown))


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding used; :class:`FileRejected` when undecodable."""
    bom = _bom_encoding(data)
    if bom is not None:
        return _strict(data, bom), bom
    utf16 = _utf16_by_nul_pattern(data)
    if utf16 is not None:
        return _strict(data, utf16), utf16
    if b"\x00" in data:
        raise FileRejected("Tệp chứa byte NUL: không phải tệp văn bản", "NUL bytes: not a text file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best: tuple[float, int, str, str] | None = None
    for order, enc in enumerate(_eight_bit_candidates(data)):
        try:
            text = unicodedata.normalize("NFC", data.decode(enc))
        except (UnicodeDecodeError, LookupError):
            continue
        score = vietnamese_plausibility(text)
        if best is None or (score, -order) > (best[0], best[1]):
            best = (score, -order, enc, text)
    if best is None or best[0] < MIN_PLAUSIBILITY:
        raise FileRejected(
            "Không xác định được bảng mã (cần UTF-8, UTF-16 hoặc Windows-1258)",
            "cannot decode: expected UTF-8, UTF-16 or Windows-1258",
        )
    return best[3], best[2]


def _bom_encoding(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the BOM and the byte order
    return None


def _utf16_by_nul_pattern(data: bytes) -> str | None:
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul = even.count(0) / len(even)
    odd_nul = odd.count(0) / max(1, len(odd))
    if odd_nul >= 0.3 and even_nul <= 0.02:
        return "utf-16-le"
    if even_nul >= 0.3 and odd_nul <= 0.02:
        return "utf-16-be"
    return None


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise FileRejected(
            f"Tệp không đọc được theo bảng mã {encoding} (bị cắt hoặc hỏng)",
            f"invalid {encoding} (truncated or corrupt file)",
        ) from None


def _eight_bit_candidates(data: bytes) -> list[str]:
    """``cp1258`` first, then charset-normalizer's guesses (normalised codec names, no repeats)."""
    out = ["cp1258"]
    try:
        guesses = from_bytes(data[: 256 * 1024])
        for match in list(guesses)[:5]:
            name = codecs.lookup(match.encoding).name
            if name not in out and not name.startswith(("utf_16", "utf-16", "utf_32", "utf-32")):
                out.append(name)
    except Exception:  # noqa: S110 - a detector failure leaves cp1258 as the candidate
        pass
    return out


_WORD_RE = re.compile(r"[^\W\d_]+")


def vietnamese_plausibility(text: str) -> float:
    """Share of the words that contain a non-ASCII letter which are valid Vietnamese syllables
    (1.0 when there is none: pure ASCII decodes the same in every candidate)."""
    words = [w for w in _WORD_RE.findall(text) if not w.isascii()]
    if not words:
        return 1.0
    good = sum(1 for w in words if is_vietnamese_syllable(w))
    return good / len(words)


# -- XLSX ------------------------------------------------------------------------------------------------


def read_xlsx(data: bytes) -> ParsedFile:
    """The first worksheet whose first non-empty row is the canonical header (openpyxl, read-only)."""
    import openpyxl  # imported lazily: only file-drop sources need it

    if not data:
        raise FileRejected("Tệp rỗng", "empty file")
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # zipfile.BadZipFile, KeyError, InvalidFileException, XML errors...
        raise FileRejected(
            "Không mở được tệp Excel (hỏng hoặc chưa ghi xong)", "unreadable workbook (corrupt or truncated)"
        ) from None
    try:
        first_problem: FileRejected | None = None
        for ws in wb.worksheets:
            try:
                parsed = _read_sheet(ws)
            except FileRejected as exc:
                first_problem = first_problem or exc
                continue
            except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError):
                raise FileRejected(
                    "Không đọc được bảng tính (tệp hỏng)", "unreadable worksheet (corrupt file)"
                ) from None
            if parsed is not None:
                return parsed
        raise first_problem or FileRejected("Tệp Excel không có dữ liệu", "workbook has no data")
    finally:
        wb.close()


def _read_sheet(ws: Any) -> ParsedFile | None:
    """Parsed rows of one sheet; None when the sheet is empty; FileRejected when malformed."""
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()  # some writers store a wrong <dimension>: read what is there
    rows = ws.iter_rows(values_only=True)
    header: list[Any] | None = None
    table_rows: list[tuple[int, list[Any]]] = []
    for row_no, values in enumerate(rows, start=1):
        cells = list(values)
        if header is None:
            if all(_blank_cell(c) for c in cells):
                continue
            header = cells
            continue
        table_rows.append((row_no, cells))
    if header is None:
        return None
    while header and _blank_cell(header[-1]):
        header.pop()  # trailing empty header cells
    keys, missing, repeated, unknown = _match_header(header)
    _check_header(missing, repeated)
    return ParsedFile(_rows_to_records(table_rows, keys, pad=True), "xlsx", None, tuple(unknown))


# ---- mapping -------------------------------------------------------------------------------------------


def to_dossier(record: Mapping[str, Any], source_id: str) -> Dossier:
    """Map one file-drop record into the canonical dossier. Pure; never raises.

    The columns are the department view's (:func:`connectors.sqldb.map_row`); ``updated_at`` is
    ``Ngày cập nhật`` when the file has it, else the file's export time (``_exported_at``).
    """
    exported: datetime | None = None
    if isinstance(record, Mapping):
        raw = record.get("_exported_at")
        if isinstance(raw, datetime):
            exported = to_vn_naive(raw)
        elif isinstance(raw, str):
            try:
                exported = to_vn_naive(datetime.fromisoformat(raw))
            except ValueError:
                exported = None
    return map_row(record, source_id, updated_default=exported)


def code_of(record: Mapping[str, Any]) -> str | None:
    code = record.get("ma_ho_so") if isinstance(record, Mapping) else None
    if code is None:
        return None
    return storable_code(str(code).strip())


__all__ = [
    "HEADER",
    "OPTIONAL_HEADER",
    "FileDropBatch",
    "FileOutcome",
    "FileRejected",
    "code_of",
    "decode_text",
    "read_csv",
    "read_xlsx",
    "scan",
    "to_dossier",
    "vietnamese_plausibility",
]
