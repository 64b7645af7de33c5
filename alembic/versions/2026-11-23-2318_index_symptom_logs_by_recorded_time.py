"""index symptom logs by recorded time

Revision ID: 2a27321a5c77
Revises: a9a14aa21738
Create Date: 2026-11-23 23:18:04.471714

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "2a27321a5c77"
down_revision: str | None = "a9a14aa21738"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("symptom_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_symptom_log_patient_id_recorded_at_id",
            ["patient_id", "recorded_at", "id"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("symptom_log", schema=None) as batch_op:
        batch_op.drop_index("ix_symptom_log_patient_id_recorded_at_id")
