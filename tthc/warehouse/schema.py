"""The warehouse tables (SQLAlchemy Core), the single source of truth the migrations must match.

Conventions:

* Datetimes are naive Vietnam local time (``DateTime`` without time zone), like the rest of the
  project (``tthc.model``).
* JSON is stored as text through :class:`JSONText` (``json.dumps`` with sorted keys, UTF-8 kept):
  the same bytes on SQLite and PostgreSQL, and a payload hash is reproducible from the stored text.
* Enumerations are short strings guarded by named CHECK constraints; names of every constraint and
  index come from :data:`NAMING_CONVENTION` so migrations can refer to them on both backends.
* Nothing outside ``dossiers``, ``dossier_history``, ``raw_records`` and ``lookup_cache`` may hold
  personal data: results, issues, audit and run rows carry codes, counts and keyed hashes only.
  The outbox does not copy the dossier message sent to the national portal (its ``payload`` is
  NULL for ``dossier`` messages: derived from ``dossier_history`` when needed, migration 0012);
  it keeps progress entries only, which carry codes, roles and dates. The privacy scan
  (``tthc.privacy_scan``, ``PERSONAL_DATA_TABLES``) checks every other table, the outbox included.

Any change here needs a new migration in ``migrations/versions`` (the test suite compares the
migrated database with this metadata).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Allowed values of the enumeration columns (also used by repo.py to fail early with a clear error).
RUN_STATUSES = ("running", "success", "failed")
QUALITY_STATUSES = ("pending", "valid", "warning", "quarantined")
QUARANTINE_STATUSES = ("held", "released")
LOOKUP_KINDS = ("single", "bulk")
PUBLISH_STATUSES = ("published", "failed", "pending")
OUTBOX_KINDS = ("dossier", "progress")
OUTBOX_STATUSES = ("pending", "sent", "confirmed", "failed")
PERIOD_TYPES = ("run", "day", "month", "quarter", "year")
SCOPES = ("agency", "province", "source")


def json_dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, UTF-8 kept, datetimes/dates as ISO strings."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=json_default)


def json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, set | frozenset):
        return sorted(v)
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class RawJSON(str):
    """JSON text that is already canonical: :class:`JSONText` stores it without re-encoding."""

    __slots__ = ()


class JSONText(TypeDecorator):
    """JSON kept as TEXT on every backend; Python values in and out."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, RawJSON):
            return str(value)
        if not value and isinstance(value, list | dict):  # the common empty case, without the encoder
            return "[]" if isinstance(value, list) else "{}"
        return json_dumps(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        # Most nested lists of a dossier are empty: skip the decoder for them.
        if value == "[]":
            return []
        if value == "{}":
            return {}
        return json.loads(value)


def _check_in(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


# A 64-bit surrogate key that is still SQLite's auto-incrementing rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SOURCE = sa.String(64)
CODE = sa.String(128)
RUN_ID = sa.String(250)  # Airflow's run_id limit
HASH = sa.String(64)
RULE = sa.String(64)
STATUS = sa.String(16)

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("source_id", SOURCE, primary_key=True),  # "*" for stages that span every source
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("status", STATUS, nullable=False),
    sa.Column("records_in", sa.Integer()),
    sa.Column("records_out", sa.Integer()),
    sa.Column("quarantined", sa.Integer()),
    sa.Column("matched", sa.Integer()),
    sa.Column("published", sa.Integer()),
    sa.Column("errors", sa.Integer()),
    sa.Column("error_text", sa.Text()),
    sa.Column("details", JSONText()),
    _check_in("status", RUN_STATUSES, "status"),
)
sa.Index(None, pipeline_runs.c.started_at)

raw_records = sa.Table(
    "raw_records",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("dossier_code", CODE),
    sa.Column("record_hash", HASH, nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),  # the record exactly as pulled, canonical JSON
    sa.Column("pulled_at", sa.DateTime(), nullable=False),
    # 0009: what the extract's mapping gave (Dossier.content_hash(), updated_at); NULL: map again
    sa.Column("mapped_hash", HASH),
    sa.Column("mapped_updated_at", sa.DateTime()),
    sa.UniqueConstraint("source_id", "record_hash", name="uq_raw_records_record_hash"),
)
sa.Index(None, raw_records.c.source_id, raw_records.c.dossier_code)
# (0011: no index on run_id alone, nothing reads by it and it cost a third of the inserts' time)
# 0007: validation reads "this run's records of this source"; with run_id alone PostgreSQL visits
# every source's records of the night for each source (20 sources: 20 times the night)
sa.Index(None, raw_records.c.source_id, raw_records.c.run_id, raw_records.c.id)

dossiers = sa.Table(
    "dossiers",
    metadata,
    # -- Dossier.to_row() ----------------------------------------------------------------------
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("dossier_key", sa.String(200), nullable=False),
    sa.Column("agency_code", CODE),
    sa.Column("procedure_code", CODE),
    sa.Column("received_at", sa.DateTime()),
    sa.Column("updated_at", sa.DateTime()),
    sa.Column("status", sa.Integer()),
    sa.Column("status_raw", sa.Text()),
    sa.Column("source_record_id", CODE),
    sa.Column("agency_name", sa.Text()),
    sa.Column("procedure_name", sa.Text()),
    sa.Column("sector_code", CODE),
    sa.Column("sector_name", sa.Text()),
    sa.Column("channel", sa.Integer()),
    sa.Column("applicant_name", sa.Text()),
    sa.Column("applicant_id_number", sa.Text()),
    sa.Column("applicant_id_type", sa.Integer()),
    sa.Column("applicant_birth_date", sa.Text()),
    sa.Column("applicant_sex", sa.Integer()),
    sa.Column("applicant_type", sa.Integer()),
    sa.Column("applicant_phone", sa.Text()),
    sa.Column("due_at", sa.DateTime()),
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("returned_at", sa.DateTime()),
    sa.Column("paid_online", sa.Integer()),
    sa.Column("fee", sa.BigInteger()),
    sa.Column("result_type", sa.String(32)),
    sa.Column("result_file", sa.Text()),
    sa.Column("vneid_verified", sa.Boolean(), nullable=False),
    sa.Column("supplement_count", sa.Integer(), nullable=False),
    sa.Column("supplement_pending", sa.Boolean(), nullable=False),
    sa.Column("attachment_count", sa.Integer(), nullable=False),
    sa.Column("digitized_count", sa.Integer(), nullable=False),
    sa.Column("reused_count", sa.Integer(), nullable=False),
    sa.Column("raw_issue_fields", sa.Text()),
    # -- nested parts of the dossier -------------------------------------------------------------
    sa.Column("supplements_json", JSONText(), nullable=False),
    sa.Column("attachments_json", JSONText(), nullable=False),
    sa.Column("raw_issues_json", JSONText(), nullable=False),
    # -- warehouse bookkeeping -------------------------------------------------------------------
    sa.Column("content_hash", HASH, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("first_seen_run", RUN_ID, nullable=False),
    sa.Column("last_run_id", RUN_ID, nullable=False),  # the run that wrote the current version
    sa.Column("loaded_at", sa.DateTime(), nullable=False),
    sa.Column("quality_status", STATUS, nullable=False),
    _check_in("quality_status", QUALITY_STATUSES, "quality_status"),
)
sa.Index(None, dossiers.c.agency_code)
# Led by the selective column, not by source_id: a (source_id, code) lookup must have only the
# primary key to choose from (migration 0008).
sa.Index(None, dossiers.c.last_run_id, dossiers.c.source_id)
sa.Index(None, dossiers.c.quality_status, dossiers.c.source_id)
sa.Index(None, dossiers.c.received_at)
# 0013: the indicator stage counts one source's dossiers whose receipt (else update) time falls in
# the periods; on this expression the planner sees how many rows that is (PostgreSQL collects
# statistics on an index's expressions). Led by the expression, not by source_id (as 0008).
sa.Index(
    "ix_dossiers_reference_time_source_id",
    sa.func.coalesce(dossiers.c.received_at, dossiers.c.updated_at),
    dossiers.c.source_id,
)

dossier_history = sa.Table(
    "dossier_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("content_hash", HASH, nullable=False),
    # Dossier.to_dict() of that version without updated_at (the column above): exactly the text
    # whose SHA-256 is content_hash, so every stored version can be verified.
    sa.Column("payload", JSONText(), nullable=False),
    sa.Column("updated_at", sa.DateTime()),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("loaded_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("source_id", "dossier_code", "version", name="uq_dossier_history_version"),
    sa.ForeignKeyConstraint(
        ["source_id", "dossier_code"],
        ["dossiers.source_id", "dossiers.dossier_code"],
        ondelete="CASCADE",
        name="fk_dossier_history_dossiers",
    ),
)
sa.Index(None, dossier_history.c.run_id)

validation_results = sa.Table(
    "validation_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("suite", sa.String(64), nullable=False),
    sa.Column("rule_id", RULE, nullable=False),
    sa.Column("severity", STATUS, nullable=False),
    sa.Column("evaluated", sa.Integer(), nullable=False),
    sa.Column("failed", sa.Integer(), nullable=False),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("run_id", "source_id", "suite", "rule_id", name="uq_validation_results_rule"),
)

dossier_issues = sa.Table(
    "dossier_issues",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("suite", sa.String(64), nullable=False),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("rule_id", RULE, nullable=False),
    sa.Column("severity", STATUS, nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint(
        "run_id", "source_id", "suite", "dossier_code", "rule_id", name="uq_dossier_issues_rule"
    ),
)
sa.Index(None, dossier_issues.c.source_id, dossier_issues.c.dossier_code)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("content_hash", HASH),
    sa.Column("reasons", JSONText(), nullable=False),  # sorted list of rule ids
    sa.Column("status", STATUS, nullable=False),
    sa.Column("first_run_id", RUN_ID, nullable=False),
    sa.Column("last_run_id", RUN_ID, nullable=False),
    sa.Column("held_at", sa.DateTime(), nullable=False),
    sa.Column("released_at", sa.DateTime()),
    sa.Column("released_run_id", RUN_ID),
    _check_in("status", QUARANTINE_STATUSES, "status"),
)
sa.Index(None, quarantine.c.source_id, quarantine.c.status)

citizen_matches = sa.Table(
    "citizen_matches",
    metadata,
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("id_hash", HASH),  # tthc.privacy.key_hash of the ID number, never the number
    sa.Column("match_class", sa.String(32), nullable=False),
    sa.Column("name_score", sa.Float()),
    sa.Column("birth_date_ok", sa.Boolean()),
    sa.Column("checked_at", sa.DateTime(), nullable=False),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("request_id", sa.String(64)),
)
sa.Index(None, citizen_matches.c.id_hash)

lookup_cache = sa.Table(
    "lookup_cache",
    metadata,
    sa.Column("id_hash", HASH, primary_key=True),
    sa.Column("result", JSONText(), nullable=False),  # registry answer or {"found": false}
    sa.Column("fetched_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
)
sa.Index(None, lookup_cache.c.expires_at)

lookup_audit = sa.Table(
    "lookup_audit",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("kind", STATUS, nullable=False),
    sa.Column("requested_at", sa.DateTime(), nullable=False),
    sa.Column("officer", sa.String(128)),
    sa.Column("service_code", sa.String(64)),
    sa.Column("integration_code", sa.String(64)),
    sa.Column("purpose", sa.Text()),
    sa.Column("run_id", RUN_ID),
    sa.Column("source_id", SOURCE),
    sa.Column("count", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    _check_in("kind", LOOKUP_KINDS, "kind"),
)
sa.Index(None, lookup_audit.c.requested_at)
sa.Index(None, lookup_audit.c.run_id)

publish_state = sa.Table(
    "publish_state",
    metadata,
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("published_hash", HASH),
    sa.Column("published_at", sa.DateTime()),
    sa.Column("attempts", sa.Integer(), nullable=False),  # consecutive failures since last success
    sa.Column("last_error", sa.Text()),
    sa.Column("last_attempt_at", sa.DateTime()),
    sa.Column("status", STATUS, nullable=False),
    # 0005: the version of the dossier the portal holds, and the hash of the payload sent for it
    sa.Column("published_version", sa.Integer()),
    sa.Column("payload_hash", HASH),
    _check_in("status", PUBLISH_STATUSES, "status"),
)
sa.Index(None, publish_state.c.status)

publish_outbox = sa.Table(
    "publish_outbox",
    metadata,
    sa.Column("outbox_key", HASH, primary_key=True),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("kind", STATUS, nullable=False),
    sa.Column("content_hash", HASH, nullable=False),
    # A progress entry as sent. NULL for dossier messages (0012): their payload is derived from
    # dossier_history at dossier_version and checked against content_hash (the payload hash).
    sa.Column("payload", JSONText()),
    sa.Column("status", STATUS, nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("dossier_version", sa.Integer()),  # 0005: the dossier version the message derives from
    _check_in("kind", OUTBOX_KINDS, "kind"),
    _check_in("status", OUTBOX_STATUSES, "status"),
)
sa.Index(None, publish_outbox.c.status, publish_outbox.c.created_at)
sa.Index(None, publish_outbox.c.source_id, publish_outbox.c.dossier_code)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("watermark", sa.DateTime()),
    sa.Column("run_id", RUN_ID),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

indicators = sa.Table(
    "indicators",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("period_type", STATUS, nullable=False),
    sa.Column("period_start", sa.Date(), nullable=False),
    sa.Column("scope", STATUS, nullable=False),
    sa.Column("scope_code", CODE, nullable=False),
    sa.Column("indicator_id", sa.String(64), nullable=False),
    sa.Column("numerator", sa.Float(), nullable=False),
    sa.Column("denominator", sa.Float()),  # NULL for count rows (value = numerator)
    sa.Column("value", sa.Float()),  # NULL when the denominator is 0
    sa.Column("run_id", RUN_ID),
    sa.Column("computed_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint(
        "period_type", "period_start", "scope", "scope_code", "indicator_id", name="uq_indicators_period"
    ),
    _check_in("period_type", PERIOD_TYPES, "period_type"),
    _check_in("scope", SCOPES, "scope"),
)

#: Per-dossier outcomes of the period tables (tthc.kpi): ``excluded`` = never received (status 1 / 3 /
#: unknown), ``unjudged`` = received but no due date / no end time; the rest are tthc.ontime outcomes.
OUTCOME_PERIOD_TYPES = ("day", "month", "quarter", "year")
STORED_OUTCOMES = (
    "early",
    "on_time",
    "overdue",
    "open_in_time",
    "open_overdue",
    "withdrawn",
    "unjudged",
    "excluded",
)

# The on-time outcome of every dossier received in a day / month / quarter / year, judged at the
# end of ``period_end`` (the period's last day, or the day it was computed for a running period)
# with the working-day calendar. Codes only: the SQL in sql/indicators_aggregate.sql joins it with
# the dossiers for everything else. Rewritten whole per period (and province) by tthc.kpi.
dossier_outcomes = sa.Table(
    "dossier_outcomes",
    metadata,
    sa.Column("period_type", STATUS, primary_key=True),
    sa.Column("period_start", sa.Date(), primary_key=True),
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("period_end", sa.Date(), nullable=False),
    sa.Column("agency_code", CODE),
    sa.Column("province_code", CODE, nullable=False),
    sa.Column("received_at", sa.DateTime()),
    sa.Column("outcome", STATUS, nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("run_id", RUN_ID),
    sa.Column("computed_at", sa.DateTime(), nullable=False),
    _check_in("period_type", OUTCOME_PERIOD_TYPES, "period_type"),
    _check_in("outcome", STORED_OUTCOMES, "outcome"),
)
sa.Index(
    None, dossier_outcomes.c.period_type, dossier_outcomes.c.period_start, dossier_outcomes.c.province_code
)

#: How ``final_judgements`` stores an outcome (``tthc.indicators.FINAL_OUTCOMES`` and UNJUDGED).
FINAL_OUTCOME_VALUES = ("early", "on_time", "overdue", "withdrawn", "unjudged")

# 0010: the on-time judgement of a dossier whose outcome can no longer change (ended, judged as of
# a time after its end), per dossier version and judging settings (``basis``), written by the
# nightly indicators stage so that next nights count it in SQL instead of judging it again.
# A new version of the dossier does not match the stored one and is judged again. Codes only.
final_judgements = sa.Table(
    "final_judgements",
    metadata,
    sa.Column("source_id", SOURCE, primary_key=True),
    sa.Column("dossier_code", CODE, primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("basis", sa.String(16), nullable=False),
    sa.Column("outcome", STATUS, nullable=False),
    sa.Column("ended_at", sa.DateTime()),  # the end time the judgement used (None: none needed)
    sa.Column("judged_at", sa.DateTime(), nullable=False),
    _check_in("outcome", FINAL_OUTCOME_VALUES, "outcome"),
)

#: Kinds of e-mail tthc.notify records (checked in Python, not by a constraint: new kinds need no
#: migration).
NOTIFICATION_KINDS = ("agency_quality", "engineer_digest", "late_alert")

# One row per e-mail the pipeline decided to send: the key makes sending idempotent per (run,
# source, agency, kind), so a retried task never mails twice. ``source_id`` / ``agency_code`` are
# "*" for mails spanning sources or agencies. ``sent_at`` is NULL while a send is claimed but not
# confirmed (a crash in between is re-sent with the same Message-ID). Recipients are kept as a
# hash only; nothing here says what the mail contained.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("source_id", SOURCE, nullable=False),
    sa.Column("agency_code", CODE, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recipients_hash", HASH, nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("sent_at", sa.DateTime()),
    sa.UniqueConstraint("run_id", "source_id", "agency_code", "kind", name="uq_notifications_key"),
)
sa.Index(None, notifications.c.sent_at)

# ---- file drop ---------------------------------------------------------------------------------
#: Every file-drop file the pipeline has decided about: loaded or rejected (with its reason). A
#: re-exported file (same name, new content) is a new row; the same content is never read twice.
file_manifest = sa.Table(
    "file_manifest",
    metadata,
    sa.Column("source_id", sa.String(64), primary_key=True),
    sa.Column("file_name", sa.String(512), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("status", STATUS, nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("rows", sa.Integer()),
    sa.Column("encoding", sa.String(32)),
    sa.Column("run_id", RUN_ID),
    sa.Column("processed_at", sa.DateTime(), nullable=False),
    _check_in("status", ("loaded", "rejected"), "status"),
)


#: Every table in creation order (handy for tests and maintenance scripts).
TABLES = tuple(metadata.sorted_tables)
