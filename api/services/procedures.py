"""Procedures: recording, listing and correcting them, with the consistency rules enforced."""

import uuid
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, String, Table, bindparam, func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from api.clinical import candidacy, procedure_rules
from api.clinical.clock import today_in
from api.errors import Conflict, FieldError, RuleViolation
from api.services import progress_store
from api.services.access import Principal
from api.services.audit import Audit
from api.services.concurrency import IfMatch
from api.services.pagination import keyset_page
from api.services.protocols import PROTOCOL, version_exists
from api.services.records import PATIENT, PROCEDURE, PatientRef
from models.base import new_id, utc_now
from models.identity import Clinic
from models.page import Page
from models.patient import CandidacyStatus, Patient, Screening, StenosisCause, StenosisRegion
from models.procedure import (
    AdverseEvent,
    Baseline,
    Harvest,
    HarvestMethod,
    Injection,
    Procedure,
    ProcedureCreate,
    ProcedurePublic,
    ProcedureUpdate,
    ProtocolPin,
    ProtocolRef,
)
from models.protocol import DEFAULT_PROTOCOL_ID

BASELINE_COLUMNS = {
    "pain": "baseline_pain",
    "leg_pain": "baseline_leg_pain",
    "mobility": "baseline_mobility",
    "odi": "baseline_odi",
}


