"""On time, early, overdue: the national portal's rule for one dossier (domain.md §6).

:func:`evaluate` judges one :class:`~tthc.model.Dossier` as of the end of a reporting period and
returns an :class:`Evaluation` whose ``outcome`` is one of

``excluded``      not part of the statistics (status 1 / 3 / unknown, no receipt date, received after
                  the period, or not judgeable: see ``reason``)
``early``         ended, effective end date < due date
``on_time``       ended, effective end <= due (by date, or by datetime with ``unit="datetime"``)
``overdue``       ended, effective end > due, or more than one supplement request
``open_in_time``  still open at the end of the period, judged there, not past due
``open_overdue``  still open at the end of the period, past due (or more than one supplement request)
``withdrawn``     withdrawn by the citizen (status 7) by the end of the period

The order in which the rules apply (each step cites domain.md §6 or says why it is our decision):

1. status unknown / 1 / 3, no ``received_at``, ``received_at > period_end`` → ``excluded``.
2. End time. §6: "the first of resolved (9), returned (10), stopped/refused; withdrawal also ends it".
   We take the *earliest* of ``finished_at`` (NgayKetThucXuLy) and ``returned_at`` (NgayTra), so
   ``returned_at`` is the fall-back when ``finished_at`` is missing. Statuses 7, 8, 9, 10 have ended;
   2, 4, 5, 6 are open (a stale ``finished_at`` on an open status is ignored: the status is newer).
3. As of the period end (our reading of §6 "a dossier still open is judged at the end of the
   reporting period"): a dossier that ended *after* ``period_end`` was still open then, so it is judged
   as open at ``period_end``; supplements requested after the judgement point are ignored and those
   completed after it are still pending. This keeps a report for a past period stable when it is
   recomputed later. Switch off with ``OnTimeRules(as_of_period_end=False)``.
4. Withdrawn (7) → ``withdrawn`` whatever the timing. Whether it counts in the on-time rate is
   decided in :mod:`tthc.indicators` (not by default).
5. Ended 8/9/10 without any end time → ``excluded`` (reason ``no_end_time``): judging it at the period
   end would invent a date; validation reports the defect.
6. Stopped (8): §6 lists "stopped/refused" among the end events, so by default it ends the clock and
   is judged like a resolved dossier. ``OnTimeRules(stopped_ends_clock=False)`` reads §5's "paused"
   instead: the dossier stays open, judged at its stop time (clock frozen) → ``open_*``.
7. Due: ``dossier.due_at`` (ngày hẹn trả). Without it, §6: "(end - start - supplement time) <= the
   procedure's legal duration", which we evaluate as "end - supplement time <= start ⊕ duration",
   ⊕ being the working-day / calendar-day addition of :mod:`tthc.calendar`; i.e. the same comparison
   as with a due date, against a *derived* due. No due and no legal duration → ``excluded``
   (reason ``no_due_date``); :mod:`tthc.indicators` counts these as ``unjudged``, still received.
8. Supplements (§6), counting requests with a ``requested_at`` not after the judgement point
   (a record without ``requested_at`` carries no time and is ignored — validation flags it):
   * more than one request → ``overdue`` / ``open_overdue`` ("counts as overdue");
   * one request, still pending → judged at the request time;
   * one request, completed → effective end = end - (completed - requested), raw elapsed time as §6
     writes it (not working time); a negative interval (bad data) counts as zero.
9. Comparison (§6): date unit (default): on time when eff.date() <= due.date(); datetime unit: on time
   when eff <= due. "Early" is a date notion in both units: eff.date() < due.date().
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tthc.calendar import WorkingCalendar, get_calendar
from tthc.codes import STATUS_NAMES
from tthc.model import Dossier, Supplement

__all__ = [
    "EARLY",
    "EXCLUDED",
    "IN_TIME_OUTCOMES",
    "ON_TIME",
    "OPEN_IN_TIME",
    "OPEN_OUTCOMES",
    "OPEN_OVERDUE",
    "OUTCOMES",
    "OVERDUE",
    "RESOLVED_OUTCOMES",
    "WITHDRAWN",
    "Evaluation",
    "LegalDuration",
    "OnTimeRules",
    "compute_due",
    "evaluate",
]

EXCLUDED = "excluded"
EARLY = "early"
ON_TIME = "on_time"
OVERDUE = "overdue"
OPEN_IN_TIME = "open_in_time"
OPEN_OVERDUE = "open_overdue"
WITHDRAWN = "withdrawn"

OUTCOMES = (EXCLUDED, EARLY, ON_TIME, OVERDUE, OPEN_IN_TIME, OPEN_OVERDUE, WITHDRAWN)
RESOLVED_OUTCOMES = frozenset({EARLY, ON_TIME, OVERDUE})
OPEN_OUTCOMES = frozenset({OPEN_IN_TIME, OPEN_OVERDUE})
IN_TIME_OUTCOMES = frozenset({EARLY, ON_TIME, OPEN_IN_TIME})

#: ``Evaluation.reason`` values of ``excluded`` dossiers that were never received (not counted at all)
#: versus those received but not judgeable (``no_end_time``, ``no_due_date``).
NOT_RECEIVED_REASONS = frozenset(
    {"unknown_status", "not_received", "refused_at_reception", "no_receipt_date"}
)
UNJUDGED_REASONS = frozenset({"no_end_time", "no_due_date"})

Unit = Literal["date", "datetime"]
DurationUnit = Literal["working", "calendar"]

_ENDED_STATUSES = frozenset({7, 8, 9, 10})


@dataclass(frozen=True, slots=True)
class LegalDuration:
    """A procedure's legal processing time: ``amount`` working days (default) or calendar days."""

    amount: float
    unit: DurationUnit = "working"

    def __post_init__(self) -> None:
        if self.unit not in ("working", "calendar"):
            raise ValueError(f"duration unit must be 'working' or 'calendar', not {self.unit!r}")
        if self.amount < 0:
            raise ValueError("a legal duration must be >= 0")
        if self.unit == "calendar" and self.amount != int(self.amount):
            raise ValueError("a calendar-day duration must be a whole number of days")

    @classmethod
    def coerce(cls, value: LegalDuration | float | tuple[float, str] | None) -> LegalDuration | None:
        """``5`` → 5 working days; ``(30, "calendar")``; a LegalDuration; None stays None."""
        if value is None or isinstance(value, LegalDuration):
            return value
        if isinstance(value, tuple):
            amount, unit = value
            return cls(amount, unit)  # type: ignore[arg-type]
        return cls(value)


