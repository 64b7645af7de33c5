"""Symptom logs (one check-in each) and the clinic alerts they raise.

Logs are append-only: a correction is a new row that names the log it corrects, and a log that
some correction names is superseded in every computation.
"""

import re
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
)
from pydantic import Field as F
from sqlalchemy import JSON, Index, UniqueConstraint, text
from sqlmodel import Column, Field, SQLModel

from models.base import (
    Note,
    Patch,
    enum_column,
    new_id,
    ordered_id,
    plausible_day,
    utc_column,
    utc_now,
)
from models.timezones import TimeZoneName


class SideEffect(StrEnum):
    injection_site_pain = "injection_site_pain"
    swelling = "swelling"
    redness = "redness"
    fatigue = "fatigue"
    headache = "headache"


class RedFlag(StrEnum):
    fever = "fever"
    bladder_bowel_change = "bladder_bowel_change"
    saddle_numbness = "saddle_numbness"
    new_weakness = "new_weakness"
    severe_headache = "severe_headache"
    wound_infection_signs = "wound_infection_signs"


class LogSource(StrEnum):
    app = "app"
    clinic = "clinic"


class AlertKind(StrEnum):
    red_flag = "red_flag"
    worsening = "worsening"
    missed_check_in = "missed_check_in"
    milestone_not_met = "milestone_not_met"


class AlertStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


Score = Annotated[int, Strict(), F(ge=0, le=10)]
OdiAnswer = Annotated[int, Strict(), F(ge=0, le=5)]


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    # pydantic alone takes numbers and numeric strings ("1700000000") as Unix times.
    if not isinstance(value, str | datetime) or (
        isinstance(value, str) and not _RFC3339_START.match(value)
    ):
        raise ValueError("must be an RFC 3339 timestamp string with an offset")
    return value


def _plausible_instant(value: datetime) -> datetime:
    plausible_day(value.date())
    return value


# RFC 3339 text with an offset; numbers (Unix times), naive times and years outside
# 1900-2999 (which overflow once converted to UTC or a zone) are refused.
Instant = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_plausible_instant)
]


class Symptoms(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbness: Score | None = None
    tingling: Score | None = None
    weakness: Score | None = None


class LogFields(BaseModel):
    """What a patient reports in one check-in."""

    model_config = ConfigDict(extra="forbid")
    pain: Score
    leg_pain: Score | None = None
    mobility: Score | None = None
    walking_minutes: Annotated[int, Strict(), F(ge=0, le=1440)] | None = None
    odi_answers: list[OdiAnswer | None] | None = F(default=None, min_length=10, max_length=10)
    symptoms: Symptoms | None = None
    side_effects: list[SideEffect] = F(default_factory=list, max_length=5)
    red_flags: list[RedFlag] = F(default_factory=list, max_length=6)
    note: Note | None = None


class SymptomLogIn(LogFields):
    client_id: uuid.UUID
    recorded_at: Instant
    timezone: TimeZoneName | None = None


class CorrectionIn(Patch):
    """Corrected fields; the ones left out keep the corrected log's values."""

    # Null would clear a value every log has.
    NOT_NULL = frozenset({"pain", "side_effects", "red_flags", "recorded_at"})
    client_id: uuid.UUID
    pain: Score | None = None
    leg_pain: Score | None = None
    mobility: Score | None = None
    walking_minutes: Annotated[int, Strict(), F(ge=0, le=1440)] | None = None
    odi_answers: list[OdiAnswer | None] | None = F(default=None, min_length=10, max_length=10)
    symptoms: Symptoms | None = None
    side_effects: list[SideEffect] | None = F(default=None, max_length=5)
    red_flags: list[RedFlag] | None = F(default=None, max_length=6)
    note: Note | None = None
    recorded_at: Instant | None = None
    timezone: TimeZoneName | None = None


class BatchIn(BaseModel):
    """Items are checked one by one, so one bad log does not cost the good ones."""

    model_config = ConfigDict(extra="forbid")
    # Any JSON value: an item that is not an object is rejected on its own, not the batch.
    logs: list[Any] = F(min_length=1, max_length=500)


class Advice(BaseModel):
    urgent: bool
    message: str


class SymptomLogPublic(LogFields):
    id: uuid.UUID
    patient_id: uuid.UUID
    client_id: uuid.UUID
    recorded_at: datetime
    utc_offset_minutes: int
    timezone: str
    local_date: date
    received_at: datetime
    procedure_id: uuid.UUID | None
    day: int | None
    odi: float | None
    source: LogSource
    corrects_id: uuid.UUID | None
    superseded_by_id: uuid.UUID | None = None
    advice: Advice | None = None


class BatchItemResult(BaseModel):
    client_id: uuid.UUID | None
    status: str  # created | duplicate | rejected
    id: uuid.UUID | None = None
    errors: list[dict[str, str]] | None = None
    advice: Advice | None = None


class BatchResult(BaseModel):
    results: list[BatchItemResult]


class SymptomLog(SQLModel, table=True):
    __tablename__ = "symptom_log"
    __table_args__ = (
        UniqueConstraint("patient_id", "client_id"),
        Index("ix_symptom_log_patient_id_local_date", "patient_id", "local_date"),
        Index("ix_symptom_log_patient_id_received_at_id", "patient_id", "received_at", "id"),
        # The worsening check reads a log's neighbours in recorded order.
        Index("ix_symptom_log_patient_id_recorded_at_id", "patient_id", "recorded_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=ordered_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id")
    client_id: uuid.UUID
    content_hash: str = Field(max_length=64)
    recorded_at: datetime = utc_column()
    utc_offset_minutes: int
    timezone: str = Field(max_length=64)
    local_date: date
    received_at: datetime = utc_column(default_factory=utc_now)
    pain: int
    leg_pain: int | None = None
    mobility: int | None = None
    walking_minutes: int | None = None
    odi_answers: list[int | None] | None = Field(default=None, sa_column=Column(JSON))
    odi: float | None = None
    symptoms: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    side_effects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    red_flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=2000)
    source: LogSource = enum_column(LogSource, 16)
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    corrects_id: uuid.UUID | None = Field(default=None, foreign_key="symptom_log.id", index=True)


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        # Never two open alerts of one kind for one patient, whichever process raises them.
        Index(
            "uq_alert_patient_id_kind_open",
            "patient_id",
            "kind",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_alert_clinic_id_raised_at_id", "clinic_id", "raised_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id")
    kind: AlertKind = enum_column(AlertKind, 32)
    status: AlertStatus = enum_column(AlertStatus, 16)
    raised_at: datetime = utc_column(default_factory=utc_now)
    last_raised_at: datetime = utc_column(default_factory=utc_now)
    occurrences: int = 1
    log_id: uuid.UUID | None = Field(default=None, foreign_key="symptom_log.id")
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    acknowledged_at: datetime | None = utc_column(default=None)
    acknowledged_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    resolved_at: datetime | None = utc_column(default=None)
    resolved_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    resolution_note: str | None = Field(default=None, max_length=2000)
    version: int = 1


class AlertPublic(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    kind: AlertKind
    status: AlertStatus
    raised_at: datetime
    last_raised_at: datetime
    occurrences: int
    log_id: uuid.UUID | None
    details: dict[str, Any]
    acknowledged_at: datetime | None
    resolved_at: datetime | None


class AlertNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note | None = None
