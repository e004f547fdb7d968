"""Dossier-level indicators of Decision 766/QĐ-TTg per agency and period (domain.md §7), pure Python.

:func:`compute_indicators` takes canonical dossiers (or their :class:`IndicatorFacts`, the flat columns
the warehouse holds) and a period ``[period_start, period_end]`` (both inclusive; a ``date`` bound
means the whole day) and returns flat rows (:func:`compute_indicators_for_periods`: several periods
in one pass)::

    {"scope": "agency" | "total", "scope_code": agency code | None,
     "indicator_id": "2.1_on_time" | "received" | ..., "numerator": int, "denominator": int | None,
     "value": float | int | None}

Ratio rows have ``value = numerator / denominator`` as a fraction in [0, 1] (``None`` when the
denominator is 0). Count rows have ``denominator = None`` and ``value = numerator``.

Populations (exact definitions)
-------------------------------
*received*: dossiers whose status is a received one (not 1, not 3, known) and whose ``received_at``
lies in the period. This is the "tiếp nhận" figure of the reports and the denominator of 1.4, 3.3,
4.2, 4.3 and 4.5b.

*processed* (the on-time population, ``IndicatorOptions.population``):

* ``"received"`` (default): the received dossiers above, each evaluated as of ``period_end`` by
  :func:`tthc.ontime.evaluate`.
* ``"active"``: additionally the dossiers received before the period that were still being processed
  at its start (ended on/after ``period_start`` or still open), counted in ``carried_over``. This is
  the "kỳ trước chuyển sang + mới tiếp nhận" population some provincial reports use.

Counts over the processed population: ``resolved_early``, ``resolved_on_time``, ``resolved_overdue``
(``resolved`` = their sum; status 8 counts here by default, see tthc.ontime), ``open_in_time``,
``open_overdue``, ``withdrawn``, ``unjudged`` (no due date and no legal duration, or ended without an
end time). ``excluded`` counts dossiers never received (status 1 / 3 / unknown, or no receipt date)
whose ``received_at`` — or, missing that, ``updated_at`` — lies in the period.

On-time rate 2.1 = (early + on time + open in time) /
(early + on time + overdue + open in time + open overdue [+ withdrawn if
``withdrawn_in_on_time_denominator``]). Withdrawn and unjudged dossiers are left out by default: a
withdrawal is the citizen's act, not the agency's performance.

Other ratios:

* 1.4 sync: received dossiers whose ``Dossier.key`` is in ``synced_keys`` / received (only when
  ``synced_keys`` is given: the canonical dossier does not know whether it reached the portal).
* 3.3 online: received with ``channel == 2`` / received (channel None counts as direct, §5).
* 3.6 online payment: received dossiers of fee-bearing procedures with ``paid_online`` in (1, 2) /
  received dossiers of fee-bearing procedures. Fee-bearing = ``procedure_code in fee_procedures`` when
  that set is given, else ``dossier.fee > 0``.
* 4.1 digitised results: resolved dossiers (outcome early / on time / overdue, status 9 or 10: a
  stopped dossier has no result) of procedures with a paper result that have a ``result_file`` /
  those resolved dossiers. Paper result = ``procedure_code in paper_result_procedures`` when given,
  else ``result_type == "paper"`` (unknown result type is left out).
* 4.2 digitised components: received dossiers with at least one digitised attachment
  (``digitised_components_rule="all"``: every attachment digitised, and at least one) / received.
* 4.3 reuse: received dossiers with at least one reused attachment / received.
* 4.5b population database: received dossiers with ``vneid_verified`` or whose ``Dossier.key`` is in
  ``verified_keys`` (lookups reconciled as matched) / received.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import yaml

from tthc.calendar import WorkingCalendar
from tthc.codes import CHANNEL_ONLINE, STATUS_ENDED
from tthc.model import Dossier, Supplement
from tthc.ontime import (
    EARLY,
    EXCLUDED,
    NOT_RECEIVED_REASONS,
    ON_TIME,
    OPEN_IN_TIME,
    OPEN_OVERDUE,
    OVERDUE,
    RESOLVED_OUTCOMES,
    UNJUDGED_REASONS,
    WITHDRAWN,
    Evaluation,
    LegalDuration,
    OnTimeRules,
    Unit,
    evaluate,
)
from tthc.paths import REPO_ROOT

__all__ = [
    "COUNT_IDS",
    "RATIO_IDS",
    "IndicatorFacts",
    "IndicatorOptions",
    "compute_indicators",
    "compute_indicators_for_periods",
    "combine_indicator_aggregates",
    "final_outcome",
    "judgement_basis",
    "load_indicator_config",
]

#: Raw counts, in output order.
COUNT_IDS = (
    "received",
    "carried_over",
    "resolved",
    "resolved_early",
    "resolved_on_time",
    "resolved_overdue",
    "open_in_time",
    "open_overdue",
    "withdrawn",
    "unjudged",
    "excluded",
)
#: Ratios, in output order.
RATIO_IDS = (
    "1.4_sync_rate",
    "2.1_on_time",
    "3.3_online",
    "3.6_online_payment",
    "4.1_digitised_results",
    "4.2_digitised_components",
    "4.3_reuse",
    "4.5b_population_db",
)

DEFAULT_CONFIG_PATH = REPO_ROOT / "config" / "indicators.yaml"

_OUTCOME_COUNT = {
    EARLY: "resolved_early",
    ON_TIME: "resolved_on_time",
    OVERDUE: "resolved_overdue",
    OPEN_IN_TIME: "open_in_time",
    OPEN_OVERDUE: "open_overdue",
    WITHDRAWN: "withdrawn",
}


@dataclass(frozen=True, slots=True)
class IndicatorOptions:
    """Choices where domain.md §7 leaves room (see the module docstring)."""

    population: Literal["received", "active"] = "received"
    withdrawn_in_on_time_denominator: bool = False
    digitised_components_rule: Literal["any", "all"] = "any"
    include_total: bool = True

    def __post_init__(self) -> None:
        if self.population not in ("received", "active"):
            raise ValueError("population must be 'received' or 'active'")
        if self.digitised_components_rule not in ("any", "all"):
            raise ValueError("digitised_components_rule must be 'any' or 'all'")


@dataclass
class _Tally:
    counts: dict[str, int]
    ratios: dict[str, list[int]]  # id → [numerator, denominator]

    @classmethod
    def new(cls) -> _Tally:
        return cls({k: 0 for k in COUNT_IDS}, {k: [0, 0] for k in RATIO_IDS})

    def ratio(self, rid: str, hit: bool) -> None:
        r = self.ratios[rid]
        r[1] += 1
        r[0] += int(hit)


@dataclass(frozen=True, slots=True)
class IndicatorFacts:
    """What the indicators read of a dossier: no personal data, attachments as counts.

    :func:`tthc.warehouse.repo.load_indicator_facts` (every dossier) and ``judgement_candidates``
    (those the nightly stage judges) read these columns straight from the warehouse (no JSON
    decoding of attachments, no applicant fields); :meth:`of` derives them from
    a :class:`~tthc.model.Dossier`. :func:`tthc.ontime.evaluate` reads the same attribute names.
    """

    source_id: str
    dossier_code: str | None
    agency_code: str | None
    procedure_code: str | None
    status: int | None
    received_at: datetime | None
    updated_at: datetime | None
    due_at: datetime | None
    finished_at: datetime | None
    returned_at: datetime | None
    channel: int | None
    fee: int | None
    paid_online: int | None
    result_type: str | None
    result_file: str | None
    vneid_verified: bool
    attachment_count: int
    digitized_count: int
    reused_count: int
    supplements: tuple[Supplement, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.source_id}:{self.dossier_code}"

    @classmethod
    def of(cls, d: Dossier | IndicatorFacts) -> IndicatorFacts:
        if isinstance(d, IndicatorFacts):
            return d
        return cls(
            source_id=d.source_id,
            dossier_code=d.dossier_code,
            agency_code=d.agency_code,
            procedure_code=d.procedure_code,
            status=d.status,
            received_at=d.received_at,
            updated_at=d.updated_at,
            due_at=d.due_at,
            finished_at=d.finished_at,
            returned_at=d.returned_at,
            channel=d.channel,
            fee=d.fee,
            paid_online=d.paid_online,
            result_type=d.result_type,
            result_file=d.result_file,
            vneid_verified=bool(d.vneid_verified),
            attachment_count=len(d.attachments),
            digitized_count=sum(1 for a in d.attachments if a.digitized),
            reused_count=sum(1 for a in d.attachments if a.reused),
            supplements=tuple(d.supplements),
        )


def compute_indicators(
    dossiers: Iterable[Dossier | IndicatorFacts],
    period_start: datetime | date,
    period_end: datetime | date,
    *,
    unit: Unit = "date",
    calendar: WorkingCalendar | None = None,
    legal_durations: Mapping[str, LegalDuration | float | tuple[float, str]] | None = None,
    rules: OnTimeRules | None = None,
    options: IndicatorOptions | None = None,
    synced_keys: set[str] | frozenset[str] | None = None,
    verified_keys: set[str] | frozenset[str] | None = None,
    fee_procedures: set[str] | frozenset[str] | None = None,
    paper_result_procedures: set[str] | frozenset[str] | None = None,
    agencies: Iterable[str | None] = (),
) -> list[dict[str, Any]]:
    """Indicator rows per agency (and a ``total`` scope) for the period (module docstring).

    ``legal_durations``: procedure code → legal duration, used for dossiers without ``due_at``.
    ``agencies``: agency codes that get rows (zeros) even when none of ``dossiers`` is theirs —
    what a caller that left out dossiers irrelevant to the period passes to keep its rows.
    """
    return compute_indicators_for_periods(
        dossiers,
        {0: (period_start, period_end)},
        unit=unit,
        calendar=calendar,
        legal_durations=legal_durations,
        rules=rules,
        options=options,
        synced_keys=synced_keys,
        verified_keys=verified_keys,
        fee_procedures=fee_procedures,
        paper_result_procedures=paper_result_procedures,
        agencies=agencies,
    )[0]


def compute_indicators_for_periods(
    dossiers: Iterable[Dossier | IndicatorFacts],
    periods: Mapping[Any, tuple[datetime | date, datetime | date]],
    *,
    unit: Unit = "date",
    calendar: WorkingCalendar | None = None,
    legal_durations: Mapping[str, LegalDuration | float | tuple[float, str]] | None = None,
    rules: OnTimeRules | None = None,
    options: IndicatorOptions | None = None,
    synced_keys: set[str] | frozenset[str] | None = None,
    verified_keys: set[str] | frozenset[str] | None = None,
    fee_procedures: set[str] | frozenset[str] | None = None,
    paper_result_procedures: set[str] | frozenset[str] | None = None,
    agencies: Iterable[str | None] = (),
) -> dict[Any, list[dict[str, Any]]]:
    """:func:`compute_indicators` for several periods in one pass over ``dossiers``: name →
    rows, each list equal to what :func:`compute_indicators` returns for that period (same
    keyword arguments). A dossier is judged once per distinct period end (a night's periods
    share their end).
    """
    opts = options or IndicatorOptions()
    bounds: dict[Any, tuple[datetime, datetime]] = {}
    for name, (period_start, period_end) in periods.items():
        start, end = _as_start(period_start), _as_end(period_end)
        if end < start:
            raise ValueError("period_end is before period_start")
        bounds[name] = (start, end)
    durations = legal_durations or {}
    verified = verified_keys or frozenset()
    agencies = list(agencies)

    tallies: dict[Any, dict[str | None, _Tally]] = {}
    for name in bounds:
        tallies[name] = defaultdict(_Tally.new)
        for code in agencies:
            tallies[name][code] = _Tally.new()
    for item in dossiers:
        d = IndicatorFacts.of(item)
        judged: dict[datetime, Evaluation] = {}
        for name, (start, end) in bounds.items():
            ev = judged.get(end)
            if ev is None:
                ev = judged[end] = evaluate(
                    d,  # type: ignore[arg-type]  # evaluate reads the attributes both types share
                    end,
                    unit=unit,
                    legal_duration=durations.get(d.procedure_code or ""),
                    calendar=calendar,
                    rules=rules,
                )
            _tally(
                tallies[name][d.agency_code],
                d,
                ev,
                start,
                end,
                synced_keys,
                verified,
                fee_procedures,
                paper_result_procedures,
                opts,
            )
    return {name: _rows(tallies[name], opts, synced_keys is not None) for name in bounds}


def _tally(
    t: _Tally,
    d: IndicatorFacts,
    ev: Evaluation,
    start: datetime,
    end: datetime,
    synced_keys: Iterable[str] | None,
    verified: Iterable[str],
    fee_procedures: Iterable[str] | None,
    paper_result_procedures: Iterable[str] | None,
    opts: IndicatorOptions,
) -> None:
    """Count one judged dossier into one period's tally of its agency."""
    if ev.outcome == EXCLUDED and ev.reason in NOT_RECEIVED_REASONS:
        ref = d.received_at or d.updated_at
        if ref is not None and start <= ref <= end:
            t.counts["excluded"] += 1
        return
    if ev.outcome == EXCLUDED and ev.reason == "received_after_period_end":
        return
    assert d.received_at is not None  # guaranteed by evaluate for the remaining outcomes
    if d.received_at >= start:
        t.counts["received"] += 1
        _tally_received(t, d, synced_keys, verified, fee_procedures, opts)
    elif not (opts.population == "active" and _active_at(ev, start)):
        return
    else:
        t.counts["carried_over"] += 1
    _tally_processed(t, d, ev, paper_result_procedures, opts)


