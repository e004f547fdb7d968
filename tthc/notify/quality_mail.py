"""Data-quality e-mails after a nightly run: one per agency with problems, one digest for engineers.

For each source of the run the validation results (``dossier_issues``, ``validation_results``) are
grouped per agency: a dossier belongs to the agency in its ``agency_code`` when the registry lists
that agency for the source, otherwise (missing, malformed or unregistered code, records without a
dossier code) to the agency that owns the source system, whose stewards answer for its data.

An agency e-mail (Vietnamese, HTML with a plain-text alternative) goes to the agency's stewards
(``agencies[].stewards`` in the registry; else the source's ``stewards``; when an agency has its
own, the source's stewards are in Cc). It gives, per rule, the number of dossiers with its
``description_vi`` and severity and the change since the source's previous validated run; the
affected dossier codes (the first :data:`MAX_CODES_IN_BODY` in the body, all of them in a CSV
attachment of codes, rule ids and severities); how many dossiers are held in quarantine now; and a
link to the data-quality page (``$TTHC_UI_BASE_URL`` + ``/dq/``).

The engineers' digest (``$TTHC_ENGINEER_EMAILS``) covers every agency of the run: run statistics
per source and stage, per-agency counts and whether the stewards were mailed, totals per rule.

Nothing is sent when there is nothing to report, and each e-mail is recorded in ``notifications``
(:mod:`tthc.notify.ledger`) under (run, source, agency, kind) before it is sent: a retried task does
not mail twice. E-mails carry dossier codes, rule ids, counts and agency codes and names only —
never a citizen's name, ID number, birth date, phone or address (Decree 13/2023/NĐ-CP).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tthc.notify import ledger
from tthc.notify.mailer import (
    Mailer,
    MailError,
    build_message,
    engineer_emails,
    message_id_for,
    parse_addresses,
    recipients_hash,
)
from tthc.notify.render import render_pair, safe_code
from tthc.notify.stats import run_statistics, summarise_runs
from tthc.registry import REPO_ROOT, Registry, SourceConfig
from tthc.timeutil import vn_now
from tthc.warehouse import schema as s

log = logging.getLogger(__name__)

MAX_CODES_IN_BODY = int(os.environ.get("TTHC_MAIL_MAX_CODES", "50"))
KIND_AGENCY = "agency_quality"
KIND_DIGEST = "engineer_digest"
SEVERITY_RANK = {"critical": 0, "warning": 1}


class NotificationError(RuntimeError):
    """Some e-mails could not be sent (the others were); a retry sends only the missing ones."""


# ---- the registry's view: agencies and who answers for them -----------------------------------


@dataclass(frozen=True)
class AgencyInfo:
    source_id: str
    code: str
    name: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    owns_source: bool = False

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + tuple(a for a in self.cc if a.lower() not in {t.lower() for t in self.to})


def agencies_of(src: SourceConfig) -> dict[str, AgencyInfo]:
    """Agencies a source reports for, by code; the owning agency first."""
    source_stewards = tuple(parse_addresses(src.stewards))
    out = {
        src.agency_code: AgencyInfo(
            src.source_id, src.agency_code, src.agency_name, source_stewards, owns_source=True
        )
    }
    for a in src.agencies:
        own = tuple(parse_addresses(getattr(a, "stewards", ()) or ()))
        owner = a.code == src.agency_code
        if own:
            out[a.code] = AgencyInfo(src.source_id, a.code, a.name, own, source_stewards, owns_source=owner)
        else:
            out[a.code] = AgencyInfo(src.source_id, a.code, a.name, source_stewards, owns_source=owner)
    return out


# ---- the suite's view: rule descriptions -------------------------------------------------------


@dataclass(frozen=True)
class RuleInfo:
    rule_id: str
    severity: str | None
    description_vi: str


def suite_path() -> Path:
    base = os.environ.get("TTHC_EXPECTATIONS_DIR")
    return (Path(base) if base else REPO_ROOT / "expectations") / "dossier.json"


@lru_cache(maxsize=4)
def _catalogue(path: str, mtime: float) -> tuple[dict[str, RuleInfo], tuple[tuple[str, RuleInfo], ...]]:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    rules: dict[str, RuleInfo] = {}
    for exp in spec.get("expectations", []):
        m = exp.get("meta") or {}
        if m.get("rule_id") and m["rule_id"] not in rules:
            rules[m["rule_id"]] = RuleInfo(m["rule_id"], m.get("severity"), m.get("description_vi", ""))
    patterns = []
    for extra in (spec.get("meta") or {}).get("extra_rules", []):
        rid = extra.get("rule_id", "")
        if "<" in rid:
            patterns.append(
                (rid.split("<", 1)[0], RuleInfo(rid, extra.get("severity"), extra.get("description_vi", "")))
            )
        elif rid:
            rules.setdefault(rid, RuleInfo(rid, extra.get("severity"), extra.get("description_vi", "")))
    try:  # source-level rules (volume, freshness), when that module is present
        from tthc.quality.batch_rules import DESCRIPTIONS_VI

        for rid, text in DESCRIPTIONS_VI.items():
            rules.setdefault(rid, RuleInfo(rid, "warning", text))
    except ImportError:  # pragma: no cover - optional
        pass
    return rules, tuple(patterns)


def describe_rule(rule_id: str) -> RuleInfo:
    """The suite's description of a rule id (``unparseable_<field>`` included); empty if unknown."""
    p = suite_path()
    try:
        rules, patterns = _catalogue(str(p), p.stat().st_mtime)
    except (OSError, ValueError):
        log.warning("cannot read the expectation suite %s: rules are shown without descriptions", p)
        return RuleInfo(rule_id, None, "")
    if rule_id in rules:
        return rules[rule_id]
    for prefix, info in patterns:
        if rule_id.startswith(prefix):
            fld = rule_id[len(prefix) :]
            return RuleInfo(rule_id, info.severity, info.description_vi.replace("<field>", fld))
    return RuleInfo(rule_id, None, "")


