"""app/prechat.py on its own: PRECHAT_FIELD_MAP's syntax, the form learnt from tokens or fetched
(kept five minutes, a controllable clock), and what an unknown configuration means."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from app.prechat import PrechatForm, PrechatForms, parse_field_map
from app.scrt import ScrtServerError
from tests.clock import Clock

CONFIG = {
    "forms": [
        {
            "formType": "PreChat",
            "formFields": [{"name": "_firstName", "type": "Text", "required": True}],
        }
    ]
}


class Configs:
    def __init__(self) -> None:
        self.requests = 0
        self.fail = False

    async def embedded_service_config(self) -> dict[str, Any]:
        self.requests += 1
        if self.fail:
            raise ScrtServerError(status=503, message="Service Unavailable")
        return {"embeddedServiceConfig": CONFIG}


def test_the_field_map_is_read_and_a_malformed_one_is_refused_at_start_naming_the_variable() -> (
    None
):
    assert parse_field_map(" summary:ChatGPT_Summary__c , email:_email ") == {
        "summary": "ChatGPT_Summary__c",
        "email": "_email",
    }
    assert parse_field_map("") == {}
    for bad in ("summary", "mood:_x", "summary:not a field", "name:_a,name:_b"):
        with pytest.raises(ValueError, match="PRECHAT_FIELD_MAP"):
            parse_field_map(bad)
    with pytest.raises(ValueError, match=r"prechat_field_map|PRECHAT_FIELD_MAP"):
        Settings(_env_file=None, prechat_field_map="summary")  # type: ignore[call-arg]


def test_a_configuration_without_forms_is_unknown_not_empty() -> None:
    assert PrechatForm.from_config({"name": "x"}) is None
    assert PrechatForm.from_config(None) is None
    assert PrechatForm.from_config({"forms": []}) == PrechatForm(())


async def test_the_form_learnt_from_a_token_saves_the_request_and_is_kept_five_minutes() -> None:
    clock, client = Clock(), Configs()
    forms = PrechatForms(client, monotonic=clock)  # type: ignore[arg-type]
    forms.learn(CONFIG)
    form = await forms.form()
    assert form is not None and [f.name for f in form.fields] == ["_firstName"]
    assert client.requests == 0
    clock.now = 300.0
    assert await forms.form() == form
    assert client.requests == 1  # asked again once the five minutes are over
    clock.now = 600.0
    client.fail = True
    assert await forms.form() == form  # a failure keeps the last form known…
    assert await forms.form() == form
    assert client.requests == 2  # …and is not asked again at once


async def test_without_any_form_known_a_failed_fetch_means_unchecked() -> None:
    client = Configs()
    client.fail = True
    assert await PrechatForms(client, monotonic=Clock()).form() is None  # type: ignore[arg-type]
