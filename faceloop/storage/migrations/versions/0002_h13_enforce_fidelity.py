"""Variants record what their image shows: the perception reading, requested vs measured
per face parameter, and how many images the generate stage made (issue 13).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Rows written before this revision keep NULL in all three: they were never measured, and
the optimizer reads their parameters as requested.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# the catalog's JSON type as the DDL sees it: JSONB on PostgreSQL, JSON text on SQLite
_Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("variants", sa.Column("measured", _Json))
    op.add_column("variants", sa.Column("fidelity", _Json))
    op.add_column("variants", sa.Column("tries", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.drop_column("tries")
        batch.drop_column("fidelity")
        batch.drop_column("measured")
