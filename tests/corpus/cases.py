"""The bad-input corpus: what agency systems and the population database can send that is wrong, and
what the pipeline must make of it (issue #7, "Production and scale").

Each :class:`Case` names its category, the dialect it arrives through, how to build the bad input and
the outcome it must end in:

* :class:`Held` — the record is stored as data and held in quarantine with a named rule (a record
  without a usable code cannot be keyed: its reasons are in ``dossier_issues`` under its row);
* :class:`Failed` — the source's stage fails with a readable message naming the problem (no
  traceback, no personal data) while every other source finishes;
* :class:`Rejected` — the file drop rejects the file whole, with a reason in ``file_manifest``;
* :class:`LookupFailed` — population-database answers that must not be parsed end as
  ``lookup_failed`` (retried next night), never expanded;
* :class:`Loaded` / :class:`Warned` — garbage the pipeline absorbs without loss (a lying
  ``totalPages``, an exact copy, UTF-16 without BOM) or publishes with a warning.

Record-level cases (``bad_records``) join their dialect's shared source, next to good records;
source-level cases (``source``) get a source of their own. ``tests/e2e/test_bad_input_corpus.py``
runs all of them in one night with healthy control sources.
"""

from __future__ import annotations

import io
import json
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.corpus.fake_http import Request, Response, igate_handler, onegate_handler
from tests.corpus.records import (
    DELETE,
    NIGHT,
    PLANTED_CCCD,
    PLANTED_NAME,
    csv_text,
    filedrop_row,
    igate_record,
    iso,
    og_time,
    onegate_record,
    sqldb_row,
    with_changes,
)

#: Every category of issue #7's list; each must have cases (``test_corpus_covers_every_category``).
CATEGORIES: dict[str, str] = {
    "broken_json": "broken JSON pages: truncated body, HTML with 200, wrong envelope, lying totals",
    "wrong_types": "wrong JSON/SQL types: string fee, number as name, object as date, boolean status",
    "huge_fields": "huge fields: a 5 MB name or code, 100k attachments, an oversized CSV cell",
    "control_chars": "control characters: NUL, ESC, bidi overrides in names and codes",
    "sql_injection": "SQL-injection strings in names, codes, view values and the view name",
    "html_markup": "HTML / <script> in names and codes",
    "xml_entities": "entity expansion and external entities in population-database SOAP answers",
    "wrong_encoding": "wrong encodings: BOM lying, invalid UTF-8, UTF-16 without BOM, mojibake",
    "future_dates": "receipt or birth in the future",
    "negative_fees": "negative fees",
    "unknown_codes": "unknown status, agency, channel, payment codes",
    "conflicting_duplicates": "one dossier code with two different contents in one batch",
    "exact_duplicates": "the same record twice",
    "missing_fields": "missing required fields",
    "empty_input": "empty pages and files",
    "error_answers": "error answers: onegate error_code with HTTP 200, 401, 503, 400 echoing data",
    "paging": "malformed or repeating cursors",
    "file_format": "CSV with a wrong header, ragged rows, XLSX that is not a zip, .xls, NUL bytes",
    "database": "a department database without the view, with a column missing, not a database",
}


# ---- outcomes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Held:
    """Quarantined with (at least) ``reasons``; ``codeless``: no usable code, reasons per row.
    ``stored``: warehouse ``dossiers`` columns that must hold exactly these values (stored as data)."""

    reasons: tuple[str, ...]
    codeless: bool = False
    stored: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Failed:
    """The stage fails; its recorded ``error_text`` contains ``text``."""

    stage: str
    text: str


@dataclass(frozen=True)
class Rejected:
    """The file drop rejected ``file`` with a reason containing ``reason``."""

    file: str
    reason: str


@dataclass(frozen=True)
class LookupFailed:
    """Every applicant of the source ends ``lookup_failed``; the audit shows ``error``."""

    error: str


@dataclass(frozen=True)
class Loaded:
    """Absorbed without loss: ``count`` records of the case stored, valid and published."""

    count: int = 1
    stored: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Warned:
    """Published, with the warning ``rule`` recorded."""

    rule: str


Outcome = Held | Failed | Rejected | LookupFailed | Loaded | Warned


# ---- inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ctx:
    """What a case's builder knows: its code (record-level), the agency of its source, the good
    records' codes (source-level), its fake endpoint and a scratch folder."""

    case_id: str
    agency: str
    code: str
    good_codes: tuple[str, ...]
    fake_url: str
    folder: Path
    good_base: int = 0  # good record numbers (their applicants) start here: unique per source

    def good_igate(self) -> list[dict[str, Any]]:
        return [igate_record(c, self.agency, n=self.good_base + i) for i, c in enumerate(self.good_codes)]

    def good_onegate(self) -> list[dict[str, Any]]:
        return [onegate_record(c, self.agency, n=self.good_base + i) for i, c in enumerate(self.good_codes)]

    def good_sqldb(self) -> list[dict[str, Any]]:
        return [sqldb_row(c, self.agency, n=self.good_base + i) for i, c in enumerate(self.good_codes)]


@dataclass(frozen=True)
class HttpSource:
    """A source served by the fake server (igate or onegate dialect)."""

    handler: Any  # fake_http.Handler


@dataclass(frozen=True)
class SqlSource:
    """A department database: ``url`` (SQLAlchemy) and the connection's ``view``."""

    url: str
    view: str = "ho_so_tthc"


@dataclass(frozen=True)
class FolderSource:
    """A file drop whose connection points at ``folder`` (which may not exist)."""

    folder: Path


@dataclass(frozen=True)
class LgspSource:
    """An igate source of good records whose reconciliation asks a hostile population database."""

    message: Callable[[Ctx, Request], str]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    dialect: str  # igate | onegate | sqldb | filedrop | lgsp
    description: str
    expect: Outcome
    #: record-level: the bad records (igate/onegate JSON, sqldb rows) or files (file drop: name → bytes)
    bad_records: Callable[[Ctx], Any] | None = None
    #: source-level: this case's own source
    source: Callable[[Ctx], Any] | None = None

    @property
    def own_source(self) -> bool:
        return self.source is not None


