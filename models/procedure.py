"""Procedures (injections and red light sessions) and their adverse events."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt
from pydantic import Field as F
from sqlalchemy import JSON, Index
from sqlmodel import Column, Field, SQLModel

from models.base import Day, Line, Note, Patch, enum_column, new_id, utc_column, utc_now
from models.protocol import MAX_VERSION, ProtocolId


class Treatment(StrEnum):
    stem_cell = "stem_cell"
    prp = "prp"
    prolotherapy = "prolotherapy"
    red_light = "red_light"


class CellSource(StrEnum):
    bone_marrow = "bone_marrow"
    adipose = "adipose"
    umbilical_cord = "umbilical_cord"


class HarvestMethod(StrEnum):
    bone_marrow_aspiration = "bone_marrow_aspiration"
    lipoaspiration = "lipoaspiration"
    blood_draw = "blood_draw"
    none = "none"


class InjectionRoute(StrEnum):
    intradiscal = "intradiscal"
    epidural = "epidural"
    facet = "facet"
    intrathecal = "intrathecal"


class Guidance(StrEnum):
    fluoroscopy = "fluoroscopy"
    ultrasound = "ultrasound"
    ct = "ct"
    none = "none"


class Adjunct(StrEnum):
    prp = "prp"
    growth_factors = "growth_factors"
    physical_therapy = "physical_therapy"


class AdverseEventKind(StrEnum):
    injection_site_pain = "injection_site_pain"
    swelling = "swelling"
    redness = "redness"
    fatigue = "fatigue"
    headache = "headache"
    infection = "infection"
    nerve_damage = "nerve_damage"
    cell_reaction = "cell_reaction"
    other = "other"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Harvest(Strict):
    method: HarvestMethod
    site: Line | None = F(default=None, min_length=1, max_length=200)
    volume_ml: StrictFloat | None = F(default=None, gt=0, le=1000)


class Injection(Strict):
    route: InjectionRoute
    levels: list[Line] = F(min_length=1, max_length=10)
    guidance: Guidance
    volume_ml: StrictFloat | None = F(default=None, gt=0, le=100)
    cell_count: StrictInt | None = F(default=None, ge=0, le=10**12)


class Baseline(Strict):
    pain: StrictFloat | None = F(default=None, ge=0, le=10)
    leg_pain: StrictFloat | None = F(default=None, ge=0, le=10)
    mobility: StrictFloat | None = F(default=None, ge=0, le=10)
    odi: StrictFloat | None = F(default=None, ge=0, le=100)


class ProcedureFields(Strict):
    performed_on: Day
    treatment: Treatment
    cell_source: CellSource | None = None
    harvest: Harvest | None = None
    injections: list[Injection] = F(default_factory=list, max_length=20)
    adjuncts: list[Adjunct] = F(default_factory=list, max_length=3)
    baseline: Baseline | None = None
    notes: Note | None = None


class ProcedureCreate(ProcedureFields):
    protocol_id: Line | None = F(default=None, min_length=1, max_length=64)
    override_reason: Note | None = F(default=None, min_length=1)


class ProtocolPin(Strict):
    """A protocol version a procedure is measured against."""

    id: ProtocolId
    version: StrictInt = F(ge=1, le=MAX_VERSION)


class ProcedureUpdate(Patch):
    NOT_NULL = frozenset({"performed_on", "treatment", "injections", "adjuncts", "protocol"})

    performed_on: Day | None = None
    treatment: Treatment | None = None
    cell_source: CellSource | None = None
    harvest: Harvest | None = None
    injections: list[Injection] | None = F(default=None, max_length=20)
    adjuncts: list[Adjunct] | None = F(default=None, max_length=3)
    baseline: Baseline | None = None
    notes: Note | None = None
    override_reason: Note | None = F(default=None, min_length=1)
    protocol: ProtocolPin | None = F(
        default=None,
        description="Move the procedure to another protocol version (audited as protocol_change); "
        "publishing a version never moves a procedure by itself",
    )


class ProtocolRef(BaseModel):
    id: str
    version: int


class ProcedurePublic(ProcedureFields):
    id: uuid.UUID
    patient_id: uuid.UUID
    protocol: ProtocolRef
    override_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class Procedure(SQLModel, table=True):
    __tablename__ = "procedure"
    __table_args__ = (Index("ix_procedure_patient_id_performed_on", "patient_id", "performed_on"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id")
    performed_on: date
    treatment: Treatment = enum_column(Treatment, 16)
    cell_source: CellSource | None = enum_column(CellSource, 16, default=None)
    harvest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    injections: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    adjuncts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    baseline_pain: float | None = None
    baseline_leg_pain: float | None = None
    baseline_mobility: float | None = None
    baseline_odi: float | None = None
    protocol_id: str = Field(max_length=64)
    protocol_version: int
    notes: str | None = Field(default=None, max_length=2000)
    override_reason: str | None = Field(default=None, max_length=2000)
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    version: int = 1
    created_at: datetime = utc_column(default_factory=utc_now)
    updated_at: datetime = utc_column(default_factory=utc_now)


class AdverseEventFields(Strict):
    procedure_id: uuid.UUID
    onset_on: Day
    kind: AdverseEventKind
    grade: StrictInt = F(ge=1, le=5, description="CTCAE grade 1-5")
    serious: StrictBool = False
    description: Note | None = None
    resolved_on: Day | None = None


class AdverseEventCreate(AdverseEventFields):
    pass


class AdverseEventUpdate(Patch):
    NOT_NULL = frozenset({"onset_on", "kind", "grade", "serious"})

    onset_on: Day | None = None
    kind: AdverseEventKind | None = None
    grade: StrictInt | None = F(default=None, ge=1, le=5)
    serious: StrictBool | None = None
    description: Note | None = None
    resolved_on: Day | None = None


class AdverseEventPublic(AdverseEventFields):
    id: uuid.UUID
    patient_id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime


class AdverseEvent(SQLModel, table=True):
    __tablename__ = "adverse_event"
    __table_args__ = (Index("ix_adverse_event_patient_id_onset_on", "patient_id", "onset_on"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id")
    procedure_id: uuid.UUID = Field(foreign_key="procedure.id", index=True)
    onset_on: date
    kind: AdverseEventKind = enum_column(AdverseEventKind, 32)
    grade: int
    serious: bool = False
    description: str | None = Field(default=None, max_length=2000)
    resolved_on: date | None = None
    version: int = 1
    created_at: datetime = utc_column(default_factory=utc_now)
    updated_at: datetime = utc_column(default_factory=utc_now)
