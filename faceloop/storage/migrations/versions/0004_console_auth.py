"""Console users, API tokens, sessions and campaign owners (faceloop/console).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Frozen once released: the types are spelled as the database sees them, not imported from
schema.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON().with_variant(JSONB(), "postgresql")
_Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("user_id", sa.String, primary_key=True),
        sa.Column("username", sa.String(128), nullable=False, unique=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("review_roles", _Json, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", _Ts, nullable=False),
        sa.Column("disabled_at", _Ts),
    )
    op.create_table(
        "console_tokens",
        sa.Column("token_id", sa.String, primary_key=True),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _Ts, nullable=False),
        sa.Column("last_used_at", _Ts),
        sa.Column("revoked_at", _Ts),
    )
    op.create_index("ix_console_tokens_user_id", "console_tokens", ["user_id"])
    op.create_table(
        "console_sessions",
        sa.Column("session_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _Ts, nullable=False),
        sa.Column("expires_at", _Ts, nullable=False),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])
    op.create_table(
        "campaign_owners",
        sa.Column("campaign_id", sa.String, primary_key=True),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("submitted_at", _Ts, nullable=False),
    )
    op.create_index("ix_campaign_owners_user_id", "campaign_owners", ["user_id"])


def downgrade() -> None:
    op.drop_table("campaign_owners")
    op.drop_table("console_sessions")
    op.drop_table("console_tokens")
    op.drop_table("console_users")
