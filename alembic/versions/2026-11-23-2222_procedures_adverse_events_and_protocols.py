"""procedures, adverse events and protocols

Revision ID: 095f148467d0
Revises: 32efdafe273c
Create Date: 2026-11-23 22:22:38.982549

"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "095f148467d0"
down_revision: str | None = "32efdafe273c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The default protocol, version 1: CLINICAL.md's rules as data. A clinic adds its own protocol
# (or a new version) as another row; migrations never import the application's models.
DEFAULT_RULES = {
    "caveat": (
        "Milestones measure a patient's change against their own baseline. They do not show "
        "that a treatment works."
    ),
    "baseline": {"statistic": "median", "window_days": [-60, -1]},
    "metrics": {
        "pain": {
            "range": [0, 10],
            "better": "lower",
            "improved_points": 2,
            "improved_percent": 30,
            "substantial_percent": 50,
            "worse_points": 2,
        },
        "mobility": {
            "range": [0, 10],
            "better": "higher",
            "improved_points": 2,
            "improved_percent": 30,
            "substantial_percent": None,
            "worse_points": 2,
        },
        "odi": {
            "range": [0, 100],
            "better": "lower",
            "improved_points": 10,
            "improved_percent": 30,
            "substantial_percent": 50,
            "worse_points": 10,
        },
    },
    "milestones": [
        {
            "key": "immediate",
            "label": "Immediate post-treatment period",
            "start_day": 0,
            "end_day": 14,
            "expected": (
                "Mild soreness at the injection site that goes away in a few days; "
                "rest and avoid hard activity."
            ),
            "pain_flare": {"from_day": 7, "to_day": 14, "min_logs": 2, "rise_points": 2},
            "soreness_persisting": {
                "from_day": 8,
                "side_effects": ["injection_site_pain", "swelling", "redness"],
            },
        },
        {
            "key": "short_term",
            "label": "Short-term expectations (1-3 months)",
            "start_day": 30,
            "end_day": 90,
            "expected": "Pain getting better, improved mobility, better function.",
            "min_logs_when_closed": 2,
            "report_substantial": False,
        },
        {
            "key": "long_term",
            "label": "Long-term outcomes (6-12+ months)",
            "start_day": 180,
            "end_day": 365,
            "expected": "Lasting pain relief and better quality of life.",
            "min_logs_when_closed": 2,
            "report_substantial": True,
        },
    ],
    "benchmark_met_rate": 0.70,
    "worsening": {"after_day": 14, "consecutive_logs": 2, "rise_points": 2},
    "check_in_schedule": [
        {"phase": "daily", "from_day": 0, "to_day": 14, "every_days": 1, "grace_days": 2},
        {"phase": "weekly", "from_day": 21, "to_day": 91, "every_days": 7, "grace_days": 4},
        {"phase": "monthly", "from_day": 120, "to_day": 360, "every_days": 30, "grace_days": 10},
        {"phase": "quarterly", "from_day": 450, "to_day": 720, "every_days": 90, "grace_days": 10},
    ],
    "factors": {"age_moderate_from_years": 65},
}


def upgrade() -> None:

    op.create_table(
        "protocol",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_protocol")),
    )
    op.create_table(
        "procedure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("treatment", sa.String(length=16), nullable=False),
        sa.Column("cell_source", sa.String(length=16), nullable=True),
        sa.Column("harvest", sa.JSON(), nullable=True),
        sa.Column("injections", sa.JSON(), nullable=False),
        sa.Column("adjuncts", sa.JSON(), nullable=False),
        sa.Column("baseline_pain", sa.Float(), nullable=True),
        sa.Column("baseline_leg_pain", sa.Float(), nullable=True),
        sa.Column("baseline_mobility", sa.Float(), nullable=True),
        sa.Column("baseline_odi", sa.Float(), nullable=True),
        sa.Column("protocol_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("notes", sa.String(length=2000), nullable=True),
        sa.Column("override_reason", sa.String(length=2000), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_procedure_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_procedure_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedure")),
    )
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.create_index(
            "ix_procedure_patient_id_performed_on", ["patient_id", "performed_on"], unique=False
        )

    op.create_table(
        "adverse_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("procedure_id", sa.Uuid(), nullable=False),
        sa.Column("onset_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("serious", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_adverse_event_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"], ["procedure.id"], name=op.f("fk_adverse_event_procedure_id_procedure")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_event")),
    )
    with op.batch_alter_table("adverse_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_adverse_event_patient_id_onset_on", ["patient_id", "onset_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_adverse_event_procedure_id"), ["procedure_id"], unique=False
        )

    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=64), nullable=True))

    protocol = sa.table(
        "protocol",
        sa.column("id", sa.String),
        sa.column("version", sa.Integer),
        sa.column("name", sa.String),
        sa.column("rules", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        protocol,
        [
            {
                "id": "default",
                "version": 1,
                "name": "Default protocol (CLINICAL.md)",
                "rules": DEFAULT_RULES,
                "created_at": datetime(2026, 11, 23, tzinfo=UTC),
            }
        ],
    )


def downgrade() -> None:

    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("reason")

    with op.batch_alter_table("adverse_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adverse_event_procedure_id"))
        batch_op.drop_index("ix_adverse_event_patient_id_onset_on")

    op.drop_table("adverse_event")
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.drop_index("ix_procedure_patient_id_performed_on")

    op.drop_table("procedure")
    op.drop_table("protocol")
