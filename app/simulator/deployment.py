"""Deployments and tokens: the token endpoints and the embedded-service configuration endpoints."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.simulator.errors import SimError, bad_request
from app.simulator.org import SimulatedOrg, now_ms
from app.simulator.rest import authorize, json_body, org_of, require_str
from app.simulator.verification import IdentityRefused

Json = dict[str, Any]


def check_deployment(org: SimulatedOrg, org_id: str, es_name: str) -> None:
    options = org.options
    if org_id not in (options.org_id, options.org_id15):
        raise bad_request("Specify a valid orgId.")
    if es_name != options.es_developer_name:
        raise bad_request("No Embedded Service deployment was found for this esDeveloperName.")
    if options.deployment_type != "Api":
        raise bad_request("Set the esDeveloperName to a deploymentType that's set to api")
    if not options.deployment_published:
        raise SimError(
            400, "The Messaging for In-App and Web deployment isn't published.", "SETUP_ERROR"
        )


def embedded_service_config(org: SimulatedOrg) -> Json:
    o = org.options
    return {
        "name": o.es_developer_name,
        "deploymentType": o.deployment_type,
        "embeddedServiceMessagingChannel": {
            "authMode": "UnAuth",
            "channelAddressIdentifier": org.channel_address,
        },
        "forms": [
            {
                "formType": "PreChat",
                "displayContext": o.prechat_display_context,
                "formFields": [
                    {
                        "name": "_firstName",
                        "order": 1,
                        "type": "Text",
                        "required": "_firstName" in o.prechat_required,
                        "maxLength": 40,
                        "isHidden": False,
                        "labels": [],
                    },
                    {
                        "name": "Topic",
                        "order": 2,
                        "type": "ChoiceList",
                        "required": "Topic" in o.prechat_required,
                        "isHidden": False,
                        "choiceListId": "0Ta000000000001",
                    },
                    {
                        "name": "Source",
                        "order": 3,
                        "type": "Text",
                        "required": "Source" in o.prechat_required,
                        "isHidden": True,
                    },
                    *(
                        {
                            "name": name,
                            "order": 4 + n,
                            "type": "Text",
                            "required": False,
                            "maxLength": 255,
                            "isHidden": True,
                        }
                        for n, name in enumerate(o.prechat_hidden_fields)
                    ),
                ],
            }
        ],
        "choiceListConfig": {
            "choiceList": [
                {
                    "choiceListId": "0Ta000000000001",
                    "choiceListValues": [
                        {
                            "order": 1,
                            "choiceListValueName": "Billing",
                            "choiceListValueId": "0Tb000000000001",
                            "isDefaultValue": False,
                        },
                        {
                            "order": 2,
                            "choiceListValueName": "Orders",
                            "choiceListValueId": "0Tb000000000002",
                            "isDefaultValue": False,
                        },
                    ],
                }
            ]
        },
        "termsAndConditions": {"isTermsAndConditionsEnabled": False},
        "attachments": {"endUserToAgent": True, "maxFileSize": o.max_file_bytes // (1024 * 1024)},
        "transcript": {"allowTranscriptDownload": False},
    }


def token_response(org: SimulatedOrg, token: str, subject: str, client_id: str | None) -> Json:
    return {
        "accessToken": token,
        "lastEventId": org.last_event_id,
        "context": {
            "deviceId": str(uuid.uuid4()),
            "endUser": {
                "role": "EndUser",
                "appType": "iamessage",
                "subject": subject,
                "clientIdentifier": client_id or "",
            },
            "configuration": {
                "embeddedServiceConfig": embedded_service_config(org),
                "timestamp": now_ms(),
            },
        },
    }


def client_id_of(org: SimulatedOrg, token: str) -> str | None:
    claims = jwt.decode(token, options={"verify_signature": False})
    value = claims.get("clientId")
    return str(value) if value is not None else None


async def validated_token_request(request: Request) -> tuple[SimulatedOrg, Json]:
    org = org_of(request)
    body = await json_body(request)
    org_id = require_str(body, "orgId")
    es_name = require_str(body, "esDeveloperName")
    require_str(body, "capabilitiesVersion")
    require_str(body, "platform")
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise bad_request("context must be an object with appName and clientVersion.")
    if org.options.strict_token_context and context is None:
        raise bad_request("Specify context.")
    check_deployment(org, org_id, es_name)
    org.check_token_rate()
    return org, body


async def guest_token(request: Request) -> Response:
    org, _ = await validated_token_request(request)
    subject = f"v2/iamessage/UNAUTH/NA/uid:{uuid.uuid4()}"
    token = org.tokens.issue(subject, org.options.guest_token_ttl)
    return JSONResponse(token_response(org, token, subject, client_id_of(org, token)))


async def verified_token(request: Request) -> Response:
    org, body = await validated_token_request(request)
    if body.get("authorizationType") != "JWT":
        raise bad_request('Specify authorizationType "JWT".')
    identity = require_str(body, "customerIdentityToken")
    try:
        sub = await org.user_verification.subject_of(identity)
    except IdentityRefused:
        if not org.user_verification.fallback_to_guest:
            raise
        # As reported of a real org: an anonymous token, 200, nothing said.
        subject = f"v2/iamessage/UNAUTH/NA/uid:{uuid.uuid4()}"
        token = org.tokens.issue(subject, org.options.guest_token_ttl)
        return JSONResponse(token_response(org, token, subject, client_id_of(org, token)))
    subject = f"v2/iamessage/AUTH/{org.options.keyset_name}/uid:{sub}"
    token = org.tokens.issue(subject, org.options.verified_token_ttl)
    return JSONResponse(token_response(org, token, subject, client_id_of(org, token)))


async def continuation_token(request: Request) -> Response:
    record = authorize(request)
    org = org_of(request)
    org.check_token_rate(renew=True)
    # Same subject and same expiry: a continuation token does not extend the session.
    token = org.tokens.issue(record.subject, 0, expires_at=record.expires_at)
    return JSONResponse(token_response(org, token, record.subject, client_id_of(org, token)))


async def revoke_token(request: Request) -> Response:
    record = authorize(request)
    org_of(request).revoke_token(record)
    return Response(status_code=204)


def config_deployment(request: Request) -> SimulatedOrg:
    org = org_of(request)
    org_id = request.query_params.get("orgId", "")
    es_name = request.query_params.get("esConfigName", "")
    if org_id not in (org.options.org_id, org.options.org_id15):
        raise bad_request("Specify a valid orgId.")
    if es_name != org.options.es_developer_name:
        raise SimError(404, "No Embedded Service deployment was found.", "NOT_FOUND")
    return org


async def embedded_service_config_endpoint(request: Request) -> Response:
    org = config_deployment(request)
    if not org.options.deployment_published:
        return JSONResponse({"text": "Embedded Messaging Config is not Published"}, status_code=412)
    return JSONResponse(
        {
            "embeddedServiceConfig": embedded_service_config(org),
            "standardLabels": {},
            "timestamp": now_ms(),
        }
    )


HOUR_MS = 3_600_000


async def business_hours(request: Request) -> Response:
    setting = config_deployment(request).options.business_hours
    now = now_ms()
    windows = []
    if setting == "open":
        windows = [{"startTime": now - HOUR_MS, "endTime": now + 8 * HOUR_MS}]
    elif setting == "closed":
        windows = [{"startTime": now + 2 * HOUR_MS, "endTime": now + 10 * HOUR_MS}]
    return JSONResponse({"businessHoursInfo": {"businessHours": windows}})
