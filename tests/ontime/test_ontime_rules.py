"""On-time rules (tthc.ontime.evaluate): one hand-computed case per rule of domain.md §6."""

from datetime import datetime, timedelta

import pytest

from tthc.model import Dossier, Supplement
from tthc.ontime import (
    EARLY,
    EXCLUDED,
    ON_TIME,
    OPEN_IN_TIME,
    OPEN_OVERDUE,
    OVERDUE,
    WITHDRAWN,
    LegalDuration,
    OnTimeRules,
    compute_due,
    evaluate,
)

D = datetime
PERIOD_END = D(2026, 3, 31, 23, 59, 59)
DUE = D(2026, 3, 6, 17, 0)  # Friday
RECEIVED = D(2026, 3, 2, 9, 0)  # Monday


def mk(status=10, received=RECEIVED, due=DUE, finished=None, returned=None, supplements=(), **kw):
    return Dossier(
        source_id="s1",
        dossier_code=kw.pop("code", "000.00.12.H40-260302-0001"),
        agency_code=kw.pop("agency", "000.00.12.H40"),
        procedure_code=kw.pop("procedure", "1.000001"),
        received_at=received,
        updated_at=None,
        status=status,
        due_at=due,
        finished_at=finished,
        returned_at=returned,
        supplements=list(supplements),
        **kw,
    )


def ev(d, **kw):
    return evaluate(d, kw.pop("period_end", PERIOD_END), **kw)


# ---- excluded -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(1, "not_received"), (3, "refused_at_reception"), (None, "unknown_status"), (42, "unknown_status")],
)
def test_not_received_statuses_are_excluded(status, reason):
    e = ev(mk(status=status, finished=D(2026, 3, 3)))
    assert (e.outcome, e.reason) == (EXCLUDED, reason)


def test_refused_at_reception_excluded_even_if_late():
    e = ev(mk(status=3, due=D(2026, 3, 1), finished=D(2026, 3, 20)))
    assert e.outcome == EXCLUDED


def test_received_after_period_end_excluded():
    e = ev(mk(status=4, received=D(2026, 4, 1, 8)))
    assert (e.outcome, e.reason) == (EXCLUDED, "received_after_period_end")
    # Received exactly at period_end is inside (the bound is inclusive).
    assert ev(mk(status=4, received=PERIOD_END, due=D(2026, 4, 3))).outcome == OPEN_IN_TIME


def test_no_receipt_date_excluded():
    assert ev(mk(status=4, received=None)).reason == "no_receipt_date"


# ---- resolved: early / on time / overdue --------------------------------------------------------


@pytest.mark.parametrize(
    ("finished", "expected"),
    [
        (D(2026, 3, 5, 10), EARLY),  # date 5 < 6
        (D(2026, 3, 6, 16), ON_TIME),  # same date, before the due time
        (D(2026, 3, 6, 18), ON_TIME),  # same date, after the due time: date unit says on time
        (D(2026, 3, 7, 8), OVERDUE),
    ],
)
def test_resolved_by_date(finished, expected):
    e = ev(mk(finished=finished))
    assert e.outcome == expected
    assert e.end == finished and e.judged_at == finished


def test_date_versus_datetime_unit():
    d = mk(due=D(2026, 3, 6, 9, 0), finished=D(2026, 3, 6, 15, 0))
    assert ev(d).outcome == ON_TIME
    assert ev(d, unit="datetime").outcome == OVERDUE
    d2 = mk(due=D(2026, 3, 6, 9, 0), finished=D(2026, 3, 6, 9, 0))
    assert ev(d2, unit="datetime").outcome == ON_TIME  # "end <= due"
    d3 = mk(due=D(2026, 3, 6, 9, 0), finished=D(2026, 3, 5, 18, 0))
    assert ev(d3, unit="datetime").outcome == EARLY  # early is by date in both units
    with pytest.raises(ValueError):
        ev(d, unit="hour")


def test_end_time_falls_back_to_returned_at_and_takes_the_first_event():
    e = ev(mk(finished=None, returned=D(2026, 3, 5, 8)))
    assert (e.outcome, e.end) == (EARLY, D(2026, 3, 5, 8))
    # Both known: the first of the two end events counts.
    e = ev(mk(finished=D(2026, 3, 9), returned=D(2026, 3, 6, 10)))
    assert (e.outcome, e.end) == (ON_TIME, D(2026, 3, 6, 10))


def test_resolved_without_end_time_is_unjudged():
    e = ev(mk(status=9, finished=None, returned=None))
    assert (e.outcome, e.reason) == (EXCLUDED, "no_end_time")


# ---- supplements --------------------------------------------------------------------------------


