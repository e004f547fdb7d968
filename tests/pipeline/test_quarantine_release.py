"""Quarantine and release, end to end through the stages (no Airflow) against the sandbox.

A dossier whose CCCD is malformed is held back with its reason and not published; when the
source corrects it, the next run releases it, publishes it, and reconciles the applicant.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from tthc.pipeline import STAGES, run_stage

SOURCE = "igate_tinh"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env
    from tthc.warehouse.db import get_engine

    base = World(WorldConfig.clean(seed=3, size=60))
    recs = base.records(SOURCE)
    bad_src = next(r for r in recs if r.citizen_id is not None and r.dossier.applicant_id_number)
    citizen = base.citizens[bad_src.citizen_id]
    broken = dataclasses.replace(
        bad_src,
        dossier=dataclasses.replace(bad_src.dossier, applicant_id_number="03618500012X"),
        defects=("cccd_format",),
    )
    fixed_at = base.now + timedelta(hours=30)
    fixed = dataclasses.replace(
        bad_src,
        dossier=dataclasses.replace(
            bad_src.dossier, applicant_id_number=citizen.id_number, updated_at=fixed_at
        ),
        visible_at=fixed_at,
        version=bad_src.version + 1,
    )
    others = [r for r in recs if r is not bad_src]
    world = World.from_records(
        [*others, broken, fixed],
        citizens=base.citizens,
        now=base.now,
        sources=base.sources,
        agencies=base.agencies,
        procedures=base.procedures,
    )
    with running_sandbox(SandboxConfig.for_tests(tmp_path), world=world) as sb:
        for k, v in connection_env(sb.state_document()).items():
            monkeypatch.setenv(k, v)
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        monkeypatch.setenv("TTHC_WAREHOUSE_URL", url)
        yield world, get_engine(url), sb, bad_src.dossier.dossier_code


def night(world, run_id):
    return {s: run_stage(s, SOURCE, run_id=run_id, window_end=world.now) for s in STAGES}


def test_quarantined_then_released_when_source_corrects(planted):
    world, engine, sb, code = planted
    portal = f"{sb.urls['portal']}/_sandbox/state"

    night(world, "n1")
    with engine.connect() as c:
        status, reasons = c.execute(
            sa.text("SELECT status, reasons FROM quarantine WHERE dossier_code = :c"), {"c": code}
        ).one()
        issue_rules = {
            r[0]
            for r in c.execute(
                sa.text("SELECT rule_id FROM dossier_issues WHERE dossier_code = :c"), {"c": code}
            )
        }
    assert status == "held" and json.loads(reasons) == ["cccd_format"]
    assert "cccd_format" in issue_rules
    assert code not in requests.get(portal, timeout=10).json()["dossiers"]

    world.advance(days=2)
    counts = night(world, "n2")
    assert counts["validate"]["released"] == 1
    with engine.connect() as c:
        status, released_run = c.execute(
            sa.text("SELECT status, released_run_id FROM quarantine WHERE dossier_code = :c"), {"c": code}
        ).one()
        quality = c.execute(
            sa.text("SELECT quality_status FROM dossiers WHERE dossier_code = :c"), {"c": code}
        ).scalar_one()
        match = c.execute(
            sa.text("SELECT match_class FROM citizen_matches WHERE dossier_code = :c"), {"c": code}
        ).scalar_one()
    assert (status, released_run, quality) == ("released", "n2", "valid")
    assert match in ("matched", "matched_normalised")
    held = requests.get(portal, timeout=10).json()["dossiers"][code]["record"]
    assert held["MaHoSo"] == code


def test_indicators_stage_keeps_the_verified_sync_rate(planted):
    """The run's 1.4 figure is the publish stage's read-back; the indicators stage must not replace it."""
    from tthc.warehouse import repo

    world, engine, _sb, _code = planted
    night(world, "n1")
    row = {
        "period_type": "run",
        "period_start": world.now.date(),
        "scope": "source",
        "scope_code": SOURCE,
        "indicator_id": "1.4_sync_rate",
        "numerator": 1,
        "denominator": 2,
        "run_id": "n1",
    }
    repo.save_indicators(engine, [row])  # as if the read-back had found half the portal out of sync
    run_stage("indicators", SOURCE, run_id="n1", window_end=world.now)
    (got,) = [
        r["value"]
        for r in repo.load_indicators(engine, period_type="run", scope="source", indicator_id="1.4_sync_rate")
    ]
    assert got == 0.5
