"""initial schema: verdicts, IP-list changes (history) and current IP-list entries

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("verdict_id", sa.String(64), primary_key=True),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("session", sa.Text),
        sa.Column("bot_type", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(128), nullable=False),
        sa.Column("tolerance", sa.String(16), nullable=False),
        sa.Column("application", sa.Text),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("window_requests", sa.Integer, nullable=False),
        sa.Column("detectors", sa.JSON, nullable=False),
        sa.Column("stored_at", TS, nullable=False),
    )
    op.create_index("ix_verdicts_ip", "verdicts", ["ip"])
    op.create_index("ix_verdicts_detected_at", "verdicts", ["detected_at"])
    op.create_index("ix_verdicts_bot_type_detected_at", "verdicts", ["bot_type", "detected_at"])
    op.create_table(
        "ip_list_changes",
        sa.Column("change_id", sa.String(64), primary_key=True),
        sa.Column("list", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("reason", sa.Text),
        sa.Column("bot_type", sa.String(64)),
        sa.Column("verdict_id", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
    )
    op.create_index("ix_ip_list_changes_value", "ip_list_changes", ["value"])
    op.create_index("ix_ip_list_changes_changed_at", "ip_list_changes", ["changed_at"])
    op.create_table(
        "ip_list_entries",
        sa.Column("list", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("reason", sa.Text),
        sa.Column("bot_type", sa.String(64)),
        sa.Column("verdict_id", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("removed_at", TS),
        sa.PrimaryKeyConstraint("list", "value", name="pk_ip_list_entries"),
    )


def downgrade() -> None:
    op.drop_table("ip_list_entries")
    op.drop_table("ip_list_changes")
    op.drop_table("verdicts")