def test_completed_supplement_time_is_excluded():
    # Paused 4 Mar 10:00 → 9 Mar 10:00 = 5 days. End 10 Mar 15:00 − 5 d = 5 Mar 15:00 < due 6 Mar.
    s = Supplement(D(2026, 3, 4, 10), D(2026, 3, 9, 10))
    e = ev(mk(finished=D(2026, 3, 10, 15), supplements=[s]))
    assert e.outcome == EARLY
    assert e.supplement_time == timedelta(days=5)
    assert e.judged_at == D(2026, 3, 5, 15)
    # End 11 Mar 16:00 − 5 d = 6 Mar 16:00: on time; without the supplement it would be overdue.
    assert ev(mk(finished=D(2026, 3, 11, 16), supplements=[s])).outcome == ON_TIME
    assert ev(mk(finished=D(2026, 3, 11, 16))).outcome == OVERDUE
    # 12 Mar − 5 d = 7 Mar: overdue even after the pause.
    assert ev(mk(finished=D(2026, 3, 12, 8), supplements=[s])).outcome == OVERDUE


def test_two_supplement_requests_are_overdue():
    sups = [Supplement(D(2026, 3, 3, 9), D(2026, 3, 3, 15)), Supplement(D(2026, 3, 4, 9), D(2026, 3, 4, 10))]
    e = ev(mk(finished=D(2026, 3, 5, 9), supplements=sups))  # would be early otherwise
    assert (e.outcome, e.reason, e.supplement_requests) == (OVERDUE, "multiple_supplements", 2)
    e = ev(mk(status=5, supplements=sups, due=D(2026, 4, 30)))
    assert (e.outcome, e.reason) == (OPEN_OVERDUE, "multiple_supplements")


def test_one_pending_supplement_is_judged_at_request_time():
    # Open (status 5) at 31 Mar, past its due 6 Mar, but the request on 4 Mar was in time.
    s = Supplement(D(2026, 3, 4, 10), None)
    e = ev(mk(status=5, supplements=[s]))
    assert (e.outcome, e.reason, e.judged_at) == (OPEN_IN_TIME, "pending_supplement", D(2026, 3, 4, 10))
    # Requested after the due date: judged then, overdue.
    late = Supplement(D(2026, 3, 9, 10), None)
    assert ev(mk(status=5, supplements=[late])).outcome == OPEN_OVERDUE
    # Without the supplement the same dossier is simply open and overdue.
    assert ev(mk(status=5)).outcome == OPEN_OVERDUE


def test_supplement_completed_after_period_end_is_still_pending_then():
    s = Supplement(D(2026, 3, 4, 10), D(2026, 4, 2, 10))
    e = ev(mk(status=4, supplements=[s]))
    assert (e.outcome, e.judged_at) == (OPEN_IN_TIME, D(2026, 3, 4, 10))


def test_supplements_after_the_end_are_ignored():
    late = [Supplement(D(2026, 3, 6, 9), None), Supplement(D(2026, 3, 7, 9), D(2026, 3, 8, 9))]
    e = ev(mk(finished=D(2026, 3, 5, 9), supplements=late))
    assert (e.outcome, e.supplement_requests) == (EARLY, 0)


def test_supplement_without_request_time_ignored_and_negative_pause_is_zero():
    e = ev(mk(finished=D(2026, 3, 5, 9), supplements=[Supplement(None, D(2026, 3, 4))]))
    assert (e.outcome, e.supplement_requests) == (EARLY, 0)
    bad = Supplement(D(2026, 3, 4, 10), D(2026, 3, 3, 10))  # completed before requested
    e = ev(mk(finished=D(2026, 3, 7, 9), supplements=[bad]))
    assert (e.outcome, e.supplement_time) == (OVERDUE, timedelta(0))


# ---- open at the end of the period --------------------------------------------------------------


def test_open_dossier_judged_at_period_end():
    assert ev(mk(status=4, due=D(2026, 4, 3, 17))).outcome == OPEN_IN_TIME
    assert ev(mk(status=4, due=D(2026, 3, 30, 17))).outcome == OPEN_OVERDUE
    # Due on the last day of the period at 17:00, judged at 23:59:59 the same day.
    d = mk(status=2, due=D(2026, 3, 31, 17))
    assert ev(d).outcome == OPEN_IN_TIME
    assert ev(d, unit="datetime").outcome == OPEN_OVERDUE
    e = ev(d)
    assert e.judged_at == PERIOD_END and e.end is None and e.is_open and e.in_time


def test_stale_finished_at_on_an_open_status_is_ignored():
    assert ev(mk(status=4, finished=D(2026, 3, 3))).outcome == OPEN_OVERDUE


def test_dossier_ended_after_period_end_was_open_at_period_end():
    d = mk(status=10, due=D(2026, 4, 3, 17), finished=D(2026, 4, 2, 9))
    e = ev(d)
    assert (e.outcome, e.reason) == (OPEN_IN_TIME, "ended_after_period_end")
    late = mk(status=10, due=D(2026, 3, 30, 17), finished=D(2026, 4, 2, 9))
    assert ev(late).outcome == OPEN_OVERDUE
    # Switched off: the current end is used even though it lies after the period.
    assert ev(d, rules=OnTimeRules(as_of_period_end=False)).outcome == EARLY
    # Withdrawn after the period end: still open at the period end.
    assert ev(mk(status=7, due=D(2026, 4, 3), finished=D(2026, 4, 1))).outcome == OPEN_IN_TIME