def _rows(
    tallies: Mapping[str | None, _Tally], opts: IndicatorOptions, with_sync: bool
) -> list[dict[str, Any]]:
    scopes: list[tuple[str, str | None, _Tally]] = [
        ("agency", code, tallies[code]) for code in sorted(tallies, key=lambda c: (c is None, c or ""))
    ]
    if opts.include_total:
        total = _Tally.new()
        for t in tallies.values():
            for k, v in t.counts.items():
                total.counts[k] += v
            for k, (num, den) in t.ratios.items():
                total.ratios[k][0] += num
                total.ratios[k][1] += den
        scopes.append(("total", None, total))

    rows: list[dict[str, Any]] = []
    for scope, code, t in scopes:
        for cid in COUNT_IDS:
            if cid == "carried_over" and opts.population != "active":
                continue
            n = t.counts[cid]
            rows.append(_row(scope, code, cid, n, None, n))
        for rid in RATIO_IDS:
            if rid == "1.4_sync_rate" and not with_sync:
                continue
            num, den = t.ratios[rid]
            rows.append(_row(scope, code, rid, num, den, num / den if den else None))
    return rows


def _tally_received(
    t: _Tally,
    d: IndicatorFacts,
    synced_keys: Iterable[str] | None,
    verified: Iterable[str],
    fee_procedures: Iterable[str] | None,
    opts: IndicatorOptions,
) -> None:
    """Ratios whose denominator is the received population."""
    if synced_keys is not None:
        t.ratio("1.4_sync_rate", d.key in synced_keys)
    t.ratio("3.3_online", d.channel == CHANNEL_ONLINE)
    fee_bearing = (d.procedure_code in fee_procedures) if fee_procedures is not None else (d.fee or 0) > 0
    if fee_bearing:
        t.ratio("3.6_online_payment", d.paid_online in (1, 2))
    if opts.digitised_components_rule == "all":
        digitised = d.attachment_count > 0 and d.digitized_count == d.attachment_count
    else:
        digitised = d.digitized_count > 0
    t.ratio("4.2_digitised_components", digitised)
    t.ratio("4.3_reuse", d.reused_count > 0)
    t.ratio("4.5b_population_db", bool(d.vneid_verified) or d.key in verified)


