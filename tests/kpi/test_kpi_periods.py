"""Periods: parsing, boundaries, labels, and which periods the province DAG recomputes."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tthc.kpi import Period, periods_to_compute


@pytest.mark.parametrize(
    ("text", "ptype", "start", "last"),
    [
        ("2026Q3", "quarter", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026-q4", "quarter", date(2026, 10, 1), date(2026, 12, 31)),
        ("Q2/2025", "quarter", date(2025, 4, 1), date(2025, 6, 30)),
        ("2026-02", "month", date(2026, 2, 1), date(2026, 2, 28)),
        ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026-12", "month", date(2026, 12, 1), date(2026, 12, 31)),
        ("2026", "year", date(2026, 1, 1), date(2026, 12, 31)),
        ("2025-06-30", "day", date(2025, 6, 30), date(2025, 6, 30)),
    ],
)
def test_parse_and_bounds(text, ptype, start, last):
    p = Period.parse(text)
    assert (p.type, p.start, p.last_day) == (ptype, start, last)
    assert Period.parse(p.code) == p


def test_containing_quarter_boundaries():
    assert Period.containing("quarter", date(2025, 6, 30)).code == "2025Q2"
    assert Period.containing("quarter", datetime(2025, 7, 1, 0, 0)).code == "2025Q3"
    assert Period.containing("quarter", date(2026, 12, 31)).code == "2026Q4"
    assert Period.parse("2026Q1").previous().code == "2025Q4"
    assert Period.parse("2026Q4").next().code == "2027Q1"
    assert [m.code for m in Period.parse("2026Q3").months()] == ["2026-07", "2026-08", "2026-09"]


def test_labels_are_vietnamese():
    assert Period.parse("2026Q3").label_vi == "quý III/2026"
    assert Period.parse("2026Q4").label_vi == "quý IV/2026"
    assert Period.parse("2026-07").label_vi == "tháng 7/2026"
    assert Period.parse("2025-06-30").label_vi == "ngày 30/6/2025"
    assert Period.parse("2026").label_vi == "năm 2026"


def test_misaligned_start_is_refused():
    with pytest.raises(ValueError):
        Period("quarter", date(2026, 8, 1))
    with pytest.raises(ValueError):
        Period("week", date(2026, 8, 3))
    with pytest.raises(ValueError):
        Period.parse("2026Q5")


def test_periods_to_compute_adds_recently_ended_ones():
    got = [p.code for p in periods_to_compute(date(2026, 10, 1))]
    # running day/month/quarter/year, and the previous ones that ended within 7 days
    assert got == ["2026-09-30", "2026-10-01", "2026-09", "2026-10", "2026Q3", "2026Q4", "2026"]
    got = [p.code for p in periods_to_compute(datetime(2026, 11, 20, 1, 0))]
    assert got == ["2026-11-19", "2026-11-20", "2026-11", "2026Q4", "2026"]
    got = [p.code for p in periods_to_compute(date(2027, 1, 3))]
    assert "2026" in got and "2027" in got and "2026Q4" in got
