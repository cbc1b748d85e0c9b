"""Lean event tables: each keeps one full index, its unique key led by the key and ending with
the batch, and loses its primary key (batch_id, row_number), its per-row foreign key to
outcome_batches, and (claim lines) the claim_id and patient_id indexes; a batch records its
number of rows; and on PostgreSQL every outcome table refuses TRUNCATE, as the ledger's do.

Measured loading 1,000,000 claim lines into the table on PostgreSQL (INSERT … SELECT, no Python):
15.3 s as 0003 made it, 6.2-7.2 s with the unique index only, against 3.7 s for the same rows
into no index at all. The foreign key was a lookup per row and the primary key a second index
led by the 64-character batch id; what they guarded holds by construction: a batch's rows are
written in the transaction that writes its batch row, with row numbers counted by the loader,
and triggers keep every table append-only. Led by the key, the unique index also answers
whether a replacement or void names a known claim (one probe a claim, whatever the number of
batches), which the claim_id index did; a batch's rows are counted once, when it is loaded,
instead of by that index. Without the patient_id index, aggregates over episodes join people by
hash on PostgreSQL; SQLite builds a transient index for each such query (0.4 s at 193,000
lines, growing n log n with the table).

Until now only foreign keys kept PostgreSQL from truncating outcome_batches, and nothing kept it
from truncating an events table: each gets the ledger's BEFORE TRUNCATE trigger (0002).

PostgreSQL changes the tables in place. SQLite cannot drop a primary key, so each events table
is rebuilt (renamed, created anew, copied, the old one dropped) and its indexes and append-only
triggers made again, all in the migration's one transaction (migrations/env.py begins it on
SQLite too).

Revision ID: 0005_lean_event_tables
Revises: 0004_episode_rule
Create Date: 2026-11-26
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0005_lean_event_tables"
down_revision = "0004_episode_rule"
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
DROPPED_INDEXES = {"ix_events_claim_line_claim_id": "claim_id",
                   "ix_events_claim_line_patient_id": "patient_id"}  # fmt: skip
TRUNCATE_GUARDED = ("outcome_batches", "outcome_retractions", *EVENT_KEYS)
ADJUSTING = sa.text("adjusted_claim_id IS NOT NULL")
# A key cell left empty counts as '' in the unique index: NULLs are distinct there, and two spans
# of one person, payer and start without a plan were both let in.
UNIQUE_KEYS = {table: [sa.text("coalesce(plan, '')") if column == "plan" else column
                       for column in key] for table, key in EVENT_KEYS.items()}  # fmt: skip


def upgrade() -> None:
    for name in DROPPED_INDEXES:
        op.drop_index(name, table_name="events_claim_line")
    _count_rows_of_each_batch()
    if op.get_bind().dialect.name == "postgresql":
        inspector = sa.inspect(op.get_bind())
        for table in EVENT_KEYS:
            for foreign in inspector.get_foreign_keys(table):
                op.drop_constraint(str(foreign["name"]), table, type_="foreignkey")
            primary = inspector.get_pk_constraint(table)["name"]
            op.drop_constraint(str(primary), table, type_="primary")
            op.drop_index(f"uq_{table}_key", table_name=table)
            op.create_index(f"uq_{table}_key", table, [*UNIQUE_KEYS[table], "batch_id"],
                            unique=True)  # fmt: skip
        for table in TRUNCATE_GUARDED:  # settle_append_only() is created by 0002_ledger
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()")  # fmt: skip
        return
    for table in EVENT_KEYS:
        _rebuild_sqlite(table, lean=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TRUNCATE_GUARDED:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        for table, key in EVENT_KEYS.items():
            op.drop_index(f"uq_{table}_key", table_name=table)
            op.create_index(f"uq_{table}_key", table, ["batch_id", *key], unique=True)
            op.create_primary_key(f"{table}_pkey", table, ["batch_id", "row_number"])
            op.create_foreign_key(f"{table}_batch_id_fkey", table, "outcome_batches",
                                  ["batch_id"], ["batch_id"])  # fmt: skip
    else:
        for table in EVENT_KEYS:
            _rebuild_sqlite(table, lean=False)
    op.drop_column("outcome_batches", "rows")
    for name, column in DROPPED_INDEXES.items():
        op.create_index(name, "events_claim_line", [column])


def _count_rows_of_each_batch() -> None:
    """outcome_batches.rows, for the batches loaded before: its append-only guard is lifted for
    the one UPDATE, in the migration's transaction."""
    op.add_column("outcome_batches", sa.Column("rows", sa.BigInteger(), nullable=True))
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("ALTER TABLE outcome_batches DISABLE TRIGGER outcome_batches_append_only")
    else:
        op.execute("DROP TRIGGER outcome_batches_no_update")
    counts = " ".join(
        f"WHEN '{table.removeprefix('events_')}' THEN (SELECT count(*) FROM {table} e "
        "WHERE e.batch_id = outcome_batches.batch_id)"
        for table in EVENT_KEYS
    )
    op.execute(f"UPDATE outcome_batches SET rows = CASE event_type {counts} END")
    if postgresql:
        op.execute("ALTER TABLE outcome_batches ENABLE TRIGGER outcome_batches_append_only")
    else:
        _refuse_on_sqlite("outcome_batches", "UPDATE")


def _rebuild_sqlite(table: str, *, lean: bool) -> None:
    """The table made anew with its rows, indexes and triggers: without its primary key and
    foreign key, its unique index led by the key (`lean`); or as 0004 left it (the downgrade)."""
    with warnings.catch_warnings():  # only the columns are read; the indexes are made below
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        old = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in old.columns]
    key = list(EVENT_KEYS[table])
    if not lean:
        columns[0] = sa.Column("batch_id", sa.CHAR(64), sa.ForeignKey("outcome_batches.batch_id"),
                               primary_key=True)  # fmt: skip
        columns[1] = sa.Column("row_number", sa.BigInteger(), primary_key=True,
                               autoincrement=False)  # fmt: skip
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    op.create_table(table, *columns)
    names = ", ".join(column.name for column in columns)
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_old")
    op.execute(f"DROP TABLE {table}_old")  # its indexes and triggers with it
    unique = [*UNIQUE_KEYS[table], "batch_id"] if lean else ["batch_id", *key]
    op.create_index(f"uq_{table}_key", table, unique, unique=True)
    if table == "events_claim_line":
        op.create_index("ix_events_claim_line_adjusted_claim_id", table, ["adjusted_claim_id"],
                        sqlite_where=ADJUSTING)  # fmt: skip
    for action in ("UPDATE", "DELETE"):
        _refuse_on_sqlite(table, action)


def _refuse_on_sqlite(table: str, action: str) -> None:
    """The append-only trigger as 0003 made it."""
    op.execute(
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'settle: {table} is append-only; {action} refused "
        "(a batch is withdrawn by a retraction)'); END"
    )
