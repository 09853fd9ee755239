"""Every asset file written for a variant, recorded before the write (docs/privacy.md).

Revision ID: 0006_asset_writes
Revises: 0005_cost
Create Date: 2026-12-04

Frozen once released: the types are spelled as the database sees them, not imported from
schema.py. Files written before this revision are not listed; `faceloop db upgrade` does not
backfill them (no record says which variant an unrecorded file belonged to).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_asset_writes"
down_revision: str | None = "0005_cost"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "asset_writes",
        sa.Column("asset_id", sa.String, primary_key=True),
        sa.Column("variant_id", sa.String, primary_key=True),
        sa.Column("campaign_id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_asset_writes_campaign_id", "asset_writes", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_asset_writes_campaign_id", "asset_writes")
    op.drop_table("asset_writes")
