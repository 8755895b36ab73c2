"""Scripted actors: the org's bot, Omni-Channel routing and the human agent.

The bot's reactions run after the HTTP response, like Salesforce's, one at a time per conversation.
The keyword match below is the *simulated bot's* intent detection, standing in for the org's bot;
nothing in the product ever decides anything from message text.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from app.simulator import entries as E
from app.simulator import rich as R
from app.simulator.errors import conflict
from app.simulator.org import Conversation, MessagingSession, Participant, SimulatedOrg, now_ms

Json = dict[str, Any]

ASKS_FOR_PERSON = re.compile(r"\b(agent|human|representative|person)s?\b", re.IGNORECASE)
BOT_SUBJECT = "0XxHx0000001srB"
# The bot's menu (option `bot_menu`): option ids are what a pick sends; "agent" asks for a person.
BOT_MENU = (
    {"id": "orders", "title": "Orders"},
    {"id": "billing", "title": "Billing"},
    {"id": "agent", "title": "Talk to an agent"},
)


def agent_subject(name: str) -> str:
    digits = sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 10**12
    return f"005{digits:012d}"


class Actors:
    def __init__(self, org: SimulatedOrg) -> None:
        self.org = org
        self.options = org.options

    # -- helpers ------------------------------------------------------------------------------

    def _bot(self) -> Participant:
        return Participant("Chatbot", "chatbot", BOT_SUBJECT, self.options.bot_name)

    def _participant_changed(self, conv: Conversation, op: str, who: Participant) -> None:
        participant = {
            "role": who.role,
            "appType": who.app_type,
            "subject": who.subject,
            "clientIdentifier": "",
        }
        payload = E.participant_changed_payload(E.new_id(), op, participant, who.display_name)
        if op == "add":
            conv.participants.append(who)
        else:
            conv.participants = [p for p in conv.participants if p.subject != who.subject]
        self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)

    def _say(self, conv: Conversation, who: Participant, text: str) -> Json:
        payload = E.text_message_payload(E.new_id(), text)
        return self.org.emit(conv, payload, who.as_sender(), who.display_name)

    def _typing(self, conv: Conversation, who: Participant, typing: bool) -> None:
        kind = "TypingStartedIndicator" if typing else "TypingStoppedIndicator"
        payload = {"entryType": kind, "id": E.new_id(), "timestamp": now_ms()}
        self.org.emit(conv, payload, who.as_sender(), who.display_name)

    def _session_status(
        self, conv: Conversation, status: str, previous: str, ended_by: str | None = None
    ) -> None:
        session = conv.session
        payload = E.session_status_payload(
            E.new_id(),
            session_id=session.session_id,
            conversation_id=conv.conversation_id,
            channel_address=conv.channel_address,
            status=status,
            previous=previous,
            start_time=session.start_ms,
            end_time=session.end_ms,
            ended_by=ended_by,
        )
        self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)

    async def _pause(self, seconds: float) -> None:
        # Think time of a simulated actor, not a wait for a condition.
        if seconds > 0:
            await asyncio.sleep(seconds)

    # -- routing and the bot ------------------------------------------------------------------

    def start_routing(self, conv: Conversation, greet_and_answer: str | None = None) -> None:
        """Initial routing of a new session to the bot, after the HTTP response."""

        async def run() -> None:
            async with conv.actor_lock:
                await self._pause(self.options.actor_delay)
                if not conv.open:
                    return
                failure = self.options.routing_failure
                payload = E.routing_result_payload(
                    E.new_id(), conv.session.session_id, "Initial", failure
                )
                self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)
                if failure is not None:
                    conv.routing_status = "NEEDS_ROUTING"
                    return
                conv.routing_status = "ROUTED"
                self._session_status(conv, "Active", "Waiting")
                bot = self._bot()
                self._participant_changed(conv, "add", bot)
                if greet_and_answer is None:
                    self._greet(conv, bot)
                else:
                    self._bot_answer(conv, bot, greet_and_answer)

        self.org.spawn(run())

    def _greet(self, conv: Conversation, bot: Participant) -> None:
        greeting = f"Hi, I'm {bot.display_name}. How can I help you today?"
        if not self.options.bot_menu:
            self._say(conv, bot, greeting)
            return
        body = {"text": greeting, "choices": list(BOT_MENU)}
        payload = R.message_payload(self.org, body, E.new_id(), "")
        self.org.emit(conv, payload, bot.as_sender(), bot.display_name)

    def on_user_message(self, conv: Conversation, text: str) -> None:
        async def run() -> None:
            async with conv.actor_lock:
                await self._pause(self.options.actor_delay)
                if not conv.open or not conv.session.active:
                    return
                bot = conv.participant("Chatbot")
                agent = conv.participant("Agent")
                if bot is not None:
                    self._bot_answer(conv, bot, text)
                elif agent is not None and self.options.auto_agent_name == agent.display_name:
                    await self._auto_agent_answer(conv, agent)

        self.org.spawn(run())

    def _bot_answer(self, conv: Conversation, bot: Participant, text: str) -> None:
        if ASKS_FOR_PERSON.search(text):
            self._say(conv, bot, "Sure. I'm transferring you to a human agent now.")
            self._transfer_to_queue(conv, bot)
        else:
            self._say(
                conv,
                bot,
                "I can help with orders, billing and returns. "
                "If you would rather talk to a person, just say so.",
            )

    def _transfer_to_queue(self, conv: Conversation, bot: Participant) -> None:
        payload = E.routing_result_payload(E.new_id(), conv.session.session_id, "Transfer")
        self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)
        conv.routing_status = "TRANSFER"
        self._participant_changed(conv, "remove", bot)
        waiting = sum(
            1 for c in self.org.conversations.values() if c.queue_position is not None and c.open
        )
        conv.queue_position = waiting + 1
        queue = {
            "entryType": "QueuePosition",
            "id": E.new_id(),
            "pendingServiceRoutingId": "0JR" + conv.session.session_id[3:],
            "workItemId": conv.session.session_id,
            "position": conv.queue_position,
        }
        self.org.emit(conv, queue, E.system_sender(), E.SYSTEM_NAME)
        if self.options.auto_agent_name:
            self.org.spawn(self._auto_agent_join(conv, self.options.auto_agent_name))

    # -- the human agent ----------------------------------------------------------------------

    async def _auto_agent_join(self, conv: Conversation, name: str) -> None:
        await self._pause(self.options.auto_agent_delay)
        async with conv.actor_lock:
            if conv.open and conv.session.active and conv.participant("Agent") is None:
                agent = self.agent_join(conv, name)
                self._say(conv, agent, f"Hi, I'm {name}. I've read your conversation so far.")

    async def _auto_agent_answer(self, conv: Conversation, agent: Participant) -> None:
        self._typing(conv, agent, True)
        await self._pause(min(self.options.auto_agent_delay, 1.0) / 2)
        self._say(conv, agent, "Thanks, let me look into that for you.")
        self._typing(conv, agent, False)

    def agent_join(self, conv: Conversation, name: str) -> Participant:
        if not conv.open:
            raise conflict("The conversation is closed.")
        if conv.participant("Agent") is not None:
            raise conflict("An agent is already in this conversation.")
        if not conv.session.active:
            raise conflict("The messaging session has ended; the end user must write first.")
        bot = conv.participant("Chatbot")
        if bot is not None:
            payload = E.routing_result_payload(E.new_id(), conv.session.session_id, "Transfer")
            self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)
            self._participant_changed(conv, "remove", bot)
        work = {"entryType": "RoutingWorkResult", "id": E.new_id(), "workType": "Accepted"}
        self.org.emit(conv, work, E.system_sender(), E.SYSTEM_NAME)
        agent = Participant("Agent", "agent", agent_subject(name), name)
        self._participant_changed(conv, "add", agent)
        conv.routing_status = "ROUTED"
        conv.queue_position = None
        return agent

    def require(self, conv: Conversation, role: str) -> Participant:
        who = conv.participant(role)
        if who is None or not conv.open:
            label = "agent" if role == "Agent" else "bot"
            raise conflict(f"No {label} is in this conversation.")
        return who

    def send(self, conv: Conversation, role: str, payload: Json) -> Json:
        """A message of any kind (`app.simulator.rich`) from the agent or the bot."""
        who = self.require(conv, role)
        return self.org.emit(conv, payload, who.as_sender(), who.display_name)

    def bot_token(self, conv: Conversation, target: str, sequence: int | None, text: str) -> int:
        """One token of the bot's answer `target`, streamed ahead of it; returns its sequence
        number (the next one when none is given)."""
        bot = self.require(conv, "Chatbot")
        number = sequence if sequence is not None else conv.stream_sequences.get(target, 0) + 1
        conv.stream_sequences[target] = max(number, conv.stream_sequences.get(target, 0))
        payload = R.streaming_token_payload(E.new_id(), target, number, text)
        self.org.emit(conv, payload, bot.as_sender(), bot.display_name)
        return number

    def bot_progress(self, conv: Conversation, text: str) -> None:
        bot = self.require(conv, "Chatbot")
        self.org.emit(conv, R.progress_payload(E.new_id(), text), bot.as_sender(), bot.display_name)

    def agent_typing(self, conv: Conversation, typing: bool) -> None:
        self._typing(conv, self.require(conv, "Agent"), typing)

    def agent_end(self, conv: Conversation) -> None:
        agent = self.require(conv, "Agent")
        self._participant_changed(conv, "remove", agent)
        self._end_session(conv, "Agent")

    # -- the end user ending things -----------------------------------------------------------

    def _end_session(self, conv: Conversation, ended_by: str) -> None:
        session = conv.session
        session.status = "Ended"
        session.end_ms = now_ms()
        session.ended_by = ended_by
        conv.routing_status = "NEEDS_ROUTING"
        conv.queue_position = None
        self._session_status(conv, "Ended", "Active", ended_by)

    def end_session(self, conv: Conversation) -> None:
        if not conv.session.active:
            return
        for who in list(conv.participants):
            self._participant_changed(conv, "remove", who)
        self._end_session(conv, "EndUser")

    def close(self, conv: Conversation) -> None:
        self.end_session(conv)
        payload = {
            "entryType": "CloseConversation",
            "id": E.new_id(),
            "conversationIdentifier": conv.conversation_id,
        }
        self.org.emit(conv, payload, E.system_sender(), E.SYSTEM_NAME)
        conv.open = False
        conv.end_ms = now_ms()

    def restart_session(self, conv: Conversation) -> MessagingSession:
        conv.session = self.org.new_session()
        conv.routing_status = "INITIAL"
        return conv.session