def _tally_processed(
    t: _Tally,
    d: IndicatorFacts,
    ev: Evaluation,
    paper_result_procedures: Iterable[str] | None,
    opts: IndicatorOptions,
) -> None:
    """Outcome counts, 2.1 and 4.1 over the processed population."""
    if ev.outcome == EXCLUDED:
        if ev.reason in UNJUDGED_REASONS:
            t.counts["unjudged"] += 1
        return
    t.counts[_OUTCOME_COUNT[ev.outcome]] += 1
    if ev.outcome in RESOLVED_OUTCOMES:
        t.counts["resolved"] += 1
    if ev.outcome != WITHDRAWN or opts.withdrawn_in_on_time_denominator:
        t.ratio("2.1_on_time", ev.in_time)
    if ev.outcome in RESOLVED_OUTCOMES and d.status in (9, 10):
        paper = (
            (d.procedure_code in paper_result_procedures)
            if paper_result_procedures is not None
            else d.result_type == "paper"
        )
        if paper:
            t.ratio("4.1_digitised_results", bool(d.result_file))


def _active_at(ev: Evaluation, period_start: datetime) -> bool:
    """A dossier received before the period still being processed at its start."""
    if ev.is_open:
        return True
    if ev.outcome == EXCLUDED:
        # Unjudged: counted while open; ended without a known end time cannot be placed.
        return ev.reason == "no_due_date" and (ev.end is None or ev.end >= period_start)
    return ev.end is not None and ev.end >= period_start


