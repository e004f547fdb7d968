"""Shared crafted batch for the quality tests.

GX is slow to import (4-8 s), so the crafted batch is validated once per session and every rule
test reads the same outcome. The cases themselves live in :mod:`tests.quality.cases`.
"""

from __future__ import annotations

import pytest

from tests.quality.cases import crafted_batch


@pytest.fixture(scope="session")
def crafted():
    from tthc.quality.validate import validate_dossiers

    rows, bad_rows, clean_rows = crafted_batch()
    outcome = validate_dossiers(rows)
    return rows, bad_rows, clean_rows, outcome
