"""Patients: identity, stenosis, health factors and the candidacy screening answers."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool
from pydantic import Field as F
from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from models.base import Day, Line, Name, Patch, enum_column, new_id, utc_column, utc_now
from models.timezones import TimeZoneName


class Sex(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class StenosisRegion(StrEnum):
    lumbar = "lumbar"
    cervical = "cervical"
    thoracic = "thoracic"


class StenosisCause(StrEnum):
    degenerative = "degenerative"
    congenital = "congenital"
    injury = "injury"
    other = "other"


class ConservativeCare(StrEnum):
    physical_therapy = "physical_therapy"
    pain_medication = "pain_medication"
    lifestyle_modification = "lifestyle_modification"
    steroid_injection = "steroid_injection"


class Imaging(StrEnum):
    mri = "mri"
    ct = "ct"
    xray = "xray"


class ProgressStatus(StrEnum):
    pending = "pending"
    on_track = "on_track"
    behind = "behind"
    met = "met"
    not_met = "not_met"
    insufficient_data = "insufficient_data"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stenosis(Strict):
    region: StenosisRegion
    cause: StenosisCause


class Evaluation(Strict):
    medical_history_reviewed: StrictBool | None = None
    physical_exam_done: StrictBool | None = None
    imaging: list[Imaging] | None = F(default=None, max_length=3)
    labs_done: StrictBool | None = None


class Screening(Strict):
    conservative_care_tried: list[ConservativeCare] | None = F(default=None, max_length=4)
    conservative_care_failed: StrictBool | None = None
    severe_neurological_deficit: StrictBool | None = None
    active_cancer: StrictBool | None = None
    cancer_within_5_years: StrictBool | None = None
    active_infection: StrictBool | None = None
    significant_organ_dysfunction: StrictBool | None = None
    evaluation: Evaluation | None = None


Comorbidity = Line


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("clinic_id", "mrn"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id", index=True)
    mrn: str = Field(max_length=64)
    given_name: str = Field(max_length=200)
    family_name: str = Field(max_length=200)
    birth_date: date
    sex: Sex = enum_column(Sex, 16)
    postal_code: str | None = Field(default=None, max_length=16)
    timezone: str = Field(max_length=64)
    stenosis_region: StenosisRegion = enum_column(StenosisRegion, 16)
    stenosis_cause: StenosisCause = enum_column(StenosisCause, 16)
    comorbidities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    smoker: bool = False
    research_consent: bool = False
    screening: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = 1
    created_at: datetime = utc_column(default_factory=utc_now)
    updated_at: datetime = utc_column(default_factory=utc_now)


class PatientFields(Strict):
    """What a clinician may write about a patient."""

    mrn: Line = F(min_length=1, max_length=64)
    given_name: Name
    family_name: Name
    birth_date: Day
    sex: Sex
    postal_code: Line | None = F(default=None, min_length=1, max_length=16)
    timezone: TimeZoneName
    stenosis: Stenosis
    comorbidities: list[Name] = F(default_factory=list, max_length=50)
    smoker: StrictBool = False
    research_consent: StrictBool = False
    screening: Screening = F(default_factory=Screening)


class PatientCreate(PatientFields):
    clinic_id: uuid.UUID | None = None


class PatientUpdate(Patch):
    NOT_NULL = frozenset(
        {
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "timezone",
            "stenosis",
            "comorbidities",
            "smoker",
            "research_consent",
            "screening",
        }
    )

    mrn: Line | None = F(default=None, min_length=1, max_length=64)
    given_name: Name | None = None
    family_name: Name | None = None
    birth_date: Day | None = None
    sex: Sex | None = None
    postal_code: Line | None = F(default=None, min_length=1, max_length=16)
    timezone: TimeZoneName | None = None
    stenosis: Stenosis | None = None
    comorbidities: list[Name] | None = F(default=None, max_length=50)
    smoker: StrictBool | None = None
    research_consent: StrictBool | None = None
    screening: Screening | None = None


class PatientPublic(PatientFields):
    id: uuid.UUID
    clinic_id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime
    progress_status: ProgressStatus = ProgressStatus.pending
    open_alerts: int = 0


class CandidacyStatus(StrEnum):
    good_candidate = "good_candidate"
    not_recommended = "not_recommended"
    contraindicated = "contraindicated"
    incomplete_evaluation = "incomplete_evaluation"


class Reason(BaseModel):
    code: str
    message: str


class Candidacy(BaseModel):
    status: CandidacyStatus
    reasons: list[Reason]
    missing_evaluation: list[str]
