"""initial warehouse schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen copy of tthc/warehouse/schema.py at its first release: plain SQLAlchemy types only
(JSON columns are TEXT), so later edits of the live schema never change what this revision does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizen_matches",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("id_hash", sa.String(length=64), nullable=True),
        sa.Column("match_class", sa.String(length=32), nullable=False),
        sa.Column("name_score", sa.Float(), nullable=True),
        sa.Column("birth_date_ok", sa.Boolean(), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "dossier_code", name=op.f("pk_citizen_matches")),
    )
    op.create_index(op.f("ix_citizen_matches_id_hash"), "citizen_matches", ["id_hash"])

    op.create_table(
        "dossier_issues",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("suite", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_issues")),
        sa.UniqueConstraint(
            "run_id",
            "source_id",
            "suite",
            "dossier_code",
            "rule_id",
            name=op.f("uq_dossier_issues_rule"),
        ),
    )
    op.create_index(
        op.f("ix_dossier_issues_source_id_dossier_code"), "dossier_issues", ["source_id", "dossier_code"]
    )

    op.create_table(
        "dossiers",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("dossier_key", sa.String(length=200), nullable=False),
        sa.Column("agency_code", sa.String(length=128), nullable=True),
        sa.Column("procedure_code", sa.String(length=128), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("status_raw", sa.Text(), nullable=True),
        sa.Column("source_record_id", sa.String(length=128), nullable=True),
        sa.Column("agency_name", sa.Text(), nullable=True),
        sa.Column("procedure_name", sa.Text(), nullable=True),
        sa.Column("sector_code", sa.String(length=128), nullable=True),
        sa.Column("sector_name", sa.Text(), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("applicant_name", sa.Text(), nullable=True),
        sa.Column("applicant_id_number", sa.Text(), nullable=True),
        sa.Column("applicant_id_type", sa.Integer(), nullable=True),
        sa.Column("applicant_birth_date", sa.Text(), nullable=True),
        sa.Column("applicant_sex", sa.Integer(), nullable=True),
        sa.Column("applicant_type", sa.Integer(), nullable=True),
        sa.Column("applicant_phone", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("returned_at", sa.DateTime(), nullable=True),
        sa.Column("paid_online", sa.Integer(), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("result_type", sa.String(length=32), nullable=True),
        sa.Column("result_file", sa.Text(), nullable=True),
        sa.Column("vneid_verified", sa.Boolean(), nullable=False),
        sa.Column("supplement_count", sa.Integer(), nullable=False),
        sa.Column("supplement_pending", sa.Boolean(), nullable=False),
        sa.Column("attachment_count", sa.Integer(), nullable=False),
        sa.Column("digitized_count", sa.Integer(), nullable=False),
        sa.Column("reused_count", sa.Integer(), nullable=False),
        sa.Column("raw_issue_fields", sa.Text(), nullable=True),
        sa.Column("supplements_json", sa.Text(), nullable=False),
        sa.Column("attachments_json", sa.Text(), nullable=False),
        sa.Column("raw_issues_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_seen_run", sa.String(length=250), nullable=False),
        sa.Column("last_run_id", sa.String(length=250), nullable=False),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
        sa.Column("quality_status", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "quality_status IN ('pending', 'valid', 'warning', 'quarantined')",
            name=op.f("ck_dossiers_quality_status"),
        ),
        sa.PrimaryKeyConstraint("source_id", "dossier_code", name=op.f("pk_dossiers")),
    )
    op.create_index(op.f("ix_dossiers_agency_code"), "dossiers", ["agency_code"])
    op.create_index(op.f("ix_dossiers_received_at"), "dossiers", ["received_at"])
    op.create_index(op.f("ix_dossiers_source_id_last_run_id"), "dossiers", ["source_id", "last_run_id"])
    op.create_index(op.f("ix_dossiers_source_id_quality_status"), "dossiers", ["source_id", "quality_status"])

    op.create_table(
        "indicators",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("period_type", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_code", sa.String(length=128), nullable=False),
        sa.Column("indicator_id", sa.String(length=32), nullable=False),
        sa.Column("numerator", sa.Float(), nullable=False),
        sa.Column("denominator", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "period_type IN ('run', 'day', 'month', 'quarter', 'year')",
            name=op.f("ck_indicators_period_type"),
        ),
        sa.CheckConstraint("scope IN ('agency', 'province', 'source')", name=op.f("ck_indicators_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicators")),
        sa.UniqueConstraint(
            "period_type",
            "period_start",
            "scope",
            "scope_code",
            "indicator_id",
            name=op.f("uq_indicators_period"),
        ),
    )
    op.create_table(
        "lookup_audit",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("officer", sa.String(length=128), nullable=True),
        sa.Column("service_code", sa.String(length=64), nullable=True),
        sa.Column("integration_code", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.CheckConstraint("kind IN ('single', 'bulk')", name=op.f("ck_lookup_audit_kind")),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_lookup_audit")),
    )
    op.create_index(op.f("ix_lookup_audit_requested_at"), "lookup_audit", ["requested_at"])
    op.create_index(op.f("ix_lookup_audit_run_id"), "lookup_audit", ["run_id"])

    op.create_table(
        "lookup_cache",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_lookup_cache")),
    )
    op.create_index(op.f("ix_lookup_cache_expires_at"), "lookup_cache", ["expires_at"])

    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("records_in", sa.Integer(), nullable=True),
        sa.Column("records_out", sa.Integer(), nullable=True),
        sa.Column("quarantined", sa.Integer(), nullable=True),
        sa.Column("matched", sa.Integer(), nullable=True),
        sa.Column("published", sa.Integer(), nullable=True),
        sa.Column("errors", sa.Integer(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'failed')", name=op.f("ck_pipeline_runs_status")
        ),
        sa.PrimaryKeyConstraint("run_id", "source_id", "stage", name=op.f("pk_pipeline_runs")),
    )
    op.create_index(op.f("ix_pipeline_runs_started_at"), "pipeline_runs", ["started_at"])

    op.create_table(
        "publish_outbox",
        sa.Column("outbox_key", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('dossier', 'progress')", name=op.f("ck_publish_outbox_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'confirmed', 'failed')", name=op.f("ck_publish_outbox_status")
        ),
        sa.PrimaryKeyConstraint("outbox_key", name=op.f("pk_publish_outbox")),
    )
    op.create_index(
        op.f("ix_publish_outbox_source_id_dossier_code"), "publish_outbox", ["source_id", "dossier_code"]
    )
    op.create_index(op.f("ix_publish_outbox_status_created_at"), "publish_outbox", ["status", "created_at"])

    op.create_table(
        "publish_state",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("published_hash", sa.String(length=64), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "status IN ('published', 'failed', 'pending')", name=op.f("ck_publish_state_status")
        ),
        sa.PrimaryKeyConstraint("source_id", "dossier_code", name=op.f("pk_publish_state")),
    )
    op.create_index(op.f("ix_publish_state_status"), "publish_state", ["status"])

    op.create_table(
        "quarantine",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_run_id", sa.String(length=250), nullable=False),
        sa.Column("last_run_id", sa.String(length=250), nullable=False),
        sa.Column("held_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_run_id", sa.String(length=250), nullable=True),
        sa.CheckConstraint("status IN ('held', 'released')", name=op.f("ck_quarantine_status")),
        sa.PrimaryKeyConstraint("source_id", "dossier_code", name=op.f("pk_quarantine")),
    )
    op.create_index(op.f("ix_quarantine_source_id_status"), "quarantine", ["source_id", "status"])

    op.create_table(
        "raw_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=True),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_records")),
        sa.UniqueConstraint("source_id", "record_hash", name=op.f("uq_raw_records_record_hash")),
    )
    op.create_index(op.f("ix_raw_records_run_id"), "raw_records", ["run_id"])
    op.create_index(
        op.f("ix_raw_records_source_id_dossier_code"), "raw_records", ["source_id", "dossier_code"]
    )

    op.create_table(
        "validation_results",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("suite", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validation_results")),
        sa.UniqueConstraint(
            "run_id",
            "source_id",
            "suite",
            "rule_id",
            name=op.f("uq_validation_results_rule"),
        ),
    )
    op.create_table(
        "watermarks",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_watermarks")),
    )
    op.create_table(
        "dossier_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id", "dossier_code"],
            ["dossiers.source_id", "dossiers.dossier_code"],
            name=op.f("fk_dossier_history_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_history")),
        sa.UniqueConstraint(
            "source_id",
            "dossier_code",
            "version",
            name=op.f("uq_dossier_history_version"),
        ),
    )
    op.create_index(op.f("ix_dossier_history_run_id"), "dossier_history", ["run_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dossier_history_run_id"), table_name="dossier_history")

    op.drop_table("dossier_history")
    op.drop_table("watermarks")
    op.drop_table("validation_results")
    op.drop_index(op.f("ix_raw_records_source_id_dossier_code"), table_name="raw_records")
    op.drop_index(op.f("ix_raw_records_run_id"), table_name="raw_records")

    op.drop_table("raw_records")
    op.drop_index(op.f("ix_quarantine_source_id_status"), table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_index(op.f("ix_publish_state_status"), table_name="publish_state")

    op.drop_table("publish_state")
    op.drop_index(op.f("ix_publish_outbox_status_created_at"), table_name="publish_outbox")
    op.drop_index(op.f("ix_publish_outbox_source_id_dossier_code"), table_name="publish_outbox")

    op.drop_table("publish_outbox")
    op.drop_index(op.f("ix_pipeline_runs_started_at"), table_name="pipeline_runs")

    op.drop_table("pipeline_runs")
    op.drop_index(op.f("ix_lookup_cache_expires_at"), table_name="lookup_cache")

    op.drop_table("lookup_cache")
    op.drop_index(op.f("ix_lookup_audit_run_id"), table_name="lookup_audit")
    op.drop_index(op.f("ix_lookup_audit_requested_at"), table_name="lookup_audit")

    op.drop_table("lookup_audit")
    op.drop_table("indicators")
    op.drop_index(op.f("ix_dossiers_source_id_quality_status"), table_name="dossiers")
    op.drop_index(op.f("ix_dossiers_source_id_last_run_id"), table_name="dossiers")
    op.drop_index(op.f("ix_dossiers_received_at"), table_name="dossiers")
    op.drop_index(op.f("ix_dossiers_agency_code"), table_name="dossiers")

    op.drop_table("dossiers")
    op.drop_index(op.f("ix_dossier_issues_source_id_dossier_code"), table_name="dossier_issues")

    op.drop_table("dossier_issues")
    op.drop_index(op.f("ix_citizen_matches_id_hash"), table_name="citizen_matches")

    op.drop_table("citizen_matches")