# ---- the warehouse's view: what the run found ----------------------------------------------------


@dataclass
class RuleCount:
    rule_id: str
    severity: str
    description_vi: str
    count: int
    previous: int | None  # None: no previous run to compare with

    @property
    def delta(self) -> int | None:
        return None if self.previous is None else self.count - self.previous


@dataclass
class AgencyReport:
    agency: AgencyInfo
    run_id: str
    rules: list[RuleCount] = field(default_factory=list)  # failing now, worst first
    resolved: list[RuleCount] = field(default_factory=list)  # failing last run, not now
    codes: list[tuple[str, list[str], str]] = field(default_factory=list)  # (code, rule ids, worst)
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # (code, rule, severity)
    held_now: int = 0
    source_findings: list[RuleCount] = field(default_factory=list)  # source-level rules (owner only)
    previous_dossiers: int | None = None

    @property
    def dossiers(self) -> int:
        return len(self.codes)

    @property
    def critical(self) -> int:
        return sum(1 for _, _, sev in self.codes if sev == "critical")

    @property
    def warning_only(self) -> int:
        return self.dossiers - self.critical

    @property
    def delta_dossiers(self) -> int | None:
        return None if self.previous_dossiers is None else self.dossiers - self.previous_dossiers

    @property
    def has_problems(self) -> bool:
        return bool(self.codes or self.source_findings)


@dataclass
class SourceReport:
    source: SourceConfig
    run_id: str
    previous_run_id: str | None
    checked_at: datetime | None
    agencies: list[AgencyReport]
    source_findings: list[RuleCount]
    validated: bool  # False: the run has no validation results for this source

    @property
    def with_problems(self) -> list[AgencyReport]:
        return [a for a in self.agencies if a.has_problems]