def _row(
    scope: str, code: str | None, iid: str, num: int, den: int | None, value: float | int | None
) -> dict[str, Any]:
    return {
        "scope": scope,
        "scope_code": code,
        "indicator_id": iid,
        "numerator": num,
        "denominator": den,
        "value": value,
    }


def _as_start(v: datetime | date) -> datetime:
    return v if isinstance(v, datetime) else datetime.combine(v, time.min)


def _as_end(v: datetime | date) -> datetime:
    return v if isinstance(v, datetime) else datetime.combine(v, time.max)


# ---- final judgements and warehouse aggregates (the nightly stage) ------------------------------

#: What a dossier whose on-time outcome can no longer change is stored as (``final_judgements``).
FINAL_OUTCOMES = {EARLY: "early", ON_TIME: "on_time", OVERDUE: "overdue", WITHDRAWN: "withdrawn"}
UNJUDGED = "unjudged"
_REOPENED = ("ended_after_period_end", "stopped_paused")  # evaluate's reasons for an ended one open

#: Counts a warehouse aggregates per agency and period (``repo.indicator_aggregates``): the received
#: population's ratios (no judging needed) and the stored final outcomes of received dossiers.
AGGREGATE_FIELDS = (
    "excluded",
    "received",
    "synced",
    "online",
    "fee_bearing",
    "paid_online",
    "digitised",
    "reused",
    "population_db",
    "final_early",
    "final_on_time",
    "final_overdue",
    "final_withdrawn",
    "final_unjudged",
    "final_paper",
    "final_paper_file",
)


