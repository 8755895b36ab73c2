"""A small Salesforce REST surface for the CRM toolset's tests and the demo: OAuth tokens, describe,
and records of a few objects kept in memory.

Shapes follow Salesforce's REST API and OAuth documentation: the token endpoint's form-encoded
grants and `{"error", "error_description"}` refusals; the REST errors as a JSON array of
`{"message", "errorCode", "fields"}`; 201 `{"id", "success", "errors"}` for a create, 204 for an
update or delete, a record with its `attributes`; describe with `fields` and `childRelationships`.
Record ids are 18 characters starting with the object's key prefix. Not part of the chat API.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app.simulator.soql import Parser, Query, SoqlError, aggregated

Json = dict[str, Any]

ACCESS_TOKEN_SECONDS = 600.0
"""Short, so that tests and the demo see tokens refreshed."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str = "string"
    label: str = ""
    required: bool = False
    length: int = 255
    reference_to: str | None = None
    relationship: str | None = None
    children: str | None = None
    """A lookup's name seen from the record it points at (Account → Contacts)."""
    picklist: tuple[str, ...] = ()
    updateable: bool = True


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    label: str
    prefix: str
    fields: tuple[FieldSpec, ...]
    custom: bool = False

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name.lower() == name.lower()), None)


def ref(name: str, label: str, to: str, relationship: str, children: str) -> FieldSpec:
    """A lookup field: an id of a `to` record, reached in queries as `relationship`; the `to`
    record reaches these records as `children`."""
    return FieldSpec(
        name,
        "reference",
        label,
        length=18,
        reference_to=to,
        relationship=relationship,
        children=children,
    )


def _common(*extra: FieldSpec) -> tuple[FieldSpec, ...]:
    base = (
        FieldSpec("Id", "id", "Record ID", length=18, updateable=False),
        FieldSpec("CreatedDate", "datetime", "Created Date", updateable=False),
        FieldSpec("LastModifiedDate", "datetime", "Last Modified Date", updateable=False),
    )
    return base + extra


SCHEMA: tuple[ObjectSpec, ...] = (
    ObjectSpec(
        "Account",
        "Account",
        "001",
        _common(
            FieldSpec("Name", label="Account Name", required=True), FieldSpec("Phone", "phone")
        ),
    ),
    ObjectSpec(
        "Contact",
        "Contact",
        "003",
        _common(
            FieldSpec("FirstName", label="First Name", length=40),
            FieldSpec("LastName", label="Last Name", required=True, length=80),
            FieldSpec("Email", "email", "Email", length=80),
            FieldSpec("Phone", "phone", "Phone", length=40),
            FieldSpec("DoNotCall", "boolean", "Do Not Call", required=True),
            FieldSpec("SSN__c", "string", "Social Security Number", length=11),
            ref("AccountId", "Account ID", "Account", "Account", "Contacts"),
        ),
    ),
    ObjectSpec(
        "Case",
        "Case",
        "500",
        _common(
            FieldSpec("Subject", label="Subject"),
            FieldSpec("Description", "textarea", "Description", length=32000),
            FieldSpec(
                "Status",
                "picklist",
                "Status",
                required=True,
                picklist=("New", "Working", "Escalated", "Closed"),
            ),
            ref("ContactId", "Contact ID", "Contact", "Contact", "Cases"),
        ),
    ),
    ObjectSpec(
        "Event",
        "Event",
        "00U",
        _common(
            FieldSpec("Subject", label="Subject"),
            FieldSpec("StartDateTime", "datetime", "Start", required=True),
            FieldSpec("EndDateTime", "datetime", "End", required=True),
            ref("WhoId", "Name ID", "Contact", "Who", "Events"),
            ref("WhatId", "Related To ID", "Account", "What", "Events"),
        ),
    ),
    ObjectSpec(
        # A managed package's object: its namespace (acme) prefixes the object, its fields and
        # its relationships.
        "acme__Loyalty_Card__c",
        "Loyalty Card",
        "a02",
        _common(
            FieldSpec("Name", label="Card Number", length=80),
            FieldSpec("acme__Points__c", "double", "Points"),
            FieldSpec("acme__Tier__c", "picklist", "Tier", picklist=("Bronze", "Silver", "Gold")),
            ref("acme__Contact__c", "Member", "Contact", "acme__Contact__r", "acme__Cards__r"),
        ),
        custom=True,
    ),
    ObjectSpec(
        "Support_Visit__c",
        "Support Visit",
        "a01",
        _common(
            FieldSpec("Name", label="Support Visit Name", length=80),
            ref("Contact__c", "Contact", "Contact", "Contact__r", "Support_Visits__r"),
            FieldSpec("Visit_Date__c", "date", "Visit Date"),
        ),
        custom=True,
    ),
)


