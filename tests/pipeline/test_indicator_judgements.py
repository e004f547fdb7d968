"""The indicators stage judges in Python only what is still open (or changed), counts stored final
judgements in SQL, and must give exactly the rows of the full computation over every dossier:
every dialect, two nights, several period ends, both warehouse backends."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from sandbox.world import World
from tests.pipeline.test_validate_pins import PG, _drop, _pg_database
from tthc.indicators import compute_indicators_for_periods
from tthc.pipeline import STAGES, run_stage
from tthc.pipeline.indicators import SAME_PERSON, compute_source_indicators
from tthc.registry import load_registry
from tthc.warehouse import repo, schema


def _periods(end: datetime, days: int = 120) -> dict[str, tuple[datetime, datetime]]:
    return {"run": (end - timedelta(days=days), end), "month": (datetime(end.year, end.month, 1), end)}


def _reference(conn, sid: str, periods) -> dict:
    """The full computation: every dossier not quarantined, judged in Python."""
    facts = repo.load_indicator_facts(conn, sid)
    published = repo.codes_where(conn, schema.publish_state, sid, "status", ["published"])
    matched = repo.codes_where(conn, schema.citizen_matches, sid, "match_class", SAME_PERSON)
    return compute_indicators_for_periods(
        facts,
        periods,
        synced_keys={f"{sid}:{c}" for c in published},
        verified_keys={f"{sid}:{c}" for c in matched},
        agencies=repo.agency_codes(conn, sid),
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path_factory):
    """Two nights of every stage over the registry's world (every dialect, default defects)."""
    from sandbox.from_registry import world_config_from_registry
    from sandbox.server import SandboxConfig, running_sandbox
    from tthc.demo import connection_env
    from tthc.warehouse.db import dispose_engine, get_engine

    tmp = tmp_path_factory.mktemp("judgements")
    world = World(world_config_from_registry(load_registry(), seed=44, size=900))
    pg_name = _pg_database() if request.param == "postgres" else None
    url = f"{PG}/{pg_name}" if pg_name else f"sqlite:///{tmp / 'wh.db'}"
    nights = []
    with running_sandbox(SandboxConfig.for_tests(tmp), world=world) as sb, pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(sb.state_document()).items():
            mp.setenv(k, v)
        mp.setenv("TTHC_WAREHOUSE_URL", url)
        engine = get_engine(url)
        for run_id in ("n1", "n2"):
            if run_id == "n2":
                world.advance(days=3)
            counts = {
                s.source_id: {
                    st: run_stage(st, s.source_id, run_id=run_id, window_end=world.now) for st in STAGES
                }
                for s in world.sources
            }
            nights.append((run_id, world.now, counts))
        yield engine, [s.source_id for s in world.sources], nights
    if pg_name:
        dispose_engine(url)
        _drop(pg_name)


def test_rows_equal_the_full_computation_at_every_end(warehouse):
    engine, sources, nights = warehouse
    _, night2_end, _ = nights[-1]
    checked = 0
    # the night's end, an earlier end (stored judgements of dossiers that ended after it must not
    # count), a later one (open dossiers move with the clock), and a short run period
    for end, days in (
        (night2_end, 120),
        (night2_end - timedelta(days=20), 120),
        (night2_end + timedelta(days=9), 30),
    ):
        periods = _periods(end, days)
        for sid in sources:
            with engine.begin() as conn:
                want = _reference(conn, sid, periods)
                got, _ = compute_source_indicators(conn, sid, periods)
            assert got == want, (sid, end)
            checked += sum(
                r["numerator"]
                for r in want["run"]
                if r["scope"] == "total" and r["indicator_id"] == "received"
            )
    assert checked > 1000


def test_second_night_judges_only_what_is_open_or_changed(warehouse):
    engine, sources, nights = warehouse
    (_, _, first), (_, end2, second) = nights
    judged1 = sum(c["indicators"]["judged"] for c in first.values())
    judged2 = sum(c["indicators"]["judged"] for c in second.values())
    stored1 = sum(c["indicators"]["judgements_stored"] for c in first.values())
    assert stored1 > 0.5 * judged1 > 0  # most of a 120-day period has ended
    assert judged2 < 0.5 * judged1, (judged1, judged2)
    # what night 2 judged: the dossiers without a final judgement of their current version
    with engine.connect() as c:
        finals = c.execute(sa.text("SELECT COUNT(*) FROM final_judgements")).scalar_one()
    assert finals >= stored1 * 0.9


def test_a_new_version_or_other_settings_are_judged_again(warehouse, monkeypatch):
    import tthc.indicators as ind

    engine, sources, nights = warehouse
    _, end, _ = nights[-1]
    periods = _periods(end)
    sid = sources[0]
    with engine.begin() as conn:
        _, before = compute_source_indicators(conn, sid, periods)
        stored = (
            conn.execute(
                sa.select(schema.final_judgements.c.dossier_code).where(
                    schema.final_judgements.c.source_id == sid, schema.final_judgements.c.outcome == "on_time"
                )
            )
            .scalars()
            .first()
        )
        assert stored is not None
        d = repo.load_dossiers(conn, sid, [stored])[0]
        # the source reports it again, now overdue: a new version, judged again (and stored again)
        changed = dataclasses.replace(
            d,
            updated_at=d.updated_at + timedelta(hours=1),
            finished_at=d.due_at + timedelta(days=5),
            returned_at=d.due_at + timedelta(days=6),
        )
        assert changed.finished_at < end
        repo.upsert_dossiers(conn, [changed], "edit")
        got, after = compute_source_indicators(conn, sid, periods)
        assert after["judged"] == before["judged"] + 1 and after["judgements_stored"] == 1
        assert got == _reference(conn, sid, periods)
        outcome = conn.execute(
            sa.select(schema.final_judgements.c.outcome).where(
                schema.final_judgements.c.source_id == sid, schema.final_judgements.c.dossier_code == stored
            )
        ).scalar_one()
        assert outcome == "overdue"
        # other judging settings (here: a new version of the rules): everything judged again
        monkeypatch.setattr(ind, "JUDGEMENT_VERSION", ind.JUDGEMENT_VERSION + 1)
        got, again = compute_source_indicators(conn, sid, periods)
        assert again["judged"] > 5 * after["judged"]
        still_open = after["judged"] - after["judgements_stored"]
        assert again["judgements_stored"] == again["judged"] - still_open  # all but the open ones
        assert got == _reference(conn, sid, periods)
