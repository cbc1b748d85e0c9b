"""Episodes name the rule that built them, so a contract can take one rule's episodes and a
rebuild can supersede the rule's earlier batch; and an index of the claim lines that adjust
(replace or void) another claim.

An aggregate over claim lines keeps a line only if no visible line names its claim in
`adjusted_claim_id`; the index makes that one probe a line. Without it SQLite scans every visible
line for each line (quadratic: 3,000,000 lines do not finish), and PostgreSQL scans the whole
table a second time to find the adjusting lines. Partial: only adjusting lines have the column,
so the index is small and loading original claims does not maintain it.

Revision ID: 0004_episode_rule
Revises: 0003_outcome_events
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_episode_rule"
down_revision = "0003_outcome_events"
branch_labels = None
depends_on = None


ADJUSTING = sa.text("adjusted_claim_id IS NOT NULL")


def upgrade() -> None:
    op.add_column("events_episode", sa.Column("rule", sa.String(200), nullable=True))
    op.create_index("ix_events_claim_line_adjusted_claim_id", "events_claim_line",
                    ["adjusted_claim_id"], sqlite_where=ADJUSTING,
                    postgresql_where=ADJUSTING)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_events_claim_line_adjusted_claim_id", table_name="events_claim_line")
    op.drop_column("events_episode", "rule")