def _issues(conn: sa.Connection, run_id: str, source_id: str) -> list[tuple[str, str, str, str | None]]:
    i, d = s.dossier_issues, s.dossiers
    q = (
        sa.select(i.c.dossier_code, i.c.rule_id, i.c.severity, d.c.agency_code)
        .select_from(
            i.outerjoin(d, sa.and_(d.c.source_id == i.c.source_id, d.c.dossier_code == i.c.dossier_code))
        )
        .where(i.c.run_id == run_id, i.c.source_id == source_id)
    )
    return [tuple(r) for r in conn.execute(q)]  # type: ignore[misc]


def _previous_run(conn: sa.Connection, run_id: str, source_id: str) -> tuple[datetime | None, str | None]:
    """When this run's validation was saved, and the source's validated run before it."""
    v = s.validation_results
    checked = conn.execute(
        sa.select(sa.func.min(v.c.created_at)).where(v.c.run_id == run_id, v.c.source_id == source_id)
    ).scalar()
    if checked is None:
        return None, None
    prev = conn.execute(
        sa.select(v.c.run_id)
        .where(v.c.source_id == source_id, v.c.run_id != run_id, v.c.created_at < checked)
        .order_by(v.c.created_at.desc(), v.c.run_id.desc())
        .limit(1)
    ).scalar()
    return checked, prev


def _held_by_agency(conn: sa.Connection, source_id: str) -> list[tuple[str | None, int]]:
    q_, d = s.quarantine, s.dossiers
    q = (
        sa.select(d.c.agency_code, sa.func.count())
        .select_from(
            q_.outerjoin(d, sa.and_(d.c.source_id == q_.c.source_id, d.c.dossier_code == q_.c.dossier_code))
        )
        .where(q_.c.source_id == source_id, q_.c.status == "held")
        .group_by(d.c.agency_code)
    )
    return [(a, int(n)) for a, n in conn.execute(q)]


def _source_level_failures(
    conn: sa.Connection, run_id: str | None, source_id: str, with_issues: set[str]
) -> dict[str, tuple[str, int]]:
    """Rules that failed without naming dossiers (volume, freshness): rule → (severity, failed)."""
    if run_id is None:
        return {}
    v = s.validation_results
    rows = conn.execute(
        sa.select(v.c.rule_id, v.c.severity, v.c.failed).where(
            v.c.run_id == run_id, v.c.source_id == source_id, v.c.failed > 0
        )
    )
    return {rid: (sev, int(n)) for rid, sev, n in rows if rid not in with_issues}


def _group(
    rows: Iterable[tuple[str, str, str, str | None]], agencies: Mapping[str, AgencyInfo], owner: str
) -> dict[str, dict[tuple[str, str], str]]:
    """agency code → {(dossier code, rule id): severity}, unknown agencies under the owner."""
    out: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
    for code, rule, sev, agency in rows:
        key = agency if agency in agencies else owner
        out[key][(code, rule)] = sev
    return out


def _rule_counts(issues: Mapping[tuple[str, str], str]) -> dict[str, tuple[str, int]]:
    per: dict[str, set[str]] = defaultdict(set)
    sev: dict[str, str] = {}
    for (code, rule), severity in issues.items():
        per[rule].add(code)
        sev[rule] = severity
    return {r: (sev[r], len(c)) for r, c in per.items()}


def _rc(rule_id: str, severity: str, count: int, previous: int | None) -> RuleCount:
    info = describe_rule(rule_id)
    return RuleCount(rule_id, severity or info.severity or "warning", info.description_vi, count, previous)


def _sort_rules(rules: list[RuleCount]) -> list[RuleCount]:
    return sorted(rules, key=lambda r: (SEVERITY_RANK.get(r.severity, 9), -r.count, r.rule_id))


