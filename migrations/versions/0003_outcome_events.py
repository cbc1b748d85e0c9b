"""Outcome events: one table per event type, the batches they arrive in, and batch retractions.

Money is stored as integer ten-thousandths and scores as integer billionths, so that sums are
exact on SQLite (which has no decimal type) and PostgreSQL alike; the store converts. Every table
is append-only: a batch is withdrawn by a retraction record, never by deleting its rows.
Generated once from outcomes/events.py and kept static, as a migration must be.

Revision ID: 0003_outcome_events
Revises: 0002_ledger
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_outcome_events"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None

EVENT_KEYS = {
    "events_claim_line": ("claim_id", "claim_line_number"),
    "events_eligibility": ("patient_id", "payer", "plan", "enrollment_start_date"),
    "events_attribution": ("patient_id", "provider_id", "period_start"),
    "events_quality_result": ("measure_id", "provider_id", "period_start"),
    "events_episode": ("episode_id",),
    "events_risk_score": ("patient_id", "model", "period_start"),
    "events_admission": ("encounter_id",),
}
EVENT_TABLES = (
    "events_claim_line",
    "events_eligibility",
    "events_attribution",
    "events_quality_result",
    "events_episode",
    "events_risk_score",
    "events_admission",
)


def upgrade() -> None:
    op.create_table(
        "outcome_batches",
        sa.Column("batch_id", sa.CHAR(64), primary_key=True),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_as_of", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outcome_batches_learned_at", "outcome_batches", ["learned_at"])
    op.create_table(
        "outcome_retractions",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
    )
    op.create_table(
        "events_claim_line",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("claim_id", sa.String(200), nullable=False),
        sa.Column("claim_line_number", sa.BigInteger(), nullable=False),
        sa.Column("claim_type", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.String(200), nullable=True),
        sa.Column("claim_start_date", sa.Date(), nullable=True),
        sa.Column("claim_end_date", sa.Date(), nullable=True),
        sa.Column("claim_line_start_date", sa.Date(), nullable=True),
        sa.Column("claim_line_end_date", sa.Date(), nullable=True),
        sa.Column("admission_date", sa.Date(), nullable=True),
        sa.Column("discharge_date", sa.Date(), nullable=True),
        sa.Column("place_of_service_code", sa.String(200), nullable=True),
        sa.Column("bill_type_code", sa.String(200), nullable=True),
        sa.Column("ms_drg_code", sa.String(200), nullable=True),
        sa.Column("revenue_center_code", sa.String(200), nullable=True),
        sa.Column("service_unit_quantity", sa.BigInteger(), nullable=True),
        sa.Column("hcpcs_code", sa.String(200), nullable=True),
        sa.Column("rendering_npi", sa.String(200), nullable=True),
        sa.Column("billing_npi", sa.String(200), nullable=True),
        sa.Column("facility_npi", sa.String(200), nullable=True),
        sa.Column("billing_tin", sa.String(200), nullable=True),
        sa.Column("paid_date", sa.Date(), nullable=True),
        sa.Column("allowed_amount", sa.BigInteger(), nullable=True),
        sa.Column("charge_amount", sa.BigInteger(), nullable=True),
        sa.Column("diagnosis_code_1", sa.String(200), nullable=True),
        sa.Column("diagnosis_code_2", sa.String(200), nullable=True),
        sa.Column("diagnosis_code_3", sa.String(200), nullable=True),
        sa.Column("adjusted_claim_id", sa.String(200), nullable=True),
        sa.Column("claim_status", sa.String(200), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_eligibility",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("enrollment_start_date", sa.Date(), nullable=False),
        sa.Column("enrollment_end_date", sa.Date(), nullable=False),
        sa.Column("payer", sa.String(200), nullable=False),
        sa.Column("member_id", sa.String(200), nullable=True),
        sa.Column("gender", sa.String(200), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("death_date", sa.Date(), nullable=True),
        sa.Column("payer_type", sa.String(200), nullable=True),
        sa.Column("plan", sa.String(200), nullable=True),
        sa.Column("dual_status_code", sa.String(200), nullable=True),
        sa.Column("medicare_status_code", sa.String(200), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_attribution",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("contract_id", sa.String(200), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_quality_result",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("measure_id", sa.String(200), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=True),
        sa.Column("numerator", sa.BigInteger(), nullable=True),
        sa.Column("denominator", sa.BigInteger(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_episode",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("episode_id", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("anchor_claim_id", sa.String(200), nullable=True),
        sa.Column("ms_drg_code", sa.String(200), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_risk_score",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_table(
        "events_admission",
        sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                  primary_key=True),
        sa.Column("row_number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("encounter_id", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("admit_date", sa.Date(), nullable=False),
        sa.Column("facility_npi", sa.String(200), nullable=True),
        sa.Column("discharge_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(200), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    for table, key in EVENT_KEYS.items():  # a key is unique within its batch
        op.create_index(f"uq_{table}_key", table, ["batch_id", *key], unique=True)
    op.create_index("ix_events_claim_line_claim_id", "events_claim_line", ["claim_id"])
    op.create_index("ix_events_claim_line_patient_id", "events_claim_line", ["patient_id"])
    _refuse_changes()


def _refuse_changes() -> None:
    tables = ("outcome_batches", "outcome_retractions", *EVENT_TABLES)
    if op.get_bind().dialect.name == "postgresql":
        for table in tables:  # settle_append_only() is created by 0002_ledger
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION settle_append_only()"
            )
        return
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'settle: {table} is append-only; {action} refused "
                "(a batch is withdrawn by a retraction)'); END"
            )


def downgrade() -> None:
    for table in reversed(EVENT_TABLES):
        op.drop_table(table)
    op.drop_table("outcome_retractions")
    op.drop_table("outcome_batches")
