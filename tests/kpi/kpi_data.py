"""Shared data of the kpi and report tests: a small registry, unit config and hand-made dossiers.

Q3/2026 dossiers of province H40 (expected figures are worked out in the test modules):

====  =======  ==========  ==========  ===============================  =================
code  agency   received    due         end / status                     outcome
====  =======  ==========  ==========  ===============================  =================
D1    A1       06/07 08:00 10/07       finished 08/07, status 10        early
D2    A1       07/07 08:00 10/07       finished 10/07 15:00, status 9   on_time
D3    A1       08/07 08:00 10/07       finished 15/07, status 10        overdue
D4    A1       28/09 08:00 05/10       open (status 4)                  open_in_time
D5    A1       01/09 08:00 10/09       open (status 4)                  open_overdue
D6    A1       01/08 08:00 10/08       withdrawn 03/08 (status 7)       withdrawn
D7    A1       — (updated 05/08)       —           status 1 (not received)          excluded
D8    A1       10/08 08:00 20/08       quarantined                      not counted
D9    A2       20/07 08:00 24/07       finished 23/07, status 10        early
D10   A2       30/06 09:00 (Q2)        —                                not in Q3
D11   A2       01/10 09:00 (Q4)        —                                not in Q3
====  =======  ==========  ==========  ===============================  =================
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from tthc.kpi import UnitConfig
from tthc.model import Attachment, Dossier
from tthc.registry import load_registry

SID = "igate_tinh"
A1 = "000.00.12.H40"  # Sở Tư pháp
A2 = "000.05.21.H40"  # UBND xã Hưng Nguyên
OLD_UNIT = "000.20.35.H35"  # an old district of old Hà Nam (35), merged into Ninh Bình (37)

REGISTRY_YAML = """
defaults: {schedule: "0 1 * * *"}
sources:
  - source_id: igate_tinh
    agency_code: 000.00.00.H40
    agency_name: Văn phòng UBND tỉnh
    level: province
    dialect: igate
    conn_id: tthc_igate_tinh
    province_code: H40
    agencies:
      - {code: 000.00.12.H40, name: Sở Tư pháp, level: department}
      - {code: 000.05.21.H40, name: UBND xã Hưng Nguyên, level: commune}
  - source_id: igate_ninh_binh
    agency_code: 000.00.00.H37
    agency_name: Văn phòng UBND tỉnh Ninh Bình
    level: province
    dialect: igate
    conn_id: tthc_igate_nb
    province_code: H37