def collect_source_report(bind: Engine | sa.Connection, run_id: str, src: SourceConfig) -> SourceReport:
    """What the run found for one source, grouped per agency, with the previous run's counts."""
    agencies = agencies_of(src)
    owner = src.agency_code
    conn_cm = bind.connect() if isinstance(bind, Engine) else _nullcm(bind)
    with conn_cm as conn:
        checked_at, prev_run = _previous_run(conn, run_id, src.source_id)
        now_rows = _issues(conn, run_id, src.source_id)
        prev_rows = _issues(conn, prev_run, src.source_id) if prev_run else []
        held = _held_by_agency(conn, src.source_id)
        src_fail_now = _source_level_failures(conn, run_id, src.source_id, {r[1] for r in now_rows})
        src_fail_prev = _source_level_failures(conn, prev_run, src.source_id, {r[1] for r in prev_rows})

    now_by = _group(now_rows, agencies, owner)
    prev_by = _group(prev_rows, agencies, owner)
    held_by: dict[str, int] = defaultdict(int)
    for agency, n in held:
        held_by[agency if agency in agencies else owner] += n

    reports: list[AgencyReport] = []
    for code, info in agencies.items():
        issues = now_by.get(code, {})
        prev = prev_by.get(code, {}) if prev_run else None
        now_counts = _rule_counts(issues)
        prev_counts = _rule_counts(prev) if prev is not None else {}
        rules = [
            _rc(r, sev, n, prev_counts.get(r, (sev, 0))[1] if prev is not None else None)
            for r, (sev, n) in now_counts.items()
        ]
        resolved = [_rc(r, sev, 0, n) for r, (sev, n) in prev_counts.items() if r not in now_counts]
        per_code: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for (dcode, rule), sev in issues.items():
            per_code[dcode].append((rule, sev))
        codes = []
        for dcode, hits in per_code.items():
            worst = min((sev for _, sev in hits), key=lambda x: SEVERITY_RANK.get(x, 9))
            codes.append((dcode, sorted(r for r, _ in hits), worst))
        codes.sort(key=lambda c: (SEVERITY_RANK.get(c[2], 9), c[0]))
        findings: list[RuleCount] = []
        if info.owns_source and code == owner:
            findings = [
                _rc(r, sev, n, src_fail_prev.get(r, ("", 0))[1] if prev_run else None)
                for r, (sev, n) in src_fail_now.items()
            ]
        reports.append(
            AgencyReport(
                agency=info,
                run_id=run_id,
                rules=_sort_rules(rules),
                resolved=_sort_rules(resolved),
                codes=codes,
                issues=sorted(
                    ((c, r, sev) for (c, r), sev in issues.items()),
                    key=lambda x: (x[0], SEVERITY_RANK.get(x[2], 9), x[1]),
                ),
                held_now=held_by.get(code, 0),
                source_findings=_sort_rules(findings),
                previous_dossiers=len({c for c, _ in prev}) if prev is not None else None,
            )
        )
    return SourceReport(
        source=src,
        run_id=run_id,
        previous_run_id=prev_run,
        checked_at=checked_at,
        agencies=reports,
        source_findings=_sort_rules([_rc(r, sev, n, None) for r, (sev, n) in src_fail_now.items()]),
        validated=checked_at is not None,
    )


class _nullcm:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


# ---- links and attachments -----------------------------------------------------------------------


def ui_base_url() -> str | None:
    base = os.environ.get("TTHC_UI_BASE_URL", "").strip()
    return base.rstrip("/") or None


def dq_link(base: str | None, *, source_id: str | None = None, run_id: str | None = None) -> str | None:
    """``<base>/dq/?source=…&run=…`` (the dashboard's data-quality page), or None without a base."""
    if not base:
        return None
    params = {k: v for k, v in (("source", source_id), ("run", run_id)) if v}
    return f"{base.rstrip('/')}/dq/" + (f"?{urlencode(params)}" if params else "")


def runs_link(base: str | None) -> str | None:
    return f"{base.rstrip('/')}/runs/" if base else None


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    # a code from a source system could start like a spreadsheet formula (CSV injection)
    return "'" + value if value.startswith(_FORMULA_START) else value


