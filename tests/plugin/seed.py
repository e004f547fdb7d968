"""A small warehouse with known figures for the dashboard tests, written through tthc.warehouse.repo.

Every dossier carries personal-data marker values (names, ID numbers, phone, birth date, file
names) that no dashboard page may ever show; :data:`PII_MARKERS` lists them. :data:`EXPECTED`
holds, per page, strings the page must show (as the Vietnamese formatting writes them), compared
with the page's text (:func:`page_text`), as a reader (or the browser's DOM) sees it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from html.parser import HTMLParser

import sqlalchemy as sa

from tthc.model import Attachment, Dossier
from tthc.privacy import key_hash
from tthc.warehouse import db, repo
from tthc.warehouse import schema as s

SRC_T, SRC_Y = "igate_tinh", "onegate_so_yte"  # names from config/sources.yaml
AG_TP, AG_TC, AG_YT = "000.00.12.H40", "000.00.05.H40", "000.00.16.H40"
RUN1 = "scheduled__2026-11-20T01:00:00+00:00"
RUN2 = "scheduled__2026-11-21T01:00:00+00:00"
T0 = datetime(2026, 11, 21, 8, 0, 0)


def code(agency: str, n: int) -> str:
    return f"{agency}-261121-{n:04d}"


T1, T2, T3 = code(AG_TP, 1), code(AG_TP, 2), code(AG_TP, 3)
T4, T5, T6 = code(AG_TC, 4), code(AG_TC, 5), code(AG_TC, 6)
Y1, Y2 = code(AG_YT, 1), code(AG_YT, 2)

ID_NUMBERS = [f"0791880000{i:02d}" for i in range(1, 9)]
PII_MARKERS = [
    "Zqxvmarker",  # in every applicant name
    "Markerfile",  # attachment and result file names
    "0912345678",  # phone
    "1988-07-19",
    "19/07/1988",
    "Markerofficer",  # lookup audit officer
    *ID_NUMBERS,
    *(key_hash(n) for n in ID_NUMBERS),  # keyed hashes are pseudonymous personal data too
]
XSS_ERROR = "<script>alert('x')</script> HTTP 502 từ Cổng DVCQG, công dân 079188000006"

EXPECTED: dict[str, list[str]] = {
    "/tthc/indicators/": [
        "Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn",
        "Sở Tư pháp tỉnh Nghệ An",
        "Sở Tài chính tỉnh Nghệ An",
        "87,5%",  # 7 / 8 for the Sở Tư pháp
        "75,0%",  # 3 / 4 for the Sở Tài chính
        "83,3%",  # 10 / 12 in total
        "Tháng 11/2026",
        "1.234",  # received by the Sở Tư pháp
    ],
    "/tthc/dq/": [
        "cccd_format",
        "Số định danh của chủ hồ sơ không gồm 12 chữ số",
        "unparseable_received_at",
        "Hệ thống nguồn gửi giá trị không đọc được",
        "dossier_code_date",
        T1,
        T4,
        Y1,
        Y2,
        "Hồ sơ đang bị cách ly: 4",
        RUN2,
    ],
    "/tthc/sync/": [T6, "HTTP 502 từ Cổng DVCQG", "079*******06", "Đồng bộ lỗi"],
    "/tthc/lookup/": ["Khớp sau chuẩn hóa", "Tra cứu lỗi", "50,0%", "Sở Tư pháp tỉnh Nghệ An"],
    "/tthc/runs/": [RUN2, RUN1, "42,0 giây", "Lấy dữ liệu", "Thất bại"],
}


def _dossier(src: str, dossier_code: str, agency: str, i: int) -> Dossier:
    received = T0 - timedelta(days=2, hours=i)
    return Dossier(
        source_id=src,
        dossier_code=dossier_code,
        agency_code=agency,
        procedure_code="1.001234",
        received_at=received,
        updated_at=received + timedelta(hours=1),
        status=4,
        status_raw="processing",
        agency_name="Đơn vị thử",
        procedure_name="Đăng ký khai sinh",
        applicant_name=f"Nguyễn Văn Zqxvmarker {i}",
        applicant_id_number=ID_NUMBERS[i - 1],
        applicant_id_type=1,
        applicant_birth_date="1988-07-19",
        applicant_sex=1,
        applicant_phone="0912345678",
        due_at=received + timedelta(days=5),
        fee=50_000,
        result_type="paper",
        result_file=f"ketqua_Markerfile_{i}.pdf",
        attachments=[Attachment(f"Markerfile CCCD {i}", digitized=True)],
    )


def seed(url: str) -> sa.Engine:
    """Migrate the warehouse at ``url`` and fill it with the known rows."""
    eng = db.migrate(url)
    dossiers = [
        _dossier(SRC_T, c, a, i)
        for i, (c, a) in enumerate(
            [(T1, AG_TP), (T2, AG_TP), (T3, AG_TP), (T4, AG_TC), (T5, AG_TC), (T6, AG_TC)], 1
        )
    ] + [_dossier(SRC_Y, c, AG_YT, i) for i, c in enumerate([Y1, Y2], 7)]
    repo.upsert_dossiers(eng, dossiers, RUN1, now=T0 - timedelta(days=1))

    # -- validation: an older run, then the latest run of each source
    repo.save_validation(
        eng,
        RUN1,
        SRC_T,
        "dossier",
        [{"rule_id": "required_applicant_name", "severity": "critical", "evaluated": 6, "failed": 1}],
        [{"dossier_code": T3, "rule_id": "required_applicant_name", "severity": "critical"}],
        now=T0 - timedelta(days=1),
    )
    repo.save_validation(
        eng,
        RUN2,
        SRC_T,
        "dossier",
        [
            {"rule_id": "cccd_format", "severity": "critical", "evaluated": 6, "failed": 2},
            {"rule_id": "dossier_code_date", "severity": "warning", "evaluated": 6, "failed": 1},
            {"rule_id": "required_received_at", "severity": "critical", "evaluated": 6, "failed": 0},
        ],
        [
            {"dossier_code": T1, "rule_id": "cccd_format", "severity": "critical"},
            {"dossier_code": T4, "rule_id": "cccd_format", "severity": "critical"},
            {"dossier_code": T2, "rule_id": "dossier_code_date", "severity": "warning"},
        ],
        now=T0,
    )
    repo.save_validation(
        eng,
        RUN2,
        SRC_Y,
        "dossier",
        [
            {"rule_id": "unknown_status", "severity": "critical", "evaluated": 2, "failed": 1},
            {"rule_id": "unparseable_received_at", "severity": "critical", "evaluated": 2, "failed": 1},
        ],
        [
            {"dossier_code": Y1, "rule_id": "unknown_status", "severity": "critical"},
            {"dossier_code": Y2, "rule_id": "unparseable_received_at", "severity": "critical"},
        ],
        now=T0,
    )
    repo.set_quality_status(eng, SRC_T, {T2: "warning", T3: "valid", T5: "valid", T6: "valid"})
    repo.hold(eng, SRC_T, {T1: ["cccd_format"], T4: ["cccd_format"]}, None, RUN2, now=T0)
    repo.hold(eng, SRC_Y, {Y1: ["unknown_status"], Y2: ["unparseable_received_at"]}, None, RUN2, now=T0)

    # -- publishing: 2 published, 1 pending, 1 failed twice
    repo.mark_published(
        eng,
        [
            {"source_id": SRC_T, "dossier_code": T2, "content_hash": "h2"},
            {"source_id": SRC_T, "dossier_code": T5, "content_hash": "h5"},
        ],
        now=T0,
    )
    for k in range(2):
        repo.mark_publish_failed(
            eng, [{"source_id": SRC_T, "dossier_code": T6, "error": XSS_ERROR}], now=T0 + timedelta(minutes=k)
        )
    with eng.begin() as conn:  # a publication in flight ('pending' is written by the publish stage)
        conn.execute(
            sa.insert(s.publish_state),
            {
                "source_id": SRC_T,
                "dossier_code": T3,
                "attempts": 0,
                "status": "pending",
                "last_attempt_at": T0,
            },
        )

    # -- reconciliation with the population database (hashed IDs only)
    classes = {
        (SRC_T, T1): "matched",
        (SRC_T, T2): "matched_normalised",
        (SRC_T, T3): "name_mismatch",
        (SRC_T, T4): "not_found",
        (SRC_T, T5): "matched",
        (SRC_Y, Y1): "lookup_failed",
    }
    repo.save_matches(
        eng,
        [
            {
                "source_id": src,
                "dossier_code": c,
                "id_hash": key_hash(ID_NUMBERS[i]),
                "match_class": cls,
                "run_id": RUN2,
                "request_id": "req-1",
            }
            for i, ((src, c), cls) in enumerate(classes.items())
        ],
        now=T0,
    )
    repo.audit_lookup(
        eng,
        {
            "request_id": "req-1",
            "kind": "bulk",
            "officer": "Markerofficer",
            "purpose": "đối chiếu hồ sơ",
            "run_id": RUN2,
            "source_id": SRC_T,
            "count": 6,
            "status": "ok",
        },
        now=T0,
    )

    # -- indicators: two months per agency, plus the source scope
    month, prev = date(2026, 11, 1), date(2026, 10, 1)
    rows = [
        (month, "agency", AG_TP, "2.1_on_time", 7, 8),
        (month, "agency", AG_TC, "2.1_on_time", 3, 4),
        (month, "agency", AG_TP, "3.3_online", 5, 10),
        (month, "agency", AG_TP, "received", 1234, None),
        (month, "agency", AG_TC, "received", 5, None),
        (prev, "agency", AG_TP, "2.1_on_time", 1, 2),
        (month, "source", SRC_T, "2.1_on_time", 10, 12),
    ]
    repo.save_indicators(
        eng,
        [
            {
                "period_type": "month",
                "period_start": start,
                "scope": scope,
                "scope_code": sc,
                "indicator_id": iid,
                "numerator": n,
                "denominator": d,
                "run_id": RUN2,
            }
            for start, scope, sc, iid, n, d in rows
        ],
        now=T0,
    )

    # -- pipeline runs
    def stage(run: str, src: str, name: str, start: datetime, secs: float, status: str = "success", **counts):
        repo.start_stage(eng, run, src, name, now=start)
        repo.finish_stage(eng, run, src, name, status, now=start + timedelta(seconds=secs), **counts)

    stage(RUN1, SRC_T, "extract", T0 - timedelta(days=1), 30, records_in=5, records_out=5)
    stage(RUN2, SRC_T, "extract", T0, 42, records_in=6, records_out=6)
    stage(RUN2, SRC_T, "validate", T0 + timedelta(minutes=1), 5, quarantined=2)
    stage(RUN2, SRC_T, "reconcile", T0 + timedelta(minutes=2), 7, matched=5)
    stage(RUN2, SRC_T, "publish", T0 + timedelta(minutes=3), 4, published=2, errors=1)
    stage(RUN2, SRC_Y, "extract", T0, 3, records_in=2, records_out=2)
    stage(RUN2, SRC_Y, "validate", T0 + timedelta(minutes=1), 2, quarantined=2)
    stage(
        RUN2,
        SRC_Y,
        "publish",
        T0 + timedelta(minutes=3),
        1,
        status="failed",
        error_text="ValueError: bad record for Nguyễn Văn Zqxvmarker 7",
    )
    return eng


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1
        elif tag in ("td", "th", "p", "div", "li", "tr", "h1", "h2", "h3", "br", "option", "text"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(markup: str) -> str:
    """The visible text of an HTML page, whitespace collapsed (close to the DOM's innerText)."""
    p = _Text()
    p.feed(markup)
    return re.sub(r"\s+", " ", "".join(p.parts)).strip()
