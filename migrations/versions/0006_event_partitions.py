"""PostgreSQL: each events table is partitioned by a partition number, so that a large batch can be
written into a table of its own and indexed once its rows are in.

Kept up row by row, the unique (key, batch) index was most of a load's cost in the database:
loading 1,000,000 claim lines of 137 columns (INSERT … SELECT, no Python) took 2.1-2.2x a bare
COPY of the file into the table with it, 1.1x into a table without it, and 1.3-1.55x with the
index built after the rows were in. A batch of its own partition is that last case: the loader
creates the partition's table, COPYs the rows in, builds its indexes, and attaches it, all in the
load's transaction (ATTACH takes a lock that lets every read go on).

Every table partitioned by batch would make one partition per file, thousands for a daily feed,
and a query over them all plans and locks each one. So the partition key is a number of its own,
`partition_number`: 0, the default, is the shared partition, which holds the batches loaded before
this migration and every batch written row by row (the table as it was, renamed
`<table>_shared`, keeping its indexes); a batch given a partition of its own gets the next number
of the sequence `outcome_partition_numbers`. Which batches do is the loader's choice
(outcomes/store.py: large plain CSV files).

Every privilege granted on an events table is granted on the partitioned table too (it is made
LIKE the old one, which copies no grant). What named the old table by its identity rather than
its name follows it to `<table>_shared`: a view, a publication, a policy made before this
migration reads the shared partition only, and must be made again.

The events tables stay append-only: the row trigger refusing UPDATE and DELETE moves to the
partitioned table, which gives it to every partition; TRUNCATE is refused by a trigger on the
partitioned table and on each partition (the loader gives each new one its own).

SQLite has no partitions: nothing changes there.

Revision ID: 0006_event_partitions
Revises: 0005_lean_event_tables
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0006_event_partitions"
down_revision = "0005_lean_event_tables"
branch_labels = None
depends_on = None

EVENT_TABLES = ("events_claim_line", "events_eligibility", "events_attribution",
                "events_quality_result", "events_episode", "events_risk_score",
                "events_admission")  # fmt: skip
SEQUENCE = "outcome_partition_numbers"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE SEQUENCE {SEQUENCE} START 1")
    for table in EVENT_TABLES:
        shared = f"{table}_shared"
        op.execute(f"ALTER TABLE {table} RENAME TO {shared}")
        op.execute(f"ALTER TABLE {shared} ADD COLUMN partition_number integer NOT NULL DEFAULT 0")
        op.execute(f"ALTER TABLE {shared} ADD CONSTRAINT {shared}_number "
                   "CHECK (partition_number = 0)")  # fmt: skip
        op.execute(f"DROP TRIGGER {table}_append_only ON {shared}")  # the parent's replaces it
        op.execute(f"CREATE TABLE {table} (LIKE {shared} INCLUDING DEFAULTS) "
                   "PARTITION BY LIST (partition_number)")  # fmt: skip
        op.execute(f"ALTER TABLE {table} ATTACH PARTITION {shared} FOR VALUES IN (0)")
        _grant_as_on(shared, table)
        _refuse_changes(table)


def downgrade() -> None:
    """Every partition's rows back into one table, as 0005 left it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in EVENT_TABLES:
        shared = f"{table}_shared"
        op.execute(f"ALTER TABLE {table} DETACH PARTITION {shared}")
        own = op.get_bind().exec_driver_sql(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            f"WHERE inhparent = '{table}'::regclass"
        ).scalars().all()
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_partitioned")
        op.execute(f"ALTER TABLE {shared} RENAME TO {table}")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {shared}_number")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION settle_append_only()")  # fmt: skip
        if own:
            columns = ", ".join(
                op.get_bind().exec_driver_sql(
                    "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = "
                    f"'{table}'::regclass AND attnum > 0 AND NOT attisdropped "
                    "AND attname <> 'partition_number' ORDER BY attnum"
                ).scalars()
            )
            op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} "
                       f"FROM {table}_partitioned")  # fmt: skip
        _grant_as_on(f"{table}_partitioned", table)
        op.execute(f"DROP TABLE {table}_partitioned")  # its own partitions with it
        op.execute(f"ALTER TABLE {table} DROP COLUMN partition_number")
    op.execute(f"DROP SEQUENCE {SEQUENCE}")


def _grant_as_on(source: str, target: str) -> None:
    """Every privilege granted on `source` (to a role or PUBLIC, by its owner or another), granted
    on `target` too: a table made LIKE another has none of its grants, and the roles that read
    and load events through the table's name would be refused."""
    op.execute(f"""
        DO $$
        DECLARE granted record;
        BEGIN
            FOR granted IN
                SELECT a.privilege_type, a.is_grantable,
                       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who
                FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                LEFT JOIN pg_roles r ON r.oid = a.grantee
                WHERE c.oid = '{source}'::regclass AND a.grantee <> c.relowner
            LOOP
                EXECUTE format('GRANT %s ON {target} TO %s%s', granted.privilege_type,
                               granted.who, CASE WHEN granted.is_grantable
                                                 THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END $$
    """)


def _refuse_changes(table: str) -> None:
    """The append-only triggers, as 0003 and 0005 made them, on the partitioned table."""
    op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
               "FOR EACH ROW EXECUTE FUNCTION settle_append_only()")  # fmt: skip
    op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
               "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()")  # fmt: skip
