"""Indicators (tthc.indicators) on a small hand-built set with exact expected fractions."""

import unicodedata
from datetime import date, datetime
from fractions import Fraction

import pytest

from tthc.indicators import COUNT_IDS, RATIO_IDS, IndicatorOptions, compute_indicators, load_indicator_config
from tthc.model import Attachment, Dossier, Supplement

D = datetime
A, B = "000.00.12.H40", "000.00.13.H40"
START, END = date(2026, 3, 1), date(2026, 3, 31)


def mk(code, agency, status, received, due=None, finished=None, **kw):
    return Dossier(
        source_id="s1",
        dossier_code=code,
        agency_code=agency,
        procedure_code=kw.pop("procedure", "1.000001"),
        received_at=received,
        updated_at=kw.pop("updated", None),
        status=status,
        due_at=due,
        finished_at=finished,
        **kw,
    )


def dataset():
    return [
        # Agency A ------------------------------------------------------------------------------
        # A1: early
        mk(
            "A1",
            A,
            10,
            D(2026, 3, 2, 9),
            D(2026, 3, 6, 17),
            D(2026, 3, 5, 10),
            channel=2,
            fee=50000,
            paid_online=1,
            result_type="paper",
            result_file="kq.pdf",
            attachments=[Attachment("don", digitized=True, reused=True)],
            vneid_verified=True,
        ),
        # A2: on time
        mk(
            "A2",
            A,
            9,
            D(2026, 3, 3, 9),
            D(2026, 3, 10, 17),
            D(2026, 3, 10, 15),
            channel=1,
            result_type="paper",
            attachments=[Attachment("don")],
        ),
        # A3: overdue
        mk(
            "A3",
            A,
            9,
            D(2026, 3, 4, 9),
            D(2026, 3, 6, 17),
            D(2026, 3, 9, 9),
            channel=2,
            fee=20000,
            paid_online=0,
            result_type="electronic",
            result_file="kq.xml",
            attachments=[Attachment("don", digitized=True), Attachment("cccd")],
        ),
        # A4: open in time
        mk("A4", A, 4, D(2026, 3, 20, 9), D(2026, 4, 3, 17), channel=2, fee=10000, paid_online=2),
        # A5: open overdue (2 supplements)
        mk(
            "A5",
            A,
            5,
            D(2026, 3, 10, 9),
            D(2026, 3, 20, 17),
            channel=None,
            supplements=[Supplement(D(2026, 3, 11), D(2026, 3, 12)), Supplement(D(2026, 3, 13))],
        ),
        # A6: withdrawn
        mk("A6", A, 7, D(2026, 3, 12, 9), D(2026, 3, 20, 17), D(2026, 3, 13, 9), channel=2),
        # A7: refused at reception: excluded
        mk("A7", A, 3, D(2026, 3, 15, 9)),
        # A8: registered online only: excluded
        mk("A8", A, 1, None, updated=D(2026, 3, 16, 9), channel=2),
        # A9: carried over, open overdue
        mk("A9", A, 4, D(2026, 2, 20, 9), D(2026, 2, 27, 17)),
        # A10: next period
        mk("A10", A, 4, D(2026, 4, 1, 9), D(2026, 4, 8, 17)),
        # A11: unjudged
        mk("A11", A, 9, D(2026, 3, 25, 9), None, D(2026, 3, 26, 9), procedure="9.999999"),
        # Agency B ------------------------------------------------------------------------------
        # No due date; legal duration 3 working days → due Thu 5 Mar 09:00; ended 5 Mar 10:00.
        mk("B1", B, 10, D(2026, 3, 2, 9), None, D(2026, 3, 5, 10), procedure="1.000002", channel=2),
        # Stopped: counts as resolved (early) but has no result, so not in 4.1.
        mk("B2", B, 8, D(2026, 3, 2, 10), D(2026, 3, 6, 17), D(2026, 3, 3, 9), result_type="paper"),
    ]


DURATIONS = {"1.000002": 3}


def table(rows):
    return {(r["scope"], r["scope_code"], r["indicator_id"]): r for r in rows}


def frac(row):
    return None if row["denominator"] in (0, None) else Fraction(row["numerator"], row["denominator"])


@pytest.fixture
def rows():
    return table(
        compute_indicators(
            dataset(),
            START,
            END,
            legal_durations=DURATIONS,
            synced_keys={"s1:A1", "s1:A2", "s1:A7", "s1:A9"},
            verified_keys={"s1:A4"},
        )
    )


def test_counts_agency_a(rows):
    got = {cid: rows[("agency", A, cid)]["value"] for cid in COUNT_IDS if cid != "carried_over"}
    assert got == {
        "received": 7,  # A1-A6, A11
        "resolved": 3,
        "resolved_early": 1,
        "resolved_on_time": 1,
        "resolved_overdue": 1,
        "open_in_time": 1,
        "open_overdue": 1,
        "withdrawn": 1,
        "unjudged": 1,
        "excluded": 2,  # A7 (status 3), A8 (status 1, dated by updated_at)
    }
    assert ("agency", A, "carried_over") not in rows  # only in the "active" population


