"""The patient's check-in schedule on the clock of their latest procedure."""

from datetime import date, timedelta

from pydantic import BaseModel
from sqlmodel import Session

from api.clinical import schedule
from api.clinical.clock import today_in
from api.services import protocols, symptom_logs
from api.services.audit import Audit
from models.patient import Patient
from models.procedure import Procedure


class ScheduledCheckIn(BaseModel):
    day: int
    due_on: date
    phase: str
    logged: bool


class CheckInSchedule(BaseModel):
    procedure_id: str | None
    day: int | None
    next_due_on: date | None
    next_day: int | None
    schedule: list[ScheduledCheckIn]


def schedule_for(session: Session, *, patient: Patient, audit: Audit) -> CheckInSchedule:
    procedures = symptom_logs.procedures_of(session, patient.id)
    result = _schedule(session, patient, procedures)
    audit.record(session, patient_id=patient.id)
    session.commit()
    return result


def _schedule(session: Session, patient: Patient, procedures: list[Procedure]) -> CheckInSchedule:
    if not procedures:
        return CheckInSchedule(
            procedure_id=None, day=None, next_due_on=None, next_day=None, schedule=[]
        )
    latest = procedures[-1]
    rules = protocols.rules(session, latest.protocol_id, latest.protocol_version)
    day_now = (today_in(patient.timezone) - latest.performed_on).days
    logged_days = {
        (log.local_date - latest.performed_on).days
        for log in symptom_logs.effective_logs(session, patient.id)
        if log.local_date >= latest.performed_on
    }
    newest = max(logged_days) if logged_days else None
    next_day = schedule.next_check_in(rules, day_now=day_now, newest_log_day=newest)
    items = [
        ScheduledCheckIn(
            day=s.day,
            due_on=latest.performed_on + timedelta(days=s.day),
            phase=s.phase,
            logged=s.day in logged_days,
        )
        for s in schedule.scheduled_days(rules)
    ]
    return CheckInSchedule(
        procedure_id=str(latest.id),
        day=day_now,
        next_due_on=latest.performed_on + timedelta(days=next_day)
        if next_day is not None
        else None,
        next_day=next_day,
        schedule=items,
    )