CASES: list[Case] = []


def _add(case: Case) -> None:
    assert case.category in CATEGORIES, case.category
    assert (case.bad_records is None) != (case.source is None), case.id
    assert all(c.id != case.id for c in CASES), case.id
    CASES.append(case)


# ---- record-level helpers -------------------------------------------------------------------------
_BASE = {"igate": igate_record, "onegate": onegate_record, "sqldb": sqldb_row}


def rec(
    dialect: str,
    id: str,  # noqa: A002 - the case's id
    category: str,
    description: str,
    expect: Outcome,
    changes: dict[str, Any] | None = None,
    *,
    build: Callable[[Ctx], list[Any]] | None = None,
) -> None:
    """A record-level case: one record of ``dialect`` with ``changes`` (or ``build(ctx)``)."""

    def default(ctx: Ctx) -> list[Any]:
        return [with_changes(_BASE[dialect](ctx.code, ctx.agency), changes or {})]

    _add(Case(id, category, dialect, description, expect, bad_records=build or default))


def csv_file(
    id: str,  # noqa: A002
    category: str,
    description: str,
    expect: Outcome,
    changes: dict[str, str] | None = None,
    *,
    build: Callable[[Ctx], dict[str, bytes]] | None = None,
) -> None:
    """A file-drop case: ``<id>.csv`` holding one row with ``changes`` (or the files of ``build``)."""

    def default(ctx: Ctx) -> dict[str, bytes]:
        row = {**filedrop_row(ctx.code, ctx.agency), **(changes or {})}
        return {f"{ctx.case_id}.csv": csv_text([row]).encode("utf-8")}

    _add(Case(id, category, "filedrop", description, expect, bad_records=build or default))


def page(
    dialect: str,
    id: str,  # noqa: A002
    category: str,
    description: str,
    expect: Outcome,
    respond: Callable[[dict[str, Any], Request, Ctx], Response],
    *,
    token: Callable[[Request], Response] | None = None,
) -> None:
    """A source-level HTTP case: the source's good records, answered through ``respond``."""

    def source(ctx: Ctx) -> HttpSource:
        if dialect == "igate":
            return HttpSource(
                igate_handler(ctx.good_igate(), page=lambda env, req: respond(env, req, ctx), token=token)
            )
        return HttpSource(onegate_handler(ctx.good_onegate(), page=lambda body, req: respond(body, req, ctx)))

    _add(Case(id, category, dialect, description, expect, source=source))


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    f"<body><h1>Lỗi hệ thống</h1><p>Không tra cứu được hồ sơ của {PLANTED_NAME}</p></body></html>"
)