def child_lookups(spec: ObjectSpec) -> list[tuple[ObjectSpec, FieldSpec]]:
    """(child object, its lookup field) of every object that points at `spec`."""
    return [(o, f) for o in SCHEMA for f in o.fields if f.reference_to == spec.name]


def rest_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    return JSONResponse(
        [{"message": message, "errorCode": code, "fields": fields or []}], status_code=status
    )


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


@dataclass
class CrmOrg:
    """The org's connected app, its tokens and its records."""

    client_id: str
    client_secret: str
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token → expiry (monotonic)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Authorization codes not yet used → (client id, redirect URI, PKCE challenge)."""
    records: dict[str, dict[str, Json]] = field(default_factory=dict)  # object → id → record
    rotate: bool = False
    """Refresh token rotation (each refresh gets a new refresh token, the old one revoked)."""
    batch_size: int = 2000
    """Records per page of a query answer (Salesforce's default); the rest via nextRecordsUrl."""
    cursors: dict[str, list[Json]] = field(default_factory=dict)
    """A query's records not yet sent, by the cursor id its nextRecordsUrl names."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def schema(self, name: str) -> ObjectSpec | None:
        return next((o for o in SCHEMA if o.name.lower() == name.lower()), None)

    def issue(self) -> str:
        token = "00D!" + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.monotonic() + ACCESS_TOKEN_SECONDS
        return token

    def valid(self, token: str) -> bool:
        expiry = self.access_tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def expire_all(self) -> int:
        count = len(self.access_tokens)
        self.access_tokens.clear()
        return count

    def new_id(self, spec: ObjectSpec) -> str:
        return f"{spec.prefix}{next(self._ids):012d}AAA"


def crm_of(request: Request) -> CrmOrg:
    crm: CrmOrg = request.app.state.crm
    return crm


async def token(request: Request) -> Response:
    """`POST /services/oauth2/token` (form-encoded): authorization_code (with PKCE),
    refresh_token and client_credentials."""
    crm = crm_of(request)
    form = await request.form()
    grant = form.get("grant_type")
    if grant == "authorization_code":
        return exchange_code(request, crm, form)
    if form.get("client_id") != crm.client_id or form.get("client_secret") != crm.client_secret:
        return oauth_error("invalid_client", "invalid client credentials")
    if grant == "refresh_token":
        used = str(form.get("refresh_token") or "")
        if used not in crm.refresh_tokens:
            return oauth_error("invalid_grant", "expired access/refresh token")
        if crm.rotate:
            crm.refresh_tokens.discard(used)
            rotated = "5Aep" + secrets.token_urlsafe(32)
            crm.refresh_tokens.add(rotated)
            return token_answer(request, crm, refresh_token=rotated)
    elif grant != "client_credentials":
        return oauth_error("unsupported_grant_type", "grant type not supported")
    return token_answer(request, crm)


def token_answer(request: Request, crm: CrmOrg, **extra: str) -> Response:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "access_token": crm.issue(),
            "instance_url": base,
            "id": f"{base}/id/00D000000000001EAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": secrets.token_urlsafe(32),
            **extra,
        }
    )


async def authorize(request: Request) -> Response:
    """`GET /services/oauth2/authorize`: the web-server flow's authorization page. The simulated
    user is logged in and allows access at once: a redirect to `redirect_uri` with a code (or
    with `error` for a request Salesforce would refuse). PKCE (S256) is required here."""
    params = request.query_params
    redirect_uri = params.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost"):
        return PlainTextResponse("error=redirect_uri_mismatch", status_code=400)
    state = params.get("state", "")
    crm = crm_of(request)
    if params.get("client_id") != crm.client_id:
        answer = {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    elif params.get("response_type") != "code":
        answer = {
            "error": "unsupported_response_type",
            "error_description": "response type not supported",
        }
    elif params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        answer = {"error": "invalid_request", "error_description": "missing code challenge"}
    else:
        code = "aPrx" + secrets.token_urlsafe(24)
        crm.codes[code] = (crm.client_id, redirect_uri, params["code_challenge"])
        answer = {"code": code}
    joiner = "&" if target.query else "?"
    return RedirectResponse(f"{redirect_uri}{joiner}{urlencode({**answer, 'state': state})}", 302)


def exchange_code(request: Request, crm: CrmOrg, form: Any) -> Response:
    code = str(form.get("code") or "")
    found = crm.codes.pop(code, None)
    if found is None:
        return oauth_error("invalid_grant", "invalid authorization code")
    client_id, redirect_uri, challenge = found
    if form.get("client_id") != client_id:
        return oauth_error("invalid_client_id", "client identifier invalid")
    secret = form.get("client_secret")
    if secret is not None and secret != crm.client_secret:
        return oauth_error("invalid_client", "invalid client credentials")
    if form.get("redirect_uri") != redirect_uri:
        return oauth_error("redirect_uri_mismatch", "redirect_uri must match")
    verifier = str(form.get("code_verifier") or "")
    digest = hashlib.sha256(verifier.encode()).digest()
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
        return oauth_error("invalid_grant", "invalid code verifier")
    refresh = "5Aep" + secrets.token_urlsafe(32)
    crm.refresh_tokens.add(refresh)
    return token_answer(request, crm, refresh_token=refresh, scope="api refresh_token")


def authorized(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer ") or not crm_of(request).valid(header[7:]):
        return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return None


def object_of(request: Request) -> ObjectSpec | Response:
    """The object the path names, for an authorized request; otherwise the refusal to send."""
    refused = authorized(request)
    if refused is not None:
        return refused
    spec = crm_of(request).schema(request.path_params["sobject"])
    if spec is None:
        name = request.path_params["sobject"]
        return rest_error(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
    return spec


def describe_json(spec: ObjectSpec) -> Json:
    children = [
        {"childSObject": other.name, "field": f.name, "relationshipName": f.children}
        for other, f in child_lookups(spec)
    ]
    return {
        "name": spec.name,
        "label": spec.label,
        "custom": spec.custom,
        "keyPrefix": spec.prefix,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "fields": [
            {
                "name": f.name,
                "label": f.label or f.name,
                "type": f.type,
                "length": f.length,
                "nillable": not f.required and f.name != "Id",
                "createable": f.updateable,
                "updateable": f.updateable,
                "custom": f.name.endswith("__c"),
                "defaultedOnCreate": f.type == "boolean",
                "referenceTo": [f.reference_to] if f.reference_to else [],
                "relationshipName": f.relationship,
                "picklistValues": [
                    {"value": v, "label": v, "active": True, "defaultValue": False}
                    for v in f.picklist
                ],
            }
            for f in spec.fields
        ],
        "childRelationships": children,
    }


async def describe_global(request: Request) -> Response:
    """`GET /services/data/v<version>/sobjects`: every object, briefly."""
    refused = authorized(request)
    if refused is not None:
        return refused
    version = request.path_params["version"]
    return JSONResponse(
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                {
                    "name": o.name,
                    "label": o.label,
                    "custom": o.custom,
                    "keyPrefix": o.prefix,
                    "queryable": True,
                    "urls": {"describe": f"/services/data/v{version}/sobjects/{o.name}/describe"},
                }
                for o in SCHEMA
            ],
        }
    )


async def describe(request: Request) -> Response:
    spec = object_of(request)
    if isinstance(spec, Response):
        return spec
    return JSONResponse(describe_json(spec))


def check_values(spec: ObjectSpec, values: Any, *, creating: bool) -> Response | None:
    """The REST API's refusals of a record body: unknown or read-only field, a picklist value
    not in the list, a value over its length, a required field missing."""
    if not isinstance(values, dict):
        return rest_error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object.")
    for name, value in values.items():
        known = spec.field(name)
        if known is None:
            message = f"No such column '{name}' on sobject of type {spec.name}"
            return rest_error(400, "INVALID_FIELD", message, [name])
        if not known.updateable:
            return rest_error(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {known.name}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                [known.name],
            )
        if known.picklist and value is not None and value not in known.picklist:
            return rest_error(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{known.label}: bad value for restricted picklist field: {value}",
                [known.name],
            )
        if isinstance(value, str) and len(value) > known.length:
            return rest_error(
                400,
                "STRING_TOO_LONG",
                f"{known.label}: data value too large: {value[:20]}… (max length={known.length})",
                [known.name],
            )
    given = canonical(spec, values)
    missing = [
        f.name
        for f in spec.fields
        if f.required
        and f.type != "boolean"  # defaulted on create (false)
        and (creating or f.name in given)
        and given.get(f.name) in (None, "")
    ]
    if missing:
        return rest_error(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )
    return None


async def body_json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return rest_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON.")


async def valid_body(request: Request, spec: ObjectSpec, *, creating: bool) -> Json | Response:
    """The record body of a create or an update, or the REST API's refusal of it."""
    values = await body_json(request)
    if isinstance(values, Response):
        return values
    problem = check_values(spec, values, creating=creating)
    return problem if problem is not None else values


def canonical(spec: ObjectSpec, values: Json) -> Json:
    """Field names as the schema spells them (the API takes any letter case); date-times kept
    as Salesforce keeps them, in UTC (`2026-12-04T09:00:00.000+0000`)."""
    out = {}
    for name, value in values.items():
        known = spec.field(name)
        assert known is not None
        out[known.name] = utc(value) if known.type == "datetime" else value
    return out


def utc(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


async def create(request: Request) -> Response:
    spec = object_of(request)
    if isinstance(spec, Response):
        return spec
    values = await valid_body(request, spec, creating=True)
    if isinstance(values, Response):
        return values
    record_id = insert(crm_of(request), spec, values)
    return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)


def insert(crm: CrmOrg, spec: ObjectSpec, values: Json) -> str:
    """A new record of `spec` from `values` (checked): its id."""
    record_id = crm.new_id(spec)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
    record: Json = {"Id": record_id, "CreatedDate": now, "LastModifiedDate": now}
    record.update({f.name: False for f in spec.fields if f.type == "boolean"})
    record.update(canonical(spec, values))
    crm.records.setdefault(spec.name, {})[record_id] = record
    return record_id


COLLECTION_MAX = 200
"""The most records one sObject Collections request takes."""
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}


