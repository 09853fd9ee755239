"""Per-placement exports of signed creatives (branch h13-formats).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

One row per variant, placement (1:1, 4:5, 9:16, 1.91:1) and media type: the exported
asset, whether its C2PA manifest verified, the watermark's recall read back from the
exported bytes, and the reason when the export was refused (guardrails/export.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "placement_exports",
        sa.Column("variant_id", sa.String, primary_key=True),
        sa.Column("placement", sa.String, primary_key=True),
        sa.Column("media_type", sa.String, primary_key=True),
        sa.Column("campaign_id", sa.String, nullable=False),
        sa.Column("asset_id", sa.String, nullable=False),
        sa.Column("parent_asset_id", sa.String, nullable=False),
        sa.Column("uri", sa.Text),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("quality", sa.Integer, nullable=False),
        sa.Column("fit", sa.String, nullable=False),
        sa.Column("face_in_safe_area", sa.Boolean),
        sa.Column("manifest_ok", sa.Boolean, nullable=False),
        sa.Column("watermark_bit_errors", sa.Integer, nullable=False),
        sa.Column("watermark_recall", sa.Float, nullable=False),
        sa.Column("refused", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_placement_exports_campaign_id", "placement_exports", ["campaign_id"])
    op.create_index("ix_placement_exports_asset_id", "placement_exports", ["asset_id"])


def downgrade() -> None:
    op.drop_index("ix_placement_exports_asset_id", "placement_exports")
    op.drop_index("ix_placement_exports_campaign_id", "placement_exports")
    op.drop_table("placement_exports")
