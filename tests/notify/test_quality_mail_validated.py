"""The e-mails fed by a real validation (the GX suite over dossiers carrying personal data).

The applicants' names, ID numbers, phones and birth dates are planted markers; the suite flags
several of them (bad CCCD, unknown sex, ...). The e-mails must report the rules and dossier codes
and never one of the values.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tthc.notify.quality_mail import run_notifications
from tthc.warehouse import repo

from .helpers import (
    COMMUNE,
    JUSTICE,
    MARKER_BIRTH,
    MARKER_FULL_NAME,
    MARKER_PHONE,
    MARKERS,
    SRC,
    code,
    dossier,
    everything_in,
    read_mails,
    seed_stages,
)

RUN = "manual__2026-11-21T01:00:00+07:00"
BAD_CCCD = "0791880123456"  # 13 digits: cccd_format; contains the marker CCCD


@pytest.fixture(scope="module")
def validated():
    """Validation of a small batch (GX is imported once for the module)."""
    from tthc.quality.validate import validate_dossiers

    ds = [dossier(code(JUSTICE, i), JUSTICE) for i in range(6)]
    ds[0] = dossier(code(JUSTICE, 0), JUSTICE, applicant_id_number=BAD_CCCD)
    ds[1] = dossier(code(JUSTICE, 1), JUSTICE, applicant_sex=7)
    ds[2] = dossier(code(JUSTICE, 2), JUSTICE, applicant_birth_date="17/05/1988")
    ds += [dossier(code(COMMUNE, 1), COMMUNE, applicant_id_number="4444333")]
    ds += [dossier(code(COMMUNE, 2), COMMUNE, fee=-1)]
    outcome = validate_dossiers(ds, known_agencies={JUSTICE, COMMUNE, "000.00.00.H40", "000.16.46.H40"})
    return ds, outcome


def test_validated_run_mails_rules_and_codes_but_no_personal_data(validated, engine, smtp_env, registry):
    ds, outcome = validated
    assert outcome.quarantined, "the planted defects should quarantine some dossiers"
    at = datetime(2026, 11, 21, 1, 0)
    repo.upsert_dossiers(engine, ds, RUN, now=at)
    repo.save_validation(
        engine, RUN, SRC, outcome.suite_name, outcome.rule_stats, outcome.record_issues, now=at
    )
    repo.hold(engine, SRC, outcome.quarantined, {d.dossier_code: d.content_hash() for d in ds}, RUN, now=at)
    seed_stages(engine, RUN, SRC, at, {}, pulled=len(ds), held=len(outcome.quarantined))

    result = run_notifications(engine, RUN, [SRC], registry, now=datetime(2026, 11, 21, 2, 0))
    assert {a["agency_code"] for a in result["agencies"]} == {JUSTICE, COMMUNE}
    mails = read_mails(smtp_env)
    assert len(mails) == 3

    failing = {r["rule_id"]: r["failed"] for r in outcome.rule_stats if r["failed"]}
    justice = [m for m in mails if f"mã đơn vị {JUSTICE}" in m.text][0]
    issues = {
        (i["dossier_code"], i["rule_id"])
        for i in outcome.record_issues
        if i["dossier_code"].startswith(JUSTICE)
    }
    assert {(r["dossier_code"], r["rule_id"]) for r in justice.csv_rows()} == issues
    for rule in {r for _, r in issues}:
        assert f"* {rule} [" in justice.text
    assert "cccd_format" in failing

    for path in smtp_env.files():
        content = everything_in(path)
        for marker in (
            *MARKERS,
            BAD_CCCD,
            MARKER_FULL_NAME,
            MARKER_PHONE,
            MARKER_BIRTH,
            "17/05/1988",
            "4444333",
        ):
            assert marker not in content, (path.name, marker)