def save_error(code: str, message: str, fields: list[str] | None = None) -> Json:
    """A SaveResult of a record not created."""
    return {
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
    }


async def create_collection(request: Request) -> Response:
    """`POST …/composite/sobjects` (sObject Collections): `{"allOrNone": false, "records": [{
    "attributes": {"type": "Contact"}, "LastName": …}, …]}`, at most 200 records of any objects,
    created in order; 200 with one SaveResult per record, in the same order. A record refused
    answers `{"success": false, "errors": [{"statusCode", "message", "fields"}]}`; with
    `allOrNone` any refusal creates none (the others answer ALL_OR_NONE_OPERATION_ROLLED_BACK)."""
    refused = authorized(request)
    if refused is not None:
        return refused
    body = await body_json(request)
    if isinstance(body, Response):
        return body
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        message = "The request body must be an object whose records is a list of records."
        return rest_error(400, "JSON_PARSER_ERROR", message)
    if len(records) > COLLECTION_MAX:
        return rest_error(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this "
            "call",
        )
    crm = crm_of(request)
    checked: list[tuple[ObjectSpec, Json] | Json] = []
    for item in records:
        attributes = item.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        spec = crm.schema(name) if isinstance(name, str) else None
        if spec is None:
            checked.append(save_error("INVALID_TYPE", f"sObject type '{name}' is not supported."))
            continue
        values = {k: v for k, v in item.items() if k != "attributes"}
        problem = check_values(spec, values, creating=True)
        if problem is None:
            checked.append((spec, values))
        else:
            [error] = json.loads(bytes(problem.body))
            checked.append(save_error(error["errorCode"], error["message"], error["fields"]))
    undone = body.get("allOrNone") is True and any(isinstance(c, dict) for c in checked)
    results = []
    for c in checked:
        if isinstance(c, dict):
            results.append(c)
        elif undone:
            results.append({"success": False, "errors": [ROLLED_BACK]})
        else:
            results.append({"id": insert(crm, *c), "success": True, "errors": []})
    return JSONResponse(results)