def issues_csv(issues: Sequence[tuple[str, str, str]]) -> bytes:
    """Every affected dossier code with its rule id and severity (UTF-8 with BOM, for Excel)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["dossier_code", "rule_id", "severity"])
    for code, rule, sev in issues:
        w.writerow([_cell(safe_code(code)), rule, sev])
    return buf.getvalue().encode("utf-8-sig")


# ---- sending -----------------------------------------------------------------------------------


def _deliver(
    engine: Engine,
    mailer: Mailer,
    key: tuple[str, str, str, str],
    *,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    text: str,
    html: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    now: datetime | None = None,
) -> tuple[str, str]:
    """Claim, send, confirm. Returns (status, message id): status ``sent`` or ``already_sent``."""
    run_id, source_id, agency_code, kind = key
    mid = message_id_for(key, mailer.sender)
    state = ledger.claim(
        engine,
        run_id,
        source_id,
        agency_code,
        kind,
        recipients_hash=recipients_hash([*to, *cc]),
        message_id=mid,
    )
    if state == "sent":
        return "already_sent", mid
    if state == "unconfirmed":
        log.warning(
            "re-sending %s for %s/%s of run %s: an earlier attempt was not confirmed",
            kind,
            source_id,
            agency_code,
            run_id,
        )
    msg = build_message(
        subject=subject,
        sender=mailer.sender,
        to=to,
        cc=cc,
        text=text,
        html=html,
        message_id=mid,
        attachments=attachments,
    )
    mailer.send(msg)
    ledger.confirm(engine, run_id, source_id, agency_code, kind, now=now)
    return "sent", mid


def _night(report: SourceReport, now: datetime) -> datetime:
    return report.checked_at or now


def send_agency_mail(
    engine: Engine,
    report: SourceReport,
    agency: AgencyReport,
    *,
    mailer: Mailer,
    now: datetime,
    base_url: str | None,
) -> dict[str, Any]:
    info = agency.agency
    out: dict[str, Any] = {
        "source_id": info.source_id,
        "agency_code": info.code,
        "dossiers": agency.dossiers,
        "critical": agency.critical,
        "warning": agency.warning_only,
    }
    if not agency.has_problems:
        return {**out, "status": "nothing_to_report"}
    if not info.to:
        log.warning(
            "no steward for agency %s of source %s: its e-mail is not sent", info.code, info.source_id
        )
        return {**out, "status": "no_recipients"}
    at = _night(report, now)
    ctx = {
        "agency": info,
        "report": agency,
        "source": report.source,
        "run_id": report.run_id,
        "previous_run_id": report.previous_run_id,
        "checked_at": at,
        "codes_shown": agency.codes[:MAX_CODES_IN_BODY],
        "codes_more": max(0, agency.dossiers - MAX_CODES_IN_BODY),
        "max_codes": MAX_CODES_IN_BODY,
        "dq_url": dq_link(base_url, source_id=info.source_id, run_id=report.run_id),
        "csv_name": f"ho-so-can-ra-soat_{safe_code(info.code)}_{at:%Y%m%d}.csv",
    }
    text, html = render_pair("agency_quality", **ctx)
    if agency.dossiers:
        subject = (
            f"[tthc-sync] Chất lượng dữ liệu hồ sơ TTHC ngày {at:%d/%m/%Y}: {info.name} "
            f"có {agency.dossiers} hồ sơ cần rà soát"
        )
    else:
        subject = (
            f"[tthc-sync] Chất lượng dữ liệu hồ sơ TTHC ngày {at:%d/%m/%Y}: cảnh báo về nguồn {info.name}"
        )
    attachments = [(ctx["csv_name"], issues_csv(agency.issues), "text/csv")] if agency.issues else []
    status, mid = _deliver(
        engine,
        mailer,
        (report.run_id, info.source_id, info.code, KIND_AGENCY),
        to=info.to,
        cc=info.cc,
        subject=subject,
        text=text,
        html=html,
        attachments=attachments,
        now=now,
    )
    return {**out, "status": status, "message_id": mid}


def _mail_states(engine: Engine, reports: Sequence[SourceReport]) -> dict[tuple[str, str, str], bool]:
    """(run, source, agency) → True when the agency's e-mail is confirmed sent."""
    t = s.notifications
    runs = sorted({r.run_id for r in reports})
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.run_id, t.c.source_id, t.c.agency_code, t.c.sent_at).where(
                t.c.kind == KIND_AGENCY, t.c.run_id.in_(runs)
            )
        )
        return {(r, sid, a): sent is not None for r, sid, a, sent in rows}


