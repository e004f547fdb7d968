"""The indicator stage loads only the dossiers that can count in its periods, only the columns it
counts, judges them once for all its periods, and gets the same figures as from the whole
warehouse (a year of history here, a 120-day period)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tthc.indicators import (
    IndicatorFacts,
    IndicatorOptions,
    compute_indicators,
    compute_indicators_for_periods,
)
from tthc.warehouse import repo


@pytest.fixture(scope="module")
def year_of_dossiers():
    from sandbox.world import World, WorldConfig

    world = World(WorldConfig(seed=11, size=900, history_days=400))
    return world.now, [r.dossier for r in world.records("igate_tinh")]


@pytest.mark.parametrize("days", [120, 30, 3])
def test_same_indicators_from_the_relevant_dossiers_only(engine, year_of_dossiers, days):
    now, dossiers = year_of_dossiers
    repo.upsert_dossiers(engine, dossiers, "r1")
    start, end = now - timedelta(days=days), now
    everything = repo.load_dossiers(engine, "igate_tinh")
    relevant = repo.load_dossiers(engine, "igate_tinh", relevant_since=start)
    assert len(everything) == len({d.dossier_code for d in dossiers})
    assert len(relevant) < len(everything)  # a year of history: most ended before the period
    agencies = repo.agency_codes(engine, "igate_tinh")
    assert set(agencies) == {d.agency_code for d in dossiers}
    full = compute_indicators(everything, start, end)
    assert compute_indicators(relevant, start, end, agencies=agencies) == full
    month = datetime(end.year, end.month, 1)
    relevant_month = repo.load_dossiers(engine, "igate_tinh", relevant_since=month)
    full_month = compute_indicators(everything, month, end)
    assert compute_indicators(relevant_month, month, end, agencies=agencies) == full_month


def test_the_indicator_stage_reads_the_flat_facts_of_the_dossiers_it_counts(engine, year_of_dossiers):
    """``load_indicator_facts`` reads columns, not the stored dossier: it must give what the full
    dossiers give, quarantined ones left out, supplements and attachment counts included."""
    now, dossiers = year_of_dossiers
    repo.upsert_dossiers(engine, dossiers, "r1")
    codes = sorted({d.dossier_code for d in dossiers})
    quarantined = set(codes[::7])
    repo.set_quality_status(
        engine, "igate_tinh", {c: "quarantined" if c in quarantined else "valid" for c in codes}
    )
    start = now - timedelta(days=120)
    expected = [
        IndicatorFacts.of(d)
        for d in repo.load_dossiers(engine, "igate_tinh", relevant_since=start)
        if d.dossier_code not in quarantined
    ]
    facts = sorted(
        repo.load_indicator_facts(engine, "igate_tinh", relevant_since=start), key=lambda f: f.dossier_code
    )
    assert facts == expected
    # the world exercises what the columns stand in for
    assert any(f.supplements for f in facts) and any(f.reused_count for f in facts)
    assert any(0 < f.digitized_count < f.attachment_count for f in facts)
    assert not {f.dossier_code for f in facts} & quarantined
    opts = IndicatorOptions(population="active", digitised_components_rule="all")
    current = [d for d in repo.load_dossiers(engine, "igate_tinh") if d.dossier_code not in quarantined]
    agencies = repo.agency_codes(engine, "igate_tinh")
    assert compute_indicators(facts, start, now, options=opts, agencies=agencies) == compute_indicators(
        current, start, now, options=opts, agencies=agencies
    )


@pytest.mark.parametrize("population", ["received", "active"])
def test_one_pass_over_several_periods_gives_each_period_its_own_figures(year_of_dossiers, population):
    now, dossiers = year_of_dossiers
    opts = IndicatorOptions(population=population, digitised_components_rule="all")
    periods = {
        "run": (now - timedelta(days=120), now),
        "month": (datetime(now.year, now.month, 1), now),
        "earlier": (now - timedelta(days=200), now - timedelta(days=60)),  # another end
    }
    synced = {d.key for d in dossiers[::3]}
    verified = {d.key for d in dossiers[::5]}
    kw = dict(options=opts, synced_keys=synced, verified_keys=verified, agencies=["NOT-SEEN"])
    together = compute_indicators_for_periods(dossiers, periods, **kw)
    assert set(together) == set(periods)
    for name, (start, end) in periods.items():
        alone = compute_indicators(dossiers, start, end, **kw)
        assert together[name] == alone, name
        if name != "month":  # the world's clock stands on the 2nd of a month
            assert any(r["indicator_id"] == "received" and r["value"] for r in alone)
    assert together["run"] != together["earlier"]