def record_of(request: Request, spec: ObjectSpec) -> Json | Response:
    record_id = request.path_params["id"]
    if len(record_id) not in (15, 18) or not record_id.isalnum():
        message = f"{spec.name} ID: id value of incorrect type: {record_id}"
        return rest_error(400, "MALFORMED_ID", message, ["Id"])
    found = crm_of(request).records.get(spec.name, {}).get(record_id)
    if found is None:
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
    return found


async def one_record(request: Request) -> Response:
    spec = object_of(request)
    if isinstance(spec, Response):
        return spec
    record = record_of(request, spec)
    if isinstance(record, Response):
        return record
    if request.method == "DELETE":
        del crm_of(request).records[spec.name][record["Id"]]
        return Response(status_code=204)
    if request.method == "PATCH":
        values = await valid_body(request, spec, creating=False)
        if isinstance(values, Response):
            return values
        record.update(canonical(spec, values))
        record["LastModifiedDate"] = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        return Response(status_code=204)
    wanted = request.query_params.get("fields")
    names = [n.strip() for n in wanted.split(",")] if wanted else [f.name for f in spec.fields]
    for name in names:
        if spec.field(name) is None:
            message = f"No such column '{name}' on sobject of type {spec.name}"
            return rest_error(400, "INVALID_FIELD", message, [name])
    version = request.path_params["version"]
    body: Json = {
        "attributes": {
            "type": spec.name,
            "url": f"/services/data/v{version}/sobjects/{spec.name}/{record['Id']}",
        }
    }
    for name in names:
        canonical_name = spec.field(name).name  # type: ignore[union-attr]
        body[canonical_name] = record.get(canonical_name)
    return JSONResponse(body)


