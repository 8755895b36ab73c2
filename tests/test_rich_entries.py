"""Everything a bot or agent can send, as readers get it: links, files, forms, choices and picks,
an answer streamed ahead of the final message, progress lines, and types this server does not
know (a neutral line, never a crash or a silence)."""

from __future__ import annotations

import json
from typing import Any

from app.chat_copy import as_text
from app.state.journal import dump_view, load_view
from app.transcript import ConversationLog, present, visible
from tests.test_transcript_reading import choices_message, entry, message, option


def static(content: dict[str, Any], *, identifier: str = "m1", role: str = "Agent") -> Any:
    payload = {"abstractMessage": {"messageType": "StaticContentMessage", "staticContent": content}}
    return entry("Message", payload, identifier=identifier, role=role, name="Ann")


def rich_link(url: str, title: str = "Order status") -> Any:
    return static(
        {
            "formatType": "RichLink",
            "text": "Have a look",
            "linkItem": {"url": url, "titleItem": {"itemType": "TitleLinkItem", "title": title}},
        }
    )


def pick(*options: str, identifier: str = "u1", offer: str = "c1") -> Any:
    payload = {
        "abstractMessage": {
            "messageType": "ChoicesResponseMessage",
            "inReplyToMessageId": offer,
            "choicesResponse": {
                "formatType": "Selections",
                "selectedOptions": [{"optionIdentifier": o} for o in options],
            },
        }
    }
    return entry("Message", payload, identifier=identifier, role="EndUser", name="Guest")


def token(text: str, sequence: int, target: str = "final-1", identifier: str = "tok") -> Any:
    payload = {
        "streamingToken": {
            "tokenType": "MessageStreamingToken",
            "targetMessageIdentifier": target,
            "sequenceNumber": sequence,
            "token": {"formatType": "Text", "text": text},
        }
    }
    return entry(
        "StreamingToken", payload, identifier=f"{identifier}{sequence}", role="Chatbot", name="Bot"
    )


def progress(text: str) -> Any:
    payload = {"progressIndicator": {"progressMessage": {"text": text}}}
    return entry("ProgressIndicator", payload, identifier="p1", role="Chatbot", name="Bot")


def test_a_rich_link_shows_its_text_title_and_address() -> None:
    [shown] = present(rich_link("https://example.com/orders/1"))

    assert (shown.kind, shown.text) == ("message", "Have a look")
    assert shown.link is not None
    assert (shown.link.url, shown.link.title) == ("https://example.com/orders/1", "Order status")


