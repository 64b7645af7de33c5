"""The patient's check-in schedule on the clock of their latest procedure."""

from datetime import date, timedelta

from pydantic import BaseModel
from sqlmodel import Session

from api.clinical import schedule
from api.clinical.clock import today_in
from api.services import progress_store, protocols
from models.patient import Patient


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


def schedule_for(session: Session, *, patient: Patient) -> CheckInSchedule:
    """The schedule of the latest procedure, each day marked logged or not (read-only)."""
    connection = session.connection()
    procedures = progress_store.procedure_facts(connection, patient.id)
    if not procedures:
        return CheckInSchedule(
            procedure_id=None, day=None, next_due_on=None, next_day=None, schedule=[]
        )
    latest = procedures[-1]
    rules = protocols.rules(connection, latest.protocol_id, latest.protocol_version)
    today = today_in(patient.timezone)
    day_now = (today - latest.performed_on).days
    # As the progress report counts them: a log dated after today (sent from a zone ahead of
    # the patient's) counts from its own date on.
    logged_days = {
        (log.local_date - latest.performed_on).days
        for log in progress_store.effective_logs(connection, patient.id, latest.performed_on)
        if log.local_date <= today
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