# -- SOQL ----------------------------------------------------------------------------------------


def getter(crm: CrmOrg, sobject: str, path: str) -> Any:
    """A function reading `path` (a field, or relationship.field hops) from a `sobject` record;
    SoqlError INVALID_FIELD when the path does not exist."""
    spec = crm.schema(sobject)
    if spec is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
    head, _, rest = path.partition(".")
    if not rest:
        known = spec.field(head)
        if known is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{head}' on entity '{spec.name}'. If you are attempting to use "
                "a custom field, be sure to append the '__c' after the custom field name.",
            )
        return lambda record: record.get(known.name) if record else None
    lookup = next(
        (f for f in spec.fields if f.relationship and f.relationship.lower() == head.lower()),
        None,
    )
    if lookup is None or lookup.reference_to is None:
        raise SoqlError(
            "INVALID_FIELD",
            f"Didn't understand relationship '{head}' in field path. If you are attempting to "
            "use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name.",
        )
    target = lookup.reference_to
    inner = getter(crm, target, rest)

    def read(record: Json | None) -> Any:
        parent_id = record.get(lookup.name) if record else None
        parent = crm.records.get(target, {}).get(parent_id) if parent_id else None
        return inner(parent)

    return read


def parse(crm: CrmOrg, text: str) -> Query:
    return Parser(
        text,
        lambda sobject, path: getter(crm, sobject, path),
        lambda parent, relationship: child_object(crm, parent, relationship).name,
        lambda sobject, path: field_of(crm, sobject, path),
    ).parse()


def field_of(crm: CrmOrg, sobject: str, path: str) -> tuple[str, str]:
    """The API name and type of the field `path` (checked to exist) ends at."""
    spec = crm.schema(sobject)
    assert spec is not None
    *hops, last = path.split(".")
    for hop in hops:
        lookup = next(f for f in spec.fields if (f.relationship or "").lower() == hop.lower())
        parent = crm.schema(lookup.reference_to or "")
        assert parent is not None
        spec = parent
    found = spec.field(last)
    assert found is not None
    return found.name, found.type


def child_object(crm: CrmOrg, parent: str, relationship: str) -> ObjectSpec:
    spec = crm.schema(parent)
    assert spec is not None
    for other, lookup in child_lookups(spec):
        if (lookup.children or "").lower() == relationship.lower():
            return other
    raise SoqlError(
        "INVALID_TYPE",
        f"Didn't understand relationship '{relationship}' in FROM part of query call. If you "
        "are attempting to use a custom relationship, be sure to append the '__r' after the "
        "custom relationship name.",
    )


