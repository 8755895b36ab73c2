"""The CRM toolset's Salesforce REST client against the simulator's REST surface: records of a
standard and a custom object, describe, Salesforce's refusals as errors naming the field, an
expired access token renewed once, a revoked login, and retries while Salesforce is unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr

from app.salesforce.client import SalesforceClient
from app.salesforce.errors import BadRequest, LoginRequired, NotFound, SalesforceError, Unavailable
from app.salesforce.oauth import OAuthSettings, TokenSource
from app.simulator import SimulatorOptions, build_simulator
from tests.servers import serve

OPTIONS = SimulatorOptions(rate_limits=False)


@dataclass
class Org:
    url: str
    control: httpx.AsyncClient
    http: httpx.AsyncClient
    paths: list[str] = field(default_factory=list)

    def client(
        self,
        *,
        refresh_token: str | None = OPTIONS.crm_refresh_token,
        secret: str = OPTIONS.crm_client_secret,
    ) -> SalesforceClient:
        settings = OAuthSettings(
            login_url=self.url,
            client_id=OPTIONS.crm_client_id,
            client_secret=SecretStr(secret),
            refresh_token=SecretStr(refresh_token) if refresh_token else None,
        )
        return SalesforceClient(self.http, TokenSource(self.http, settings), retry_delays=(0, 0))

    def logins(self) -> int:
        return self.paths.count("/services/oauth2/token")


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    async with serve(build_simulator(OPTIONS)) as url:
        paths: list[str] = []

        async def note(request: httpx.Request) -> None:
            paths.append(request.url.path)

        async with (
            httpx.AsyncClient(base_url=url) as control,
            httpx.AsyncClient(event_hooks={"request": [note]}) as http,
        ):
            yield Org(url, control, http, paths)


async def test_a_contact_is_created_read_updated_and_deleted(org: Org) -> None:
    sf = org.client()
    contact_id = await sf.create("Contact", {"LastName": "Lima", "email": "ana@example.com"})

    created = await sf.get("Contact", contact_id, ["Id", "LastName", "Email"])
    await sf.update("Contact", contact_id, {"FirstName": "Ana"})
    updated = await sf.get("Contact", contact_id)
    await sf.delete("Contact", contact_id)

    assert contact_id.startswith("003") and len(contact_id) == 18
    assert {k: v for k, v in created.items() if k != "attributes"} == {
        "Id": contact_id,
        "LastName": "Lima",
        "Email": "ana@example.com",
    }
    assert (updated["FirstName"], updated["LastName"]) == ("Ana", "Lima")
    with pytest.raises(NotFound):
        await sf.get("Contact", contact_id)


async def test_a_custom_object_and_its_relationships_are_described(org: Org) -> None:
    sf = org.client()
    visit = await sf.describe("Support_Visit__c")
    contact = await sf.describe("Contact")

    assert visit["custom"] is True
    lookup = next(f for f in visit["fields"] if f["name"] == "Contact__c")
    assert (lookup["referenceTo"], lookup["relationshipName"]) == (["Contact"], "Contact__r")
    assert {"childSObject": "Support_Visit__c", "field": "Contact__c"}.items() <= next(
        c for c in contact["childRelationships"] if c["childSObject"] == "Support_Visit__c"
    ).items()


@pytest.mark.parametrize(
    ("values", "code", "fields"),
    [
        ({"LastName": "Lima", "Emial": "a@b.c"}, "INVALID_FIELD", ("Emial",)),
        ({"FirstName": "Ana"}, "REQUIRED_FIELD_MISSING", ("LastName",)),
        ({"LastName": "x" * 81}, "STRING_TOO_LONG", ("LastName",)),
        (
            {"LastName": "Lima", "Id": "003000000000001AAA"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ("Id",),
        ),
    ],
)
async def test_a_record_salesforce_refuses_is_an_error_naming_the_field(
    org: Org, values: dict[str, str], code: str, fields: tuple[str, ...]
) -> None:
    with pytest.raises(BadRequest) as refused:
        await org.client().create("Contact", values)

    assert (refused.value.code, refused.value.fields) == (code, fields)
    assert f"(field {', '.join(fields)})" in str(refused.value)


async def test_names_and_ids_that_cannot_be_salesforce_ones_are_refused_before_any_call(
    org: Org,
) -> None:
    sf = org.client()
    with pytest.raises(SalesforceError, match="object must be an API name"):
        await sf.describe("Contact/../../x")
    with pytest.raises(SalesforceError, match="recordId must be a 15- or 18-character"):
        await sf.get("Contact", "003?x=1")
    assert org.paths == []


async def test_an_expired_token_is_renewed_once_and_the_call_goes_through(org: Org) -> None:
    sf = org.client()
    contact_id = await sf.create("Contact", {"LastName": "Lima"})
    assert org.logins() == 1

    expired = await org.control.post("/control/crm/tokens/expire")
    contact = await sf.get("Contact", contact_id, ["LastName"])

    assert expired.json() == {"expired": 1}
    assert contact["LastName"] == "Lima"
    assert org.logins() == 2
    assert org.paths.count(f"/services/data/v62.0/sobjects/Contact/{contact_id}") == 2


async def test_a_revoked_login_says_to_log_in_again(org: Org) -> None:
    sf = org.client()
    await sf.describe("Contact")
    await org.control.post("/control/crm/refresh-tokens/revoke")
    await org.control.post("/control/crm/tokens/expire")

    with pytest.raises(LoginRequired, match="must log in again") as refused:
        await sf.describe("Contact")

    assert refused.value.code == "invalid_grant"
    assert OPTIONS.crm_refresh_token not in str(refused.value)


async def test_wrong_client_credentials_are_a_login_error(org: Org) -> None:
    with pytest.raises(LoginRequired, match="invalid_client"):
        await org.client(secret="wrong").describe("Contact")


async def test_the_client_credentials_flow_needs_no_refresh_token(org: Org) -> None:
    described = await org.client(refresh_token=None).describe("Event")

    assert described["name"] == "Event"


async def test_salesforce_unavailable_is_retried_and_then_reported(org: Org) -> None:
    sf = org.client()
    await sf.describe("Case")  # logged in
    fault = {"path": "/services/data/*", "status": 503, "count": 2}
    assert (await org.control.post("/control/faults", json=fault)).status_code == 201

    described = await sf.describe("Case")  # two 503s, then the answer
    fault["count"] = 3
    await org.control.post("/control/faults", json=fault)
    with pytest.raises(Unavailable, match="try again later"):
        await sf.describe("Case")

    assert described["name"] == "Case"
    assert org.paths.count("/services/data/v62.0/sobjects/Case/describe") == 1 + 3 + 3


async def test_a_value_outside_a_restricted_picklist_is_refused_naming_the_field(org: Org) -> None:
    sf = org.client()
    case_id = await sf.create("Case", {"Subject": "Parcel late", "Status": "New"})

    with pytest.raises(BadRequest) as refused:
        await sf.update("Case", case_id, {"Status": "Lost"})

    assert (refused.value.code, refused.value.fields) == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ("Status",),
    )
    assert (await sf.get("Case", case_id, ["Status"]))["Status"] == "New"