# ---- withdrawn / stopped ------------------------------------------------------------------------


def test_withdrawn():
    e = ev(mk(status=7, finished=D(2026, 3, 9)))  # after the due date: still just withdrawn
    assert (e.outcome, e.end) == (WITHDRAWN, D(2026, 3, 9))
    two = [Supplement(D(2026, 3, 3), None), Supplement(D(2026, 3, 4), None)]
    assert ev(mk(status=7, finished=D(2026, 3, 5), supplements=two)).outcome == WITHDRAWN
    assert ev(mk(status=7, finished=None, returned=None)).outcome == WITHDRAWN


def test_stopped_ends_the_clock_by_default():
    assert ev(mk(status=8, finished=D(2026, 3, 5, 9))).outcome == EARLY
    assert ev(mk(status=8, finished=D(2026, 3, 9, 9))).outcome == OVERDUE
    paused = OnTimeRules(stopped_ends_clock=False)
    e = ev(mk(status=8, finished=D(2026, 3, 5, 9)), rules=paused)
    assert (e.outcome, e.reason, e.judged_at) == (OPEN_IN_TIME, "stopped_paused", D(2026, 3, 5, 9))


# ---- no due date: legal duration ----------------------------------------------------------------


def test_no_due_date_uses_legal_duration_in_working_days():
    # Received Fri 13 Feb 2026 17:05 (before Tết): 3 working days → due Wed 25 Feb 17:00.
    received = D(2026, 2, 13, 17, 5)
    assert compute_due(received, 3) == D(2026, 2, 25, 17)

    def judge(finished, supplements=()):
        return ev(
            mk(received=received, due=None, finished=finished, supplements=supplements), legal_duration=3
        )

    e = judge(D(2026, 2, 25, 16))
    assert (e.outcome, e.due, e.due_derived) == (ON_TIME, D(2026, 2, 25, 17), True)
    assert judge(D(2026, 2, 24, 16)).outcome == EARLY
    assert judge(D(2026, 2, 26, 8)).outcome == OVERDUE
    # With a completed 1-day supplement: 26 Feb 10:00 − 1 d = 25 Feb 10:00 → on time.
    sup = [Supplement(D(2026, 2, 23, 8), D(2026, 2, 24, 8))]
    assert judge(D(2026, 2, 26, 10), sup).outcome == ON_TIME


def test_no_due_date_calendar_duration_ending_on_sunday():
    # Received Wed 4 Mar 10:00, 4 calendar days → Sun 8 Mar → due Mon 9 Mar 17:00.
    d = mk(received=D(2026, 3, 4, 10), due=None, finished=D(2026, 3, 9, 12))
    e = ev(d, legal_duration=(4, "calendar"))
    assert (e.outcome, e.due) == (ON_TIME, D(2026, 3, 9, 17))
    assert ev(d, legal_duration=LegalDuration(4, "calendar"), unit="datetime").outcome == ON_TIME
    # 3 days → Sat 7 Mar → also Mon 9 Mar 17:00; 2 days → Fri 6 Mar 10:00, a working day → overdue.
    assert ev(d, legal_duration=LegalDuration(3, "calendar")).due == D(2026, 3, 9, 17)
    assert ev(d, legal_duration=LegalDuration(2, "calendar")).outcome == OVERDUE


def test_no_due_date_and_no_legal_duration_is_unjudged():
    e = ev(mk(due=None, finished=D(2026, 3, 5)))
    assert (e.outcome, e.reason) == (EXCLUDED, "no_due_date")


def test_due_date_wins_over_legal_duration():
    e = ev(mk(finished=D(2026, 3, 5)), legal_duration=1)
    assert (e.outcome, e.due, e.due_derived) == (EARLY, DUE, False)


# ---- the Tết receipt end to end -----------------------------------------------------------------


def test_receipt_at_1705_friday_before_tet_due_and_outcome():
    received = D(2026, 2, 13, 17, 5)
    due = compute_due(received, 1)
    assert due == D(2026, 2, 23, 17, 0)
    d = mk(received=received, due=due, finished=D(2026, 2, 23, 16, 30))
    assert ev(d, unit="datetime").outcome == ON_TIME
    d = mk(received=received, due=due, finished=D(2026, 2, 24, 8, 0))
    assert ev(d).outcome == OVERDUE


def test_compute_due_units():
    assert compute_due(D(2026, 3, 4, 10), 4, "calendar") == D(2026, 3, 9, 17)
    assert compute_due(D(2026, 3, 4, 10), LegalDuration(5)) == D(2026, 3, 11, 10)
    with pytest.raises(ValueError):
        compute_due(D(2026, 3, 4, 10), LegalDuration(5), "calendar")
    with pytest.raises(ValueError):
        LegalDuration(1.5, "calendar")
