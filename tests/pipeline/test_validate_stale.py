"""A stale raw record (older than the stored version) must not decide the stored version's status."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sandbox.igate import render_igate
from sandbox.world import World, WorldConfig
from tthc.pipeline.context import StageContext
from tthc.pipeline.validate import validate
from tthc.registry import load_registry
from tthc.warehouse import repo
from tthc.warehouse.db import get_engine, migrate

SOURCE = "igate_tinh"


def test_stale_raw_record_does_not_quarantine_newer_version(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    migrate(engine)
    good = World(WorldConfig.clean(seed=9, size=20)).records(SOURCE)[0].dossier
    newer = dataclasses.replace(good, updated_at=good.updated_at + timedelta(days=1), status=10)
    stale_bad = dataclasses.replace(good, applicant_id_number="12345")  # older, and broken
    repo.upsert_dossiers(engine, [newer], "r0")
    # run r1 pulled only the stale, broken record (a source replaying old data)
    repo.record_raw(engine, SOURCE, "r1", [render_igate(stale_bad)], code_of=lambda r: r.get("code"))
    ctx = StageContext(
        source=load_registry().get(SOURCE),
        registry=load_registry(),
        run_id="r1",
        window_end=newer.updated_at,
        engine=engine,
    )
    counts = validate(ctx)
    assert counts["quarantined"] == 0
    assert repo.held_codes(engine, SOURCE) == set()
    # the newer version (written by r0, never validated) is validated for itself instead: it
    # passes, where the stale record would have been quarantined
    assert counts["left_pending"] == 1
    assert repo.dossier_states(engine, SOURCE)[good.dossier_code].quality_status in ("valid", "warning")
