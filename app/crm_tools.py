"""The CRM toolset (MCP_TOOLSETS=crm): Salesforce records for support staff, through the REST
client in `app.salesforce`. Served over stdio, or over HTTP only when /mcp requires sign-in
(`Settings.crm_refusal`). Tool names follow an earlier contacts-and-events server
(`salesforce_*`), so its users can switch.

Every field name is checked against the object's description before a write, so a wrong name is
an error naming it and the closest names, and nothing is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import structlog
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AwareDatetime, BaseModel, Field

from app.salesforce.client import SalesforceClient
from app.salesforce.errors import SalesforceError
from app.salesforce.schema import SchemaCache

log = structlog.get_logger(__name__)

ObjectName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="The object's API name, e.g. Contact, Case or a custom Support_Visit__c",
    ),
]
RecordId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$",
        description="A 15- or 18-character Salesforce record id",
    ),
]
Values = Annotated[
    dict[str, Any],
    Field(min_length=1, max_length=200, description="Field API name → value"),
]
Email = Annotated[str, Field(max_length=80, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Record(BaseModel):
    objectName: str
    id: str
    fields: dict[str, Any] = Field(description="The record's fields by API name")


class Saved(BaseModel):
    objectName: str
    id: str
    status: str = Field(description="created, updated or deleted")


class FieldInfo(BaseModel):
    name: str
    label: str | None = None
    type: str | None = None
    required: bool = False
    settable: bool = False
    referenceTo: list[str] = Field(default_factory=list)
    relationshipName: str | None = None
    picklistValues: list[str] | None = None


class ObjectInfo(BaseModel):
    name: str
    label: str | None = None
    custom: bool = False
    fields: list[FieldInfo]
    childRelationships: list[dict[str, str]] = Field(
        default_factory=list, description="Objects that point at this one: object, field, name"
    )


class EventTimes(BaseModel):
    start: AwareDatetime
    end: AwareDatetime

    def check(self) -> None:
        if self.end <= self.start:
            raise ToolError("end must be after start.")


def _iso(value: datetime) -> str:
    return value.isoformat()


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@contextlib.asynccontextmanager
async def crm_call(name: str) -> AsyncIterator[None]:
    """One log line per call (tool and outcome, never values); Salesforce's refusals become tool
    errors saying what to fix."""
    outcome = "ok"
    try:
        yield
    except SalesforceError as exc:
        outcome = "error"
        raise ToolError(str(exc)) from exc
    except ToolError:
        outcome = "error"
        raise
    finally:
        log.info("crm.tool.call", tool=name, outcome=outcome)


def register_crm_tools(mcp: MCPServer, client: SalesforceClient, schema: SchemaCache) -> None:
    reading = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
    writing = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    deleting = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)

    async def get_record(sobject: str, record_id: str, fields: list[str] | None) -> Record:
        if fields:
            await schema.check_fields(sobject, fields, writing=False)
        found = await client.get(sobject, record_id, fields)
        body = {k: v for k, v in found.items() if k != "attributes"}
        return Record(objectName=sobject, id=str(body.get("Id", record_id)), fields=body)

    async def create(sobject: str, values: dict[str, Any]) -> Saved:
        await schema.check_fields(sobject, values, writing=True)
        new_id = await client.create(sobject, values)
        return Saved(objectName=sobject, id=new_id, status="created")

    async def update(sobject: str, record_id: str, values: dict[str, Any]) -> Saved:
        if not values:
            raise ToolError("Give at least one field to change.")
        await schema.check_fields(sobject, values, writing=True)
        await client.update(sobject, record_id, values)
        return Saved(objectName=sobject, id=record_id, status="updated")

    async def delete(sobject: str, record_id: str) -> Saved:
        await client.delete(sobject, record_id)
        return Saved(objectName=sobject, id=record_id, status="deleted")

    # -- any object ---------------------------------------------------------------------------

    @mcp.tool(annotations=reading)
    async def salesforce_describe(objectName: ObjectName) -> ObjectInfo:
        """An object's fields (name, type, whether required or settable, lookups and picklist
        values) and the objects that point at it. Use it before creating or updating records."""
        async with crm_call("salesforce_describe"):
            described = await schema.describe(objectName)
            return ObjectInfo(
                name=str(described.get("name", objectName)),
                label=described.get("label"),
                custom=bool(described.get("custom")),
                fields=[
                    FieldInfo(
                        name=str(f.get("name")),
                        label=f.get("label"),
                        type=f.get("type"),
                        required=not f.get("nillable", True) and bool(f.get("createable")),
                        settable=bool(f.get("createable") or f.get("updateable")),
                        referenceTo=list(f.get("referenceTo") or []),
                        relationshipName=f.get("relationshipName"),
                        picklistValues=[str(p.get("value")) for p in f["picklistValues"]]
                        if f.get("picklistValues")
                        else None,
                    )
                    for f in described.get("fields", [])
                ],
                childRelationships=[
                    {
                        "object": str(c.get("childSObject")),
                        "field": str(c.get("field")),
                        "name": str(c.get("relationshipName") or ""),
                    }
                    for c in described.get("childRelationships", [])
                ],
            )

    @mcp.tool(annotations=reading)
    async def salesforce_get(
        objectName: ObjectName,
        recordId: RecordId,
        fields: Annotated[
            list[str] | None, Field(max_length=100, description="Field API names; omit for all")
        ] = None,
    ) -> Record:
        """One record of any object by id."""
        async with crm_call("salesforce_get"):
            return await get_record(objectName, recordId, fields)

    @mcp.tool(annotations=writing)
    async def salesforce_create(objectName: ObjectName, values: Values) -> Saved:
        """Create a record of any object, standard or custom, from field API names and values
        (see salesforce_describe)."""
        async with crm_call("salesforce_create"):
            return await create(objectName, values)

    @mcp.tool(annotations=writing)
    async def salesforce_update(
        objectName: ObjectName, recordId: RecordId, values: Values
    ) -> Saved:
        """Change fields of a record of any object."""
        async with crm_call("salesforce_update"):
            return await update(objectName, recordId, values)

    @mcp.tool(annotations=deleting)
    async def salesforce_delete(objectName: ObjectName, recordId: RecordId) -> Saved:
        """Delete a record of any object. Only when the user asked for it."""
        async with crm_call("salesforce_delete"):
            return await delete(objectName, recordId)

    # -- contacts -----------------------------------------------------------------------------

    @mcp.tool(annotations=reading)
    async def salesforce_get_contact(contactId: RecordId) -> Record:
        """A contact: name, email, phone, account."""
        async with crm_call("salesforce_get_contact"):
            fields = ["Id", "FirstName", "LastName", "Email", "Phone", "AccountId"]
            return await get_record("Contact", contactId, fields)

    @mcp.tool(annotations=writing)
    async def salesforce_create_contact(
        lastName: Annotated[str, Field(min_length=1, max_length=80)],
        firstName: Annotated[str | None, Field(max_length=40)] = None,
        email: Email | None = None,
        phone: Annotated[str | None, Field(max_length=40)] = None,
        accountId: RecordId | None = None,
    ) -> Saved:
        """Create a contact."""
        async with crm_call("salesforce_create_contact"):
            values = {
                "FirstName": firstName,
                "LastName": lastName,
                "Email": email,
                "Phone": phone,
                "AccountId": accountId,
            }
            return await create("Contact", _without_none(values))

    @mcp.tool(annotations=writing)
    async def salesforce_update_contact(
        contactId: RecordId,
        firstName: Annotated[str | None, Field(max_length=40)] = None,
        lastName: Annotated[str | None, Field(min_length=1, max_length=80)] = None,
        email: Email | None = None,
        phone: Annotated[str | None, Field(max_length=40)] = None,
        accountId: RecordId | None = None,
    ) -> Saved:
        """Change a contact's name, email, phone or account (only the fields given)."""
        async with crm_call("salesforce_update_contact"):
            values = {
                "FirstName": firstName,
                "LastName": lastName,
                "Email": email,
                "Phone": phone,
                "AccountId": accountId,
            }
            return await update("Contact", contactId, _without_none(values))

    @mcp.tool(annotations=deleting)
    async def salesforce_delete_contact(contactId: RecordId) -> Saved:
        """Delete a contact. Only when the user asked for it."""
        async with crm_call("salesforce_delete_contact"):
            return await delete("Contact", contactId)

    # -- events (appointments) ----------------------------------------------------------------

    @mcp.tool(annotations=reading)
    async def salesforce_get_event(eventId: RecordId) -> Record:
        """An event (appointment): subject, start, end, who (a contact) and what (e.g. an
        account)."""
        async with crm_call("salesforce_get_event"):
            fields = ["Id", "Subject", "StartDateTime", "EndDateTime", "WhoId", "WhatId"]
            return await get_record("Event", eventId, fields)

    @mcp.tool(annotations=writing)
    async def salesforce_create_event(
        subject: Annotated[str, Field(min_length=1, max_length=255)],
        start: Annotated[AwareDatetime, Field(description="ISO 8601 with a time zone")],
        end: Annotated[AwareDatetime, Field(description="ISO 8601 with a time zone, after start")],
        whoId: RecordId | None = None,
        whatId: RecordId | None = None,
    ) -> Saved:
        """Create an event (an appointment), e.g. a follow-up call with a contact (whoId)."""
        async with crm_call("salesforce_create_event"):
            EventTimes(start=start, end=end).check()
            values = {
                "Subject": subject,
                "StartDateTime": _iso(start),
                "EndDateTime": _iso(end),
                "WhoId": whoId,
                "WhatId": whatId,
            }
            return await create("Event", _without_none(values))

    @mcp.tool(annotations=writing)
    async def salesforce_update_event(
        eventId: RecordId,
        subject: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
        start: AwareDatetime | None = None,
        end: AwareDatetime | None = None,
        whoId: RecordId | None = None,
        whatId: RecordId | None = None,
    ) -> Saved:
        """Change an event (only the fields given); a new start and end must be given together
        when both change, and end must stay after start."""
        async with crm_call("salesforce_update_event"):
            if start is not None or end is not None:
                current = await client.get("Event", eventId, ["StartDateTime", "EndDateTime"])
                EventTimes(
                    start=start or current["StartDateTime"], end=end or current["EndDateTime"]
                ).check()
            values = {
                "Subject": subject,
                "StartDateTime": _iso(start) if start else None,
                "EndDateTime": _iso(end) if end else None,
                "WhoId": whoId,
                "WhatId": whatId,
            }
            return await update("Event", eventId, _without_none(values))

    @mcp.tool(annotations=deleting)
    async def salesforce_delete_event(eventId: RecordId) -> Saved:
        """Delete an event. Only when the user asked for it."""
        async with crm_call("salesforce_delete_event"):
            return await delete("Event", eventId)