def shaped(crm: CrmOrg, spec: ObjectSpec, record: Json, query: Query, version: str) -> Json:
    """A record as a query returns it: its attributes, the fields asked for (a parent's as a
    nested record), each child subquery's records."""
    out: Json = {
        "attributes": {
            "type": spec.name,
            "url": f"/services/data/v{version}/sobjects/{spec.name}/{record['Id']}",
        }
    }
    for path in query.fields:
        node, current_spec, current = out, spec, record
        *hops, last = path.split(".")
        for hop in hops:
            lookup = next(
                f for f in current_spec.fields if (f.relationship or "").lower() == hop.lower()
            )
            assert lookup.reference_to is not None
            parent_spec = crm.schema(lookup.reference_to)
            assert parent_spec is not None
            parent = crm.records.get(parent_spec.name, {}).get(current.get(lookup.name) or "")
            if parent is None:
                node[lookup.relationship or hop] = None
                break
            nested = node.get(lookup.relationship or hop)
            if not isinstance(nested, dict):
                nested = {"attributes": {"type": parent_spec.name}}
                node[lookup.relationship or hop] = nested
            node, current_spec, current = nested, parent_spec, parent
        else:
            name = current_spec.field(last).name  # type: ignore[union-attr]
            node[name] = current.get(name)
    for child in query.children:
        child_spec = child_object(crm, spec.name, child.sobject)
        lookup = next(
            f
            for o, f in child_lookups(spec)
            if o is child_spec and (f.children or "").lower() == child.sobject.lower()
        )
        rows = [
            r
            for r in crm.records.get(child_spec.name, {}).values()
            if r.get(lookup.name) == record["Id"]
        ]
        rows = run(crm, child_spec, rows, child)
        out[lookup.children or child.sobject] = (
            {
                "totalSize": len(rows),
                "done": True,
                "records": [shaped(crm, child_spec, r, child, version) for r in rows],
            }
            if rows
            else None
        )
    return out


def run(crm: CrmOrg, spec: ObjectSpec, rows: list[Json], query: Query) -> list[Json]:
    """Filter, order, offset and limit `rows` as `query` says."""
    if query.where is not None:
        rows = [r for r in rows if query.where(r)]
    for path, desc, nulls_first in reversed(query.order):
        read = getter(crm, spec.name, path)
        present = [r for r in rows if read(r) is not None]
        absent = [r for r in rows if read(r) is None]
        present.sort(key=lambda r: _sort_key(read(r)), reverse=desc)
        rows = absent + present if nulls_first else present + absent
    rows = rows[query.offset :]
    return rows[: query.limit] if query.limit is not None else rows


def _sort_key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def page(crm: CrmOrg, version: str, rows: list[Json], total: int) -> Json:
    batch, rest = rows[: crm.batch_size], rows[crm.batch_size :]
    body: Json = {"totalSize": total, "done": not rest, "records": batch}
    if rest:
        cursor = f"01g{secrets.token_hex(6).upper()}-{total - len(rest)}"
        crm.cursors[cursor] = rest
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}"
    return body


async def query(request: Request) -> Response:
    """`GET /services/data/v<version>/query?q=<SOQL>`."""
    refused = authorized(request)
    if refused is not None:
        return refused
    crm = crm_of(request)
    text = request.query_params.get("q")
    if not text:
        return rest_error(400, "MALFORMED_QUERY", "The query parameter q is required.")
    try:
        parsed = parse(crm, text)
    except SoqlError as exc:
        return rest_error(400, exc.code, str(exc))
    spec = crm.schema(parsed.target)
    assert spec is not None
    version = request.path_params["version"]
    if parsed.aggregates or parsed.group_by:
        matching = list(crm.records.get(spec.name, {}).values())
        if parsed.where is not None:
            matching = [r for r in matching if parsed.where(r)]
        results = aggregated(parsed, matching)
        # Aggregate results come in one answer: Salesforce has no queryMore for them.
        return JSONResponse({"totalSize": len(results), "done": True, "records": results})
    rows = run(crm, spec, list(crm.records.get(spec.name, {}).values()), parsed)
    if parsed.count:
        return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
    shaped_rows = [shaped(crm, spec, r, parsed, version) for r in rows]
    return JSONResponse(page(crm, version, shaped_rows, len(shaped_rows)))


async def query_more(request: Request) -> Response:
    """`GET /services/data/v<version>/query/<cursor>`: the next page of a query."""
    refused = authorized(request)
    if refused is not None:
        return refused
    crm = crm_of(request)
    cursor = request.path_params["cursor"]
    rest = crm.cursors.pop(cursor, None)
    if rest is None:
        return rest_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    total = int(cursor.rsplit("-", 1)[1]) + len(rest)
    return JSONResponse(page(crm, request.path_params["version"], rest, total))