@dataclass(frozen=True, slots=True)
class OnTimeRules:
    """Choices where domain.md §6 is ambiguous (see the module docstring, steps 3 and 6)."""

    stopped_ends_clock: bool = True
    as_of_period_end: bool = True


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict on one dossier and the facts it rests on (for explanations and audits)."""

    outcome: str
    reason: str | None = None  # why excluded, or which special rule decided
    start: datetime | None = None  # received_at
    end: datetime | None = None  # the end time used (None while open)
    judged_at: datetime | None = None  # the effective instant compared with the due
    due: datetime | None = None
    due_derived: bool = False  # due computed from the legal duration (no due_at)
    supplement_requests: int = 0
    supplement_time: timedelta = timedelta(0)

    @property
    def is_resolved(self) -> bool:
        return self.outcome in RESOLVED_OUTCOMES

    @property
    def is_open(self) -> bool:
        return self.outcome in OPEN_OUTCOMES

    @property
    def in_time(self) -> bool:
        """Counts in the numerator of the on-time rate (early, on time, open in time)."""
        return self.outcome in IN_TIME_OUTCOMES


def compute_due(
    received_at: datetime,
    duration: LegalDuration | float,
    unit: DurationUnit | None = None,
    *,
    calendar: WorkingCalendar | None = None,
) -> datetime:
    """Due date (ngày hẹn trả) of a dossier received at ``received_at`` (§6, see tthc.calendar).

    ``compute_due(t, 5)`` / ``compute_due(t, 5, "working")``: 5 working days;
    ``compute_due(t, 30, "calendar")``: 30 calendar days, moved off a day off.
    """
    cal = calendar if calendar is not None else get_calendar()
    if isinstance(duration, LegalDuration):
        if unit is not None and unit != duration.unit:
            raise ValueError("unit given twice and different")
        d = duration
    else:
        d = LegalDuration(duration, unit or "working")
    if d.unit == "working":
        return cal.add_working_days(received_at, d.amount)
    return cal.add_calendar_days(received_at, int(d.amount))


def evaluate(
    dossier: Dossier,
    period_end: datetime,
    *,
    unit: Unit = "date",
    legal_duration: LegalDuration | float | tuple[float, str] | None = None,
    calendar: WorkingCalendar | None = None,
    rules: OnTimeRules | None = None,
) -> Evaluation:
    """Judge ``dossier`` as of ``period_end`` (inclusive) by domain.md §6 (module docstring)."""
    if unit not in ("date", "datetime"):
        raise ValueError(f"unit must be 'date' or 'datetime', not {unit!r}")
    rules = rules or OnTimeRules()
    status = dossier.status
    start = dossier.received_at

    # 1. Not received → outside every statistic (§5: 1 and 3 are "excluded").
    if status is None or status not in STATUS_NAMES:
        return Evaluation(EXCLUDED, "unknown_status", start)
    if status == 1:
        return Evaluation(EXCLUDED, "not_received", start)
    if status == 3:
        return Evaluation(EXCLUDED, "refused_at_reception", start)
    if start is None:
        return Evaluation(EXCLUDED, "no_receipt_date")
    if start > period_end:
        return Evaluation(EXCLUDED, "received_after_period_end", start)

    # 2. End time: the first end event (§6). Only ended statuses have one.
    end: datetime | None = None
    if status in _ENDED_STATUSES:
        candidates = [t for t in (dossier.finished_at, dossier.returned_at) if t is not None]
        end = min(candidates) if candidates else None

    # 3. As of the period end: ended later → it was open at period_end (our decision, see doc).
    is_open = status not in _ENDED_STATUSES
    reason: str | None = None
    if not is_open and end is not None and end > period_end and rules.as_of_period_end:
        is_open, end, reason = True, None, "ended_after_period_end"

    # 4. Withdrawal ends it (§6) and has its own outcome.
    if not is_open and status == 7:
        return Evaluation(WITHDRAWN, "withdrawn", start, end)

    # 5. Ended without any end time: not judgeable.
    if not is_open and end is None:
        return Evaluation(EXCLUDED, "no_end_time", start)

    # 6. Stopped (8) either ends the clock (default) or freezes an open dossier at its stop time.
    judge_point = end if end is not None else period_end
    if not is_open and status == 8 and not rules.stopped_ends_clock:
        is_open, end, reason = True, None, "stopped_paused"

    # 7. Due: ngày hẹn trả, else receipt ⊕ legal duration (§6 "without a due date").
    due = dossier.due_at
    derived = False
    if due is None:
        duration = LegalDuration.coerce(legal_duration)
        if duration is None:
            return Evaluation(EXCLUDED, "no_due_date", start, end)
        due = compute_due(start, duration, calendar=calendar)
        derived = True

    # 8. Supplements as of the judgement point (§6).
    requests = _requests_as_of(dossier.supplements, judge_point, rules.as_of_period_end)
    base = dict(start=start, end=end, due=due, due_derived=derived, supplement_requests=len(requests))
    if len(requests) > 1:
        # §6: "More than one supplement request on one dossier counts as overdue."
        outcome = OPEN_OVERDUE if is_open else OVERDUE
        return Evaluation(outcome, "multiple_supplements", judged_at=judge_point, **base)
    paused = timedelta(0)
    effective = judge_point
    if requests:
        s = requests[0]
        assert s.requested_at is not None  # filtered in _requests_as_of
        if s.completed_at is None or s.completed_at > judge_point:
            # §6: "A supplement requested once and still pending: judged at the request time."
            effective = s.requested_at
            reason = reason or "pending_supplement"
        else:
            # §6: "Supplement time is not counted: end - (completed - requested)."
            paused = max(s.completed_at - s.requested_at, timedelta(0))
            effective = judge_point - paused

    # 9. Compare (§6): date unit by default; "early" is always by date.
    if unit == "date":
        in_time = effective.date() <= due.date()
    else:
        in_time = effective <= due
    if is_open:
        outcome = OPEN_IN_TIME if in_time else OPEN_OVERDUE
    elif not in_time:
        outcome = OVERDUE
    elif effective.date() < due.date():
        outcome = EARLY
    else:
        outcome = ON_TIME
    return Evaluation(outcome, reason, judged_at=effective, supplement_time=paused, **base)


def _requests_as_of(supplements: list[Supplement], judge_point: datetime, as_of: bool) -> list[Supplement]:
    out = [s for s in supplements if s.requested_at is not None]
    if as_of:
        out = [s for s in out if s.requested_at is not None and s.requested_at <= judge_point]
    return sorted(out, key=lambda s: s.requested_at or datetime.min)