def to_public(procedure: Procedure | SimpleNamespace) -> ProcedurePublic:
    """The API's view of a stored procedure (an ORM row, or the values just inserted)."""
    values = {metric: getattr(procedure, column) for metric, column in BASELINE_COLUMNS.items()}
    return ProcedurePublic(
        id=procedure.id,
        patient_id=procedure.patient_id,
        performed_on=procedure.performed_on,
        treatment=procedure.treatment,
        cell_source=procedure.cell_source,
        harvest=Harvest.model_validate(procedure.harvest) if procedure.harvest else None,
        injections=[Injection.model_validate(i) for i in procedure.injections],
        adjuncts=procedure.adjuncts,
        baseline=Baseline(**values) if any(v is not None for v in values.values()) else None,
        notes=procedure.notes,
        protocol=ProtocolRef(id=procedure.protocol_id, version=procedure.protocol_version),
        override_reason=procedure.override_reason,
        version=procedure.version,
        created_at=procedure.created_at,
        updated_at=procedure.updated_at,
    )


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the procedure rules read of a patient."""

    id: uuid.UUID
    timezone: str
    stenosis_region: StenosisRegion
    stenosis_cause: StenosisCause
    screening: dict[str, Any]


CLINIC: Table = Clinic.__table__  # type: ignore[attr-defined]
# The protocol a new procedure pins: the one it names, else its clinic's default, else `default`.
_CHOSEN_PROTOCOL = func.coalesce(
    bindparam("protocol_id", type_=String), CLINIC.c.default_protocol_id, DEFAULT_PROTOCOL_ID
)
# What the rules read of the patient, the protocol to pin and its latest version, in one round
# trip.
_FACTS_AND_PROTOCOL = (
    sa_select(
        PATIENT.c.id,
        PATIENT.c.timezone,
        PATIENT.c.stenosis_region,
        PATIENT.c.stenosis_cause,
        PATIENT.c.screening,
        _CHOSEN_PROTOCOL,
        sa_select(PROTOCOL.c.version)
        .where(PROTOCOL.c.id == _CHOSEN_PROTOCOL)
        .order_by(PROTOCOL.c.version.desc())
        .limit(1)
        .scalar_subquery(),
    )
    .join_from(PATIENT, CLINIC, CLINIC.c.id == PATIENT.c.clinic_id)
    .where(PATIENT.c.id == bindparam("patient_id"))
)
_INSERT_PROCEDURE = insert(PROCEDURE)


def _facts_and_protocol(
    connection: Connection, patient_id: uuid.UUID, protocol_id: str | None
) -> tuple[PatientFacts, str, int | None]:
    row = connection.execute(
        _FACTS_AND_PROTOCOL, {"patient_id": patient_id, "protocol_id": protocol_id}
    ).one()
    return PatientFacts(*row[:5]), row[5], row[6]


def _no_protocol(protocol_id: str) -> RuleViolation:
    return RuleViolation(
        "No such protocol", errors=[FieldError("/protocol_id", f"no protocol '{protocol_id}'")]
    )


def _normalised(injections: list[Injection]) -> list[Injection]:
    return [
        i.model_copy(update={"levels": [procedure_rules.normalise_level(v) for v in i.levels]})
        for i in injections
    ]


def _check(
    patient: Patient | PatientFacts, draft: procedure_rules.ProcedureDraft, *, override: bool
) -> None:
    errors = procedure_rules.violations(
        draft, region=patient.stenosis_region, today=today_in(patient.timezone), override=override
    )
    if errors:
        raise RuleViolation(
            "The procedure breaks a consistency rule: " + errors[0].message, errors=errors
        )


def _draft(
    performed_on: date,
    data: ProcedureCreate | Procedure,
    harvest: Harvest | None,
    injections: list[Injection],
) -> procedure_rules.ProcedureDraft:
    return procedure_rules.ProcedureDraft(
        performed_on=performed_on,
        treatment=data.treatment,
        cell_source=data.cell_source,
        harvest_method=harvest.method if harvest else HarvestMethod.none,
        injections=injections,
    )


def _check_candidacy(patient: Patient | PatientFacts, data: ProcedureCreate, audit: Audit) -> None:
    result = candidacy.assess(Screening.model_validate(patient.screening), patient.stenosis_cause)
    if result.status != CandidacyStatus.contraindicated:
        return
    if not data.override_reason:
        reasons = "; ".join(r.message for r in result.reasons)
        raise Conflict(
            f"The patient is contraindicated ({reasons}); give override_reason to record the procedure anyway"
        )
    audit.reason = "contraindication_override"


def record(
    connection: Connection,
    *,
    patient: PatientRef,
    data: ProcedureCreate,
    by: Principal,
    audit: Audit,
) -> ProcedurePublic:
    """Record a procedure (Core: every clinic visit ends in one, see api/services/records.py)."""
    # The patient as this transaction sees it, the protocol to pin and its latest version.
    facts, protocol_id, protocol_version = _facts_and_protocol(
        connection, patient.id, data.protocol_id
    )
    injections = _normalised(data.injections)
    _check(
        facts,
        _draft(data.performed_on, data, data.harvest, injections),
        override=bool(data.override_reason),
    )
    if protocol_version is None:
        raise _no_protocol(protocol_id)
    _check_candidacy(facts, data, audit)
    now, procedure_id = utc_now(), new_id()
    values = {
        "id": procedure_id,
        "patient_id": patient.id,
        "performed_on": data.performed_on,
        "treatment": data.treatment,
        "cell_source": data.cell_source,
        "harvest": data.harvest.model_dump(mode="json") if data.harvest else None,
        "injections": [i.model_dump(mode="json") for i in injections],
        "adjuncts": [a.value for a in data.adjuncts],
        **_baseline_columns(data.baseline),
        "protocol_id": protocol_id,
        "protocol_version": protocol_version,
        "notes": data.notes,
        "override_reason": data.override_reason,
        "created_by_id": by.user_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    connection.execute(_INSERT_PROCEDURE, values)
    progress_store.refresh(connection, patient_id=patient.id, procedure_id=procedure_id)
    audit.record(connection, status_code=201, resource_id=values["id"], patient_id=patient.id)
    connection.commit()
    return to_public(SimpleNamespace(**values))


def _baseline_columns(baseline: Baseline | None) -> dict[str, float | None]:
    values = baseline.model_dump() if baseline else {}
    return {column: values.get(metric) for metric, column in BASELINE_COLUMNS.items()}


def read(session: Session, *, procedure: Procedure, audit: Audit) -> ProcedurePublic:
    audit.record(session, resource_id=procedure.id, patient_id=procedure.patient_id)
    session.commit()
    return to_public(procedure)


def list_for(
    session: Session, *, patient: Patient, audit: Audit, limit: int, cursor: str | None
) -> Page[ProcedurePublic]:
    query = select(Procedure).where(Procedure.patient_id == patient.id)
    rows, next_cursor = keyset_page(
        session, query, sort=Procedure.performed_on, key=Procedure.id, cursor=cursor, limit=limit
    )
    audit.record(session, patient_id=patient.id)
    session.commit()
    return Page[ProcedurePublic](items=[to_public(p) for p in rows], next_cursor=next_cursor)


def _apply(procedure: Procedure, changes: dict[str, Any], data: ProcedureUpdate) -> None:
    if "harvest" in changes:
        procedure.harvest = data.harvest.model_dump(mode="json") if data.harvest else None
    if "injections" in changes and data.injections is not None:
        procedure.injections = [i.model_dump(mode="json") for i in _normalised(data.injections)]
    if "adjuncts" in changes and data.adjuncts is not None:
        procedure.adjuncts = [a.value for a in data.adjuncts]
    if "baseline" in changes:
        for column, value in _baseline_columns(data.baseline).items():
            setattr(procedure, column, value)
    for name in ("performed_on", "treatment", "cell_source", "notes", "override_reason"):
        if name in changes:
            setattr(procedure, name, changes[name])


def update(
    session: Session,
    *,
    patient: Patient,
    procedure: Procedure,
    data: ProcedureUpdate,
    if_match: IfMatch,
    audit: Audit,
) -> ProcedurePublic:
    locked = session.get_one(Procedure, procedure.id, with_for_update=True, populate_existing=True)
    if_match.check(locked.version)
    if (
        locked.override_reason
        and "override_reason" in data.model_fields_set
        and not data.override_reason
    ):
        # The written justification of an override is part of the record (and its audit trail).
        raise RuleViolation(
            "An override reason cannot be removed once recorded",
            errors=[
                FieldError("/override_reason", "cannot be removed; send a corrected reason instead")
            ],
        )
    if data.protocol is not None:
        _move_to_protocol(session, locked, data.protocol, audit)
    _apply(locked, data.model_dump(exclude_unset=True), data)
    harvest = Harvest.model_validate(locked.harvest) if locked.harvest else None
    injections = [Injection.model_validate(i) for i in locked.injections]
    _check(
        patient,
        _draft(locked.performed_on, locked, harvest, injections),
        override=bool(locked.override_reason),
    )
    if "performed_on" in data.model_fields_set:
        _check_adverse_events(session, locked)
    locked.version += 1
    locked.updated_at = utc_now()
    session.flush()
    progress_store.refresh(session.connection(), patient_id=patient.id)
    audit.record(session, resource_id=locked.id, patient_id=patient.id)
    session.commit()
    return to_public(locked)


def _move_to_protocol(
    session: Session, procedure: Procedure, pin: ProtocolPin, audit: Audit
) -> None:
    """Measure the procedure against another protocol version: only ever this explicit,
    audited request (publishing a version moves no procedure)."""
    if not version_exists(session, pin.id, pin.version):
        raise RuleViolation(
            "No such protocol version",
            errors=[FieldError("/protocol", f"no version {pin.version} of protocol '{pin.id}'")],
        )
    if (procedure.protocol_id, procedure.protocol_version) != (pin.id, pin.version):
        procedure.protocol_id, procedure.protocol_version = pin.id, pin.version
        audit.reason = "protocol_change"


def _check_adverse_events(session: Session, procedure: Procedure) -> None:
    """A new date must not put the procedure after one of its adverse events."""
    earliest = session.exec(
        select(func.min(AdverseEvent.onset_on)).where(AdverseEvent.procedure_id == procedure.id)
    ).one()
    if earliest is not None and earliest < procedure.performed_on:
        message = (
            f"an adverse event of this procedure started on {earliest.isoformat()}; "
            "the procedure cannot be dated after it"
        )
        raise RuleViolation(
            "The procedure breaks a consistency rule: " + message,
            errors=[FieldError("/performed_on", message)],
        )
