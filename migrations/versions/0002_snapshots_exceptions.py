"""model snapshots (baselines survive restarts), the exception list, endpoints behind each verdict

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_snapshots",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.Column("event_time", TS),
        sa.Column("saved_at", TS, nullable=False),
    )
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),  # ip | cidr | country | source
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("expires_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_exceptions_kind_value"),
    )

    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("evidence", sa.JSON))  # the requests behind the verdict
    op.create_table(
        "verdict_endpoints",
        sa.Column("verdict_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),  # "METHOD /templated/path"
        sa.Column("requests", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("verdict_id", "endpoint", name="pk_verdict_endpoints"),
    )


def downgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("evidence")
    op.drop_table("verdict_endpoints")
    op.drop_table("exceptions")
    op.drop_table("model_snapshots")