def test_a_link_to_anything_but_a_web_page_keeps_its_title_and_loses_its_address() -> None:
    for url in ("javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "https:x"):
        [shown] = present(rich_link(url))
        assert shown.link is not None
        assert (shown.link.url, shown.link.title) == (None, "Order status"), url


def test_a_web_view_is_a_link_out() -> None:
    [shown] = present(
        static({"formatType": "WebView", "url": "https://survey.example", "title": {"title": "S"}})
    )

    assert shown.link is not None and (shown.link.url, shown.link.title) == (
        "https://survey.example",
        "S",
    )


def test_a_form_is_shown_by_its_title_as_a_form() -> None:
    payload = {
        "abstractMessage": {
            "messageType": "FormMessage",
            "form": {"formatType": "Inputs", "title": {"title": "Shipping address"}},
        }
    }
    [shown] = present(entry("Message", payload, role="Agent", name="Ann"))

    assert (shown.kind, shown.role, shown.text) == ("form", "Agent", "Shipping address")


def test_a_pick_reads_as_the_title_of_the_option_offered_before_it() -> None:
    log = ConversationLog("c")
    log.append([choices_message([option("o1", "Orders"), option("o2", "Billing")])])
    log.append([pick("o2")])

    [offer, answer] = log.after(0, include_live=False)

    assert [c.id for c in offer.choices or []] == ["o1", "o2"]
    assert (answer.role, answer.text) == ("EndUser", "Billing")
    # The same when the entries are read apart from the log (a copy, a retired read).
    assert visible(log.entries, include_live=False)[1].text == "Billing"
    # An option never seen is named by its id rather than hidden.
    assert present(pick("o9"))[0].text == "o9"


def offer(identifier: str, *titles: str) -> Any:
    items = [{"optionIdentifier": str(n), "titleItem": {"title": t}} for n, t in enumerate(titles)]
    payload = {
        "abstractMessage": {
            "messageType": "ChoicesMessage",
            "choices": {"formatType": "Buttons", "text": "Pick", "optionItems": items},
        }
    }
    return entry("Message", payload, identifier=identifier, role="Chatbot", name="Bot")


def test_a_pick_reads_as_the_title_of_its_own_offer_when_offers_reuse_ids() -> None:
    log = ConversationLog("c")
    log.append([offer("m1", "Cancel my order"), pick("0", identifier="p1", offer="M1")])
    log.append([offer("m2", "Yes, refund me"), pick("0", identifier="p2", offer="m2")])

    # Read from just after the first offer: its title comes from the log's view.
    assert [e.text for e in log.after(1, include_live=False) if e.role == "EndUser"] == [
        "Cancel my order",
        "Yes, refund me",
    ]


def test_streamed_tokens_and_progress_are_only_for_live_displays() -> None:
    entries = [progress("Looking up your order"), token("Sure, ", 1), token("here it is", 2)]
    entries.append(message("Sure, here it is", identifier="final-1", role="Chatbot", name="Bot"))

    for_model = visible(entries, include_live=False)
    for_widget = visible(entries, include_live=True)

    # The model gets the answer once, whole.
    assert [(e.kind, e.text) for e in for_model] == [("message", "Sure, here it is")]
    assert [(e.kind, e.text, e.targetId, e.sequence) for e in for_widget] == [
        ("progress", "Looking up your order", None, None),
        ("streaming", "Sure, ", "final-1", 1),
        ("streaming", "here it is", "final-1", 2),
        ("message", "Sure, here it is", None, None),
    ]


def test_tokens_do_not_move_where_the_next_fetch_starts() -> None:
    # Stream-only entries are never returned by the entries endpoint: a fetch from their time
    # could skip a kept entry that came in just before them.
    log = ConversationLog("c")
    log.append([message("a", identifier="a")])
    log.append([entry("StreamingToken", {}, identifier="t", timestamp=5000)])
    log.append([entry("QueuePosition", {"position": 2}, identifier="q", timestamp=6000)])

    assert log.last_timestamp == 1000


def test_an_unknown_entry_type_is_a_neutral_line_naming_it() -> None:
    [shown] = present(entry("SomethingNew", {}))

    assert (shown.kind, shown.role, shown.text) == ("unsupported", "System", "SomethingNew")
    # Known types with nothing to say stay silent.
    assert present(entry("RoutingWorkResult", {"workType": "Accepted"})) == []


def test_the_copy_for_the_user_spells_out_links_files_choices_and_forms() -> None:
    files = [{"id": "f", "name": "label.pdf", "url": "https://x/f"}]
    entries = [
        rich_link("https://example.com/o"),
        message("Here", identifier="m2", attachments=files),
        choices_message([option("o1", "Yes"), option("o2", "No")]),
    ]
    form = {"abstractMessage": {"messageType": "FormMessage", "form": {"title": "Address"}}}
    entries.append(entry("Message", form, identifier="f1", role="Agent", name="Ann"))
    entries.append(entry("SomethingNew", {}, identifier="n1"))

    text = as_text(visible(entries, include_live=False), cut=False)

    assert text.splitlines() == [
        "1970-01-01 00:00 UTC  Ann: Have a look Order status https://example.com/o",
        "1970-01-01 00:00 UTC  Ann: Here (file: label.pdf)",
        "1970-01-01 00:00 UTC  Bot: Pick one (choices: Yes / No)",
        "1970-01-01 00:00 UTC  Ann sent a form: Address",
        "1970-01-01 00:00 UTC  System: (something this copy cannot show: SomethingNew)",
    ]


def test_a_stored_view_from_a_newer_or_older_process_loads() -> None:
    view = ConversationLog("c").view
    view.option_titles["m1/0"] = "Orders"
    stored = json.loads(dump_view(view))

    newer = {**stored, "something_new": 1}
    older = {k: v for k, v in stored.items() if k != "option_titles"}

    assert load_view(json.dumps(newer).encode()).option_titles == {"m1/0": "Orders"}
    assert load_view(json.dumps(older).encode()).option_titles == {}