"""

UNITS = UnitConfig(
    reorganisation_date=date(2025, 7, 1),
    h_codes={"H40": 40, "H35": 35, "H37": 37},
    legacy_provinces={35: 37, 36: 37},
)

# Personal-data markers planted in the warehouse: no output may carry them.
MARKER_NAME = "ZZMARKER Nguyễn Văn Bí"
MARKER_CCCD = "001099999999"
MARKER_PHONE = "0912399999"
MARKER_BIRTH = "1911-11-11"
MARKERS = (MARKER_NAME, "ZZMARKER", MARKER_CCCD, MARKER_PHONE, MARKER_BIRTH, "11/11/1911")


def registry(tmp_path: Path):
    p = tmp_path / "sources.yaml"
    p.write_text(REGISTRY_YAML, encoding="utf-8")
    return load_registry(p)


def dt(day: str, hm: str = "08:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}")


def dossier(code: str, agency: str = A1, **kw) -> Dossier:
    base = {
        "source_id": SID,
        "dossier_code": code,
        "agency_code": agency,
        "procedure_code": "1.000001",
        "received_at": None,
        "updated_at": None,
        "status": 4,
        "channel": 1,
        "fee": 0,
        "paid_online": 0,
        "applicant_name": MARKER_NAME,
        "applicant_id_number": MARKER_CCCD,
        "applicant_id_type": 1,
        "applicant_birth_date": MARKER_BIRTH,
        "applicant_phone": MARKER_PHONE,
        "agency_name": {A1: "Sở Tư pháp", A2: "UBND xã Hưng Nguyên"}.get(agency),
    }
    base.update(kw)
    if base["updated_at"] is None:
        base["updated_at"] = base["received_at"] or dt("2026-08-05")
    return Dossier(**base)


def hand_dossiers() -> list[Dossier]:
    return [
        dossier(
            "D1",
            received_at=dt("2026-07-06"),
            due_at=dt("2026-07-10", "17:00"),
            finished_at=dt("2026-07-08", "10:00"),
            status=10,
            channel=2,
            fee=50_000,
            paid_online=1,
            result_type="paper",
            result_file="kq/D1.pdf",
            attachments=[Attachment("Tờ khai", digitized=True)],
        ),
        dossier(
            "D2",
            received_at=dt("2026-07-07"),
            due_at=dt("2026-07-10", "17:00"),
            finished_at=dt("2026-07-10", "15:00"),
            status=9,
            result_type="paper",
        ),
        dossier(
            "D3",
            received_at=dt("2026-07-08"),
            due_at=dt("2026-07-10", "17:00"),
            finished_at=dt("2026-07-15", "09:00"),
            status=10,
            channel=3,
            fee=10_000,
            paid_online=0,
        ),
        dossier("D4", received_at=dt("2026-09-28"), due_at=dt("2026-10-05", "17:00")),
        dossier("D5", received_at=dt("2026-09-01"), due_at=dt("2026-09-10", "17:00")),
        dossier(
            "D6",
            received_at=dt("2026-08-01"),
            due_at=dt("2026-08-10", "17:00"),
            finished_at=dt("2026-08-03"),
            status=7,
        ),
        dossier("D7", status=1, updated_at=dt("2026-08-05")),
        dossier("D8", received_at=dt("2026-08-10"), due_at=dt("2026-08-20", "17:00")),
        dossier(
            "D9",
            agency=A2,
            received_at=dt("2026-07-20"),
            due_at=dt("2026-07-24", "17:00"),
            finished_at=dt("2026-07-23"),
            status=10,
            vneid_verified=True,
            attachments=[Attachment("CCCD", reused=True)],
        ),
        dossier("D10", agency=A2, received_at=dt("2026-06-30", "09:00"), due_at=dt("2026-07-03", "17:00")),
        dossier("D11", agency=A2, received_at=dt("2026-10-01", "09:00"), due_at=dt("2026-10-05", "17:00")),
    ]


def load(engine, dossiers, *, published_current=(), published_stale=(), matches=None, quarantined=()):
    """Write dossiers, publish states, matches and quarantine statuses into a migrated warehouse."""
    from tthc.warehouse import repo

    repo.upsert_dossiers(engine, dossiers, "run-1", now=datetime(2026, 10, 1, 1, 0))
    by_code = {d.dossier_code: d for d in dossiers}
    statuses: dict[str, dict[str, str]] = {}
    for d in dossiers:
        statuses.setdefault(d.source_id, {})[d.dossier_code] = (
            "quarantined" if d.dossier_code in quarantined else "valid"
        )
    for sid, st in statuses.items():
        repo.set_quality_status(engine, sid, st)
    repo.mark_published(engine, [by_code[c] for c in published_current], now=datetime(2026, 10, 1, 1, 0))
    repo.mark_published(
        engine,
        [
            {"source_id": by_code[c].source_id, "dossier_code": c, "content_hash": "0" * 64}
            for c in published_stale
        ],
        now=datetime(2026, 10, 1, 1, 0),
    )
    repo.save_matches(
        engine,
        [
            {
                "source_id": by_code[c].source_id,
                "dossier_code": c,
                "id_hash": "h" * 64,
                "match_class": m,
                "run_id": "run-1",
            }
            for c, m in (matches or {}).items()
        ],
    )


def load_hand_data(engine) -> None:
    load(
        engine,
        hand_dossiers(),
        published_current=["D1", "D9"],
        published_stale=["D3"],
        matches={"D1": "matched", "D2": "mismatch", "D3": "not_found"},
        quarantined=["D8"],
    )
