"""Progress against milestones, as the API returns it (API.md §Progress against milestones)."""

import uuid
from datetime import date

from pydantic import BaseModel

from models.procedure import Treatment


class ProcedureRef(BaseModel):
    id: uuid.UUID
    performed_on: date
    treatment: Treatment


class ProtocolVersion(BaseModel):
    id: str
    version: int


class BaselineOut(BaseModel):
    pain: float | None
    leg_pain: float | None
    mobility: float | None
    odi: float | None
    n_logs: int
    source: str


class ObservedOut(BaseModel):
    n_logs: int
    pain: float | None
    pain_change: float | None
    pain_change_pct: float | None
    mobility: float | None
    mobility_change: float | None
    odi: float | None
    odi_change: float | None


class FindingOut(BaseModel):
    code: str
    message: str


class MilestoneOut(BaseModel):
    key: str
    label: str
    start_day: int
    end_day: int
    state: str
    status: str
    expected: str
    observed: ObservedOut
    substantial: bool | None
    findings: list[FindingOut]


class FactorOut(BaseModel):
    factor: str
    impact: str
    message: str


class NextCheckIn(BaseModel):
    due_on: date
    day: int


class Progress(BaseModel):
    patient_id: uuid.UUID
    procedure: ProcedureRef | None
    as_of: date
    day: int | None
    protocol: ProtocolVersion | None
    baseline: BaselineOut | None
    milestones: list[MilestoneOut]
    current_milestone: str | None
    # The patient's view only (GET /v1/me/progress): what the article says to expect now.
    expect_now: str | None = None
    factors: list[FactorOut]
    next_check_in: NextCheckIn | None
    open_alerts: int
    caveat: str