# ==== broken JSON pages =============================================================================
page(
    "igate",
    "igate_truncated_body",
    "broken_json",
    "the JSON page is cut in the middle (200, application/json)",
    Failed("extract", "dossier page is not JSON"),
    lambda env, req, ctx: Response(
        body=_json_text(env)[: len(_json_text(env)) * 2 // 3].encode("utf-8"),
        headers={"Content-Type": "application/json"},
    ),
)
page(
    "igate",
    "igate_html_error_page_200",
    "broken_json",
    "a proxy's HTML error page (naming the applicant) answered with 200",
    Failed("extract", "dossier page is not JSON"),
    lambda env, req, ctx: Response(
        body=HTML_ERROR_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
    ),
)
page(
    "igate",
    "igate_wrong_envelope",
    "broken_json",
    'another vendor\'s envelope: {"data": [...], "total": n}',
    Failed("extract", "dossier page without a content list"),
    lambda env, req, ctx: Response(body={"data": env["content"], "total": env["totalElements"]}),
)
page(
    "igate",
    "igate_content_not_a_list",
    "broken_json",
    '"content" is an object keyed by position',
    Failed("extract", "dossier page without a content list"),
    lambda env, req, ctx: Response(
        body={**env, "content": {str(i): r for i, r in enumerate(env["content"])}}
    ),
)
page(
    "igate",
    "igate_page_is_a_list",
    "broken_json",
    "the page is a bare JSON list of records",
    Failed("extract", "dossier page without a content list"),
    lambda env, req, ctx: Response(body=env["content"]),
)
page(
    "igate",
    "igate_total_pages_lying",
    "broken_json",
    "totalPages says 0 (and last=true) while the page holds records: the client does not trust it",
    Loaded(count=3),
    lambda env, req, ctx: Response(body={**env, "totalPages": 0, "last": True}),
)
page(
    "igate",
    "igate_total_elements_lying",
    "broken_json",
    "totalElements says 1000 while 3 records exist: the window never adds up",
    Failed("extract", "totalElements does not match"),
    lambda env, req, ctx: Response(body={**env, "totalElements": 1000, "totalPages": 2}),
)
page(
    "igate",
    "igate_empty_page_lying",
    "broken_json",
    "an empty first page while totalElements says 3 records match (records lost upstream)",
    Failed("extract", "empty first page although totalElements"),
    lambda env, req, ctx: Response(body={**env, "content": []}),
)
page(
    "igate",
    "igate_token_html",
    "broken_json",
    "the token endpoint answers an HTML login page with 200",
    Failed("extract", "token answer is not JSON"),
    lambda env, req, ctx: Response(body=env),
    token=lambda req: Response(
        body="<html><body>Đăng nhập</body></html>", headers={"Content-Type": "text/html"}
    ),
)
page(
    "igate",
    "igate_token_without_access_token",
    "broken_json",
    "the token answer lacks access_token",
    Failed("extract", "token answer without access_token"),
    lambda env, req, ctx: Response(body=env),
    token=lambda req: Response(body={"token_type": "bearer", "expires_in": 300}),
)
rec(
    "igate",
    "igate_records_not_objects",
    "broken_json",
    "content items that are not objects (a number, a string, null, a list) next to good records",
    Held(("unparseable_record",), codeless=True),
    build=lambda ctx: [42, f"{ctx.code};{PLANTED_NAME}", None, [PLANTED_CCCD]],
)
page(
    "onegate",
    "onegate_html_error_page_200",
    "broken_json",
    "an HTML error page with 200",
    Failed("extract", "onegate page is not JSON"),
    lambda body, req, ctx: Response(body=HTML_ERROR_PAGE, headers={"Content-Type": "text/html"}),
)
page(
    "onegate",
    "onegate_truncated_body",
    "broken_json",
    "the JSON page is cut in the middle",
    Failed("extract", "onegate page is not JSON"),
    lambda body, req, ctx: Response(
        body=_json_text(body)[:-40].encode("utf-8"), headers={"Content-Type": "application/json"}
    ),
)
page(
    "onegate",
    "onegate_data_not_a_list",
    "broken_json",
    '"data" is one object instead of a list',
    Failed("extract", "onegate page without a data list"),
    lambda body, req, ctx: Response(body={**body, "data": body["data"][0]}),
)
page(
    "onegate",
    "onegate_page_is_a_list",
    "broken_json",
    "the page is a bare JSON list",
    Failed("extract", "onegate page is not a JSON object"),
    lambda body, req, ctx: Response(body=body["data"]),
)
page(
    "onegate",
    "onegate_error_code_missing",
    "broken_json",
    "the envelope has no error_code",
    Failed("extract", "onegate page without error_code"),
    lambda body, req, ctx: Response(body={k: v for k, v in body.items() if k != "error_code"}),
)

# ==== error answers ==================================================================================
page(
    "onegate",
    "onegate_error_code_with_200",
    "error_answers",
    'error_code "2" with HTTP 200, its message echoing an ID number and a name',
    Failed("extract", "onegate refused the request"),
    lambda body, req, ctx: Response(
        body={"error_code": "2", "message": f"Tham số sai: {PLANTED_CCCD} {PLANTED_NAME}", "data": None}
    ),
)
page(
    "onegate",
    "onegate_auth_error_code_with_200",
    "error_answers",
    'error_code "1" (API key refused) with HTTP 200',
    Failed("extract", "onegate refused the API key"),
    lambda body, req, ctx: Response(body={"error_code": "1", "message": "API key không hợp lệ", "data": []}),
)
page(
    "igate",
    "igate_503_forever",
    "error_answers",
    "503 with Retry-After: 0 on every attempt",
    Failed("extract", "service unavailable"),
    lambda env, req, ctx: Response(
        503, HTML_ERROR_PAGE, headers={"Retry-After": "0", "Content-Type": "text/html"}
    ),
)
page(
    "igate",
    "igate_401_after_reauth",
    "error_answers",
    "401 on the dossier list even with a fresh token",
    Failed("extract", "not authorised"),
    lambda env, req, ctx: Response(401, {"error": "invalid_token"}),
)
page(
    "igate",
    "igate_400_echoing_data",
    "error_answers",
    "a Spring 400 whose message quotes an ID number and a name",
    Failed("extract", "request refused"),
    lambda env, req, ctx: Response(
        400,
        {"status": 400, "error": "Bad Request", "message": f"Hồ sơ {PLANTED_CCCD} của {PLANTED_NAME} lỗi"},
    ),
)


# ==== paging =========================================================================================
def _cursor_repeats(body: dict[str, Any], req: Request, ctx: Ctx) -> Response:
    return Response(body={**body, "next_cursor": "trang-2"})


def _cursor_object(body: dict[str, Any], req: Request, ctx: Ctx) -> Response:
    if "cursor" in req.query:  # what the client made of the object: the server cannot read it
        return Response(body={"error_code": "3", "message": "cursor không hợp lệ", "data": None})
    return Response(body={**body, "next_cursor": {"offset": 3, "ts": og_time(NIGHT)}})


page(
    "onegate",
    "onegate_cursor_repeats",
    "paging",
    "the server hands out the same next_cursor forever",
    Failed("extract", "same cursor twice"),
    _cursor_repeats,
)
page(
    "onegate",
    "onegate_cursor_is_an_object",
    "paging",
    "next_cursor is a JSON object; sent back, the server refuses it (error_code 3)",
    Failed("extract", "error_code=3"),
    _cursor_object,
)

# ==== wrong types ====================================================================================
rec(
    "igate",
    "igate_fee_string",
    "wrong_types",
    "procedure.fee is words",
    Held(("unparseable_fee",)),
    {"procedure.fee": "tám nghìn đồng"},
)
rec(
    "igate",
    "igate_name_is_a_number",
    "wrong_types",
    "applicant.fullname is a JSON number",
    Held(("implausible_applicant_name",)),
    {"applicant.fullname": 123456},
)
rec(
    "igate",
    "igate_date_is_an_object",
    "wrong_types",
    "acceptedDate is an object",
    Held(("unparseable_received_at",)),
    {"acceptedDate": {"date": "2026-10-22", "offset": "+07:00"}},
)
rec(
    "igate",
    "igate_status_boolean",
    "wrong_types",
    "status is JSON true (not status 1)",
    Held(("unknown_status",)),
    {"status": True},
)
rec(
    "igate",
    "igate_applicant_is_a_list",
    "wrong_types",
    "applicant is a list",
    Held(("required_applicant_name",)),
    {"applicant": [PLANTED_NAME, PLANTED_CCCD]},
)
rec(
    "igate",
    "igate_attachments_string",
    "wrong_types",
    "attachments is a string",
    Held(("unparseable_attachments",)),
    {"attachments": "Tờ khai; Bản sao"},
)
rec(
    "onegate",
    "onegate_status_boolean",
    "wrong_types",
    "TrangThaiHoSo is JSON true",
    Held(("unknown_status",)),
    {"TrangThaiHoSo": True},
)
rec(
    "onegate",
    "onegate_fee_object",
    "wrong_types",
    "LePhi is an object",
    Held(("unparseable_fee",)),
    {"LePhi": {"SoTien": 8000}},
)
rec(
    "onegate",
    "onegate_name_is_a_list",
    "wrong_types",
    "ChuHoSo is a list",
    Held(("unparseable_applicant_name",)),
    {"ChuHoSo": ["Trần", "Thị", "Bí Mật"]},
)
rec(
    "onegate",
    "onegate_receipt_is_a_short_number",
    "wrong_types",
    "NgayTiepNhan is the number 20261022",
    Held(("unparseable_received_at",)),
    {"NgayTiepNhan": 20261022},
)
rec(
    "sqldb",
    "sqldb_fee_text",
    "wrong_types",
    "le_phi holds words (SQLite keeps any type)",
    Held(("unparseable_fee",)),
    {"le_phi": "tám nghìn"},
)
rec(
    "sqldb",
    "sqldb_status_fraction",
    "wrong_types",
    "trang_thai is 4.5",
    Held(("unknown_status",)),
    {"trang_thai": 4.5},
)

# ==== huge fields ====================================================================================
FIVE_MB = 5 * 1024 * 1024
rec(
    "igate",
    "igate_name_5mb",
    "huge_fields",
    "a 5 MB applicant name",
    Held(("text_too_long",)),
    build=lambda ctx: [
        with_changes(igate_record(ctx.code, ctx.agency), {"applicant.fullname": "Trần " * (FIVE_MB // 5)})
    ],
)
rec(
    "igate",
    "igate_100k_attachments",
    "huge_fields",
    "100,000 attachments",
    Held(("too_many_attachments",)),
    build=lambda ctx: [
        with_changes(
            igate_record(ctx.code, ctx.agency),
            {"attachments": [{"name": "Tờ khai", "digitized": True, "reused": False}] * 100_000},
        )
    ],
)
rec(
    "igate",
    "igate_code_5mb",
    "huge_fields",
    "a 5 MB dossier code (longer than any code column)",
    Held(("unparseable_dossier_code",), codeless=True),
    build=lambda ctx: [with_changes(igate_record(ctx.code, ctx.agency), {"code": ctx.code + "9" * FIVE_MB})],
)
rec(
    "onegate",
    "onegate_procedure_name_5mb",
    "huge_fields",
    "a 5 MB procedure name",
    Held(("text_too_long",)),
    build=lambda ctx: [
        with_changes(onegate_record(ctx.code, ctx.agency), {"TenTTHC": "Cấp phép " * (FIVE_MB // 9)})
    ],
)
rec(
    "sqldb",
    "sqldb_name_1mb",
    "huge_fields",
    "a 1 MB applicant name in the view",
    Held(("text_too_long",)),
    build=lambda ctx: [{**sqldb_row(ctx.code, ctx.agency), "ho_ten_chu_ho_so": "Trần Thị " * 120_000}],
)
csv_file(
    "filedrop_name_2000_chars",
    "huge_fields",
    "a 2,000-character name in a CSV cell",
    Held(("text_too_long",)),
    {"Họ tên người nộp": "Trần Thị Bí Mật " * 125},
)
csv_file(
    "filedrop_cell_over_csv_limit",
    "huge_fields",
    "a 300 KB CSV cell (over the csv module's field limit)",
    Rejected("filedrop_cell_over_csv_limit.csv", "ô dữ liệu dài hơn"),
    {"Tên thủ tục": "x" * 300_000},
)

# ==== control characters =============================================================================
rec(
    "igate",
    "igate_name_nul",
    "control_chars",
    "a NUL inside the applicant name",
    Held(("invalid_characters",), stored=(("applicant_name", "Trần Thị\ufffd Bí Mật"),)),
    {"applicant.fullname": "Trần Thị\x00 Bí Mật"},
)
rec(
    "igate",
    "igate_name_terminal_escape",
    "control_chars",
    "ANSI escape sequences in the name",
    Held(("invalid_characters",)),
    {"applicant.fullname": "\x1b[2J\x1b[31mTrần Thị Bí Mật\x1b[0m"},
)
rec(
    "igate",
    "igate_code_bidi_override",
    "control_chars",
    "a right-to-left override inside the dossier code",
    Held(("dossier_code_format",)),
    build=lambda ctx: [igate_record(ctx.code[:14] + "\u202e" + ctx.code[14:], ctx.agency)],
)
rec(
    "onegate",
    "onegate_name_bidi",
    "control_chars",
    "bidi isolate/override characters in ChuHoSo",
    Held(("invalid_characters",)),
    {"ChuHoSo": "Trần Thị \u2067\u202eBí Mật\u2069"},
)
rec(
    "onegate",
    "onegate_code_nul",
    "control_chars",
    "a NUL at the end of MaHoSo",
    Held(("dossier_code_format",)),
    build=lambda ctx: [onegate_record(ctx.code + "\x00", ctx.agency)],
)
rec(
    "sqldb",
    "sqldb_name_control_chars",
    "control_chars",
    "BEL and ESC in ho_ten_chu_ho_so",
    Held(("invalid_characters",)),
    {"ho_ten_chu_ho_so": "Trần\x07 Thị\x1b Bí Mật"},
)
csv_file(
    "filedrop_name_escape",
    "control_chars",
    "an ESC inside a CSV name cell",
    Held(("invalid_characters",)),
    {"Họ tên người nộp": "Trần Thị\x1b Bí Mật"},
)

# ==== SQL injection ==================================================================================
SQLI_NAME = "Trần Thị Bí Mật'); DROP TABLE dossiers; --"
rec(
    "igate",
    "igate_name_sql_injection",
    "sql_injection",
    "DROP TABLE in the applicant name",
    Held(("implausible_applicant_name",), stored=(("applicant_name", SQLI_NAME),)),
    {"applicant.fullname": SQLI_NAME},
)
rec(
    "igate",
    "igate_code_sql_injection",
    "sql_injection",
    "DROP TABLE appended to the dossier code",
    Held(("dossier_code_format",)),
    build=lambda ctx: [igate_record(ctx.code + "'; DROP TABLE quarantine; --", ctx.agency)],
)
rec(
    "onegate",
    "onegate_agency_sql_injection",
    "sql_injection",
    "' OR '1'='1 as MaDonVi",
    Held(("agency_code_format",), stored=(("agency_code", "' OR '1'='1"),)),
    {"MaDonVi": "' OR '1'='1"},
)
rec(
    "sqldb",
    "sqldb_values_sql_injection",
    "sql_injection",
    "injection strings in the view's name and procedure columns",
    Held(
        ("implausible_applicant_name", "procedure_code_format"),
        stored=(("applicant_name", "x'); DELETE FROM ho_so_tthc; --"),),
    ),
    {"ho_ten_chu_ho_so": "x'); DELETE FROM ho_so_tthc; --", "ma_tthc": "1.001234' OR 1=1 --"},
)
csv_file(
    "filedrop_name_sql_injection",
    "sql_injection",
    "Robert'); DROP TABLE ... in a CSV name cell",
    Held(("implausible_applicant_name",)),
    {"Họ tên người nộp": "Robert'); DROP TABLE dossiers;--"},
)


def _sql_view_name_injection(ctx: Ctx) -> SqlSource:
    path = ctx.folder / "dept.db"
    sqlite_view(path, ctx.good_sqldb())
    return SqlSource(f"sqlite:///{path}", view="ho_so_tthc; DROP TABLE ho_so_tthc")


_add(
    Case(
        "sqldb_view_name_injection",
        "sql_injection",
        "sqldb",
        "the connection's view name carries a DROP TABLE",
        Failed("extract", "view must be an identifier"),
        source=_sql_view_name_injection,
    )
)

# ==== HTML / script ==================================================================================
SCRIPT_NAME = "<script>alert('Trần Thị Bí Mật')</script>"
rec(
    "igate",
    "igate_name_script",
    "html_markup",
    "<script> as the applicant name",
    Held(("implausible_applicant_name",), stored=(("applicant_name", SCRIPT_NAME),)),
    {"applicant.fullname": SCRIPT_NAME},
)
rec(
    "igate",
    "igate_code_script",
    "html_markup",
    "<script> as the dossier code (shown on the dashboard)",
    Held(("dossier_code_format",)),
    build=lambda ctx: [igate_record(f"<script>alert('{ctx.code}')</script>", ctx.agency)],
)
rec(
    "onegate",
    "onegate_name_img_onerror",
    "html_markup",
    "an <img onerror> tag as ChuHoSo",
    Held(("implausible_applicant_name",)),
    {"ChuHoSo": '<img src=x onerror="alert(1)">'},
)
csv_file(
    "filedrop_name_html",
    "html_markup",
    "HTML tags in a CSV name cell",
    Held(("implausible_applicant_name",)),
    {"Họ tên người nộp": "<b>Trần</b> Thị <i>Bí Mật</i>"},
)

# ==== XML entities in the population database's SOAP answers ========================================
_SOAP_HEAD = '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
_SOAP_TAIL = "</soap:Body></soap:Envelope>"


def _soap(ho: str, doctype: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{doctype}{_SOAP_HEAD}'
        '<CongdanCollection xmlns="http://www.mic.gov.vn/dancu/1.0"><CongDan>'
        f"<SoDinhDanh>{PLANTED_CCCD}</SoDinhDanh><HoVaTen><Ho>{ho}</Ho><ChuDem>Thị</ChuDem><Ten>Mật</Ten></HoVaTen>"
        "<GioiTinh>2</GioiTinh><NgayThangNamSinh><NgayThangNam>19850304</NgayThangNam></NgayThangNamSinh>"
        f"</CongDan></CongdanCollection>{_SOAP_TAIL}"
    )


def _billion_laughs() -> str:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return _soap("&lol9;", f"<!DOCTYPE soap:Envelope [{''.join(ents)}]>")


def _lgsp(id: str, description: str, expect: Outcome, message: Callable[[Ctx, Request], str]) -> None:  # noqa: A002
    _add(Case(id, "xml_entities", "lgsp", description, expect, source=lambda ctx: LgspSource(message)))


_lgsp(
    "lgsp_billion_laughs",
    "nested entity expansion (10^9 'lol')",
    LookupFailed("UnsafeXmlError"),
    lambda ctx, req: _billion_laughs(),
)
_lgsp(
    "lgsp_xxe_file",
    "an external entity reading file:///etc/passwd",
    LookupFailed("UnsafeXmlError"),
    lambda ctx, req: _soap("&xxe;", '<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'),
)
_lgsp(
    "lgsp_external_dtd",
    "a DOCTYPE pointing at an external DTD on the network",
    LookupFailed("UnsafeXmlError"),
    lambda ctx, req: _soap("Trần", f'<!DOCTYPE soap:Envelope SYSTEM "{ctx.fake_url}/evil.dtd">'),
)
_lgsp(
    "lgsp_parameter_entity",
    "a parameter entity pulling a remote DTD",
    LookupFailed("UnsafeXmlError"),
    lambda ctx, req: _soap(
        "&leak;", f'<!DOCTYPE soap:Envelope [<!ENTITY % remote SYSTEM "{ctx.fake_url}/evil.dtd"> %remote;]>'
    ),
)
_lgsp(
    "lgsp_quadratic_blowup",
    "one 100 kB entity referenced 1,000 times",
    LookupFailed("UnsafeXmlError"),
    lambda ctx, req: _soap("&a;" * 1000, f'<!DOCTYPE soap:Envelope [<!ENTITY a "{"a" * 100_000}">]>'),
)
_lgsp(
    "lgsp_malformed_xml",
    "a SOAP answer cut in the middle",
    LookupFailed("ProtocolError"),
    lambda ctx, req: _soap("Trần")[:-60],
)
_lgsp(
    "lgsp_soap_fault",
    "a SOAP Fault instead of the collection",
    LookupFailed("ProtocolError"),
    lambda ctx, req: (
        f"{_SOAP_HEAD}<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{PLANTED_CCCD}</faultstring></soap:Fault>{_SOAP_TAIL}"
    ),
)


# ==== wrong encodings ================================================================================
def _rows(ctx: Ctx, **changes: str) -> list[dict[str, str]]:
    return [{**filedrop_row(ctx.code, ctx.agency), **changes}]


def _cp1258_behind_utf8_bom(ctx: Ctx) -> dict[str, bytes]:
    text = csv_text(_rows(ctx))
    return {
        f"{ctx.case_id}.csv": b"\xef\xbb\xbf"
        + unicodedata.normalize("NFD", text).encode("cp1258", errors="replace")
    }


def _invalid_utf8(ctx: Ctx) -> dict[str, bytes]:
    data = csv_text(_rows(ctx)).encode("utf-8")
    i = data.index(PLANTED_NAME.encode("utf-8"))
    return {f"{ctx.case_id}.csv": data[: i + 2] + b"\xc3\x28\xa0\xa1\xff" + data[i + 2 :]}


def _utf16_without_bom(ctx: Ctx) -> dict[str, bytes]:
    return {f"{ctx.case_id}.csv": csv_text(_rows(ctx), delimiter="\t").encode("utf-16-le")}


def _utf16_cut(ctx: Ctx) -> dict[str, bytes]:
    data = b"\xff\xfe" + csv_text(_rows(ctx), delimiter="\t").encode("utf-16-le")
    return {f"{ctx.case_id}.csv": data[:-1]}


def _mojibake_in_utf8(ctx: Ctx) -> dict[str, bytes]:
    garbled = PLANTED_NAME.encode("utf-8").decode("cp1252", errors="replace")
    return {f"{ctx.case_id}.csv": csv_text(_rows(ctx, **{"Họ tên người nộp": garbled})).encode("utf-8")}


csv_file(
    "filedrop_cp1258_behind_utf8_bom",
    "wrong_encoding",
    "Windows-1258 bytes after a UTF-8 BOM",
    Rejected("filedrop_cp1258_behind_utf8_bom.csv", "utf-8-sig"),
    build=_cp1258_behind_utf8_bom,
)
csv_file(
    "filedrop_invalid_utf8_bytes",
    "wrong_encoding",
    "invalid UTF-8 sequences inside a UTF-8 file",
    Rejected("filedrop_invalid_utf8_bytes.csv", "bảng mã"),
    build=_invalid_utf8,
)
csv_file(
    "filedrop_utf16_without_bom",
    "wrong_encoding",
    "UTF-16 LE, tab-separated, without BOM: detected and read",
    Loaded(stored=(("applicant_name", PLANTED_NAME),)),
    build=_utf16_without_bom,
)
csv_file(
    "filedrop_utf16_truncated",
    "wrong_encoding",
    "UTF-16 with BOM cut at an odd byte",
    Rejected("filedrop_utf16_truncated.csv", "utf-16"),
    build=_utf16_cut,
)
csv_file(
    "filedrop_mojibake_name",
    "wrong_encoding",
    "a UTF-8 file whose name was double-encoded: repaired",
    Loaded(stored=(("applicant_name", PLANTED_NAME),)),
    build=_mojibake_in_utf8,
)
rec(
    "sqldb",
    "sqldb_name_replacement_chars",
    "wrong_encoding",
    "a name already destroyed upstream (U+FFFD)",
    Held(("invalid_characters",)),
    {"ho_ten_chu_ho_so": "Tr\ufffd\ufffdn Th\ufffd B\ufffd M\ufffdt"},
)
rec(
    "sqldb",
    "sqldb_name_invalid_utf8_blob",
    "wrong_encoding",
    "the name as a BLOB of invalid UTF-8 with a NUL",
    Held(("invalid_characters",)),
    {"ho_ten_chu_ho_so": b"Tr\xe1\xba\xa7n Th\xff\x00 B\xed"},
)

# ==== future dates ===================================================================================
FAR_FUTURE = datetime(2099, 1, 1, 8, 0, 0)
rec(
    "igate",
    "igate_received_in_2099",
    "future_dates",
    "acceptedDate in 2099",
    Held(("received_in_future",)),
    {"acceptedDate": iso(FAR_FUTURE), "appointmentDate": iso(FAR_FUTURE + timedelta(days=7))},
)
rec(
    "igate",
    "igate_birth_in_future",
    "future_dates",
    "birthDate in 2090",
    Held(("birth_date_in_future",)),
    {"applicant.birthDate": "2090-05-06"},
)
rec(
    "onegate",
    "onegate_received_next_month",
    "future_dates",
    "NgayTiepNhan 45 days after the night",
    Held(("received_in_future",)),
    {"NgayTiepNhan": og_time(NIGHT + timedelta(days=45)), "NgayHenTra": og_time(NIGHT + timedelta(days=52))},
)
rec(
    "sqldb",
    "sqldb_birth_in_future",
    "future_dates",
    "ngay_sinh in 2091",
    Held(("birth_date_in_future",)),
    {"ngay_sinh": "2091-01-01"},
)
csv_file(
    "filedrop_received_in_2099",
    "future_dates",
    "Ngày tiếp nhận in 2099",
    Held(("received_in_future",)),
    {"Ngày tiếp nhận": "01/01/2099 08:00", "Ngày hẹn trả": "08/01/2099 17:00"},
)

# ==== negative fees ==================================================================================
rec(
    "igate",
    "igate_fee_negative",
    "negative_fees",
    "fee -50000",
    Held(("unparseable_fee",)),
    {"procedure.fee": -50000},
)
rec(
    "onegate",
    "onegate_fee_negative_text",
    "negative_fees",
    'LePhi "-8000"',
    Held(("unparseable_fee",)),
    {"LePhi": "-8000"},
)
rec("sqldb", "sqldb_fee_negative", "negative_fees", "le_phi -5", Held(("unparseable_fee",)), {"le_phi": -5})
csv_file(
    "filedrop_fee_negative",
    "negative_fees",
    "Lệ phí -20000",
    Held(("unparseable_fee",)),
    {"Lệ phí": "-20000"},
)

# ==== unknown codes ==================================================================================
rec(
    "igate",
    "igate_status_unknown_word",
    "unknown_codes",
    'status "archived"',
    Held(("unknown_status",)),
    {"status": "archived"},
)
rec(
    "onegate",
    "onegate_status_42",
    "unknown_codes",
    "TrangThaiHoSo 42",
    Held(("unknown_status",)),
    {"TrangThaiHoSo": 42},
)
rec(
    "sqldb",
    "sqldb_status_zero",
    "unknown_codes",
    "trang_thai 0",
    Held(("unknown_status",)),
    {"trang_thai": 0},
)
rec(
    "igate",
    "igate_apply_method_9",
    "unknown_codes",
    "applyMethod.id 9",
    Held(("unparseable_channel",)),
    {"applyMethod": {"id": 9}},
)
rec(
    "onegate",
    "onegate_channel_7",
    "unknown_codes",
    "KenhThucHien 7",
    Held(("unparseable_channel",)),
    {"KenhThucHien": 7},
)
rec(
    "onegate",
    "onegate_paid_online_5",
    "unknown_codes",
    "DuocThanhToanTrucTuyen 5",
    Held(("unparseable_paid_online",)),
    {"DuocThanhToanTrucTuyen": 5},
)
csv_file(
    "filedrop_channel_fax",
    "unknown_codes",
    'Kênh nộp "Fax"',
    Held(("unparseable_channel",)),
    {"Kênh nộp": "Fax"},
)
rec(
    "igate",
    "igate_agency_malformed",
    "unknown_codes",
    "agency.code that is no electronic identifier",
    Held(("agency_code_format",)),
    {"agency.code": "UBND-XA-KIEM-THU"},
)
rec(
    "igate",
    "igate_agency_unregistered",
    "unknown_codes",
    "a well-formed agency code the registry does not know: published, with a warning for the stewards",
    Warned("unknown_agency"),
    {"agency.code": "000.00.98.H98"},
)


# ==== one code, two contents =========================================================================
def _two_igate(ctx: Ctx) -> list[Any]:
    a = igate_record(ctx.code, ctx.agency)
    b = with_changes(a, {"id": a["id"] + ":b", "applicant.fullname": "Trần Thị Khác"})
    return [a, b]


def _two_onegate(ctx: Ctx) -> list[Any]:
    a = onegate_record(ctx.code, ctx.agency)
    return [a, with_changes(a, {"SoGiayToChuHoSo": "001185099999", "ChuHoSo": "Trần Thị Khác"})]


def _two_sqldb(ctx: Ctx) -> list[Any]:
    a = sqldb_row(ctx.code, ctx.agency)
    return [a, {**a, "ho_ten_chu_ho_so": "Trần Thị Khác", "le_phi": 0}]


def _two_rows_one_file(ctx: Ctx) -> dict[str, bytes]:
    a = filedrop_row(ctx.code, ctx.agency)
    return {f"{ctx.case_id}.csv": csv_text([a, {**a, "Họ tên người nộp": "Trần Thị Khác"}]).encode("utf-8")}


rec(
    "igate",
    "igate_one_code_two_records",
    "conflicting_duplicates",
    "two records (two ids) sharing one code",
    Held(("duplicate_code",)),
    build=_two_igate,
)
rec(
    "onegate",
    "onegate_one_code_two_records",
    "conflicting_duplicates",
    "two MaHoSo equal, different applicants",
    Held(("duplicate_code",)),
    build=_two_onegate,
)
rec(
    "sqldb",
    "sqldb_one_code_two_rows",
    "conflicting_duplicates",
    "two view rows with one ma_ho_so",
    Held(("duplicate_code",)),
    build=_two_sqldb,
)
csv_file(
    "filedrop_one_code_two_rows",
    "conflicting_duplicates",
    "one file, one dossier twice with different names (neither is newer)",
    Held(("duplicate_code",)),
    build=_two_rows_one_file,
)

# ==== exact duplicates ===============================================================================
rec(
    "igate",
    "igate_same_record_twice",
    "exact_duplicates",
    "one record twice on one page",
    Loaded(),
    build=lambda ctx: [igate_record(ctx.code, ctx.agency, n=7)] * 2,
)
rec(
    "onegate",
    "onegate_same_record_twice",
    "exact_duplicates",
    "one record twice on one page",
    Loaded(),
    build=lambda ctx: [onegate_record(ctx.code, ctx.agency, n=7)] * 2,
)
rec(
    "sqldb",
    "sqldb_same_row_twice",
    "exact_duplicates",
    "one row twice in the view",
    Loaded(),
    build=lambda ctx: [sqldb_row(ctx.code, ctx.agency, n=7)] * 2,
)
csv_file(
    "filedrop_same_row_twice",
    "exact_duplicates",
    "one row twice in one file",
    Loaded(),
    build=lambda ctx: {
        f"{ctx.case_id}.csv": csv_text([filedrop_row(ctx.code, ctx.agency, n=7)] * 2).encode()
    },
)

# ==== missing required fields ========================================================================
rec(
    "igate",
    "igate_missing_code",
    "missing_fields",
    "no code",
    Held(("required_dossier_code",), codeless=True),
    {"code": DELETE},
)
rec(
    "igate",
    "igate_missing_status",
    "missing_fields",
    "status null",
    Held(("required_status",)),
    {"status": None},
)
rec(
    "onegate",
    "onegate_missing_receipt",
    "missing_fields",
    "no NgayTiepNhan",
    Held(("required_received_at",)),
    {"NgayTiepNhan": DELETE},
)
rec(
    "sqldb",
    "sqldb_missing_procedure",
    "missing_fields",
    "ma_tthc NULL",
    Held(("required_procedure_code",)),
    {"ma_tthc": None},
)
csv_file(
    "filedrop_missing_name",
    "missing_fields",
    "an empty Họ tên cell",
    Held(("required_applicant_name",)),
    {"Họ tên người nộp": ""},
)

# ==== empty input ====================================================================================
page(
    "igate",
    "igate_empty_window",
    "empty_input",
    "an honest empty page (nothing changed)",
    Loaded(count=0),
    lambda env, req, ctx: Response(body={**env, "content": [], "totalElements": 0, "totalPages": 0}),
)
page(
    "onegate",
    "onegate_data_null",
    "empty_input",
    '"data": null and no cursor (nothing changed)',
    Loaded(count=0),
    lambda body, req, ctx: Response(body={**body, "data": None}),
)
csv_file(
    "filedrop_empty_file",
    "empty_input",
    "a 0-byte .csv",
    Rejected("filedrop_empty_file.csv", "Tệp rỗng"),
    build=lambda ctx: {f"{ctx.case_id}.csv": b""},
)
csv_file(
    "filedrop_header_only",
    "empty_input",
    "the header and no row",
    Rejected("filedrop_header_only.csv", "không có dòng dữ liệu"),
    build=lambda ctx: {f"{ctx.case_id}.csv": csv_text([]).encode("utf-8")},
)


# ==== file formats ===================================================================================
def _wrong_header(ctx: Ctx) -> dict[str, bytes]:
    return {f"{ctx.case_id}.csv": csv_text([{"code": ctx.code}], header=["code", "name", "date"]).encode()}


def _missing_column(ctx: Ctx) -> dict[str, bytes]:
    from connectors.filedrop import HEADER

    header = [h for h in HEADER.values() if h != "Lệ phí"]
    return {f"{ctx.case_id}.csv": csv_text(_rows(ctx), header=header).encode("utf-8")}


def _ragged(ctx: Ctx) -> dict[str, bytes]:
    text = csv_text(_rows(ctx)).rstrip("\r\n") + ",thừa,cột\r\n"
    return {f"{ctx.case_id}.csv": text.encode("utf-8")}


def _unclosed_quote(ctx: Ctx) -> dict[str, bytes]:
    text = csv_text(_rows(ctx)).replace(PLANTED_NAME, f'"{PLANTED_NAME}', 1)
    return {f"{ctx.case_id}.csv": text.encode("utf-8")}


def _nul_bytes(ctx: Ctx) -> dict[str, bytes]:
    return {f"{ctx.case_id}.csv": csv_text(_rows(ctx)).encode("utf-8").replace(b"Tr", b"T\x00r", 1)}


def _not_a_zip(ctx: Ctx) -> dict[str, bytes]:
    return {f"{ctx.case_id}.xlsx": csv_text(_rows(ctx)).encode("utf-8")}


def _zip_without_workbook(ctx: Ctx) -> dict[str, bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hoso.csv", csv_text(_rows(ctx)))
    return {f"{ctx.case_id}.xlsx": buf.getvalue()}


csv_file(
    "filedrop_wrong_header",
    "file_format",
    "a CSV of another format",
    Rejected("filedrop_wrong_header.csv", "tiêu đề"),
    build=_wrong_header,
)
csv_file(
    "filedrop_missing_column",
    "file_format",
    "the header lacks Lệ phí",
    Rejected("filedrop_missing_column.csv", "Thiếu cột: Lệ phí"),
    build=_missing_column,
)
csv_file(
    "filedrop_ragged_row",
    "file_format",
    "a row with values beyond the header",
    Rejected("filedrop_ragged_row.csv", "lệch cột"),
    build=_ragged,
)
csv_file(
    "filedrop_unclosed_quote",
    "file_format",
    "a quote that never closes",
    Rejected("filedrop_unclosed_quote.csv", "sai cấu trúc"),
    build=_unclosed_quote,
)
csv_file(
    "filedrop_nul_bytes",
    "file_format",
    "NUL bytes in a UTF-8 CSV",
    Rejected("filedrop_nul_bytes.csv", "NUL"),
    build=_nul_bytes,
)
csv_file(
    "filedrop_xlsx_not_a_zip",
    "file_format",
    "a CSV saved with an .xlsx name",
    Rejected("filedrop_xlsx_not_a_zip.xlsx", "Không mở được tệp Excel"),
    build=_not_a_zip,
)
csv_file(
    "filedrop_xlsx_zip_without_workbook",
    "file_format",
    "a zip without a workbook, named .xlsx",
    Rejected("filedrop_xlsx_zip_without_workbook.xlsx", "Không mở được tệp Excel"),
    build=_zip_without_workbook,
)
csv_file(
    "filedrop_legacy_xls",
    "file_format",
    "an old .xls workbook",
    Rejected("filedrop_legacy_xls.xls", ".xls"),
    build=lambda ctx: {f"{ctx.case_id}.xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504},
)
_add(
    Case(
        "filedrop_folder_missing",
        "file_format",
        "filedrop",
        "the export folder does not exist",
        Failed("extract", "file-drop folder does not exist"),
        source=lambda ctx: FolderSource(ctx.folder / "khong-ton-tai"),
    )
)


# ==== department databases ===========================================================================
def sqlite_view(path: Path, rows: list[dict[str, Any]], *, drop: tuple[str, ...] = ()) -> None:
    """A SQLite department database: an untyped table ``ho_so_tthc`` (any value goes, as in an old
    system) holding ``rows``; ``drop``: contract columns left out."""
    import sqlite3

    from connectors.sqldb import VIEW_COLUMNS

    cols = [c for c in VIEW_COLUMNS if c not in drop]
    con = sqlite3.connect(path)
    try:
        con.execute(f"CREATE TABLE ho_so_tthc ({', '.join(cols)})")
        con.executemany(
            f"INSERT INTO ho_so_tthc ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [[r.get(c) for c in cols] for r in rows],
        )
        con.commit()
    finally:
        con.close()


def _db(ctx: Ctx, **kw: Any) -> SqlSource:
    path = ctx.folder / "dept.db"
    sqlite_view(path, ctx.good_sqldb(), **kw)
    return SqlSource(f"sqlite:///{path}")


def _no_view(ctx: Ctx) -> SqlSource:
    import sqlite3

    path = ctx.folder / "dept.db"
    sqlite3.connect(path).close()
    return SqlSource(f"sqlite:///{path}")


def _not_a_database(ctx: Ctx) -> SqlSource:
    path = ctx.folder / "dept.db"
    path.write_bytes(("Không phải cơ sở dữ liệu " + PLANTED_CCCD).encode("utf-8") * 200)
    return SqlSource(f"sqlite:///{path}")


_add(
    Case(
        "sqldb_view_lacks_a_column",
        "database",
        "sqldb",
        "the view has no le_phi column",
        Failed("extract", "lacks contract columns: le_phi"),
        source=lambda ctx: _db(ctx, drop=("le_phi",)),
    )
)
_add(
    Case(
        "sqldb_no_view",
        "database",
        "sqldb",
        "the database has no ho_so_tthc view",
        Failed("extract", "department database error"),
        source=_no_view,
    )
)
_add(
    Case(
        "sqldb_not_a_database",
        "database",
        "sqldb",
        "the database file is text",
        Failed("extract", "department database error"),
        source=_not_a_database,
    )
)

CASES_BY_ID = {c.id: c for c in CASES}
