"""symptom logs and alerts

Revision ID: a9a14aa21738
Revises: 095f148467d0
Create Date: 2026-11-23 22:28:02.057651

"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a9a14aa21738"
down_revision: str | None = "095f148467d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "symptom_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utc_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pain", sa.Integer(), nullable=False),
        sa.Column("leg_pain", sa.Integer(), nullable=True),
        sa.Column("mobility", sa.Integer(), nullable=True),
        sa.Column("walking_minutes", sa.Integer(), nullable=True),
        sa.Column("odi_answers", sa.JSON(), nullable=True),
        sa.Column("odi", sa.Float(), nullable=True),
        sa.Column("symptoms", sa.JSON(), nullable=True),
        sa.Column("side_effects", sa.JSON(), nullable=False),
        sa.Column("red_flags", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("corrects_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["corrects_id"], ["symptom_log.id"], name=op.f("fk_symptom_log_corrects_id_symptom_log")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_symptom_log_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_symptom_log_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symptom_log")),
        sa.UniqueConstraint(
            "patient_id", "client_id", name=op.f("uq_symptom_log_patient_id_client_id")
        ),
    )
    with op.batch_alter_table("symptom_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_symptom_log_corrects_id"), ["corrects_id"], unique=False
        )
        batch_op.create_index(
            "ix_symptom_log_patient_id_local_date", ["patient_id", "local_date"], unique=False
        )
        batch_op.create_index(
            "ix_symptom_log_patient_id_received_at_id",
            ["patient_id", "received_at", "id"],
            unique=False,
        )

    op.create_table(
        "alert",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("log_id", sa.Uuid(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolution_note", sa.String(length=2000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["user_account.id"],
            name=op.f("fk_alert_acknowledged_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_alert_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["log_id"], ["symptom_log.id"], name=op.f("fk_alert_log_id_symptom_log")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_alert_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["user_account.id"],
            name=op.f("fk_alert_resolved_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_clinic_id_raised_at_id", ["clinic_id", "raised_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alert_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(
            "uq_alert_patient_id_kind_open",
            ["patient_id", "kind"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )


def downgrade() -> None:

    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_alert_patient_id_kind_open",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index(batch_op.f("ix_alert_patient_id"))
        batch_op.drop_index("ix_alert_clinic_id_raised_at_id")

    op.drop_table("alert")
    with op.batch_alter_table("symptom_log", schema=None) as batch_op:
        batch_op.drop_index("ix_symptom_log_patient_id_received_at_id")
        batch_op.drop_index("ix_symptom_log_patient_id_local_date")
        batch_op.drop_index(batch_op.f("ix_symptom_log_corrects_id"))

    op.drop_table("symptom_log")
