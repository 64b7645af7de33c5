"""The patient app's own routes: check-ins, their sync, corrections and the schedule."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from api.clinical import wording
from api.db import DatabaseDep
from api.deps import (
    PATIENT,
    AuditDep,
    FreshOwnProgress,
    MeDep,
    MeRefDep,
    MySymptomLogDep,
    PageDep,
    PrincipalDep,
)
from api.errors import problem_responses
from api.services import check_in_writes, check_ins, progress, symptom_logs
from models.page import Page
from models.progress import Progress
from models.symptom_log import (
    BatchIn,
    BatchResult,
    CorrectionIn,
    Instant,
    LogSource,
    SymptomLogIn,
    SymptomLogPublic,
)

router = APIRouter(prefix="/me", tags=["patient app"])


@router.post(
    "/symptom-logs",
    name="symptom_log.create_own",
    status_code=201,
    dependencies=[PATIENT],
    responses=problem_responses(401, 403, 409, 422)
    | {200: {"description": "A replay: the stored log"}},
)
async def post_log(
    body: SymptomLogIn,
    me: MeRefDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Record a check-in; resending the same client_id returns the stored log (200)."""
    [draft] = symptom_logs.draft_logs(
        [body], patient=me, source=LogSource.app, by=principal.user_id, batch=False
    )
    status, log = await database.write(
        check_in_writes.store_one, patient=me, draft=draft, audit=audit
    )
    response.status_code = status
    return log


@router.post(
    "/symptom-logs/batch",
    name="symptom_log.batch_own",
    dependencies=[PATIENT],
    responses=problem_responses(401, 403, 413, 422),
)
async def post_batch(
    body: BatchIn, me: MeRefDep, principal: PrincipalDep, database: DatabaseDep, audit: AuditDep
) -> BatchResult:
    """Upload up to 500 check-ins kept offline; each is created, a duplicate, or rejected."""
    # 500 items are validated and drafted in a worker thread of their own, outside the write turn.
    drafts = await run_in_threadpool(
        symptom_logs.draft_batch, body.logs, patient=me, source=LogSource.app, by=principal.user_id
    )
    return await database.write(check_in_writes.store_batch, patient=me, drafts=drafts, audit=audit)


@router.get(
    "/symptom-logs",
    name="symptom_log.sync_own",
    dependencies=[PATIENT],
    responses=problem_responses(401, 403, 422),
)
async def sync_logs(
    me: MeDep,
    database: DatabaseDep,
    audit: AuditDep,
    page: PageDep,
    since: Annotated[
        Instant | None, Query(description="Watermark: logs received after this instant")
    ] = None,
) -> Page[SymptomLogPublic]:
    """Everything received since a watermark (corrections included), oldest first."""
    items, next_cursor = await database.query(
        symptom_logs.sync_page, patient=me, since=since, limit=page.limit, cursor=page.cursor
    )
    await database.audited(audit, patient_id=me.id)
    return Page[SymptomLogPublic](items=items, next_cursor=next_cursor)


@router.post(
    "/symptom-logs/{log_id}/corrections",
    name="symptom_log.correct_own",
    status_code=201,
    dependencies=[PATIENT],
    responses=problem_responses(401, 403, 404, 409, 422)
    | {200: {"description": "A replay: the stored correction"}},
)
async def correct_log(
    body: CorrectionIn,
    me: MeRefDep,
    original: MySymptomLogDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Correct one of your check-ins; the original stays readable and is superseded."""
    status, log = await database.write(
        check_in_writes.correct,
        patient=me,
        original=original,
        body=body,
        source=LogSource.app,
        by=principal.user_id,
        audit=audit,
    )
    response.status_code = status
    return log


@router.get(
    "/check-ins",
    name="check_in.schedule_own",
    dependencies=[PATIENT],
    responses=problem_responses(401, 403),
)
async def read_check_ins(
    me: MeDep, database: DatabaseDep, audit: AuditDep
) -> check_ins.CheckInSchedule:
    """When the next check-in is due, and the whole schedule on the procedure clock."""
    found = await database.query(check_ins.schedule_for, patient=me)
    await database.audited(audit, patient_id=me.id)
    return found


@router.get(
    "/progress",
    name="progress.read_own",
    dependencies=[PATIENT, FreshOwnProgress],
    responses=problem_responses(401, 403),
)
async def read_progress(me: MeRefDep, database: DatabaseDep, audit: AuditDep) -> Progress:
    """Your progress against the milestones of your latest procedure, compared with your own baseline."""
    report = await database.query(progress.for_patient, patient=me, procedure_id=None, as_of=None)
    await database.audited(audit, resource_id=me.id, patient_id=me.id)
    return wording.for_patient(report)