def final_outcome(d: IndicatorFacts | Dossier, ev: Evaluation) -> str | None:
    """The stored form of ``ev`` when it is final, else None.

    Final: the dossier has ended (status 7-10) and ``ev`` does not treat it as open, so judging it
    as of any later period end gives the same verdict (its judgement point is its own end time;
    step 3 of :func:`tthc.ontime.evaluate` re-opens it only for a period that ends before that
    time, which the stored end time lets a reader check). Open dossiers change with the clock and
    are judged every night.
    """
    if d.status not in STATUS_ENDED or ev.is_open or ev.reason in _REOPENED:
        return None
    if ev.outcome == EXCLUDED:
        return UNJUDGED if ev.reason in UNJUDGED_REASONS else None
    return FINAL_OUTCOMES.get(ev.outcome)


def judgement_basis(
    *,
    unit: Unit = "date",
    rules: OnTimeRules | None = None,
    legal_durations: Mapping[str, Any] | None = None,
    calendar: WorkingCalendar | None = None,
) -> str:
    """A short fingerprint of what :func:`tthc.ontime.evaluate` is given besides the dossier: a
    stored judgement made with other settings is not reused (it is judged again)."""
    import hashlib

    durations = sorted((k, repr(LegalDuration.coerce(v))) for k, v in (legal_durations or {}).items())
    text = repr((JUDGEMENT_VERSION, unit, rules or OnTimeRules(), durations, _calendar_key(calendar)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: Raise when :func:`tthc.ontime.evaluate` changes what it decides: stored judgements are redone.
JUDGEMENT_VERSION = 1


def _calendar_key(calendar: WorkingCalendar | None) -> str | None:
    return None if calendar is None else repr(calendar)  # its configuration: holidays, overrides


def combine_indicator_aggregates(
    aggregates: Mapping[Any, Mapping[str | None, Mapping[str, int]]],
    open_dossiers: Iterable[tuple[IndicatorFacts, Evaluation]],
    periods: Mapping[Any, tuple[datetime | date, datetime | date]],
    *,
    with_sync: bool,
    agencies: Iterable[str | None] = (),
) -> dict[Any, list[dict[str, Any]]]:
    """The rows :func:`compute_indicators_for_periods` gives with its default options, from
    warehouse aggregates (``AGGREGATE_FIELDS`` per period and agency) plus the received dossiers
    whose outcome is not final, each with its evaluation as of the periods' end.

    Population, ratios and outcome rules are those of the module docstring (``population`` =
    "received", fee-bearing = ``fee > 0``, paper result = ``result_type == "paper"``, a
    digitised component = any). The nightly stage uses this: it judges only the dossiers that
    are still open (or changed) in Python; ``tests`` check the rows equal the full computation.
    """
    opts = IndicatorOptions()
    out: dict[Any, list[dict[str, Any]]] = {}
    open_list = list(open_dossiers)
    agencies = list(agencies)
    for name, (period_start, period_end) in periods.items():
        start, end = _as_start(period_start), _as_end(period_end)
        tallies: dict[str | None, _Tally] = defaultdict(_Tally.new)
        for code in agencies:
            tallies[code] = _Tally.new()
        for agency, c in (aggregates.get(name) or {}).items():
            t = tallies[agency]
            t.counts["excluded"] += c["excluded"]
            t.counts["received"] += c["received"]
            for rid, num, den in (
                ("1.4_sync_rate", "synced", "received"),
                ("3.3_online", "online", "received"),
                ("3.6_online_payment", "paid_online", "fee_bearing"),
                ("4.2_digitised_components", "digitised", "received"),
                ("4.3_reuse", "reused", "received"),
                ("4.5b_population_db", "population_db", "received"),
                ("4.1_digitised_results", "final_paper_file", "final_paper"),
            ):
                t.ratios[rid][0] += c[num]
                t.ratios[rid][1] += c[den]
            resolved = c["final_early"] + c["final_on_time"] + c["final_overdue"]
            t.counts["resolved_early"] += c["final_early"]
            t.counts["resolved_on_time"] += c["final_on_time"]
            t.counts["resolved_overdue"] += c["final_overdue"]
            t.counts["resolved"] += resolved
            t.counts["withdrawn"] += c["final_withdrawn"]
            t.counts["unjudged"] += c["final_unjudged"]
            t.ratios["2.1_on_time"][0] += c["final_early"] + c["final_on_time"]
            t.ratios["2.1_on_time"][1] += resolved
        for d, ev in open_list:
            if d.received_at is not None and start <= d.received_at <= end:
                _tally_processed(tallies[d.agency_code], d, ev, None, opts)
        out[name] = _rows(tallies, opts, with_sync)
    return out


def load_indicator_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read ``config/indicators.yaml`` (groups, labels, weights) and check it is well formed."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    with p.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict) or "groups" not in data or "indicators" not in data:
        raise ValueError(f"{p}: expected top-level 'groups' and 'indicators'")
    groups = data["groups"]
    seen: set[str] = set()
    for item in data["indicators"]:
        iid = item.get("id")
        if not iid or iid in seen:
            raise ValueError(f"{p}: indicator id missing or duplicated: {iid!r}")
        seen.add(iid)
        if not item.get("label_vi"):
            raise ValueError(f"{p}: indicator {iid} has no label_vi")
        g = item.get("group")
        if g is not None and g not in groups:
            raise ValueError(f"{p}: indicator {iid} names unknown group {g!r}")
        w = item.get("weight")
        if w is not None and (not isinstance(w, int | float) or w < 0):
            raise ValueError(f"{p}: indicator {iid} has a bad weight {w!r}")
    return data
