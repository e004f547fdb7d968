"""No personal data in any output: plant marker values that fail rules and search everything."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.quality.cases import good_dossier

NAME = "ZZMARKER Nguyễn"
CCCD = "001099999999"  # Hà Nội, male, born 1999: disagrees with the planted birth date and sex
BAD_ID = "ZZ0010999999X"  # breaks cccd_format
BIRTH = "1911-11-11"
PHONE = "0912399999"
MARKERS = (NAME, "ZZMARKER", CCCD, BAD_ID, BIRTH, "11/11/1911", PHONE, "999099999999")


def _hits(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


@pytest.fixture
def planted():
    return [
        good_dossier(1),
        good_dossier(
            2,
            applicant_name=NAME,
            applicant_id_number=CCCD,
            applicant_birth_date=BIRTH,
            applicant_sex=2,
            applicant_phone=PHONE,
            due_at=None,
        ),
        good_dossier(
            3,
            applicant_name=NAME,
            applicant_id_number=BAD_ID,
            applicant_birth_date=BIRTH,
            applicant_phone=PHONE,
        ),
        good_dossier(4, applicant_name=NAME, applicant_id_number="999099999999", applicant_birth_date=BIRTH),
        good_dossier(5, applicant_name=None, applicant_id_number=CCCD, applicant_birth_date="11/11/1911"),
        # the same code twice, so both records are quarantined as duplicates
        good_dossier(6, dossier_code="000.00.12.H40-250714-0777", applicant_name=NAME),
        good_dossier(7, dossier_code="000.00.12.H40-250714-0777", applicant_id_number=CCCD),
    ]


def test_no_marker_in_any_output(planted, tmp_path, monkeypatch, caplog, capfd):
    from tthc.quality import validate as v

    # everything GX might write goes under tmp_path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    caplog.set_level(logging.DEBUG)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = v.validate_dossiers(planted)
        # the raw, unsanitised GX result of the same batch, from a context with a Data Docs site
        spec = v.load_suite_spec()
        ctx = v._gx_context()
        docs = tmp_path / "data_docs"
        ctx.add_data_docs_site(
            site_name="pii_check",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        raw = v.run_gx(v.prepare_frame(planted, v.suite_columns(spec)), spec, context=ctx)
        ctx.build_data_docs(site_names=["pii_check"])

    # the planted rows did fail: the test would be empty otherwise
    fired = {r["rule_id"] for r in outcome.record_issues}
    assert {
        "cccd_birth_year",
        "cccd_sex",
        "cccd_format",
        "cccd_prefix",
        "duplicate_code",
        "required_applicant_name",
    } <= fired

    outputs = {
        "outcome.to_json": outcome.to_json(include_gx_result=True),
        "outcome.repr": repr(outcome) + repr(outcome.rule_stats) + repr(outcome.record_issues),
        "gx raw result": json.dumps(raw.to_json_dict(), default=str, ensure_ascii=False),
        "gx raw result (describe)": str(raw.describe_dict()) if hasattr(raw, "describe_dict") else "",
        "logs": "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records),
        "warnings": "\n".join(str(w.message) for w in caught),
    }
    out, err = capfd.readouterr()
    outputs["stdout+stderr"] = out + err

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files), "Data Docs were not built: nothing proven about them"
    for p in files:
        outputs[f"file {p.relative_to(tmp_path)}"] = p.read_bytes().decode("utf-8", errors="replace")

    leaks = {where: _hits(text) for where, text in outputs.items() if _hits(text)}
    assert leaks == {}
    # and the outcome still names the records, by code
    assert "000.00.12.H40-250714-0777" in outcome.quarantined
    assert caplog.records, "nothing was logged: the log check proved nothing"


def test_exception_texts_are_dropped():
    from tthc.quality.validate import _exception_name, _sanitise

    tb = f"Traceback...\nValueError: invalid literal for int(): '{CCCD}' of {NAME}"
    res = {
        "results": [
            {
                "exception_info": {
                    "raised_exception": True,
                    "exception_message": f"{NAME} {CCCD}",
                    "exception_traceback": tb,
                }
            }
        ]
    }
    clean = _sanitise(res)
    assert _hits(json.dumps(clean, ensure_ascii=False)) == []
    assert _exception_name({"exception_traceback": tb}) == "ValueError"
    assert _exception_name({"exception_traceback": f"{NAME}: x"}) == "error"


def test_no_data_docs_site_by_default():
    from tthc.quality.validate import _gx_context

    ctx = _gx_context()
    assert ctx.list_data_docs_sites() == {}
    assert Path(ctx.root_directory or "/nonexistent").exists() is False
