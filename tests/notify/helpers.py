"""Shared helpers of the notification tests: a small registry, seeded runs, parsed .eml files."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from tthc.model import Dossier
from tthc.warehouse import repo

SRC = "igate_test"
OWNER = "000.00.00.H40"  # the source's own agency
JUSTICE = "000.00.12.H40"  # has its own stewards
COMMUNE = "000.30.58.H40"  # the source's stewards answer for it
CLEAN = "000.16.46.H40"  # never has a problem
EVIL_NAME = "UBND xã <script>alert('tên')</script> Đông"
EVIL_CODE = "<script>alert(1)</script>"

SOURCE_STEWARD = "steward.igate@example.gov.vn"
JUSTICE_STEWARD = "dulieu.tuphap@example.gov.vn"
ENGINEERS = ("eng.one@example.gov.vn", "eng.two@example.gov.vn")
UI_BASE = "http://airflow.example.gov.vn:8080/tthc"

# Personal data planted in every dossier: none of it may reach an e-mail.
MARKER_NAME = "Zyxwvu"
MARKER_FULL_NAME = f"Trần Văn {MARKER_NAME}"
MARKER_CCCD = "079188012345"
MARKER_PHONE = "0912345678"
MARKER_BIRTH = "1988-05-17"
MARKERS = (MARKER_NAME, MARKER_CCCD, MARKER_PHONE, MARKER_BIRTH)

REGISTRY_YAML = f"""
defaults:
  schedule: "0 1 * * *"
  owner: data-engineering
sources:
  - source_id: {SRC}
    agency_code: {OWNER}
    agency_name: Văn phòng UBND tỉnh (hệ thống thử)
    level: province
    dialect: igate
    conn_id: tthc_igate_test
    stewards: [{SOURCE_STEWARD}]
    agencies:
      - {{code: {JUSTICE}, name: Sở Tư pháp, level: department, stewards: [{JUSTICE_STEWARD}]}}
      - {{code: {COMMUNE}, name: "{EVIL_NAME}", level: commune}}
      - {{code: {CLEAN}, name: UBND xã Xuân Lâm, level: commune}}
  - source_id: igate_other
    agency_code: 000.28.32.H40
    agency_name: UBND phường Hoàng Mai
    level: commune
    dialect: igate
    conn_id: tthc_igate_other
    stewards: [steward.other@example.gov.vn]
  - source_id: igate_weekly
    agency_code: 000.07.59.H40
    agency_name: UBND xã Đông Hiếu
    level: commune
    dialect: igate
    conn_id: tthc_igate_weekly
    schedule: "0 2 * * 0"
  - source_id: igate_retired
    agency_code: 000.34.35.H40
    agency_name: UBND xã Anh Sơn
    level: commune
    dialect: igate
    conn_id: tthc_igate_retired
    active: false
