"""Working-day calendar of Vietnam for the world generator (domain.md §6).

Saturdays, Sundays and public holidays are days off; the yearly announced swap days come from the
``holidays`` package (a Saturday made a working day is one; the day it frees is a holiday).
Everything is precomputed for a date range so adding working days is a list lookup.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import holidays


class WorkCalendar:
    """Working days between ``first`` and ``last`` (inclusive)."""

    def __init__(self, first: date, last: date, country: str = "VN") -> None:
        if last < first:
            raise ValueError("calendar range is empty")
        cal = holidays.country_holidays(country, years=range(first.year, last.year + 1))
        self.first = first
        self.last = last
        self._first_ord = first.toordinal()
        self.first_ordinal = self._first_ord
        n = last.toordinal() - self._first_ord + 1
        self.days: list[date] = []
        working = [False] * n
        for off in range(n):
            d = first + timedelta(days=off)
            if cal.is_working_day(d):
                working[off] = True
                self.days.append(d)
        self._working = working
        # _next[off] = index in self.days of the first working day on or after first + off
        nxt = [0] * (n + 1)
        nxt[n] = len(self.days)
        idx = len(self.days)
        for off in range(n - 1, -1, -1):
            if working[off]:
                idx -= 1
            nxt[off] = idx
        self._next = nxt
        #: fast-path views for the generator: per day offset from ``first`` (ordinal - first_ordinal)
        self.working_by_offset = working
        self.next_index = nxt
        #: midnight of every working day, aligned with :attr:`days`
        self.midnights = [datetime(d.year, d.month, d.day) for d in self.days]

    def _off(self, d: date) -> int:
        off = d.toordinal() - self._first_ord
        if off < 0 or off >= len(self._working):
            raise ValueError(f"{d} is outside the world calendar {self.first}..{self.last}")
        return off

    def is_working(self, d: date) -> bool:
        return self._working[self._off(d)]

    def index_on_or_after(self, d: date) -> int:
        """Index into :attr:`days` of the first working day on or after ``d``."""
        return self._next[self._off(d)]

    def next_working(self, d: date) -> date:
        """``d`` when it is a working day, else the next working day."""
        return self.days[self.index_on_or_after(d)]

    def add_working_days(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``d`` itself moved to a working day first)."""
        return self.days[self.index_on_or_after(d) + n]

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in the half-open interval ``(a, b]``."""
        return self.index_on_or_after(b + timedelta(days=1)) - self.index_on_or_after(a + timedelta(days=1))