@pytest.mark.parametrize(
    ("iid", "expected"),
    [
        ("1.4_sync_rate", Fraction(2, 7)),  # A1, A2 (A7 never received, A9 outside the period)
        ("2.1_on_time", Fraction(3, 5)),  # (early + on time + open in time) / (3 resolved + 2 open)
        ("3.3_online", Fraction(4, 7)),  # A1, A3, A4, A6
        ("3.6_online_payment", Fraction(2, 3)),  # fee-bearing A1 (paid 1), A3 (0), A4 (paid 2)
        ("4.1_digitised_results", Fraction(1, 2)),  # paper results A1 (file), A2 (no file)
        ("4.2_digitised_components", Fraction(2, 7)),  # A1, A3
        ("4.3_reuse", Fraction(1, 7)),  # A1
        ("4.5b_population_db", Fraction(2, 7)),  # A1 (VNeID), A4 (verified key)
    ],
)
def test_ratios_agency_a(rows, iid, expected):
    row = rows[("agency", A, iid)]
    assert frac(row) == expected
    assert row["value"] == pytest.approx(float(expected))


def test_agency_b_and_total(rows):
    assert rows[("agency", B, "received")]["value"] == 2
    assert rows[("agency", B, "resolved_on_time")]["value"] == 1  # B1 via the legal duration
    assert rows[("agency", B, "resolved_early")]["value"] == 1  # B2 stopped
    assert frac(rows[("agency", B, "2.1_on_time")]) == 1
    b_pay = rows[("agency", B, "3.6_online_payment")]
    assert (b_pay["numerator"], b_pay["denominator"], b_pay["value"]) == (0, 0, None)
    assert rows[("agency", B, "4.1_digitised_results")]["denominator"] == 0
    assert rows[("total", None, "received")]["value"] == 9
    expected_total = {
        "1.4_sync_rate": Fraction(2, 9),
        "2.1_on_time": Fraction(5, 7),
        "3.3_online": Fraction(5, 9),
        "3.6_online_payment": Fraction(2, 3),
        "4.1_digitised_results": Fraction(1, 2),
        "4.2_digitised_components": Fraction(2, 9),
        "4.3_reuse": Fraction(1, 9),
        "4.5b_population_db": Fraction(2, 9),
    }
    assert {iid: frac(rows[("total", None, iid)]) for iid in RATIO_IDS} == expected_total


def test_row_shape(rows):
    row = rows[("agency", A, "2.1_on_time")]
    assert set(row) == {"scope", "scope_code", "indicator_id", "numerator", "denominator", "value"}
    count = rows[("agency", A, "received")]
    assert (count["numerator"], count["denominator"], count["value"]) == (7, None, 7)


def test_options_active_population_and_withdrawn_denominator():
    rows = table(
        compute_indicators(
            dataset(),
            START,
            END,
            legal_durations=DURATIONS,
            options=IndicatorOptions(population="active", withdrawn_in_on_time_denominator=True),
        )
    )
    assert rows[("agency", A, "carried_over")]["value"] == 1  # A9
    assert rows[("agency", A, "received")]["value"] == 7  # receipts are unchanged
    assert rows[("agency", A, "open_overdue")]["value"] == 2  # A5 + A9
    assert frac(rows[("agency", A, "2.1_on_time")]) == Fraction(3, 7)  # + A9 + withdrawn A6
    assert ("agency", A, "1.4_sync_rate") not in rows  # no synced_keys given


def test_datetime_unit_and_procedure_sets():
    rows = table(
        compute_indicators(
            dataset(),
            D(2026, 3, 1),
            D(2026, 3, 31, 23, 59, 59),
            unit="datetime",
            legal_durations=DURATIONS,
            fee_procedures={"1.000002"},
            paper_result_procedures={"1.000001"},
            options=IndicatorOptions(digitised_components_rule="all", include_total=False),
        )
    )
    # B1 ended 5 Mar 10:00 after its derived due 5 Mar 09:00 → overdue by datetime.
    assert rows[("agency", B, "resolved_overdue")]["value"] == 1
    assert frac(rows[("agency", B, "2.1_on_time")]) == Fraction(1, 2)
    # Fee-bearing by procedure list: only B1 (not paid online).
    assert frac(rows[("agency", B, "3.6_online_payment")]) == 0
    assert rows[("agency", A, "3.6_online_payment")]["denominator"] == 0
    # Paper result by procedure list: A1 (file), A2 (none), A3 (file) → 2/3.
    assert frac(rows[("agency", A, "4.1_digitised_results")]) == Fraction(2, 3)
    # "all" components digitised: A1 only (A3 has an undigitised component).
    assert frac(rows[("agency", A, "4.2_digitised_components")]) == Fraction(1, 7)
    assert not any(k[0] == "total" for k in rows)


def test_bad_period():
    with pytest.raises(ValueError):
        compute_indicators([], END, START)


def test_indicator_config_covers_every_id():
    cfg = load_indicator_config()
    ids = {i["id"] for i in cfg["indicators"]}
    assert set(COUNT_IDS) | set(RATIO_IDS) <= ids
    assert sum(g["max_points"] or 0 for g in cfg["groups"].values()) <= 100
    for item in cfg["indicators"]:
        label = item["label_vi"]
        assert unicodedata.is_normalized("NFC", label)
        if item["kind"] == "ratio":
            assert item["group"] == item["id"].split(".")[0]
    labels = {i["id"]: i["label_vi"] for i in cfg["indicators"]}
    assert labels["2.1_on_time"] == "Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn"
