"""The ledger: append-only entries, postings, Merkle nodes, checkpoints and their signatures, the
documents entries commit to, and one head row per ledger that serializes appends.

Every table but the head refuses UPDATE and DELETE in the database itself (a trigger), so not even
the service can rewrite history: corrections are new reversing entries.

Revision ID: 0002_ledger
Revises: 0001_contract_versions
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_contract_versions"
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "ledger_entries",
    "ledger_postings",
    "ledger_merkle_nodes",
    "ledger_checkpoints",
    "ledger_checkpoint_signatures",
    "ledger_documents",
)


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.CHAR(64), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("entry_hash", sa.CHAR(64), nullable=False),
        sa.Column("previous_hash", sa.CHAR(64), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("contract_id", sa.String(200), nullable=False),
        sa.Column("period", sa.String(200), nullable=False),
        sa.Column("contract_hash", sa.String(64), nullable=False),
        sa.Column("trace_hash", sa.String(64), nullable=False),
        sa.Column("reverses", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ledger_id", "idempotency_key", name="uq_ledger_entries_key"),
        sa.UniqueConstraint("ledger_id", "entry_hash", name="uq_ledger_entries_hash"),
    )
    op.create_index(
        "ix_ledger_entries_contract_period", "ledger_entries", ["ledger_id", "contract_id", "period"]
    )
    op.create_table(
        "ledger_postings",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("side", sa.String(6), nullable=False),
        sa.Column("amount", sa.Text(), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id", "sequence"], ["ledger_entries.ledger_id", "ledger_entries.sequence"]
        ),
    )
    op.create_index("ix_ledger_postings_account", "ledger_postings", ["ledger_id", "account"])
    op.create_table(
        "ledger_merkle_nodes",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root", sa.CHAR(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ledger_checkpoint_signatures",
        sa.Column("ledger_id", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("key_name", sa.String(200), primary_key=True),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id", "size"], ["ledger_checkpoints.ledger_id", "ledger_checkpoints.size"]
        ),
    )
    op.create_table(
        "ledger_documents",
        sa.Column("content_hash", sa.CHAR(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
    )
    _refuse_changes()


def _refuse_changes() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION settle_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'settle: % is append-only; % refused (corrections are new '
                    'reversing entries)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION settle_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()"
            )
        return
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'settle: {table} is append-only; {action} refused "
                "(corrections are new reversing entries)'); END"
            )


def downgrade() -> None:
    for table in reversed(APPEND_ONLY):
        op.drop_table(table)
    op.drop_table("ledger_heads")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS settle_append_only()")
