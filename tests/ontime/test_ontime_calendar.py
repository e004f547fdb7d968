"""Working-day calendar (tthc.calendar): hand-computed cases against domain.md §6."""

from datetime import date, datetime, time, timedelta

import holidays
import pytest

from tthc import calendar as calmod
from tthc.calendar import CalendarConfig, WorkingCalendar, get_calendar

D = datetime


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return get_calendar()


# ---- the holidays package's VN calendar, as checked by hand -------------------------------------


def test_package_tet_2026_dates():
    # holidays 0.109: Giao thừa Mon 16 Feb, Tết Tue 17 Feb, mùng 2-4 Wed 18 - Fri 20 Feb 2026.
    vn = holidays.country_holidays("VN", years=2026)
    tet = sorted(d for d in vn if d.month == 2)
    assert tet == [date(2026, 2, d) for d in (16, 17, 18, 19, 20)]


def test_tet_2026_break_is_nine_days_off(cal):
    assert cal.days_off(date(2026, 2, 13), date(2026, 2, 23)) == [date(2026, 2, d) for d in range(14, 23)]
    assert cal.is_working_day(date(2026, 2, 13))  # Friday before Tết
    assert cal.is_working_day(date(2026, 2, 23))  # first Monday after


@pytest.mark.parametrize(
    ("day_off", "worked_saturday"),
    [
        (date(2025, 5, 2), date(2025, 4, 26)),  # 30/4-1/5 bridge 2025
        (date(2026, 8, 31), date(2026, 8, 22)),  # 2/9 bridge 2026
        (date(2024, 4, 29), date(2024, 5, 4)),
        (date(2018, 12, 31), date(2019, 1, 5)),  # swap across the new year
    ],
)
def test_swap_days(cal, day_off, worked_saturday):
    assert not cal.is_working_day(day_off)
    assert worked_saturday.weekday() == 5
    assert cal.is_working_day(worked_saturday)


def test_swap_saturday_ignored_when_package_swaps_off():
    c = WorkingCalendar(CalendarConfig(use_package_swaps=False))
    assert not c.is_working_day(date(2026, 8, 22))
    assert not c.is_working_day(date(2026, 8, 31))  # the day off itself stays off


def test_weekends_and_other_holidays(cal):
    assert not cal.is_working_day(date(2026, 3, 7))  # Saturday
    assert not cal.is_working_day(date(2026, 3, 8))  # Sunday
    assert cal.is_working_day(date(2026, 3, 9))
    assert not cal.is_working_day(date(2026, 4, 27))  # Hùng Kings (Sun 26 Apr) observed Monday
    assert not cal.is_working_day(date(2026, 11, 24))  # Ngày Văn hóa Việt Nam, from 2026
    assert not cal.is_working_day(datetime(2026, 9, 2, 10, 0))  # accepts datetimes


def test_extra_days_off_and_working_days_override_package():
    cfg = CalendarConfig(
        extra_days_off=[date(2026, 1, 2)], extra_working_days=[date(2026, 1, 10), date(2026, 1, 1)]
    )
    c = WorkingCalendar(cfg)
    assert not c.is_working_day(date(2026, 1, 2))
    assert c.is_working_day(date(2026, 1, 10))  # a Saturday made working
    assert c.is_working_day(date(2026, 1, 1))  # extra working day wins over a package holiday
    default = get_calendar()
    # Received Wed 31 Dec 2025 16:00, 1 working day: 1 h on Wed, Thu 1 Jan off, 7 h on Fri 2 Jan.
    assert default.add_working_days(D(2025, 12, 31, 16), 1) == D(2026, 1, 2, 16)
    # With 1 Jan worked and 2 Jan off: 1 h Wed + 7 h Thu → Thu 16:00.
    assert c.add_working_days(D(2025, 12, 31, 16), 1) == D(2026, 1, 1, 16)


# ---- add_working_days ---------------------------------------------------------------------------


def test_receipt_after_17_on_friday_before_tet(cal):
    # Fri 13 Feb 2026 17:05: the clock starts Mon 23 Feb 07:00 (the whole Tết break is off).
    assert cal.clock_start(D(2026, 2, 13, 17, 5)) == D(2026, 2, 23, 7, 0)
    assert cal.add_working_days(D(2026, 2, 13, 17, 5), 1) == D(2026, 2, 23, 17, 0)
    assert cal.add_working_days(D(2026, 2, 13, 17, 5), 3) == D(2026, 2, 25, 17, 0)


def test_receipt_during_working_hours_before_tet(cal):
    # Fri 13 Feb 16:00: 1 h on Friday, then 4.5 h + 2.5 h on Mon 23 Feb → 16:00.
    assert cal.add_working_days(D(2026, 2, 13, 16, 0), 1) == D(2026, 2, 23, 16, 0)


