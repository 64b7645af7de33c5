"""Stored progress: the milestone engine's results kept as rows, for the reads that span patients
(the patient list's filter, cohort figures, exports) and for the clock sweep.

The engine (api/clinical/evaluation.py) is the one source of truth; these rows are its cache.
They are rewritten in the same transaction as every change of the engine's inputs and by the
sweep when the clock alone changes them (`next_change_on`). Each row holds no identifier.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Column, Field, SQLModel

from models.base import utc_column, utc_now


class ProcedureEvaluation(SQLModel, table=True):
    """One procedure's evaluation as of `as_of`, valid until `next_change_on` (exclusive)."""

    __tablename__ = "procedure_evaluation"
    __table_args__ = (Index("ix_procedure_evaluation_patient_id", "patient_id"),)

    procedure_id: uuid.UUID = Field(
        primary_key=True, foreign_key="procedure.id", ondelete="CASCADE"
    )
    patient_id: uuid.UUID = Field(foreign_key="patient.id", ondelete="CASCADE")
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id", index=True)
    protocol_id: str = Field(max_length=64)
    protocol_version: int
    as_of: date
    # The first date on which the clock alone changes this evaluation; null: never.
    next_change_on: date | None = None
    baseline_pain: float | None = None
    baseline_leg_pain: float | None = None
    baseline_mobility: float | None = None
    baseline_odi: float | None = None
    baseline_n_logs: int | None = None
    baseline_source: str | None = Field(default=None, max_length=16)
    current_milestone: str | None = Field(default=None, max_length=32)
    progress_status: str = Field(max_length=32)
    next_check_in_day: int | None = None
    age_at_procedure: int
    factors: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    evaluated_at: datetime = utc_column(default_factory=utc_now)


class MilestoneEvaluation(SQLModel, table=True):
    """One milestone of one procedure, as the engine reported it."""

    __tablename__ = "milestone_evaluation"
    __table_args__ = (
        Index("ix_milestone_evaluation_clinic_id_key_status", "clinic_id", "key", "status"),
        Index("ix_milestone_evaluation_patient_id", "patient_id"),
    )

    procedure_id: uuid.UUID = Field(
        primary_key=True, foreign_key="procedure.id", ondelete="CASCADE"
    )
    key: str = Field(primary_key=True, max_length=32)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", ondelete="CASCADE")
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id")
    position: int  # the milestone's place in its protocol
    label: str = Field(max_length=200)
    start_day: int
    end_day: int
    state: str = Field(max_length=16)
    status: str = Field(max_length=32)
    expected: str = Field(max_length=2000)
    n_logs: int
    pain: float | None = None
    pain_change: float | None = None
    pain_change_pct: float | None = None
    mobility: float | None = None
    mobility_change: float | None = None
    odi: float | None = None
    odi_change: float | None = None
    substantial: bool | None = None
    findings: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class PatientProgress(SQLModel, table=True):
    """Each patient's current milestone and progress_status (the latest procedure's), for the
    patient list: its filter and keyset order are one index range."""

    __tablename__ = "patient_progress"
    __table_args__ = (
        Index(
            "ix_patient_progress_clinic_status_order",
            "clinic_id",
            "progress_status",
            "patient_created_at",
            "patient_id",
        ),
        Index(
            "ix_patient_progress_status_order",
            "progress_status",
            "patient_created_at",
            "patient_id",
        ),
        Index("ix_patient_progress_clinic_order", "clinic_id", "patient_created_at", "patient_id"),
        Index("ix_patient_progress_due_at", "due_at"),
        Index("ix_patient_progress_clinic_id_due_at", "clinic_id", "due_at"),
    )

    patient_id: uuid.UUID = Field(primary_key=True, foreign_key="patient.id", ondelete="CASCADE")
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id")
    patient_created_at: datetime = utc_column()
    procedure_id: uuid.UUID | None = None
    current_milestone: str | None = Field(default=None, max_length=32)
    progress_status: str = Field(default="pending", max_length=32)
    as_of: date | None = None
    # The earliest next_change_on of the patient's procedures; null: the clock changes nothing.
    next_change_on: date | None = None
    # The instant that date begins in the patient's time zone: what the sweep and the reads'
    # catch-up select on, one index range, with no time-zone arithmetic per patient.
    due_at: datetime | None = utc_column(default=None)
    evaluated_at: datetime | None = utc_column(default=None)
