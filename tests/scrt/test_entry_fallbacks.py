"""Entries whose fields sit in their second-choice place still parse: type and id only in the
payload, the conversation id only on the entry, carousel options, form content, the routing
reason under its other name, an acknowledgement naming nothing, float timestamps."""

from __future__ import annotations

from typing import Any

from app.scrt import Entry


def test_type_and_id_are_read_from_the_payload_when_the_entry_lacks_them() -> None:
    entry = Entry.from_rest(
        {"entryPayload": {"entryType": "QueuePosition", "id": "q1", "position": 2}}
    )

    assert (entry.entry_type, entry.identifier, entry.queue_position) == ("QueuePosition", "q1", 2)


def test_an_entry_of_no_known_type_is_unknown() -> None:
    entry = Entry.from_rest({"identifier": "x1", "entryPayload": {}})

    assert entry.entry_type == "Unknown"


def test_the_conversation_id_falls_back_to_the_entrys_own() -> None:
    entry = Entry.from_rest(
        {"entryType": "CloseConversation", "conversationId": "c-entry", "entryPayload": {}}
    )

    assert entry.conversation_id == "c-entry"


def test_a_float_timestamp_is_read_as_milliseconds() -> None:
    entry = Entry.from_rest(
        {"entryType": "CloseConversation", "transcriptedTimestamp": 1741300000000.0}
    )

    assert entry.transcripted_timestamp == 1741300000000


def test_a_carousel_offers_the_options_of_every_card() -> None:
    def card(*options: tuple[str, str]) -> dict[str, Any]:
        return {
            "interactionItems": [
                {"optionIdentifier": oid, "titleItem": {"title": title}} for oid, title in options
            ]
        }

    choices = {
        "formatType": "Carousel",
        "text": "Pick a plan",
        "items": [card(("o1", "Basic"), ("o2", "Plus")), card(("o3", "Pro"))],
    }
    entry = Entry.from_rest(
        {
            "entryType": "Message",
            "entryPayload": {
                "abstractMessage": {"messageType": "ChoicesMessage", "choices": choices}
            },
        }
    )

    assert [(c.option_identifier, c.title) for c in entry.choices] == [
        ("o1", "Basic"),
        ("o2", "Plus"),
        ("o3", "Pro"),
    ]


def message(content_key: str, content: dict[str, Any]) -> Entry:
    return Entry.from_rest(
        {
            "entryType": "Message",
            "entryPayload": {
                "abstractMessage": {"messageType": "FormMessage", content_key: content}
            },
        }
    )


def test_form_messages_keep_their_format_but_carry_no_text() -> None:
    form = message("form", {"formatType": "Inputs", "text": "Your order number?"})
    answer = message("formResponse", {"formatType": "Result", "text": "A-17"})

    assert (form.format_type, form.text) == ("Inputs", None)
    assert (answer.format_type, answer.text) == ("Result", None)


def test_a_routing_failure_reason_may_come_as_reason_for_not_routing() -> None:
    entry = Entry.from_rest(
        {
            "entryType": "RoutingResult",
            "entryPayload": {
                "routingType": "Transfer",
                "failureType": "NoAgentAvailable",
                "reasonForNotRouting": "Outside business hours",
            },
        }
    )

    assert entry.routing is not None
    assert entry.routing.failure_reason == "Outside business hours"


def test_an_acknowledgement_naming_no_entry_acknowledges_none() -> None:
    entry = Entry.from_rest({"entryType": "ReadAcknowledgement", "entryPayload": {}})

    assert entry.acknowledged_entry_id is None
