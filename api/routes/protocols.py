"""Treatment protocols: published by admins, read by staff; a version never changes."""

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.db import DatabaseDep
from api.deps import ADMIN, STAFF, AuditDep, PageDep
from api.errors import problem_responses
from api.services import protocols
from api.services.concurrency import etag
from models.page import Page
from models.protocol import ProtocolCreate, ProtocolId, ProtocolPublic, ProtocolVersions

router = APIRouter(tags=["protocols"])

# The id's form as published: anything else is a 422 naming the parameter, as for a UUID path
# parameter, and never reaches the query (a NUL fails on PostgreSQL).
ProtocolIdPath = Annotated[ProtocolId, Path(description="The protocol's id")]


@router.post(
    "/protocols",
    name="protocol.create",
    status_code=201,
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 409, 422),
)
async def publish_protocol(
    body: ProtocolCreate, response: Response, database: DatabaseDep, audit: AuditDep
) -> ProtocolPublic:
    """Publish a protocol, or the next version of one; recorded procedures keep theirs."""
    published = await database.run(protocols.publish, data=body, audit=audit)
    response.headers["ETag"] = etag(published.version)
    response.headers["Location"] = f"/v1/protocols/{published.id}"
    return published


@router.get(
    "/protocols",
    name="protocol.list",
    dependencies=[STAFF],
    responses=problem_responses(401, 403, 422),
)
async def list_protocols(
    database: DatabaseDep, audit: AuditDep, page: PageDep
) -> Page[ProtocolPublic]:
    """Every protocol at its latest version, by id."""
    return await database.run(
        protocols.list_latest, audit=audit, limit=page.limit, cursor=page.cursor
    )


@router.get(
    "/protocols/{protocol_id}",
    name="protocol.read",
    dependencies=[STAFF],
    responses=problem_responses(401, 403, 404, 422),
)
async def read_protocol(
    protocol_id: ProtocolIdPath, response: Response, database: DatabaseDep, audit: AuditDep
) -> ProtocolVersions:
    """One protocol with all its versions, oldest first; the ETag names the latest."""
    found = await database.run(protocols.read_versions, protocol_id=protocol_id, audit=audit)
    response.headers["ETag"] = etag(found.versions[-1].version)
    return found