# -- SOSL ----------------------------------------------------------------------------------------

SOSL = re.compile(
    r"^\s*FIND\s+\{(?P<term>(?:[^}\\]|\\.)*)\}"
    r"(?:\s+IN\s+(?P<scope>ALL|NAME|EMAIL|PHONE)\s+FIELDS)?"
    r"\s+RETURNING\s+(?P<returning>.+?)"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
RETURNING = re.compile(r"\s*(\w+)\s*(?:\(([^)]*)\))?\s*(?:,|$)")
TEXT_TYPES = {"string", "email", "phone", "textarea"}
SCOPE_TYPES = {"ALL": TEXT_TYPES, "NAME": {"string"}, "EMAIL": {"email"}, "PHONE": {"phone"}}


async def search(request: Request) -> Response:
    """`GET /services/data/v<version>/search?q=<SOSL>`: FIND {term} [IN … FIELDS] RETURNING
    Object(fields), … [LIMIT n]; the term matches text fields by substring, without case."""
    refused = authorized(request)
    if refused is not None:
        return refused
    crm = crm_of(request)
    match = SOSL.match(request.query_params.get("q", ""))
    if match is None:
        return rest_error(
            400,
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        )
    term = re.sub(r"\\(.)", r"\1", match.group("term")).strip().strip("*").lower()
    if len(term) < 2:
        return rest_error(400, "INVALID_SEARCH", "search term must be longer than one character")
    types = SCOPE_TYPES[(match.group("scope") or "ALL").upper()]
    limit = int(match.group("limit") or 2000)
    version = request.path_params["version"]
    found: list[Json] = []
    for name, fields in RETURNING.findall(match.group("returning")):
        spec = crm.schema(name)
        if spec is None:
            return rest_error(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        wanted = [f.strip() for f in fields.split(",") if f.strip()] or ["Id"]
        for path in wanted:
            if spec.field(path) is None:
                message = f"No such column '{path}' on entity '{spec.name}'."
                return rest_error(400, "INVALID_FIELD", message)
        searched = [f.name for f in spec.fields if f.type in types]
        for record in crm.records.get(spec.name, {}).values():
            if any(term in str(record.get(f) or "").lower() for f in searched):
                row: Json = {
                    "attributes": {
                        "type": spec.name,
                        "url": f"/services/data/v{version}/sobjects/{spec.name}/{record['Id']}",
                    }
                }
                row.update({spec.field(p).name: record.get(spec.field(p).name) for p in wanted})  # type: ignore[union-attr]
                found.append(row)
    return JSONResponse({"searchRecords": found[:limit]})


async def expire_tokens(request: Request) -> Response:
    """Control: every CRM access token issued so far is expired now (a refresh is needed)."""
    return JSONResponse({"expired": crm_of(request).expire_all()})


async def revoke_refresh_tokens(request: Request) -> Response:
    """Control: the connected app's refresh tokens are revoked (the user must log in again)."""
    crm = crm_of(request)
    count = len(crm.refresh_tokens)
    crm.refresh_tokens.clear()
    return JSONResponse({"revoked": count})


DATA = "/services/data/v{version}"

control_routes = [
    Route("/control/crm/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/control/crm/refresh-tokens/revoke", revoke_refresh_tokens, methods=["POST"]),
]

routes = [
    Route("/services/oauth2/token", token, methods=["POST"]),
    Route("/services/oauth2/authorize", authorize, methods=["GET"]),
    Route(DATA + "/query", query, methods=["GET"]),
    Route(DATA + "/search", search, methods=["GET"]),
    Route(DATA + "/query/{cursor}", query_more, methods=["GET"]),
    Route(DATA + "/sobjects", describe_global, methods=["GET"]),
    Route(DATA + "/sobjects/{sobject}/describe", describe, methods=["GET"]),
    Route(DATA + "/sobjects/{sobject}", create, methods=["POST"]),
    Route(DATA + "/composite/sobjects", create_collection, methods=["POST"]),
    Route(DATA + "/sobjects/{sobject}/{id}", one_record, methods=["GET", "PATCH", "DELETE"]),
]
