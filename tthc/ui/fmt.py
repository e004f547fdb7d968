"""Vietnamese number, date and period formatting for the UI pages (pure functions).

Vietnamese writes ``12.345`` for twelve thousand and ``87,5`` for eighty-seven and a half; the
pages, the charts and the tests all go through these helpers so a figure reads the same everywhere.
"""

from __future__ import annotations

from datetime import date, datetime

DASH = "–"

PERIOD_TYPE_LABELS: dict[str, str] = {
    "run": "Theo lần chạy",
    "day": "Ngày",
    "month": "Tháng",
    "quarter": "Quý",
    "year": "Năm",
}
SCOPE_LABELS: dict[str, str] = {
    "agency": "Đơn vị",
    "province": "Tỉnh",
    "source": "Hệ thống nguồn",
}


def _group(int_text: str) -> str:
    """``"12345"`` → ``"12.345"`` (a leading minus kept)."""
    sign, digits = ("-", int_text[1:]) if int_text.startswith("-") else ("", int_text)
    parts = []
    while len(digits) > 3:
        parts.insert(0, digits[-3:])
        digits = digits[:-3]
    parts.insert(0, digits)
    return sign + ".".join(parts)


def num(value: float | int | None, decimals: int = 0) -> str:
    """A count or amount: ``12345`` → ``12.345``; ``2.5, 1`` → ``2,5``; None → a dash."""
    if value is None:
        return DASH
    if decimals <= 0:
        return _group(str(round(float(value))))
    text = f"{float(value):.{decimals}f}"
    whole, frac = text.split(".")
    return f"{_group(whole)},{frac}"


def pct(fraction: float | None, decimals: int = 1) -> str:
    """A ratio in [0, 1] as a percentage: ``0.875`` → ``87,5%``; None → a dash."""
    if fraction is None:
        return DASH
    return num(fraction * 100, decimals) + "%"


def indicator_value(value: float | None, kind: str) -> str:
    return pct(value) if kind == "ratio" else num(value)


def day(value: date | datetime | None) -> str:
    if value is None:
        return DASH
    return value.strftime("%d/%m/%Y")


def when(value: datetime | None) -> str:
    if value is None:
        return DASH
    return value.strftime("%d/%m/%Y %H:%M")


def duration(seconds: float | None) -> str:
    """``65.2`` → ``1 phút 5 giây``; under a minute with one decimal (``4,2 giây``)."""
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{num(seconds, 1)} giây"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} giờ {minutes} phút"
    return f"{minutes} phút {secs} giây"


def period(period_type: str, start: date | None) -> str:
    """How a period reads: ``Tháng 10/2026``, ``Quý 4/2026``, ``Năm 2026``, ``01/10/2026``."""
    if start is None:
        return DASH
    if period_type == "month":
        return f"Tháng {start.month:02d}/{start.year}"
    if period_type == "quarter":
        return f"Quý {(start.month - 1) // 3 + 1}/{start.year}"
    if period_type == "year":
        return f"Năm {start.year}"
    if period_type == "run":
        return f"Lần chạy đến {day(start)}"
    return day(start)


def short_period(period_type: str, start: date | None) -> str:
    """A compact label for chart axes: ``10/2026``, ``Q4/2026``, ``2026``, ``01/10``."""
    if start is None:
        return DASH
    if period_type == "month":
        return f"{start.month:02d}/{start.year}"
    if period_type == "quarter":
        return f"Q{(start.month - 1) // 3 + 1}/{start.year}"
    if period_type == "year":
        return str(start.year)
    return start.strftime("%d/%m")
