"""The period computation on SQLite and PostgreSQL: hand-computed figures (tests/kpi/kpi_data.py)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.kpi.kpi_data import A1, A2, OLD_UNIT, SID, UNITS, dossier, dt, load, load_hand_data, registry
from tthc.kpi import Period, compute_period, load_period_values

AS_OF = datetime(2026, 10, 1, 6, 0)
Q3 = date(2026, 7, 1)


def _figures(engine, period_type, start, scope, code):
    rows = load_period_values(engine, Period(period_type, start), scope, code)
    return {k: (r["numerator"], r["denominator"]) for k, r in rows.items()}


def _compute(engine, tmp_path, ptype="quarter", start=Q3, **kw):
    kw.setdefault("as_of", AS_OF)
    return compute_period(engine, ptype, start, registry=registry(tmp_path), units=UNITS, now=AS_OF, **kw)


def test_quarter_hand_computed(engine, tmp_path):
    load_hand_data(engine)
    summary = _compute(engine, tmp_path)
    assert summary["as_of"] == "2026-09-30"
    assert summary["dossiers"] == 8  # D1-D7 and D9; D8 quarantined, D10/D11 outside
    assert summary["provinces"] == ["H40"]
    f = _figures(engine, "quarter", Q3, "province", "H40")
    counts = {k: v[0] for k, v in f.items() if v[1] is None}
    assert counts == {
        "received": 7,
        "resolved": 4,
        "resolved_early": 2,
        "resolved_on_time": 1,
        "resolved_overdue": 1,
        "open_in_time": 1,
        "open_overdue": 1,
        "withdrawn": 1,
        "unjudged": 0,
        "excluded": 1,
        "channel_direct": 5,
        "channel_online": 1,
        "channel_postal": 1,
    }
    ratios = {k: v for k, v in f.items() if v[1] is not None}
    assert ratios == {
        "1.4_sync_rate": (2, 7),  # D1, D9 current; D3 published with an older content
        "2.1_on_time": (4, 6),  # early 2 + on time 1 + open in time 1 / without the withdrawal
        "3.3_online": (1, 7),
        "3.6_online_payment": (1, 2),  # D1 paid online of D1, D3 with a fee
        "4.1_digitised_results": (1, 2),  # D1 has a file, D2 not (paper results, resolved)
        "4.2_digitised_components": (1, 7),
        "4.3_reuse": (1, 7),
        "4.5b_population_db": (2, 7),  # D1 matched, D9 VNeID
        "5.4_satisfaction": (4, 6),  # 100% − (2 overdue / 6) − 0 complaints
    }
    a1 = _figures(engine, "quarter", Q3, "agency", A1)
    a2 = _figures(engine, "quarter", Q3, "agency", A2)
    assert a1["received"][0] == 6 and a1["excluded"][0] == 1 and a1["2.1_on_time"] == (3, 5)
    assert a1["1.4_sync_rate"] == (1, 6) and a1["4.5b_population_db"] == (1, 6)
    assert a2["received"][0] == 1 and a2["resolved_early"][0] == 1 and a2["2.1_on_time"] == (1, 1)
    assert a2["4.3_reuse"] == (1, 1) and a2["4.5b_population_db"] == (1, 1)
    # the stored rows: value = numerator / denominator
    rows = load_period_values(engine, Period("quarter", Q3), "province", "H40")
    assert rows["2.1_on_time"]["value"] == pytest.approx(4 / 6)
    assert rows["received"]["value"] == 7 and rows["received"]["denominator"] is None


def test_months_and_open_dossiers_judged_at_the_period_end(engine, tmp_path):
    load_hand_data(engine)
    for m in (7, 8, 9):
        _compute(engine, tmp_path, "month", date(2026, m, 1))
    jul = _figures(engine, "month", date(2026, 7, 1), "province", "H40")
    aug = _figures(engine, "month", date(2026, 8, 1), "province", "H40")
    sep = _figures(engine, "month", date(2026, 9, 1), "province", "H40")
    assert (jul["received"][0], jul["resolved_early"][0], jul["resolved_on_time"][0]) == (4, 2, 1)
    assert jul["resolved_overdue"][0] == 1 and jul["2.1_on_time"] == (3, 4)
    assert (aug["received"][0], aug["withdrawn"][0], aug["excluded"][0]) == (1, 1, 1)
    assert aug["2.1_on_time"] == (0, 0)
    assert (sep["open_in_time"][0], sep["open_overdue"][0]) == (1, 1)


def test_running_period_is_judged_as_of_today(engine, tmp_path):
    load_hand_data(engine)
    # on 5 September: D5 (due 10/09) is still in time, D4 not yet received
    s = _compute(engine, tmp_path, "month", date(2026, 9, 1), as_of=datetime(2026, 9, 5, 1, 0))
    assert s["as_of"] == "2026-09-05"
    sep = _figures(engine, "month", date(2026, 9, 1), "province", "H40")
    assert (sep["received"][0], sep["open_in_time"][0], sep["open_overdue"][0]) == (1, 1, 0)
    # a period that has not started is skipped
    s = _compute(engine, tmp_path, "month", date(2026, 11, 1))
    assert s["skipped"] and s["dossiers"] == 0


def test_recompute_is_idempotent_and_follows_changes(engine, tmp_path):
    load_hand_data(engine)
    _compute(engine, tmp_path)
    first = _figures(engine, "quarter", Q3, "province", "H40")
    _compute(engine, tmp_path)
    assert _figures(engine, "quarter", Q3, "province", "H40") == first
    with engine.connect() as c:
        n = c.execute(sa.text("SELECT COUNT(*) FROM dossier_outcomes WHERE period_type = 'quarter'")).scalar()
    assert n == 8
    # D5 gets resolved late: open overdue → overdue
    from tthc.warehouse import repo

    d5 = dossier(
        "D5",
        received_at=dt("2026-09-01"),
        due_at=dt("2026-09-10", "17:00"),
        finished_at=dt("2026-09-20"),
        status=10,
        updated_at=dt("2026-09-20"),
    )
    repo.upsert_dossiers(engine, [d5], "run-2")
    repo.set_quality_status(engine, SID, {"D5": "valid"})
    _compute(engine, tmp_path)
    again = _figures(engine, "quarter", Q3, "province", "H40")
    assert again["resolved_overdue"][0] == 2 and again["open_overdue"][0] == 0
    assert again["resolved"][0] == 5


def test_quarter_boundary_and_old_unit(engine, tmp_path):
    """A dossier received 30/6/2025 23:30 under an old unit counts for Q2 and the new province."""
    old = dossier(
        "OLD1",
        agency=OLD_UNIT,
        received_at=dt("2025-06-30", "23:30"),
        due_at=dt("2025-07-07", "17:00"),
        finished_at=dt("2025-07-02"),
        status=10,
    )
    new = dossier(
        "NEW1",
        agency=OLD_UNIT,
        received_at=dt("2025-07-01", "00:10"),
        due_at=dt("2025-07-07", "17:00"),
        finished_at=dt("2025-07-09"),
        status=10,
    )
    load(engine, [old, new])
    as_of = datetime(2025, 10, 1, 1, 0)
    q2 = _compute(engine, tmp_path, "quarter", date(2025, 4, 1), as_of=as_of)
    q3 = _compute(engine, tmp_path, "quarter", date(2025, 7, 1), as_of=as_of)
    day = _compute(engine, tmp_path, "day", date(2025, 6, 30), as_of=as_of)
    assert q2["provinces"] == ["H37"] and q3["provinces"] == ["H35"] and day["provinces"] == ["H37"]
    f = _figures(engine, "quarter", date(2025, 4, 1), "province", "H37")
    # judged at the end of Q2: the dossier was still open and in time on 30/6
    assert (f["received"][0], f["open_in_time"][0], f["resolved"][0]) == (1, 1, 0)
    f = _figures(engine, "quarter", date(2025, 7, 1), "province", "H35")
    assert (f["received"][0], f["resolved_overdue"][0]) == (1, 1)
    y = _compute(engine, tmp_path, "year", date(2025, 1, 1), as_of=as_of)
    assert y["provinces"] == ["H35", "H37"]


def test_scope_recomputes_one_province_only(engine, tmp_path):
    load_hand_data(engine)
    nb = dossier(
        "NB1", agency="000.00.00.H37", received_at=dt("2026-07-02"), due_at=dt("2026-07-06", "17:00")
    )
    load(engine, [nb])
    _compute(engine, tmp_path)
    before = _figures(engine, "quarter", Q3, "province", "H37")
    assert before["received"][0] == 1
    # drop a H40 dossier's quality: a H40-only recompute must leave H37 alone
    from tthc.warehouse import repo

    repo.set_quality_status(engine, SID, {"D9": "quarantined"})
    s = _compute(engine, tmp_path, scope="H40")
    assert s["provinces"] == ["H40"]
    assert _figures(engine, "quarter", Q3, "province", "H40")["received"][0] == 6
    assert _figures(engine, "quarter", Q3, "province", "H37") == before
    # D9's agency had no other dossier: its stale row is gone
    assert _figures(engine, "quarter", Q3, "agency", A2) == {}


def _random_dossiers(n: int, seed: int = 3):
    from tthc.model import Attachment, Supplement

    rng = random.Random(seed)
    start = datetime(2026, 6, 20, 7, 0)
    out = []
    for i in range(n):
        rec = start + timedelta(hours=rng.randint(0, 24 * 110))
        status = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 9])
        due = rec + timedelta(days=rng.randint(1, 20)) if rng.random() < 0.9 else None
        end = (
            rec + timedelta(days=rng.randint(0, 25), hours=rng.randint(0, 9))
            if status in (7, 8, 9, 10)
            else None
        )
        sups = []
        if rng.random() < 0.15:
            req = rec + timedelta(days=1)
            sups.append(Supplement(req, req + timedelta(days=2) if rng.random() < 0.7 else None))
            if rng.random() < 0.2:
                sups.append(Supplement(req + timedelta(days=4), None))
        out.append(
            dossier(
                f"R{i:04d}",
                agency=rng.choice([A1, A2, "000.00.77.H40"]),
                received_at=None if status == 1 else rec,
                updated_at=rec + timedelta(hours=1),
                status=status,
                due_at=due,
                finished_at=end,
                returned_at=end + timedelta(days=1) if end and rng.random() < 0.5 else None,
                channel=rng.choice([1, 2, 3, None]),
                fee=rng.choice([0, 0, 20_000]),
                paid_online=rng.choice([0, 1, 2, None]),
                result_type=rng.choice(["paper", "electronic", None]),
                result_file=rng.choice([None, "kq.pdf"]),
                vneid_verified=rng.random() < 0.3,
                supplements=sups,
                attachments=[
                    Attachment("a", digitized=rng.random() < 0.5, reused=rng.random() < 0.2)
                    for _ in range(rng.randint(0, 2))
                ],
            )
        )
    return out


@pytest.mark.parametrize("period", ["2026Q3", "2026-08", "2026-07-15"])
def test_sql_aggregation_equals_the_pure_python_indicators(engine, tmp_path, period):
    """The SQL path and tthc.indicators agree on the same dossiers (same definitions)."""
    from tthc.indicators import RATIO_IDS, compute_indicators

    ds = _random_dossiers(400)
    rng = random.Random(9)
    published = [d.dossier_code for d in ds if rng.random() < 0.6]
    stale = [d.dossier_code for d in ds if d.dossier_code not in published and rng.random() < 0.3]
    matches = {
        d.dossier_code: rng.choice(["matched", "matched_normalised", "mismatch", "not_found"]) for d in ds
    }
    load(engine, ds, published_current=published, published_stale=stale, matches=matches)
    p = Period.parse(period)
    _compute(engine, tmp_path, p.type, p.start)
    got = _figures(engine, p.type, p.start, "province", "H40")
    synced = {f"{SID}:{c}" for c in published}
    verified = {f"{SID}:{c}" for c, m in matches.items() if m in ("matched", "matched_normalised")}
    want = {
        r["indicator_id"]: (r["numerator"], r["denominator"])
        for r in compute_indicators(ds, p.start, p.last_day, synced_keys=synced, verified_keys=verified)
        if r["scope"] == "total"
    }
    assert want["received"][0] > 0
    for iid, (num, den) in want.items():
        if iid in RATIO_IDS:
            assert got[iid] == (num, den), iid
        else:
            assert got[iid][0] == num, iid
    assert got["5.4_satisfaction"] == got["2.1_on_time"]  # no complaint data yet
