"""Domain codes and their pure checks: status vocabularies, channels, CCCD structure, dossier codes.

Everything here follows ../shared/spec/domain.md; lists that change with regulation (province
codes) are data, not logic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Portal status codes (domain.md §5) with their Vietnamese names, as shown to people.
STATUS_NAMES: dict[int, str] = {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
}

#: Statistic groups of the status codes.
STATUS_EXCLUDED = frozenset({1, 3})  # not received: left out of every indicator
STATUS_DONE = frozenset({9, 10})
STATUS_ENDED = frozenset({7, 8, 9, 10})  # the processing clock has stopped (8 treated as ended)
STATUS_PAUSED = frozenset({5, 6})

#: The vendor string vocabulary (igate and similar) → portal status code.
VENDOR_STATUS: dict[str, int] = {
    "receiving": 1,
    "new": 2,
    "denied": 3,
    "processing": 4,
    "waiting": 5,
    "paying": 6,
    "cancelled": 7,
    "unresolved": 8,
    "releasing": 9,
    "done": 10,
}
STATUS_TO_VENDOR: dict[int, str] = {v: k for k, v in VENDOR_STATUS.items()}

CHANNEL_DIRECT, CHANNEL_ONLINE, CHANNEL_POSTAL = 1, 2, 3

#: Legacy (pre-2025, 63-province) birth-registration codes valid as CCCD prefixes (domain.md §4).
CCCD_PROVINCE_PREFIXES: frozenset[str] = frozenset(
    """001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030
    031 033 034 035 036 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067
    068 070 072 074 075 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096""".split()
)

DOSSIER_CODE_RE = re.compile(r"^[A-Z0-9.]+-(\d{6,8})-\d{4,7}$")
AGENCY_CODE_RE = re.compile(r"^[A-Z0-9]{2,3}(\.[A-Z0-9]{2,3}){1,4}$")
PROCEDURE_CODE_RE = re.compile(r"^\d\.\d{6}(\.[A-Z0-9.]+)?$")
CCCD_RE = re.compile(r"^\d{12}$")
CMND_RE = re.compile(r"^\d{9}$")


def vendor_status(raw: str | int | None) -> int | None:
    """Map a vendor status (string vocabulary or a numeric code) to the portal code, or None.

    A boolean is not a status (JSON ``true`` would otherwise pass as the integer 1)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw in STATUS_NAMES else None
    s = str(raw).strip().lower()
    if s.isdigit():
        n = int(s)
        return n if n in STATUS_NAMES else None
    return VENDOR_STATUS.get(s)


@dataclass(frozen=True, slots=True)
class CccdFacts:
    """What the 12 digits of a CCCD say about their holder."""

    province_prefix: str
    sex: int  # 1 male, 2 female
    birth_year: int


def decode_cccd(number: str) -> CccdFacts | None:
    """Decode a syntactically valid CCCD; None when it is not 12 digits or the prefix is unknown."""
    if not number or not CCCD_RE.match(number):
        return None
    prefix = number[:3]
    if prefix not in CCCD_PROVINCE_PREFIXES:
        return None
    d4 = int(number[3])
    yy = int(number[4:6])
    return CccdFacts(prefix, 1 if d4 % 2 == 0 else 2, 1900 + 100 * (d4 // 2) + yy)


def id_type(number: str | None) -> int | None:
    """Identifier type of an applicant number: CCCD (12 digits), CMND (9 digits) or other."""
    if not number:
        return None
    if CCCD_RE.match(number):
        return 1
    if CMND_RE.match(number):
        return 2
    return 3


def cccd_problems(number: str | None, birth_date: str | None, sex: int | None) -> list[str]:
    """Rule ids a CCCD breaks, given the applicant's recorded birth date ("YYYY[-MM-DD]") and sex.

    ``cccd_format`` / ``cccd_prefix`` make the number unusable; ``cccd_birth_year`` and ``cccd_sex``
    are inconsistencies between the number and the rest of the record. A 9-digit CMND is a different
    identifier type, not an invalid CCCD, and yields no problem here.
    """
    if not number:
        return []
    if CMND_RE.match(number):
        return []
    if not CCCD_RE.match(number):
        return ["cccd_format"]
    facts = decode_cccd(number)
    if facts is None:
        return ["cccd_prefix"]
    out: list[str] = []
    if birth_date and birth_date[:4].isdigit() and int(birth_date[:4]) != facts.birth_year:
        out.append("cccd_birth_year")
    if sex in (1, 2) and sex != facts.sex:
        out.append("cccd_sex")
    return out


def dossier_code_date(code: str) -> str | None:
    """The date part of a dossier code as ``YYYY-MM-DD`` (YYMMDD or YYYYMMDD), or None."""
    m = DOSSIER_CODE_RE.match(code or "")
    if not m:
        return None
    d = m.group(1)
    if len(d) == 6:
        return f"20{d[0:2]}-{d[2:4]}-{d[4:6]}"
    if len(d) == 8:
        return f"{d[0:4]}-{d[4:6]}-{d[6:8]}"
    return None
