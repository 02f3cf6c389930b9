"""passive inventory: dhcp lease history, asset device class and fingerprint

Additive: a new ``dhcp_lease`` table and two nullable ``asset`` columns, so it applies to a
database that already holds assets.

Revision ID: 40c9a0889b8d
Revises: cbf603a07e0a
Create Date: 2026-11-22 03:24:11.831624
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "40c9a0889b8d"
down_revision: str | Sequence[str] | None = "cbf603a07e0a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dhcp_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_dhcp_lease_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dhcp_lease")),
    )
    with op.batch_alter_table("dhcp_lease", schema=None) as batch_op:
        batch_op.create_index("ix_dhcp_lease_tenant_ip_start", ["tenant_id", "ip", "start"], unique=False)
        batch_op.create_index("ix_dhcp_lease_tenant_mac", ["tenant_id", "mac"], unique=False)

    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_class", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "fingerprint",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.create_index("ix_asset_tenant_ip", ["tenant_id", "ip"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_tenant_ip")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("device_class")

    with op.batch_alter_table("dhcp_lease", schema=None) as batch_op:
        batch_op.drop_index("ix_dhcp_lease_tenant_mac")
        batch_op.drop_index("ix_dhcp_lease_tenant_ip_start")

    op.drop_table("dhcp_lease")
