"""Vietnam time helpers. The project keeps naive Vietnam-local datetimes (see tthc.model)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")


def to_vn_naive(value: datetime) -> datetime:
    """Aware → Vietnam wall-clock time without tzinfo; naive values are taken as already Vietnam time."""
    if value.tzinfo is None:
        return value
    return value.astimezone(VN_TZ).replace(tzinfo=None)


def vn_now() -> datetime:
    return datetime.now(VN_TZ).replace(tzinfo=None, microsecond=0)


def parse_iso_vn(text: str | None) -> datetime | None:
    """ISO-8601 with or without offset → naive Vietnam time; None for empty; ValueError if bad."""
    if text is None or str(text).strip() == "":
        return None
    return to_vn_naive(datetime.fromisoformat(str(text).strip()))


def format_portal(value: datetime | None) -> str | None:
    """The portal's ``yyyyMMddHHmmss``."""
    return value.strftime("%Y%m%d%H%M%S") if value is not None else None


def parse_portal(text: str | None) -> datetime | None:
    if text is None or str(text).strip() == "":
        return None
    return datetime.strptime(str(text).strip(), "%Y%m%d%H%M%S")
