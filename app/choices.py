"""Picking an option a bot or an agent offered (buttons, quick replies, a carousel's actions).

Salesforce takes a pick as a ChoicesResponseMessage naming the option's `optionIdentifier` and
replying to the message that offered it. Before sending, the offer is looked up among the
conversation's newest messages, so a wrong id is an error naming what is wrong (and no message
Salesforce would drop or misroute is sent).
"""

from __future__ import annotations

from app.failures import HandoffError, describe
from app.scrt import EntryType, ScrtClient, ScrtError
from app.scrt.models import ChoiceOption

OFFER_WINDOW = 50
"""How many of the newest messages an offer is looked for among."""


async def offered_option(
    client: ScrtClient, token: str, conversation_id: str, message_id: str, choice_id: str
) -> tuple[str, ChoiceOption]:
    """The offer's id as Salesforce gave it and its option `choice_id`, or a HandoffError saying
    which of the two ids is wrong."""
    try:
        newest = await client.list_entries(
            token, conversation_id, limit=OFFER_WINDOW, entry_types=[EntryType.MESSAGE]
        )
    except ScrtError as exc:
        raise HandoffError(describe(exc)) from exc
    offer = next((e for e in newest if (e.identifier or "").lower() == message_id.lower()), None)
    if offer is None:
        raise HandoffError(
            f"messageId must be the id of a message with choices among the conversation's "
            f"newest {OFFER_WINDOW} messages (as list_conversation_entries returned it)."
        )
    if not offer.choices:
        raise HandoffError("messageId names a message that offers no choices.")
    option = next((o for o in offer.choices if o.option_identifier == choice_id), None)
    if option is None:
        ids = ", ".join(o.option_identifier for o in offer.choices)
        raise HandoffError(f"choiceId must be the id of one of that message's choices: {ids}.")
    return offer.identifier or message_id, option
