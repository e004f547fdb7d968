"""The indicator stage loads only the dossiers that can count in its periods, and gets the same
figures as from the whole warehouse (a year of history here, a 120-day period)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tthc.indicators import compute_indicators
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
