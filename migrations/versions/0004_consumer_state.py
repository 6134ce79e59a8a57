"""consumer state: where each partition must be re-read from after a restart, and what was judged

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_state",
        sa.Column("group_id", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("replay_from", sa.BigInteger, nullable=False),  # lowest offset the open windows still need
        sa.Column("judged_until", sa.BigInteger),  # window steps (bucket index) below this were judged
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_consumer_state"),
    )


def downgrade() -> None:
    op.drop_table("consumer_state")
