"""Measured resource use per campaign (faceloop/cost.py, docs/cost.md).

Revision ID: 0005_cost
Revises: 0004
Create Date: 2026-12-03

Frozen once released: the types are spelled as the database sees them, not imported from
schema.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_cost"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "cost_usage",
        sa.Column("campaign_id", sa.String, primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("resource", sa.String, primary_key=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("detail", sa.String, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cost_usage")
