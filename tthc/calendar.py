"""Vietnamese working-day calendar for due dates and on-time evaluation (domain.md §6).

A *working day* is a day that is neither a weekend day (Saturday, Sunday) nor a public holiday of
the ``holidays`` package's VN calendar. That calendar (checked on holidays 0.109) carries:

* Tết Nguyên Đán as the public-sector break (e.g. 2026: Mon 16 Feb - Fri 20 Feb; with the two
  weekends around it the break is Sat 14 Feb - Sun 22 Feb), Hùng Kings' day, 30/4, 1/5, 2/9 (+1 day),
  Vietnam Cultural Day 24/11 from 2026, and the "observed" days when a holiday falls on a weekend;
* the yearly announced *swap days* (``special_public_holidays``): the weekday given off appears as a
  holiday named "Ngày nghỉ (thay cho ngày …)", and the Saturday worked in exchange is listed in the
  holiday object's ``weekend_workdays`` (e.g. 2025: Fri 2 May off, Sat 26 Apr worked; 2026: Mon 31 Aug
  off, Sat 22 Aug worked). No option or category is needed for either: they are part of the default
  ``public`` category. We honour ``weekend_workdays`` so that a make-up Saturday is a working day.

The package lags behind the government's yearly announcements (they are published a few months in
advance), so :class:`CalendarConfig` takes ``extra_days_off`` and ``extra_working_days`` that
override it; ``extra_working_days`` wins over everything, ``extra_days_off`` over the package.

Working hours are 07:00-11:30 and 13:30-17:00 (8 h), configurable as a list of shifts.

Due-date arithmetic (the precise definition every caller relies on)
-------------------------------------------------------------------
``add_working_days(start, n)`` counts *working time*: a working day is ``hours_per_day`` working
hours (8 h), and the due instant is the moment at which ``n × 8`` working hours have elapsed since the
*clock start*:

* the clock starts at the receipt instant when it falls inside a shift; inside the lunch break it
  starts at 13:30; before 07:00 at 07:00 the same day; after 17:00, or on a day off, at 07:00 of the
  next working day ("a dossier received after 17:00 starts the next working day", §6);
* when the elapsed time ends exactly at the end of a shift the due instant is that shift end
  (17:00 of that day, never 07:00 of the next day).

Consequences: received Mon 09:00 + 1 working day → Tue 09:00; received Fri 17:05 + 1 → Mon 17:00
(the end of the first working day). With ``CalendarConfig(due_at_end_of_day=True)`` every due instant
is moved to the end of its day (17:00), i.e. "the end of the n-th working day" counting the day the
clock starts as day 1 when it starts in the morning. The *date* is the same in both modes, and the
portal's on-time rule compares dates by default, so the mode only matters for ``unit="datetime"``.

``add_calendar_days(start, n)`` adds ``n`` × 24 h to the receipt instant (the receipt time is not
normalised: calendar days count elapsed days, not office hours). If the resulting date is a day off
the due instant is the *end* (17:00) of the next working day, as the Civil Code does for a period
whose last day is a day off (BLDS 2015 Art. 148).

Every date set is computed once per (country, year) and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import holidays

__all__ = [
    "CalendarConfig",
    "WorkingCalendar",
    "add_calendar_days",
    "add_working_days",
    "add_working_hours",
    "dates",
    "get_calendar",
    "is_working_day",
    "working_hours_between",
]

DEFAULT_SHIFTS: tuple[tuple[time, time], ...] = (
    (time(7, 0), time(11, 30)),
    (time(13, 30), time(17, 0)),
)

_ONE_DAY = timedelta(days=1)
#: Longest search for a working day before we conclude the configuration has none (safety net).
_MAX_SCAN_DAYS = 3660


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    """How the working calendar is built. Frozen and hashable: calendars are cached per config.

    ``shifts``: working periods of a day, sorted and non-overlapping (default 07:00-11:30, 13:30-17:00).
    ``weekend``: ``date.weekday()`` numbers that are days off (5 Saturday, 6 Sunday).
    ``extra_days_off`` / ``extra_working_days``: local overrides of the package (announced swap days
    not yet in it, provincial days off); ``extra_working_days`` wins.
    ``use_package_swaps``: treat the package's ``weekend_workdays`` (make-up Saturdays) as working.
    ``due_at_end_of_day``: move every computed due instant to the end of its day (see module doc).
    """

    country: str = "VN"
    shifts: tuple[tuple[time, time], ...] = DEFAULT_SHIFTS
    weekend: frozenset[int] = frozenset({5, 6})
    extra_days_off: frozenset[date] = field(default_factory=frozenset)
    extra_working_days: frozenset[date] = field(default_factory=frozenset)
    use_package_swaps: bool = True
    due_at_end_of_day: bool = False

    def __post_init__(self) -> None:
        # Accept any iterable for the sets, keep the dataclass hashable.
        object.__setattr__(self, "weekend", frozenset(self.weekend))
        object.__setattr__(self, "extra_days_off", frozenset(self.extra_days_off))
        object.__setattr__(self, "extra_working_days", frozenset(self.extra_working_days))
        object.__setattr__(self, "shifts", tuple((s, e) for s, e in self.shifts))
        if not self.shifts:
            raise ValueError("CalendarConfig.shifts: at least one working period is needed")
        prev_end: time | None = None
        for s, e in self.shifts:
            if not s < e:
                raise ValueError(f"CalendarConfig.shifts: start {s} is not before end {e}")
            if prev_end is not None and s < prev_end:
                raise ValueError("CalendarConfig.shifts: periods must be sorted and must not overlap")
            prev_end = e
        both = self.extra_days_off & self.extra_working_days
        if both:
            raise ValueError(f"dates both extra day off and extra working day: {sorted(both)}")
        if not self.weekend <= set(range(7)):
            raise ValueError("CalendarConfig.weekend: weekday numbers are 0 (Monday) .. 6 (Sunday)")

    @property
    def hours_per_day(self) -> float:
        """Working hours in one working day (8.0 by default)."""
        return self.working_time_per_day.total_seconds() / 3600

    @property
    def working_time_per_day(self) -> timedelta:
        return sum((_dt(date.min, e) - _dt(date.min, s) for s, e in self.shifts), timedelta())

    @property
    def day_start(self) -> time:
        return self.shifts[0][0]

    @property
    def day_end(self) -> time:
        return self.shifts[-1][1]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CalendarConfig:
        """Build from YAML/JSON-like data.

        ``{"shifts": ["07:00-11:30", "13:30-17:00"], "extra_days_off": ["2026-01-02"],
        "extra_working_days": ["2026-01-10"], "weekend": [5, 6], "due_at_end_of_day": false}``
        """
        known = {
            "country",
            "shifts",
            "weekend",
            "extra_days_off",
            "extra_working_days",
            "use_package_swaps",
            "due_at_end_of_day",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown calendar settings: {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for k in ("country", "use_package_swaps", "due_at_end_of_day"):
            if k in data:
                kw[k] = data[k]
        if "weekend" in data:
            kw["weekend"] = frozenset(int(x) for x in data["weekend"])
        if "shifts" in data:
            kw["shifts"] = tuple(_parse_shift(s) for s in data["shifts"])
        for k in ("extra_days_off", "extra_working_days"):
            if k in data:
                kw[k] = frozenset(_parse_date(x) for x in (data[k] or ()))
        return cls(**kw)


class WorkingCalendar:
    """Working-day arithmetic over one :class:`CalendarConfig`. Use :func:`get_calendar` to share one."""

    def __init__(self, config: CalendarConfig | None = None) -> None:
        self.config = config or CalendarConfig()
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}

    def __repr__(self) -> str:
        return f"WorkingCalendar({self.config!r})"

    # ---- days ------------------------------------------------------------------------------
    def _year(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        """(weekday holidays, weekend working days) of one year, with the config's overrides."""
        cached = self._years.get(year)
        if cached is None:
            pkg_off, pkg_work = _package_year(self.config.country, year)
            if not self.config.use_package_swaps:
                pkg_work = frozenset()
            cached = (pkg_off, pkg_work)
            self._years[year] = cached
        return cached

    def is_working_day(self, d: date | datetime) -> bool:
        """True when ``d`` (a date, or the date of a datetime) is a working day."""
        if isinstance(d, datetime):
            d = d.date()
        cfg = self.config
        if d in cfg.extra_working_days:
            return True
        if d in cfg.extra_days_off:
            return False
        off, weekend_work = self._year(d.year)
        if d.weekday() in cfg.weekend:
            return d in weekend_work
        return d not in off

    def next_working_day(self, d: date | datetime, *, include_self: bool = False) -> date:
        """The first working day after ``d`` (or ``d`` itself when ``include_self`` and it works)."""
        if isinstance(d, datetime):
            d = d.date()
        if not include_self:
            d = d + _ONE_DAY
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_working_day(d):
                return d
            d = d + _ONE_DAY
        raise ValueError("no working day within ten years: check the calendar configuration")

    def days_off(self, start: date, end: date) -> list[date]:
        """Days off in ``[start, end]`` (both inclusive), for display and tests."""
        out = []
        d = start
        while d <= end:
            if not self.is_working_day(d):
                out.append(d)
            d += _ONE_DAY
        return out

    def working_days_between(self, start: date, end: date) -> int:
        """Number of working days in ``[start, end]`` (both inclusive); 0 when ``end < start``."""
        n = 0
        d = start
        while d <= end:
            n += self.is_working_day(d)
            d += _ONE_DAY
        return n

    def day_end(self, d: date | datetime) -> datetime:
        """End of the working day ``d`` (17:00 by default)."""
        if isinstance(d, datetime):
            d = d.date()
        return _dt(d, self.config.day_end)

    # ---- instants --------------------------------------------------------------------------
    def _segments(self, d: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(d):
            return []
        return [(_dt(d, s), _dt(d, e)) for s, e in self.config.shifts]

    def clock_start(self, t: datetime) -> datetime:
        """The first working instant at or after ``t`` (where the processing clock starts)."""
        return self.add_working_hours(t, 0)

    def add_working_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """The instant when ``hours`` working hours have elapsed since the clock start (module doc)."""
        remaining = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        if remaining < timedelta(0):
            raise ValueError("working time to add must be >= 0")
        d = start.date()
        cursor = start
        for _ in range(_MAX_SCAN_DAYS):
            for seg_start, seg_end in self._segments(d):
                lo = max(cursor, seg_start)
                if lo >= seg_end:
                    continue
                available = seg_end - lo
                if remaining <= available:
                    return lo + remaining
                remaining -= available
            d += _ONE_DAY
            cursor = datetime.combine(d, time.min)
        raise ValueError("working time does not fit in ten years: check the calendar configuration")

    def add_working_days(self, start: datetime, n: float) -> datetime:
        """Due instant for a duration of ``n`` working days from receipt ``start`` (module doc).

        ``n`` may be fractional (0.5 = 4 working hours). ``n == 0`` gives the clock start.
        """
        if n < 0:
            raise ValueError("a duration in working days must be >= 0")
        due = self.add_working_hours(start, self.config.working_time_per_day * n)
        if self.config.due_at_end_of_day:
            due = self.day_end(due)
        return due

    def add_calendar_days(self, start: datetime, n: int) -> datetime:
        """Due instant for a duration of ``n`` calendar days from ``start`` (module doc).

        ``start + n days``; when that date is a day off → end (17:00) of the next working day.
        """
        if n < 0:
            raise ValueError("a duration in calendar days must be >= 0")
        due = start + timedelta(days=n)
        if not self.is_working_day(due):
            return self.day_end(self.next_working_day(due))
        if self.config.due_at_end_of_day:
            return self.day_end(due)
        return due

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time inside ``[a, b]``; negative when ``b < a``."""
        if b < a:
            return -self.working_time_between(b, a)
        total = timedelta(0)
        d = a.date()
        while d <= b.date():
            for seg_start, seg_end in self._segments(d):
                lo, hi = max(a, seg_start), min(b, seg_end)
                if hi > lo:
                    total += hi - lo
            d += _ONE_DAY
        return total

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working hours inside ``[a, b]`` as a float; negative when ``b < a``."""
        return self.working_time_between(a, b).total_seconds() / 3600


# ---- module-level conveniences -------------------------------------------------------------------


def get_calendar(config: CalendarConfig | None = None) -> WorkingCalendar:
    """A shared calendar per configuration (its per-year caches are then shared too)."""
    return _shared_calendar(config if config is not None else CalendarConfig())


@lru_cache(maxsize=32)
def _shared_calendar(config: CalendarConfig) -> WorkingCalendar:
    return WorkingCalendar(config)


def _cal(calendar: WorkingCalendar | None) -> WorkingCalendar:
    return calendar if calendar is not None else get_calendar()


def is_working_day(d: date | datetime, calendar: WorkingCalendar | None = None) -> bool:
    return _cal(calendar).is_working_day(d)


def add_working_hours(
    start: datetime, hours: float | timedelta, calendar: WorkingCalendar | None = None
) -> datetime:
    return _cal(calendar).add_working_hours(start, hours)


def add_working_days(start: datetime, n: float, calendar: WorkingCalendar | None = None) -> datetime:
    return _cal(calendar).add_working_days(start, n)


def add_calendar_days(start: datetime, n: int, calendar: WorkingCalendar | None = None) -> datetime:
    return _cal(calendar).add_calendar_days(start, n)


def working_hours_between(a: datetime, b: datetime, calendar: WorkingCalendar | None = None) -> float:
    return _cal(calendar).working_hours_between(a, b)


# ---- internals -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _package_year(country: str, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Holidays and make-up weekend working days of ``year`` from the ``holidays`` package.

    Built over ``year ± 1`` because a swap can cross the new year (2018: Mon 31 Dec off, Sat 5 Jan
    2019 worked): the worked Saturday is recorded while the *previous* year is populated.
    """
    h = holidays.country_holidays(country, years=(year - 1, year, year + 1))
    off = frozenset(d for d in h if d.year == year)
    work = frozenset(d for d in getattr(h, "weekend_workdays", ()) if d.year == year)
    return off, work


def _dt(d: date, t: time) -> datetime:
    return datetime.combine(d, t)


def _parse_shift(value: Any) -> tuple[time, time]:
    if isinstance(value, str):
        a, _, b = value.partition("-")
        return time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    s, e = value
    return (s if isinstance(s, time) else time.fromisoformat(str(s))), (
        e if isinstance(e, time) else time.fromisoformat(str(e))
    )


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def dates(values: Iterable[str | date]) -> frozenset[date]:
    """Helper for configs written by hand: ``dates(["2026-01-02"])``."""
    return frozenset(_parse_date(v) for v in values)
