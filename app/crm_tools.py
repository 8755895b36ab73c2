"""The CRM toolset (MCP_TOOLSETS=crm): Salesforce records for support staff, through the REST
client in `app.salesforce`. Served over stdio, or over HTTP only when /mcp requires sign-in
(`Settings.crm_refusal`). Tool names follow an earlier contacts-and-events server
(`salesforce_*`), so its users can switch.

Every field name is checked against the object's description before a write, so a wrong name is
an error naming it and the closest names, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    Annotations,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from app.audit import Audit, call_arguments, touch
from app.salesforce.binds import BindValue
from app.salesforce.client import QueryPage, SalesforceClient
from app.salesforce.errors import SalesforceError
from app.salesforce.explain import ObjectSummary, summary
from app.salesforce.export import ExportBounds, ExportFile, export
from app.salesforce.query_check import check
from app.salesforce.schema import SchemaCache
from app.salesforce.soql import QUERY_CAP, contains, literal, sosl_term
from app.signin import signed_in_user

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


Params = Annotated[
    dict[str, BindValue | list[BindValue]] | None,
    Field(
        max_length=50,
        description='Values for the :name binds in soql (e.g. {"email": "a@b.c"} for WHERE '
        "Email = :email; dates as 2026-01-31, date-times as 2026-01-31T09:00:00Z): put what "
        "the user typed here, never into soql",
    ),
]
Cursor = Annotated[
    str | None,
    Field(max_length=300, description="From a previous page's nextCursor, to read on"),
]
Limit = Annotated[int, Field(ge=1, le=QUERY_CAP, description="Records per page")]


class Records(BaseModel):
    records: list[dict[str, Any]] = Field(description="Records by field API name")
    totalSize: int = Field(description="How many records match in all")
    nextCursor: str | None = Field(description="Pass as cursor for the next page; null: none")
    note: str | None = Field(
        default=None, description="Why no records came back although some match, and what to do"
    )


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
    """A date-time as SOQL and the REST API take it: to the second, with its zone."""
    return value.replace(microsecond=0).isoformat()


def register_schema_resources(mcp: MCPServer, schema: SchemaCache, deadline: float) -> None:
    """The schema as resources, for clients that browse it: only where the CRM tools need no
    per-call scope (stdio, the demo), since a resource read has no caller to check; over HTTP
    salesforce_describe gives the same to staff."""

    @mcp.resource(
        "salesforce://sobjects",
        name="salesforce-objects",
        title="Salesforce objects",
        description="Every object of the org: name, label, custom",
        mime_type="application/json",
    )
    async def salesforce_objects() -> str:
        async with crm_call("resource:salesforce://sobjects", deadline, changes=False):
            found = await schema.objects()
            return json.dumps(
                [
                    {"name": o.get("name"), "label": o.get("label"), "custom": o.get("custom")}
                    for o in found
                ]
            )

    @mcp.resource(
        "salesforce://sobjects/{name}",
        name="salesforce-object",
        title="A Salesforce object's fields",
        description="The object's fields and relationships (as salesforce_describe)",
        mime_type="application/json",
    )
    async def salesforce_object(name: str) -> str:
        async with crm_call("resource:salesforce://sobjects/{name}", deadline, changes=False):
            return object_info(await schema.describe(name), name).model_dump_json()


def object_info(described: dict[str, Any], asked: str) -> ObjectInfo:
    """An object's description, as much of it as a model needs."""
    return ObjectInfo(
        name=str(described.get("name", asked)),
        label=described.get("label"),
        custom=bool(described.get("custom")),
        fields=[
            FieldInfo(
                name=str(f.get("name")),
                label=f.get("label"),
                type=f.get("type"),
                required=not f.get("nillable", True)
                and bool(f.get("createable"))
                and not f.get("defaultedOnCreate"),
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


REDACTED = "[redacted]"


class Redactor:
    """Masks the values of fields whose API names match REDACT_FIELDS (shell-style, any case),
    and drops Salesforce's `attributes` (type and URL of each record)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns = [p.lower() for p in patterns]

    def hides(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name.lower(), p) for p in self._patterns)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                # The whole value, also a compound one (an address, a location) or a related
                # record whose relationship name matches.
                k: REDACTED if self.hides(k) else self(v)
                for k, v in value.items()
                if k != "attributes"
            }
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def contact_values(
    first: str | None, last: str | None, email: str | None, phone: str | None, account: str | None
) -> dict[str, Any]:
    """A contact's fields by API name, those given only."""
    values = {"FirstName": first, "LastName": last, "Email": email, "Phone": phone}
    return _without_none({**values, "AccountId": account})


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


CASE_DESCRIPTION_MAX = 32000
"""Salesforce's limit for a Case's Description."""
TRANSCRIPT_HEADING = "\n\n--- Chat transcript ---\n"

TIERS = ("read", "write", "admin")
CONTACT_FIELDS = ("Id", "FirstName", "LastName", "Email", "Phone", "AccountId")
"""What the contact tools read (the lists also the account's name)."""
EVENT_FIELDS = ("Id", "Subject", "StartDateTime", "EndDateTime", "WhoId", "WhatId")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PAGE = 200
TOO_MANY = (
    "{count:,} {sobject} records match, more than {threshold:,}: none were read. Narrow the "
    "WHERE clause, count or sum them with an aggregate (COUNT(), GROUP BY), or add a LIMIT to "
    "read the first of them and page on with nextCursor."
)
STAFF_ONLY = (
    "The CRM tools are for support staff: sign in with an account whose token carries the "
    "scope {scope}."
)


@contextlib.asynccontextmanager
async def crm_call(name: str, deadline: float, *, changes: bool = True) -> AsyncIterator[None]:
    """One log line per call (tool and outcome, never values); every call answers within
    `deadline`; Salesforce's refusals become tool errors saying what to fix. `changes`: the
    call may change records (what a timeout then says)."""
    outcome = "ok"
    try:
        async with asyncio.timeout(deadline):
            yield
    except SalesforceError as exc:
        outcome = "error"
        raise ToolError(str(exc)) from exc
    except TimeoutError:
        outcome = "error"
        raise ToolError(
            "Salesforce did not answer in time; a change may or may not have been made: check "
            "before repeating it."
            if changes
            else "Salesforce did not answer in time (or the answer took too long to prepare); "
            "nothing was changed: try again, or ask for less."
        ) from None
    except BaseException:
        outcome = "error"
        raise
    finally:
        log.info("crm.tool.call", tool=name, outcome=outcome)


def register_crm_tools(
    mcp: MCPServer,
    client: SalesforceClient,
    schema: SchemaCache,
    *,
    deadline: float,
    required_scope: str | None,
    security: list[dict[str, Any]],
    audit: Audit,
    access: str = "read",
    redact: Sequence[str] = (),
    export_bounds: ExportBounds = ExportBounds(),  # noqa: B008 (frozen)
    count_threshold: int = QUERY_CAP,
) -> None:
    """The CRM tools on `mcp`. With `required_scope` (over HTTP), a call is served only for a
    signed-in user whose token carries it; each tool declares `security` (securitySchemes)."""
    reading = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
    creating = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    # An update overwrites what was there, a delete removes it: both destructive, both
    # idempotent (the same call twice leaves the same record).
    changing = ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
    )
    deleting = changing
    meta = {"securitySchemes": security}
    allowed = TIERS[: TIERS.index(access) + 1]
    plain = Redactor(redact)

    def as_records(page: QueryPage) -> Records:
        return Records(records=plain(page.records), totalSize=page.total, nextCursor=page.next)

    changing_tools: set[str] = set()

    def tool(annotations: ToolAnnotations, tier: str) -> Callable[[F], F]:
        """Register the tool if the access tier has it; otherwise it does not exist (not
        listed, and a call is refused as an unknown tool). Either way the audit knows it as a
        CRM tool, for the record of a call the SDK refuses."""

        def known(fn: F) -> F:
            audit.toolsets[fn.__name__] = "crm"
            return fn

        if tier not in allowed:
            return known
        register = mcp.tool(annotations=annotations, meta=meta)

        def registered(fn: F) -> F:
            if not annotations.read_only_hint:
                changing_tools.add(fn.__name__)
            return register(known(fn))

        return registered

    @contextlib.asynccontextmanager
    async def call(name: str, ctx: Context) -> AsyncIterator[None]:
        """The call's log line and audit record (caller: the signed-in user; none over stdio);
        over HTTP, staff only (anyone else's call is `refused` in the audit)."""
        user = signed_in_user(ctx.request_context.request)
        caller = user.principal if user is not None else None
        with audit.call(name, "crm", caller, call_arguments(ctx)) as audited:
            async with crm_call(name, deadline, changes=name in changing_tools):
                if required_scope is not None and (
                    user is None or required_scope not in user.scopes
                ):
                    audited.refused()
                    raise ToolError(STAFF_ONLY.format(scope=required_scope))
                yield

    async def get_record(sobject: str, record_id: str, fields: list[str] | None) -> Record:
        touch(sobject, record_id)
        if fields:
            await schema.check_fields(sobject, fields, use="read")
        body = plain(await client.get(sobject, record_id, fields))
        return Record(objectName=sobject, id=str(body.get("Id", record_id)), fields=body)

    async def create(sobject: str, values: dict[str, Any]) -> Saved:
        touch(sobject)
        await schema.check_fields(sobject, values, use="create")
        new_id = await client.create(sobject, values)
        touch(sobject, new_id)
        return Saved(objectName=sobject, id=new_id, status="created")

    async def update(sobject: str, record_id: str, values: dict[str, Any]) -> Saved:
        touch(sobject, record_id)
        if not values:
            raise ToolError("Give at least one field to change.")
        await schema.check_fields(sobject, values, use="update")
        await client.update(sobject, record_id, values)
        return Saved(objectName=sobject, id=record_id, status="updated")

    async def delete(sobject: str, record_id: str) -> Saved:
        touch(sobject, record_id)
        await client.delete(sobject, record_id)
        return Saved(objectName=sobject, id=record_id, status="deleted")

    # -- any object ---------------------------------------------------------------------------

    @tool(reading, "read")
    async def salesforce_describe(ctx: Context, objectName: ObjectName) -> ObjectInfo:
        """An object's fields (name, type, whether required or settable, lookups and picklist
        values) and the objects that point at it. Use it before creating or updating records."""
        async with call("salesforce_describe", ctx):
            return object_info(await schema.describe(objectName), objectName)

    @tool(reading, "read")
    async def salesforce_explain_object(ctx: Context, objectName: ObjectName) -> ObjectSummary:
        """An object summed up before querying it: its name field, what a create needs, its
        lookups (parents, as relationshipName.Field in a query) and the objects pointing at it
        (children, as a subquery's FROM), picklist values, every field's type, and a query to
        start from."""
        async with call("salesforce_explain_object", ctx):
            return summary(await schema.describe(objectName))

    if required_scope is None:
        register_schema_resources(mcp, schema, deadline)

    @tool(reading, "read")
    async def salesforce_get(
        ctx: Context,
        objectName: ObjectName,
        recordId: RecordId,
        fields: Annotated[
            list[str] | None, Field(max_length=100, description="Field API names; omit for all")
        ] = None,
    ) -> Record:
        """One record of any object by id."""
        async with call("salesforce_get", ctx):
            return await get_record(objectName, recordId, fields)

    @tool(creating, "write")
    async def salesforce_create(ctx: Context, objectName: ObjectName, values: Values) -> Saved:
        """Create a record of any object, standard or custom, from field API names and values
        (see salesforce_describe)."""
        async with call("salesforce_create", ctx):
            return await create(objectName, values)

    @tool(changing, "write")
    async def salesforce_update(
        ctx: Context, objectName: ObjectName, recordId: RecordId, values: Values
    ) -> Saved:
        """Change fields of a record of any object."""
        async with call("salesforce_update", ctx):
            return await update(objectName, recordId, values)

    @tool(deleting, "admin")
    async def salesforce_delete(ctx: Context, objectName: ObjectName, recordId: RecordId) -> Saved:
        """Delete a record of any object. Only when the user asked for it."""
        async with call("salesforce_delete", ctx):
            return await delete(objectName, recordId)

    async def read(soql: str, cursor: str | None, sobject: str | None) -> Records:
        """A page of `soql`'s records (or the one after `cursor`) of `sobject`, which the call
        touches (None: not known, e.g. a cursor alone)."""
        touch(sobject)
        page = await client.query_more(cursor) if cursor else await client.query(soql)
        return as_records(page)

    @tool(reading, "read")
    async def salesforce_query(
        ctx: Context,
        soql: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=20000,
                description="A SOQL SELECT, e.g. SELECT Id, Subject FROM Case WHERE "
                "ContactId = '003...' ORDER BY CreatedDate DESC",
            ),
        ] = None,
        params: Params = None,
        limit: Annotated[
            int | None,
            Field(ge=1, le=QUERY_CAP, description="Records per page (default 200)"),
        ] = None,
        cursor: Cursor = None,
    ) -> Records:
        """Read records with SOQL (SELECT only; relationship paths, subqueries, GROUP BY and
        aggregates allowed). Objects, fields and relationships are checked first: a wrong name
        comes back with the closest ones. With neither a LIMIT in soql nor limit, the matching
        records are counted first and, past a threshold, only the count comes back (note says
        what to do); otherwise a LIMIT is added (limit, default 200, at most 2,000). To read
        on, pass the previous page's nextCursor as cursor (without soql)."""
        async with call("salesforce_query", ctx):
            if cursor:
                return await read("", cursor, None)
            if not soql:
                raise ToolError("Give soql, or a cursor from a previous page.")
            checked = await check(schema, soql, params, plain.hides)
            counting = checked.count_query() if count_threshold and limit is None else None
            if counting is not None and checked.query is not None:
                matching = (await client.query(counting)).total
                if matching > count_threshold:
                    return Records(
                        records=[],
                        totalSize=matching,
                        nextCursor=None,
                        note=TOO_MANY.format(
                            count=matching,
                            sobject=checked.query.sobject.text,
                            threshold=count_threshold,
                        ),
                    )
            shape = checked.query
            bounded = checked.bounded(limit or DEFAULT_PAGE)
            return await read(bounded, None, shape.sobject.text if shape else None)

    @tool(reading, "read")
    async def salesforce_search(
        ctx: Context,
        text: Annotated[str, Field(min_length=2, max_length=100, description="What to find")],
        objects: Annotated[
            list[ObjectName],
            Field(min_length=1, max_length=10, description="Objects to search"),
        ] = ["Contact", "Account", "Case"],  # noqa: B006 (pydantic copies defaults)
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> Records:
        """Find records of several objects whose text fields (names, emails, phones, subjects)
        contain `text` (SOSL). Each comes with its type, id and its main text fields."""
        async with call("salesforce_search", ctx):
            returning = []
            for name in objects:
                touch(name)  # also the default objects, which the arguments do not name
                described = await schema.describe(name)
                shown = [
                    str(f["name"])
                    for f in described.get("fields", [])
                    if f.get("type") in ("string", "email", "phone")
                ][:5]
                returning.append(f"{described.get('name', name)}({', '.join(['Id', *shown])})")
            sosl = (
                f"FIND {{{sosl_term(text)}}} IN ALL FIELDS RETURNING {', '.join(returning)} "
                f"LIMIT {limit}"
            )
            found = await client.search(sosl)
            rows = [{"type": r.get("attributes", {}).get("type"), **plain(r)} for r in found]
            return Records(records=rows, totalSize=len(rows), nextCursor=None)

    # -- contacts -----------------------------------------------------------------------------

    @tool(reading, "read")
    async def salesforce_list_contacts(
        ctx: Context,
        search: Annotated[
            str | None,
            Field(max_length=100, description="Part of a name, an email or a phone number"),
        ] = None,
        accountId: RecordId | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Records:
        """Contacts by last name, optionally only those matching `search` or of one account."""
        async with call("salesforce_list_contacts", ctx):
            where = []
            if search:
                like = contains(search)
                where.append(
                    f"(FirstName LIKE {like} OR LastName LIKE {like} OR Email LIKE {like} "
                    f"OR Phone LIKE {like})"
                )
            if accountId:
                where.append(f"AccountId = {literal(accountId)}")
            soql = (
                f"SELECT {', '.join(CONTACT_FIELDS)}, Account.Name "
                "FROM Contact"
                + (" WHERE " + " AND ".join(where) if where else "")
                + f" ORDER BY LastName, FirstName LIMIT {limit}"
            )
            return await read(soql, cursor, "Contact")

    @tool(reading, "read")
    async def find_customer(
        ctx: Context,
        email: Email | None = None,
        phone: Annotated[str | None, Field(max_length=40)] = None,
        name: Annotated[str | None, Field(max_length=100)] = None,
    ) -> Records:
        """The contacts matching an email, a phone number or a name (at least one), each with
        its account and open cases: who the customer in a chat is."""
        async with call("find_customer", ctx):
            where = []
            if email:
                where.append(f"Email = {literal(email)}")
            if phone:
                where.append(f"Phone = {literal(phone)}")
            if name:
                like = contains(name)
                where.append(f"(FirstName LIKE {like} OR LastName LIKE {like})")
            if not where:
                raise ToolError("Give email, phone or name.")
            soql = (
                f"SELECT {', '.join(CONTACT_FIELDS)}, Account.Name, "
                "(SELECT Id, Subject, Status FROM Cases WHERE Status != 'Closed') "
                "FROM Contact WHERE " + " OR ".join(where) + " ORDER BY LastName LIMIT 20"
            )
            return await read(soql, None, "Contact")

    # -- contacts -----------------------------------------------------------------------------

    @tool(reading, "read")
    async def salesforce_get_contact(ctx: Context, contactId: RecordId) -> Record:
        """A contact: name, email, phone, account."""
        async with call("salesforce_get_contact", ctx):
            return await get_record("Contact", contactId, list(CONTACT_FIELDS))

    @tool(creating, "write")
    async def salesforce_create_contact(
        ctx: Context,
        lastName: Annotated[str, Field(min_length=1, max_length=80)],
        firstName: Annotated[str | None, Field(max_length=40)] = None,
        email: Email | None = None,
        phone: Annotated[str | None, Field(max_length=40)] = None,
        accountId: RecordId | None = None,
    ) -> Saved:
        """Create a contact."""
        async with call("salesforce_create_contact", ctx):
            values = contact_values(firstName, lastName, email, phone, accountId)
            return await create("Contact", values)

    @tool(changing, "write")
    async def salesforce_update_contact(
        ctx: Context,
        contactId: RecordId,
        firstName: Annotated[str | None, Field(max_length=40)] = None,
        lastName: Annotated[str | None, Field(min_length=1, max_length=80)] = None,
        email: Email | None = None,
        phone: Annotated[str | None, Field(max_length=40)] = None,
        accountId: RecordId | None = None,
    ) -> Saved:
        """Change a contact's name, email, phone or account (only the fields given)."""
        async with call("salesforce_update_contact", ctx):
            values = contact_values(firstName, lastName, email, phone, accountId)
            return await update("Contact", contactId, values)

    @tool(deleting, "admin")
    async def salesforce_delete_contact(ctx: Context, contactId: RecordId) -> Saved:
        """Delete a contact. Only when the user asked for it."""
        async with call("salesforce_delete_contact", ctx):
            return await delete("Contact", contactId)

    @tool(creating, "write")
    async def log_chat_to_case(
        ctx: Context,
        contactId: RecordId,
        subject: Annotated[str, Field(min_length=1, max_length=255)],
        summary: Annotated[
            str, Field(min_length=1, max_length=4000, description="What the chat was about")
        ],
        transcript: Annotated[
            str | None,
            Field(
                max_length=200_000,
                description="The chat as text (get_conversation_transcript's text)",
            ),
        ] = None,
        status: Annotated[
            str, Field(min_length=1, max_length=40, description="The case's status")
        ] = "Closed",
    ) -> Saved:
        """Record a finished chat on a new Case for the contact: the summary, then the
        transcript (cut to fit the case's description)."""
        async with call("log_chat_to_case", ctx):
            description = summary
            if transcript:
                room = CASE_DESCRIPTION_MAX - len(summary) - len(TRANSCRIPT_HEADING)
                cut = (
                    transcript
                    if len(transcript) <= room
                    else transcript[: room - 40] + ("\n(transcript cut to fit the case)")
                )
                description = summary + TRANSCRIPT_HEADING + cut
            values = {
                "Subject": subject,
                "Description": description,
                "Status": status,
                "ContactId": contactId,
            }
            return await create("Case", values)

    # -- events (appointments) ----------------------------------------------------------------

    @tool(reading, "read")
    async def salesforce_list_events(
        ctx: Context,
        contactId: RecordId | None = None,
        startsAfter: AwareDatetime | None = None,
        startsBefore: AwareDatetime | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Records:
        """Events (appointments) by start time, optionally of one contact (WhoId) and within a
        time window."""
        async with call("salesforce_list_events", ctx):
            where = []
            if contactId:
                where.append(f"WhoId = {literal(contactId)}")
            if startsAfter:
                where.append(f"StartDateTime >= {_iso(startsAfter)}")
            if startsBefore:
                where.append(f"StartDateTime < {_iso(startsBefore)}")
            soql = (
                f"SELECT {', '.join(EVENT_FIELDS)} FROM Event"
                + (" WHERE " + " AND ".join(where) if where else "")
                + f" ORDER BY StartDateTime LIMIT {limit}"
            )
            return await read(soql, cursor, "Event")

    @tool(reading, "read")
    async def salesforce_get_event(ctx: Context, eventId: RecordId) -> Record:
        """An event (appointment): subject, start, end, who (a contact) and what (e.g. an
        account)."""
        async with call("salesforce_get_event", ctx):
            return await get_record("Event", eventId, list(EVENT_FIELDS))

    @tool(creating, "write")
    async def salesforce_create_event(
        ctx: Context,
        subject: Annotated[str, Field(min_length=1, max_length=255)],
        start: Annotated[AwareDatetime, Field(description="ISO 8601 with a time zone")],
        end: Annotated[AwareDatetime, Field(description="ISO 8601 with a time zone, after start")],
        whoId: RecordId | None = None,
        whatId: RecordId | None = None,
    ) -> Saved:
        """Create an event (an appointment), e.g. a follow-up call with a contact (whoId)."""
        async with call("salesforce_create_event", ctx):
            EventTimes(start=start, end=end).check()
            values = {
                "Subject": subject,
                "StartDateTime": _iso(start),
                "EndDateTime": _iso(end),
                "WhoId": whoId,
                "WhatId": whatId,
            }
            return await create("Event", _without_none(values))

    @tool(changing, "write")
    async def salesforce_update_event(
        ctx: Context,
        eventId: RecordId,
        subject: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
        start: AwareDatetime | None = None,
        end: AwareDatetime | None = None,
        whoId: RecordId | None = None,
        whatId: RecordId | None = None,
    ) -> Saved:
        """Change an event (only the fields given); a new start and end must be given together
        when both change, and end must stay after start."""
        async with call("salesforce_update_event", ctx):
            if (start is None) != (end is None):
                # The new time against the other end as Salesforce has it.
                current = await client.get("Event", eventId, ["StartDateTime", "EndDateTime"])
                try:
                    times = EventTimes.model_validate(
                        {
                            "start": start or current.get("StartDateTime"),
                            "end": end or current.get("EndDateTime"),
                        }
                    )
                except ValidationError:
                    times = None  # the other end is unknown: Salesforce checks it
                if times is not None:
                    times.check()
            elif start is not None and end is not None:
                EventTimes(start=start, end=end).check()
            values = {
                "Subject": subject,
                "StartDateTime": _iso(start) if start else None,
                "EndDateTime": _iso(end) if end else None,
                "WhoId": whoId,
                "WhatId": whatId,
            }
            return await update("Event", eventId, _without_none(values))

    @tool(deleting, "admin")
    async def salesforce_delete_event(ctx: Context, eventId: RecordId) -> Saved:
        """Delete an event. Only when the user asked for it."""
        async with call("salesforce_delete_event", ctx):
            return await delete("Event", eventId)

    # -- export -------------------------------------------------------------------------------

    @tool(reading, "read")
    async def salesforce_export(
        ctx: Context,
        soql: Annotated[
            str,
            Field(
                min_length=1,
                max_length=20000,
                description="A SOQL SELECT of fields and parent fields, e.g. SELECT Id, LastName, "
                "Email, Account.Name FROM Contact WHERE CreatedDate > 2026-01-01T00:00:00Z",
            ),
        ],
        params: Params = None,
        format: Literal["csv", "xlsx"] = "csv",
    ) -> Annotated[CallToolResult, Exported]:
        """Export every record a SOQL SELECT matches (all pages) as a CSV or XLSX file, attached
        for the user. Names are checked first, as salesforce_query does, and values go in
        params. Columns are the fields selected, parent fields as Account.Name; child
        subqueries are refused; a LIMIT is honoured. A query over the export's bound of records
        (CRM_EXPORT_MAX_ROWS, 10,000 by default) or bytes is refused: narrow it. In CSV, text
        starting with = + - or @ is prefixed with ' so that no spreadsheet runs it."""
        async with call("salesforce_export", ctx):
            checked = await check(schema, soql, params, plain.hides)
            made = await export(client, checked.soql, format, export_bounds, plain)
            return exported_result(made)


class Exported(BaseModel):
    name: str = Field(description="The file's name, e.g. Contact-20261204-090000.csv")
    uri: str = Field(description="The embedded resource's URI")
    format: str = Field(description="csv or xlsx")
    mimeType: str
    rows: int = Field(description="Records in the file, one row each (after the header row)")
    columns: list[str]
    bytes: int = Field(description="The file's size")


def exported_result(made: ExportFile) -> CallToolResult:
    """The file as an embedded resource (CSV as text, XLSX base64-encoded) meant for the user,
    after a sentence saying what it holds; the same as structured content. Embedded rather than
    a resource link: a link would have the server keep the file and serve resources/read, which
    has no caller to check (see register_schema_resources)."""
    uri = f"export://salesforce/{made.name}"
    resource: TextResourceContents | BlobResourceContents = (
        TextResourceContents(uri=uri, mime_type=made.mime_type, text=made.data.decode())
        if made.format == "csv"
        else BlobResourceContents(
            uri=uri, mime_type=made.mime_type, blob=base64.b64encode(made.data).decode()
        )
    )
    shown = ", ".join(made.columns[:20]) + (", …" if len(made.columns) > 20 else "")
    summary = (
        f"Exported {made.rows:,} {made.object} records with {len(made.columns)} columns "
        f"({shown}) as {made.name} ({len(made.data):,} bytes), attached."
    )
    exported = Exported(
        name=made.name,
        uri=uri,
        format=made.format,
        mimeType=made.mime_type,
        rows=made.rows,
        columns=made.columns,
        bytes=len(made.data),
    )
    return CallToolResult(
        content=[
            TextContent(type="text", text=summary),
            EmbeddedResource(
                type="resource", resource=resource, annotations=Annotations(audience=["user"])
            ),
        ],
        structured_content=exported.model_dump(mode="json"),
    )