def repeated_publish_failures(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Dossiers the portal refused at least ``portal_failure_report_after`` times in a row (every
    source): dossier codes, attempts and the last error (already scrubbed), for the engineers."""
    import sqlalchemy as sa

    from tthc.settings import Settings
    from tthc.warehouse.schema import publish_state as ps

    threshold = Settings.from_env().portal_failure_report_after
    q = (
        sa.select(ps.c.source_id, ps.c.dossier_code, ps.c.attempts, ps.c.last_error, ps.c.last_attempt_at)
        .where(ps.c.status == "failed", ps.c.attempts >= threshold)
        .order_by(ps.c.attempts.desc(), ps.c.source_id, ps.c.dossier_code)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def digest_context(
    engine: Engine,
    reports: Sequence[SourceReport],
    *,
    now: datetime,
    base_url: str | None,
    lateness: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    stats = []
    for r in reports:
        lines = run_statistics(engine, run_id=r.run_id, source_id=r.source.source_id)
        overview = summarise_runs(lines)
        stats.append({"report": r, "lines": lines, "overview": overview[0] if overview else None})
    mails = _mail_states(engine, reports)
    agencies = []
    rule_totals: dict[str, dict[str, Any]] = {}
    for r in reports:
        for a in r.with_problems:
            sent = mails.get((r.run_id, r.source.source_id, a.agency.code))
            if not a.agency.to:
                mail = "no_recipients"
            else:
                mail = "sent" if sent else "not_sent"
            agencies.append({"source": r.source, "report": a, "mail": mail})
            for rc in a.rules:
                t = rule_totals.setdefault(
                    rc.rule_id,
                    {
                        "rule": rc,
                        "count": 0,
                        "previous": 0 if rc.previous is not None else None,
                        "agencies": 0,
                    },
                )
                t["count"] += rc.count
                t["agencies"] += 1
                if rc.previous is None:
                    t["previous"] = None
                elif t["previous"] is not None:
                    t["previous"] += rc.previous
    totals = sorted(
        rule_totals.values(),
        key=lambda t: (SEVERITY_RANK.get(t["rule"].severity, 9), -t["count"], t["rule"].rule_id),
    )
    for t in totals:
        t["delta"] = None if t["previous"] is None else t["count"] - t["previous"]
    failed = [x for x in stats if x["overview"] and x["overview"]["status"] != "success"]
    missing = [x for x in stats if not x["overview"]]
    return {
        "now": now,
        "stats": stats,
        "agencies": agencies,
        "rule_totals": totals,
        "failed_sources": failed,
        "missing_sources": missing,
        "source_findings": [(r, r.source_findings) for r in reports if r.source_findings],
        "publish_failures": repeated_publish_failures(engine),
        "dq_url": dq_link(base_url),
        "runs_url": runs_link(base_url),
        "lateness": dict(lateness or {}),
        "dossiers_total": sum(a["report"].dossiers for a in agencies),
        "critical_total": sum(a["report"].critical for a in agencies),
    }


def send_digest(
    engine: Engine,
    reports: Sequence[SourceReport],
    *,
    key: tuple[str, str],
    mailer: Mailer,
    now: datetime,
    base_url: str | None,
    title_date: datetime | None = None,
    lateness: Mapping[str, Mapping[str, Any]] | None = None,
    recipients: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The engineers' digest over ``reports``; ``key`` = (run id of the ledger, source id or "*")."""
    ctx = digest_context(engine, reports, now=now, base_url=base_url, lateness=lateness)
    to = list(recipients) if recipients is not None else engineer_emails()
    problems = bool(
        ctx["agencies"] or ctx["failed_sources"] or ctx["source_findings"] or ctx["publish_failures"]
    )
    late = any(v.get("status") not in ("ok", "pending") for v in ctx["lateness"].values())
    if not (problems or late):
        return {"status": "nothing_to_report"}
    if not to:
        log.warning("TTHC_ENGINEER_EMAILS is empty: the digest is not sent")
        return {"status": "no_recipients"}
    day = title_date or (reports[0].checked_at if reports and reports[0].checked_at else now)
    day = day.date() if isinstance(day, datetime) else day
    ctx["day"] = day
    text, html = render_pair("engineer_digest", **ctx)
    n_fail = len(ctx["failed_sources"])
    subject = (
        f"[tthc-sync] Tổng hợp đồng bộ hồ sơ TTHC ngày {day:%d/%m/%Y}: "
        f"{len(ctx['agencies'])} đơn vị có hồ sơ cần rà soát"
        + (f", {n_fail} nguồn chạy lỗi" if n_fail else "")
    )
    status, mid = _deliver(
        engine,
        mailer,
        (key[0], key[1], ledger.ALL, KIND_DIGEST),
        to=to,
        subject=subject,
        text=text,
        html=html,
        now=now,
    )
    return {"status": status, "message_id": mid, "agencies": len(ctx["agencies"])}


def run_notifications(
    engine: Engine,
    run_id: str,
    source_ids: Iterable[str],
    registry: Registry,
    now: datetime | None = None,
    *,
    digest: bool = True,
    mailer: Mailer | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Send the data-quality e-mails of one run: per agency with problems, then the digest.

    Idempotent per (run, source, agency, kind): a retried task sends only what was not sent.
    ``digest=False`` leaves the engineers' digest to the 06:00 watchdog (one digest per night
    across sources, :mod:`tthc.notify.watchdog`). Returns an XCom-friendly summary. Raises
    :class:`NotificationError` after trying every e-mail if any of them could not be sent.
    """
    now = now or vn_now()
    mailer = mailer or Mailer()
    base_url = base_url if base_url is not None else ui_base_url()
    if base_url is None:
        log.warning("TTHC_UI_BASE_URL is not set: e-mails go out without a link to the data-quality page")
    sids = list(dict.fromkeys(source_ids))
    reports = [collect_source_report(engine, run_id, registry.get(sid)) for sid in sids]
    agencies: list[dict[str, Any]] = []
    errors: list[str] = []
    for r in reports:
        for a in r.agencies:
            if not a.has_problems:
                continue
            try:
                agencies.append(send_agency_mail(engine, r, a, mailer=mailer, now=now, base_url=base_url))
            except MailError as e:
                errors.append(f"{r.source.source_id}/{a.agency.code}: {e}")
                agencies.append(
                    {"source_id": r.source.source_id, "agency_code": a.agency.code, "status": "error"}
                )
    result: dict[str, Any] = {
        "run_id": run_id,
        "sources": sids,
        "agencies": agencies,
        "sent": sum(1 for a in agencies if a["status"] == "sent"),
        "already_sent": sum(1 for a in agencies if a["status"] == "already_sent"),
    }
    if digest:
        key = (run_id, sids[0] if len(sids) == 1 else ledger.ALL)
        try:
            result["digest"] = send_digest(
                engine, reports, key=key, mailer=mailer, now=now, base_url=base_url
            )
        except MailError as e:
            errors.append(f"digest: {e}")
            result["digest"] = {"status": "error"}
    else:
        result["digest"] = {"status": "disabled"}
    if errors:
        raise NotificationError("; ".join(errors))
    return result