def test_working_day_boundaries(cal):
    mon = date(2026, 3, 2)
    assert cal.add_working_days(D.combine(mon, time(9)), 1) == D(2026, 3, 3, 9)
    assert cal.add_working_days(D.combine(mon, time(6)), 1) == D(2026, 3, 2, 17)  # before 07:00
    assert cal.add_working_days(D.combine(mon, time(7)), 1) == D(2026, 3, 2, 17)  # ends on 17:00
    # Lunch: starts 13:30; 3.5 h Monday + 4.5 h Tuesday morning → exactly 11:30 Tuesday.
    assert cal.add_working_days(D.combine(mon, time(12)), 1) == D(2026, 3, 3, 11, 30)
    assert cal.add_working_days(D.combine(mon, time(12)), 0.5) == D(2026, 3, 3, 7, 30)
    assert cal.add_working_days(D.combine(mon, time(18)), 0) == D(2026, 3, 3, 7)  # n=0: clock start
    # Received on Saturday 7 Mar → clock starts Monday 9 Mar 07:00; 5 days → Fri 13 Mar 17:00.
    assert cal.add_working_days(D(2026, 3, 7, 10), 5) == D(2026, 3, 13, 17)
    # 5 days from Wed 10:00 cross one weekend: Wed 10:00 + 5 working days = next Wed 10:00.
    assert cal.add_working_days(D(2026, 3, 4, 10), 5) == D(2026, 3, 11, 10)
    with pytest.raises(ValueError):
        cal.add_working_days(D(2026, 3, 4, 10), -1)


def test_due_at_end_of_day_mode():
    c = WorkingCalendar(CalendarConfig(due_at_end_of_day=True))
    assert c.add_working_days(D(2026, 3, 2, 9), 1) == D(2026, 3, 3, 17)
    assert c.add_working_days(D(2026, 2, 13, 17, 5), 1) == D(2026, 2, 23, 17)


def test_custom_shifts():
    c = WorkingCalendar(CalendarConfig.from_mapping({"shifts": ["08:00-12:00", "13:00-17:00"]}))
    assert c.config.hours_per_day == 8.0
    assert c.add_working_days(D(2026, 3, 2, 7, 0), 1) == D(2026, 3, 2, 17)
    assert c.add_working_days(D(2026, 3, 2, 12, 30), 0.5) == D(2026, 3, 2, 17)


# ---- add_calendar_days --------------------------------------------------------------------------


def test_calendar_days_ending_on_sunday_move_to_monday_end_of_day(cal):
    # Wed 4 Mar 2026 10:00 + 4 days = Sun 8 Mar → Mon 9 Mar, end of the working day.
    assert cal.add_calendar_days(D(2026, 3, 4, 10), 4) == D(2026, 3, 9, 17)
    # + 5 days = Mon 9 Mar 10:00, a working day: unchanged.
    assert cal.add_calendar_days(D(2026, 3, 4, 10), 5) == D(2026, 3, 9, 10)
    # Tue 10 Feb + 7 days = Tue 17 Feb (Tết) → Mon 23 Feb 17:00.
    assert cal.add_calendar_days(D(2026, 2, 10, 9), 7) == D(2026, 2, 23, 17)


# ---- working_hours_between ----------------------------------------------------------------------


def test_working_hours_between(cal):
    # Fri 13 Feb 09:00 → Mon 23 Feb 09:00: 2.5 + 3.5 on Friday, Tết off, 2 on Monday = 8.
    assert cal.working_hours_between(D(2026, 2, 13, 9), D(2026, 2, 23, 9)) == 8.0
    assert cal.working_hours_between(D(2026, 2, 23, 9), D(2026, 2, 13, 9)) == -8.0
    assert cal.working_hours_between(D(2026, 3, 2, 11, 45), D(2026, 3, 2, 13, 15)) == 0.0
    assert cal.working_hours_between(D(2026, 3, 7, 8), D(2026, 3, 8, 16)) == 0.0  # weekend
    assert cal.working_time_between(D(2026, 3, 2, 11), D(2026, 3, 2, 14)) == timedelta(hours=1)


# ---- configuration and module-level helpers -----------------------------------------------------


def test_config_validation_and_parsing():
    with pytest.raises(ValueError):
        CalendarConfig(shifts=((time(7), time(12)), (time(11), time(17))))
    with pytest.raises(ValueError):
        CalendarConfig(extra_days_off=[date(2026, 1, 2)], extra_working_days=[date(2026, 1, 2)])
    with pytest.raises(ValueError):
        CalendarConfig.from_mapping({"shfits": []})
    cfg = CalendarConfig.from_mapping(
        {"extra_days_off": ["2026-01-02"], "extra_working_days": ["2026-01-10"], "weekend": [5, 6]}
    )
    assert cfg.extra_days_off == frozenset({date(2026, 1, 2)})
    assert cfg == CalendarConfig(
        extra_days_off=calmod.dates(["2026-01-02"]), extra_working_days=calmod.dates(["2026-01-10"])
    )
    assert get_calendar(cfg) is get_calendar(cfg)  # one shared calendar per configuration


def test_module_level_functions():
    assert calmod.is_working_day(date(2026, 2, 23))
    assert calmod.add_working_days(D(2026, 2, 13, 17, 5), 1) == D(2026, 2, 23, 17)
    assert calmod.add_calendar_days(D(2026, 3, 4, 10), 4) == D(2026, 3, 9, 17)
    assert calmod.working_hours_between(D(2026, 3, 2, 7), D(2026, 3, 2, 17)) == 8.0
    assert calmod.add_working_hours(D(2026, 3, 2, 7), 4.5) == D(2026, 3, 2, 11, 30)
