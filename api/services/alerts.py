"""Clinic alerts: raised in the same transaction as the log that causes them, one open alert per
patient and kind (a repeat bumps the open one), listed, acknowledged and resolved."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Date, Table, and_, bindparam, exists, insert, or_, select, update
from sqlmodel import Session
from sqlmodel import select as orm_select

from api.clinical import baseline as baseline_rules
from api.clinical.clock import index_procedure
from api.errors import Conflict
from api.services import protocols, records
from api.services.access import Principal
from api.services.audit import Audit
from api.services.pagination import keyset_page
from api.services.records import LogRecord, PatientRef, ProcedureRef
from models.base import new_id, utc_now
from models.page import Page
from models.symptom_log import Alert, AlertKind, AlertPublic, AlertStatus

ALERT: Table = Alert.__table__  # type: ignore[attr-defined]
LOG = records.SYMPTOM_LOG
_CORRECTION = LOG.alias("correction")
# Dates are compared as ranges [start, end); an open end is the last date there is.
_NO_END = date.max

# Built once: the check-in path runs these on every log (bind parameters, no statement building).
_OPEN_ALERT = select(ALERT.c.id, ALERT.c.details, ALERT.c.occurrences, ALERT.c.version).where(
    ALERT.c.patient_id == bindparam("patient_id"),
    ALERT.c.kind == bindparam("kind"),
    ALERT.c.status == AlertStatus.open,
)
_INSERT_ALERT = insert(ALERT)
_BUMP_ALERT = (
    update(ALERT)
    .where(ALERT.c.id == bindparam("alert_id"))
    .values(
        occurrences=bindparam("occurrences"),
        last_raised_at=bindparam("now"),
        log_id=bindparam("log_id"),
        details=bindparam("details"),
        version=bindparam("version"),
    )
)
_EFFECTIVE_ON = and_(
    LOG.c.patient_id == bindparam("patient_id"),
    LOG.c.local_date >= bindparam("start", type_=Date),
    LOG.c.local_date < bindparam("end", type_=Date),
    ~exists().where(_CORRECTION.c.corrects_id == LOG.c.id),
)
# The baseline window: effective logs with a local date in [start, end).
_WINDOW = select(LOG.c.local_date, LOG.c.pain, LOG.c.leg_pain, LOG.c.mobility, LOG.c.odi).where(
    _EFFECTIVE_ON
)
_AT, _KEY = bindparam("at", type_=LOG.c.recorded_at.type), bindparam("key", type_=LOG.c.id.type)
# A log's neighbours on the clock: the effective logs just before and just after it.
_NEIGHBOUR = (LOG.c.id, LOG.c.local_date, LOG.c.pain)
_BEFORE = (
    select(*_NEIGHBOUR)
    .where(
        _EFFECTIVE_ON,
        or_(LOG.c.recorded_at < _AT, and_(LOG.c.recorded_at == _AT, LOG.c.id < _KEY)),
    )
    .order_by(LOG.c.recorded_at.desc(), LOG.c.id.desc())
    .limit(1)
)
_AFTER = (
    select(*_NEIGHBOUR)
    .where(
        _EFFECTIVE_ON,
        or_(LOG.c.recorded_at > _AT, and_(LOG.c.recorded_at == _AT, LOG.c.id > _KEY)),
    )
    .order_by(LOG.c.recorded_at, LOG.c.id)
    .limit(1)
)


def raise_alert(
    connection: Connection,
    *,
    patient: PatientRef,
    kind: AlertKind,
    log_id: uuid.UUID | None,
    details: dict[str, Any],
) -> uuid.UUID:
    """Open an alert, or bump the open one of this kind (the caller holds the patient's lock)."""
    now = utc_now()
    open_alert = connection.execute(_OPEN_ALERT, {"patient_id": patient.id, "kind": kind}).first()
    if open_alert is not None:
        connection.execute(
            _BUMP_ALERT,
            {
                "alert_id": open_alert.id,
                "occurrences": open_alert.occurrences + 1,
                "now": now,
                "log_id": log_id,
                "details": _merge(open_alert.details, details),
                "version": open_alert.version + 1,
            },
        )
        alert_id: uuid.UUID = open_alert.id
        return alert_id
    alert_id = new_id()
    connection.execute(
        _INSERT_ALERT,
        {
            "id": alert_id,
            "patient_id": patient.id,
            "clinic_id": patient.clinic_id,
            "kind": kind,
            "status": AlertStatus.open,
            "raised_at": now,
            "last_raised_at": now,
            "occurrences": 1,
            "log_id": log_id,
            "details": details,
            "version": 1,
        },
    )
    return alert_id


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The new details over the open alert's: lists of names (red flags, closings) gather as
    sets; anything else, such as a worsening alert's pair of logs, is the latest."""
    merged = dict(old)
    for key, value in new.items():
        if _names(value) and _names(merged.get(key)):
            merged[key] = sorted(set(merged[key]) | set(value))
        else:
            merged[key] = value
    return merged


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_new_logs(
    connection: Connection,
    *,
    patient: PatientRef,
    new_logs: Sequence[LogRecord],
    procedures: Sequence[ProcedureRef],
) -> list[uuid.UUID]:
    """Raise what the new logs call for (after they were written); the alerts' ids."""
    raised = []
    flagged = [log for log in new_logs if log.red_flags]
    if flagged:
        flags = sorted({flag for log in flagged for flag in log.red_flags})
        raised.append(
            raise_alert(
                connection,
                patient=patient,
                kind=AlertKind.red_flag,
                log_id=flagged[-1].id,
                details={"red_flags": flags},
            )
        )
    if worsening := _worsening(connection, new_logs, procedures):
        raised.append(
            raise_alert(
                connection,
                patient=patient,
                kind=AlertKind.worsening,
                log_id=worsening.log_id,
                details=worsening.details(),
            )
        )
    return raised


def _baseline(
    connection: Connection, procedure: ProcedureRef, rules: dict[str, Any]
) -> baseline_rules.Baseline | None:
    """The procedure's explicit baseline, else the median of the bounded pre-procedure window."""
    explicit = _explicit(procedure)
    if any(value is not None for value in explicit.values()):
        return baseline_rules.compute(explicit, [], rules)
    low, high = rules["baseline"]["window_days"]
    window = connection.execute(
        _WINDOW,
        {
            "patient_id": procedure.patient_id,
            "start": procedure.performed_on + timedelta(days=low),
            "end": procedure.performed_on + timedelta(days=high + 1),
        },
    )
    points = [
        baseline_rules.LogPoint(
            day=(local_date - procedure.performed_on).days,
            pain=pain,
            leg_pain=leg_pain,
            mobility=mobility,
            odi=odi,
        )
        for local_date, pain, leg_pain, mobility, odi in window
    ]
    return baseline_rules.compute(None, points, rules)


class _Reading(NamedTuple):
    """A log of a worsening pair: what the clinician reads of it."""

    id: uuid.UUID
    local_date: date
    pain: int


@dataclass(frozen=True)
class Worsening:
    """Two consecutive high logs on a procedure's clock, in clock order, and the rule they met."""

    procedure: ProcedureRef
    baseline_pain: float
    threshold: float
    pair: tuple[_Reading, _Reading]

    @property
    def log_id(self) -> uuid.UUID:
        """The later log of the pair: the one that made it a trend, however they arrived."""
        return self.pair[1].id

    def details(self) -> dict[str, Any]:
        performed_on = self.procedure.performed_on
        return {
            "procedure_id": str(self.procedure.id),
            "baseline_pain": self.baseline_pain,
            "threshold": self.threshold,
            "logs": [
                {
                    "id": str(log.id),
                    "day": (log.local_date - performed_on).days,
                    "local_date": log.local_date.isoformat(),
                    "pain": log.pain,
                }
                for log in self.pair
            ],
        }


def _high_pair(
    connection: Connection, clock: dict[str, Any], log: LogRecord, threshold: float
) -> tuple[_Reading, _Reading] | None:
    """This high log with the log just after it on the clock, else just before it, if that one
    is high too: the later pair first."""
    values = clock | {"at": log.recorded_at, "key": log.id}
    this = _Reading(log.id, log.local_date, log.pain)
    for query in (_AFTER, _BEFORE):
        row = connection.execute(query, values).first()
        if row is not None and row.pain >= threshold:
            other = _Reading(row.id, row.local_date, row.pain)
            return (this, other) if query is _AFTER else (other, this)
    return None


def _worsening(
    connection: Connection, new_logs: Sequence[LogRecord], procedures: Sequence[ProcedureRef]
) -> Worsening | None:
    """Two consecutive logs after day 14, both with pain >= baseline + 2 (CLINICAL.md), one of
    them new; the latest such pair. Bounded queries: the baseline window and each high new
    log's two neighbours, latest log first, until a pair is found."""
    dates = [p.clock_date for p in procedures]
    # A batch spans a few days: place each day on the clock once, not each log.
    owners = {day: index_procedure(dates, day)[0] for day in {log.local_date for log in new_logs}}
    for procedure in reversed(procedures):
        rules = protocols.rules(connection, procedure.protocol_id, procedure.protocol_version)
        rule = rules["worsening"]
        late = [
            log
            for log in new_logs
            if owners[log.local_date] == procedure.id
            and (log.local_date - procedure.performed_on).days > rule["after_day"]
        ]
        base = _baseline(connection, procedure, rules) if late else None
        if base is None or base["pain"] is None:
            continue
        threshold = base["pain"] + rule["rise_points"]
        later = [p.performed_on for p in procedures if p.performed_on > procedure.performed_on]
        clock = {
            "patient_id": procedure.patient_id,
            "start": procedure.performed_on + timedelta(days=rule["after_day"] + 1),
            "end": min(later) if later else _NO_END,
        }
        for log in sorted(late, key=lambda item: (item.recorded_at, str(item.id)), reverse=True):
            if log.pain >= threshold and (pair := _high_pair(connection, clock, log, threshold)):
                return Worsening(procedure, base["pain"], threshold, pair)
    return None


def _explicit(procedure: ProcedureRef) -> dict[str, float | None]:
    return {
        "pain": procedure.baseline_pain,
        "leg_pain": procedure.baseline_leg_pain,
        "mobility": procedure.baseline_mobility,
        "odi": procedure.baseline_odi,
    }


def to_public(alert: Alert) -> AlertPublic:
    return AlertPublic.model_validate(alert, from_attributes=True)


def list_alerts(
    session: Session,
    *,
    principal: Principal,
    limit: int,
    cursor: str | None,
    status: AlertStatus | None,
    kind: AlertKind | None,
    patient_id: uuid.UUID | None,
) -> Page[AlertPublic]:
    query = orm_select(Alert)
    if not principal.is_admin:
        query = query.where(Alert.clinic_id == principal.clinic_id)
    for column, value in (
        (Alert.status, status),
        (Alert.kind, kind),
        (Alert.patient_id, patient_id),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, next_cursor = keyset_page(
        session,
        query,
        sort=Alert.raised_at,
        key=Alert.id,
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[AlertPublic](items=[to_public(a) for a in rows], next_cursor=next_cursor)


def acknowledge(
    session: Session, *, alert: Alert, by: Principal, note: str | None, audit: Audit
) -> AlertPublic:
    locked = session.get_one(Alert, alert.id, with_for_update=True, populate_existing=True)
    if locked.status == AlertStatus.resolved:
        raise Conflict("The alert is already resolved")
    if locked.status == AlertStatus.open:
        locked.status, locked.acknowledged_at, locked.acknowledged_by_id = (
            AlertStatus.acknowledged,
            utc_now(),
            by.user_id,
        )
        locked.version += 1
    if note:
        locked.resolution_note = note
    audit.record(session, resource_id=locked.id, patient_id=locked.patient_id)
    session.commit()
    return to_public(locked)


def resolve(
    session: Session, *, alert: Alert, by: Principal, note: str | None, audit: Audit
) -> AlertPublic:
    locked = session.get_one(Alert, alert.id, with_for_update=True, populate_existing=True)
    if locked.status != AlertStatus.resolved:
        now = utc_now()
        locked.acknowledged_at = locked.acknowledged_at or now
        locked.acknowledged_by_id = locked.acknowledged_by_id or by.user_id
        locked.status, locked.resolved_at, locked.resolved_by_id = (
            AlertStatus.resolved,
            now,
            by.user_id,
        )
        locked.resolution_note = note or locked.resolution_note
        locked.version += 1
    audit.record(session, resource_id=locked.id, patient_id=locked.patient_id)
    session.commit()
    return to_public(locked)