"""


def dossier(code: str, agency: str | None, **kw) -> Dossier:
    base = datetime(2026, 11, 20, 9, 0)
    fields = {
        "source_id": SRC,
        "dossier_code": code,
        "agency_code": agency,
        "procedure_code": "1.001234",
        "received_at": base,
        "updated_at": base + timedelta(hours=1),
        "status": 4,
        "status_raw": "processing",
        "agency_name": "tên từ hệ thống nguồn",
        "procedure_name": "Đăng ký khai sinh",
        "applicant_name": MARKER_FULL_NAME,
        "applicant_id_number": MARKER_CCCD,
        "applicant_id_type": 1,
        "applicant_birth_date": MARKER_BIRTH,
        "applicant_sex": 1,
        "applicant_phone": MARKER_PHONE,
        "due_at": base + timedelta(days=5),
    }
    fields.update(kw)
    return Dossier(**fields)


def code(agency: str, i: int) -> str:
    return f"{agency}-261120-{i:04d}"


def seed_run(
    engine,
    run_id: str,
    issues: list[tuple[str, str | None, str, str]],
    *,
    at: datetime,
    source_id: str = SRC,
    extra_dossiers: list[tuple[str, str | None]] = (),
    stage_status: dict[str, str] | None = None,
    rule_rows: list[dict] | None = None,
) -> None:
    """Store one run: the dossiers, their issues ``(code, agency, rule, severity)``, held critical
    ones, and a pipeline_runs line per stage (3 minutes each, from ``at``)."""
    by_code: dict[str, str | None] = {c: a for c, a, _, _ in issues}
    by_code.update(dict(extra_dossiers))
    repo.upsert_dossiers(
        engine, [dossier(c, a, source_id=source_id) for c, a in by_code.items()], run_id, now=at
    )
    rules: dict[str, dict] = {}
    for c, _, rule, sev in issues:
        r = rules.setdefault(rule, {"rule_id": rule, "severity": sev, "evaluated": len(by_code), "failed": 0})
        r["failed"] += 1
    repo.save_validation(
        engine,
        run_id,
        source_id,
        "dossier",
        list(rules.values()) + list(rule_rows or []),
        [{"dossier_code": c, "rule_id": rule, "severity": sev} for c, _, rule, sev in issues],
        now=at + timedelta(minutes=4),
    )
    held: dict[str, set[str]] = {}
    for c, _, rule, sev in issues:
        if sev == "critical":
            held.setdefault(c, set()).add(rule)
    repo.hold(engine, source_id, held, None, run_id, now=at + timedelta(minutes=4))
    seed_stages(engine, run_id, source_id, at, stage_status or {}, pulled=len(by_code), held=len(held))


STAGES = ("extract", "validate", "reconcile", "publish", "indicators")


def seed_stages(
    engine,
    run_id: str,
    source_id: str,
    at: datetime,
    status: dict[str, str],
    *,
    pulled: int = 10,
    held: int = 0,
) -> None:
    """Stage lines of one run: each 3 minutes; ``status`` overrides (``running`` leaves it open,
    a missing stage after a failed one is not written)."""
    t = at
    for st in STAGES:
        s = status.get(st, "success")
        if s == "absent":
            break
        repo.start_stage(engine, run_id, source_id, st, now=t)
        t = t + timedelta(minutes=3)
        if s == "running":
            break
        counts = {
            "extract": {"records_in": pulled, "records_out": pulled},
            "validate": {"records_in": pulled, "records_out": pulled - held, "quarantined": held},
            "reconcile": {"records_in": pulled - held, "matched": pulled - held},
            "publish": {"records_in": pulled - held, "published": pulled - held},
            "indicators": {"records_in": pulled},
        }[st]
        if s == "failed":
            repo.finish_stage(
                engine, run_id, source_id, st, "failed", error_text="ConnectionError: portal", now=t
            )
            break
        repo.finish_stage(engine, run_id, source_id, st, "success", now=t, **counts)


# ---- reading what the sink stored ----------------------------------------------------------------


@dataclass
class Mail:
    path: Path
    msg: EmailMessage
    subject: str
    to: list[str]
    cc: list[str]
    rcpt: list[str]
    text: str
    html: str
    attachments: dict[str, bytes] = field(default_factory=dict)

    def csv_rows(self) -> list[dict[str, str]]:
        (content,) = self.attachments.values()
        return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def _split(v: str | None) -> list[str]:
    return [a.strip() for a in (v or "").split(",") if a.strip()]


def _content(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    return part.get_content() if part is not None else ""


def read_mails(sink) -> list[Mail]:
    out = []
    for path in sink.files():
        from sandbox.smtp_sink import read_eml

        msg = read_eml(path)
        atts = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
        out.append(
            Mail(
                path=path,
                msg=msg,
                subject=str(msg["Subject"]),
                to=_split(msg["To"]),
                cc=_split(msg["Cc"]),
                rcpt=_split(msg["X-Sandbox-Rcpt-To"]),
                text=_content(msg, "plain"),
                html=_content(msg, "html"),
                attachments=atts,
            )
        )
    return out


def everything_in(path: Path) -> str:
    """The raw file plus every part decoded (base64 / quoted-printable hide text from a grep)."""
    from sandbox.smtp_sink import read_eml

    raw = path.read_bytes()
    chunks = [raw.decode("utf-8", errors="replace")]
    msg = read_eml(path)
    for k, v in msg.items():
        chunks.append(f"{k}: {v}")
    for part in msg.walk():
        payload = part.get_payload(decode=True)
        if payload:
            chunks.append(payload.decode("utf-8", errors="replace"))
    return "\n".join(chunks)


def smtp_conn(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "tthc-sync@example.gov.vn"},
        }
    )
