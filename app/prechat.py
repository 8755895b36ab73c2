"""Pre-chat: the deployment's form, values checked against it, and the assistant's context for the
agent (a summary and customer details) placed in hidden fields or a first marked message.

The form comes with every guest token (`context.configuration.embeddedServiceConfig.forms`), or
from `/embeddedservice/v1/embedded-service-config` in a process that minted none; it is the same
for every session of the deployment and is kept for `FORM_TTL` seconds. A value for a field the
form does not have, a required field left out and a value longer than the field's `maxLength`
are each a tool error naming the field, before anything reaches Salesforce. When the deployment
answers no form at all, values go through unchecked.

Context for the agent (`create_conversation`'s `summary`, `customerName`, `customerEmail`,
`customerDetails`) goes to the pre-chat fields `PRECHAT_FIELD_MAP` names (e.g.
`summary:ChatGPT_Summary__c,email:_email`); what it maps nowhere goes in one first message from
the user's side, marked as written by the assistant, so it reaches the agent with any deployment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.failures import HandoffError
from app.kept import Kept
from app.scrt import ScrtClient

FORM_TTL = 300.0
FAILED_TTL = 60.0
FORM_WAIT = 3.0
"""Longest a tool call waits for the configuration endpoint: past it, values go unchecked."""
CONTEXT_LABELS = {"summary": "Summary", "name": "Name", "email": "Email", "details": "Details"}
"""Our names for the context values (PRECHAT_FIELD_MAP's keys), with their labels in the first
message."""
CONTEXT_NAMES = tuple(CONTEXT_LABELS)
CONTEXT_MARK = "[Written by the ChatGPT assistant before the handoff, with the user's agreement]"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PrechatInvalid(HandoffError):
    """Pre-chat values the deployment would not take; the message names the field."""


@dataclass(frozen=True)
class PrechatField:
    name: str
    type: str
    required: bool
    hidden: bool
    max_length: int | None
    choices: tuple[str, ...] = ()
    """A ChoiceList field's values (their names) when the configuration lists them."""
    choice_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrechatForm:
    fields: tuple[PrechatField, ...]

    @classmethod
    def from_config(cls, config: Any) -> PrechatForm | None:
        """The pre-chat form of an `embeddedServiceConfig`; None when it has no `forms` at all
        (an unknown configuration: nothing to check against)."""
        if not isinstance(config, dict) or not isinstance(config.get("forms"), list):
            return None
        lists: dict[str, list[tuple[int, str, str]]] = {}
        choice_config = config.get("choiceListConfig")
        for item in (
            choice_config.get("choiceList") or [] if isinstance(choice_config, dict) else []
        ):
            if isinstance(item, dict) and isinstance(item.get("choiceListId"), str):
                values = lists.setdefault(item["choiceListId"], [])
                for value in item.get("choiceListValues") or []:
                    if isinstance(value, dict) and isinstance(
                        value.get("choiceListValueName"), str
                    ):
                        order = value.get("order")
                        values.append(
                            (
                                order if isinstance(order, int) else 0,
                                value["choiceListValueName"],
                                str(value.get("choiceListValueId") or ""),
                            )
                        )
        fields = []
        for form in config["forms"]:
            if not isinstance(form, dict) or form.get("formType") != "PreChat":
                continue
            for item in form.get("formFields") or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                length = item.get("maxLength")
                options = sorted(lists.get(str(item.get("choiceListId")), []))
                fields.append(
                    PrechatField(
                        name=item["name"],
                        type=str(item.get("type") or "Text"),
                        required=item.get("required") is True,
                        hidden=item.get("isHidden") is True,
                        max_length=length if isinstance(length, int) and length > 0 else None,
                        choices=tuple(name for _, name, _ in options),
                        choice_ids=tuple(i for _, _, i in options if i),
                    )
                )
        return cls(tuple(fields))

    def check(self, values: Mapping[str, str], *, origin: Mapping[str, str]) -> None:
        """PrechatInvalid naming the first field the deployment would not take. `origin` says
        which of our context values a field's value came from (for the error's wording)."""
        by_name = {f.name: f for f in self.fields}
        known = ", ".join(f.name for f in self.fields) or "none"
        for name, value in values.items():
            field = by_name.get(name)
            came = origin.get(name)
            if field is None:
                if came is not None:
                    raise PrechatInvalid(
                        f"PRECHAT_FIELD_MAP sends {came} to pre-chat field {name!r}, which this "
                        f"deployment's pre-chat form does not have (its fields: {known}). The "
                        "server's operator must fix PRECHAT_FIELD_MAP; meanwhile open the "
                        f"conversation without {came}."
                    )
                raise PrechatInvalid(
                    f"Pre-chat field {name!r} is not in this deployment's pre-chat form (its "
                    f"fields: {known}). Leave it out of routingAttributes."
                )
            if field.choices and value not in field.choices and value not in field.choice_ids:
                raise PrechatInvalid(
                    f"Pre-chat field {name!r} takes one of: {', '.join(field.choices)}. Pass one "
                    "of these exactly."
                )
            if field.max_length is not None and len(value) > field.max_length:
                what = came if came is not None else "its value"
                raise PrechatInvalid(
                    f"Pre-chat field {name!r} takes at most {field.max_length} characters; "
                    f"{what} has {len(value)}. Shorten it."
                )
        for field in self.fields:
            if field.required and field.hidden and not values.get(field.name, "").strip():
                raise PrechatInvalid(
                    f"This deployment requires its hidden pre-chat field {field.name!r}, which "
                    "users are never asked for: the server's operator must map a value to it "
                    "(PRECHAT_FIELD_MAP) or make it optional. No conversation can be opened "
                    "until then."
                )
            if field.required and not values.get(field.name, "").strip():
                raise PrechatInvalid(
                    f"Pre-chat field {field.name!r} is required by this deployment. Ask the user "
                    "for it and pass it in routingAttributes."
                )


def parse_field_map(text: str) -> dict[str, str]:
    """`summary:ChatGPT_Summary__c,email:_email` → {"summary": "ChatGPT_Summary__c", …};
    ValueError naming what is wrong."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ours, sep, theirs = (s.strip() for s in part.partition(":"))
        if not sep or ours not in CONTEXT_NAMES or not _FIELD_NAME.match(theirs):
            raise ValueError(
                f"PRECHAT_FIELD_MAP: {part!r} is not NAME:FIELD with NAME one of "
                f"{', '.join(CONTEXT_NAMES)} and FIELD a pre-chat field's API name"
            )
        if ours in mapping:
            raise ValueError(f"PRECHAT_FIELD_MAP: {ours!r} is mapped twice")
        mapping[ours] = theirs
    return mapping


@dataclass(frozen=True)
class AgentContext:
    """What the assistant tells the agent; empty values are left out."""

    summary: str | None = None
    name: str | None = None
    email: str | None = None
    details: str | None = None

    def values(self) -> dict[str, str]:
        given = {n: getattr(self, n) for n in CONTEXT_NAMES}
        return {n: v.strip() for n, v in given.items() if v is not None and v.strip()}


@dataclass(frozen=True)
class Placement:
    """Where an AgentContext goes: pre-chat values (merged with the caller's) and the text of
    the first message (None when everything went to pre-chat fields)."""

    routing_attributes: dict[str, str]
    origin: dict[str, str]
    message: str | None


def place(
    context: AgentContext, routing_attributes: Mapping[str, str], field_map: Mapping[str, str]
) -> Placement:
    values = context.values()
    attributes = dict(routing_attributes)
    origin: dict[str, str] = {}
    lines = []
    for ours, value in values.items():
        field = field_map.get(ours)
        if field is None:
            lines.append(f"{CONTEXT_LABELS[ours]}: {value}")
            continue
        if field in attributes:
            raise PrechatInvalid(
                f"Pre-chat field {field!r} was given in routingAttributes and also receives "
                f"{ours} (PRECHAT_FIELD_MAP). Give it once."
            )
        attributes[field] = value
        origin[field] = ours
    message = "\n".join([CONTEXT_MARK, *lines]) if lines else None
    return Placement(attributes, origin, message)


class PrechatForms:
    """The deployment's pre-chat form, learned from tokens or fetched, kept `FORM_TTL` s."""

    def __init__(
        self, client: ScrtClient, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        async def fetch() -> PrechatForm | None:
            config = await client.embedded_service_config()
            return PrechatForm.from_config(config.get("embeddedServiceConfig", config))

        self._forms: Kept[PrechatForm] = Kept(
            fetch,
            ttl=FORM_TTL,
            failed_ttl=FAILED_TTL,
            wait=FORM_WAIT,
            event="prechat.config_unavailable",
            monotonic=monotonic,
        )

    def learn(self, config: Any) -> None:
        """From a minted token's `embeddedServiceConfig` (None: nothing learnt)."""
        form = PrechatForm.from_config(config)
        if form is not None:
            self._forms.put(form)

    async def form(self) -> PrechatForm | None:
        return await self._forms.get()
