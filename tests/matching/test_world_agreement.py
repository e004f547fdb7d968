"""classify() reaches the match class the ground-truth world expects (docs/contracts.md).

The world generator (sandbox.world) labels every dossier with ``expected_match``; reconciliation
must reach it. Only counts are compared and reported, never a record.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from tthc.codes import cccd_problems, id_type
from tthc.matching import Applicant, classify

world = pytest.importorskip("sandbox.world")


def _id_valid(number: str | None, birth: str | None, sex: int | None) -> bool:
    if id_type(number) not in (1, 2):
        return False
    return not {"cccd_format", "cccd_prefix"} & set(cccd_problems(number, birth, sex))


@pytest.mark.parametrize("seed", [42, 2026])
def test_classes_agree_with_the_world(seed):
    w = world.World(world.WorldConfig(seed=seed, size=1500, anchor=datetime(2026, 11, 1)))
    disagreements: Counter[tuple[str, str]] = Counter()
    reached: Counter[str] = Counter()
    for source in w.sources:
        for record in w.records(source.source_id):
            d = record.dossier
            registry = w.citizens[record.citizen_id] if record.citizen_id is not None else None
            result = classify(
                Applicant.from_dossier(d),
                registry,
                _id_valid(d.applicant_id_number, d.applicant_birth_date, d.applicant_sex),
            )
            reached[str(result.match_class)] += 1
            if str(result.match_class) != record.expected_match:
                disagreements[(record.expected_match, str(result.match_class))] += 1
    assert not disagreements, dict(disagreements)
    assert reached["matched"] and reached["matched_normalised"] and reached["name_mismatch"]
