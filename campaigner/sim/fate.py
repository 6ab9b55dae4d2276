"""What happens to an accepted message after the send: its seeded ``Fate`` (Sent, then Delivered
and Read, or Failed; maybe a reply or a Viber ``unsubscribe``, sometimes undone by a later
``subscribe``) and when each receipt is posted.

Pure: the same seed, message and plan always give the same fate, so the pusher (sim/push.py) and
ListChatappMessage (sim/listing.py) agree without sharing state. Rates and the body formats:
docs/simulator.md#receipts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from campaigner.sim.records import AcceptedSend

__all__ = (
    "FAIL_CODES",
    "RESUBSCRIBE_SHARE",
    "STOP_REPLIES",
    "Event",
    "Fate",
    "Post",
    "ReceiptPlan",
    "fate_of",
    "inbound_body",
    "status_body",
)

# Meta error codes a failed WhatsApp message carries, with their weights.
FAIL_CODES: tuple[tuple[str, str, float], ...] = (
    ("131026", "Receiver is incapable of receiving this message(Message Undeliverable.)", 0.6),
    ("131049", "This message was not delivered to maintain healthy ecosystem engagement.", 0.25),
    ("131050", "The user has stopped receiving marketing messages from this business.", 0.15),
)
# Replies that are opt-outs (text, or a quick-reply button's payload), in several languages.
STOP_REPLIES: tuple[str, ...] = ("STOP", "退订", "BERHENTI", "Parar", "BAJA", "unsubscribe")
_CHATTER: tuple[str, ...] = ("Thanks!", "ok", "Who is this?", "Terima kasih", "谢谢", "Obrigado")
# Quick-reply buttons: (button text, payload).
_BUTTONS: tuple[tuple[str, str], ...] = (
    ("Yes, interested", "YES"),
    ("Not now", "LATER"),
    ("Stop promotions", "STOP"),
)

StatusName = Literal["Sent", "Delivered", "Read", "Failed", "unsubscribe", "subscribe"]
# Viber subscription changes: receipts, but not delivery states.
_SUBSCRIPTION = frozenset({"unsubscribe", "subscribe"})
# Share of the Viber unsubscribes undone by a ``subscribe`` receipt later.
RESUBSCRIBE_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class ReceiptPlan:
    """Seeded outcome rates and delays. Rates are conditional: ``fail_rate`` of the accepted
    messages fail (Sent, then Failed); ``deliver_rate`` of the others are Delivered (the rest
    stay Sent); ``read_rate`` of the delivered are Read; ``reply_rate`` of the read get a reply,
    ``stop_share`` of those an opt-out (on Viber half the opt-outs are ``unsubscribe`` receipts,
    ``RESUBSCRIBE_SHARE`` of them followed by a ``subscribe``).
    Each step follows the previous one after a delay drawn from ``delay_ms`` (MIN, MAX).
    ``duplicate_rate`` of the receipts are posted twice; ``disorder_rate`` of the read messages
    have their Read posted before their Delivered."""

    deliver_rate: float = 0.95
    read_rate: float = 0.6
    fail_rate: float = 0.03
    reply_rate: float = 0.1
    stop_share: float = 0.3
    delay_ms: tuple[float, float] = (200.0, 2000.0)
    duplicate_rate: float = 0.02
    disorder_rate: float = 0.05

    def __post_init__(self) -> None:
        rates = (
            self.deliver_rate,
            self.read_rate,
            self.fail_rate,
            self.reply_rate,
            self.stop_share,
            self.duplicate_rate,
            self.disorder_rate,
        )
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("receipt rates must be from 0 to 1")
        low, high = self.delay_ms
        if not 0.0 <= low <= high:
            raise ValueError("receipt delay must be MIN:MAX with 0 <= MIN <= MAX")


@dataclass(frozen=True, slots=True)
class Event:
    """A status change (``status`` set) or an inbound reply (``kind == "inbound"``) at
    ``at_ms`` milliseconds after the send was accepted."""

    kind: Literal["status", "inbound"]
    at_ms: float
    status: StatusName | None = None
    error_code: str | None = None
    error_description: str | None = None
    reply_type: Literal["TEXT", "REPLY"] | None = None
    text: str | None = None
    payload: str | None = None
    inbound_id: str | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """Post ``event`` ``after_ms`` milliseconds after the send was accepted."""

    after_ms: float
    event: Event


@dataclass(frozen=True, slots=True)
class Fate:
    """Every event of one message in time order, and the posts that report them."""

    events: tuple[Event, ...]
    posts: tuple[Post, ...]

    def state_at(self, elapsed_ms: float) -> Event | None:
        """The furthest delivery status reached ``elapsed_ms`` after acceptance, if any."""
        found = None
        for event in self.events:
            if event.at_ms > elapsed_ms:
                break
            if event.kind == "status" and event.status not in _SUBSCRIPTION:
                found = event
        return found

    def reply(self) -> Event | None:
        return next((e for e in self.events if e.kind == "inbound"), None)


def fate_of(record: AcceptedSend, plan: ReceiptPlan, seed: int) -> Fate:
    """The seeded fate of one accepted message (the same inputs always give the same fate)."""
    rng = random.Random(f"{seed}/fate/{record.message_id}")
    low, high = plan.delay_ms

    def later(t: float) -> float:
        return t + rng.uniform(low, high)

    sent = Event("status", later(0.0), "Sent")
    events = [sent]
    if rng.random() < plan.fail_rate:
        code, text = _pick_failure(rng)
        events.append(Event("status", later(sent.at_ms), "Failed", code, f"{code}:{text}"))
    elif rng.random() < plan.deliver_rate:
        delivered = Event("status", later(sent.at_ms), "Delivered")
        events.append(delivered)
        if rng.random() < plan.read_rate:
            read = Event("status", later(delivered.at_ms), "Read")
            events.append(read)
            if rng.random() < plan.reply_rate:
                reply = _reply(rng, record, later(read.at_ms), plan.stop_share)
                events.append(reply)
                if reply.status == "unsubscribe" and rng.random() < RESUBSCRIBE_SHARE:
                    events.append(Event("status", later(reply.at_ms), "subscribe"))
    posts = [Post(e.at_ms, e) for e in events]
    if len(events) >= 3 and events[2].status == "Read" and rng.random() < plan.disorder_rate:
        # Delivered posted after Read (1 ms later at least): its Timestamp stays when it happened.
        posts[1] = Post(later(posts[2].after_ms) + 1.0, events[1])
    for post in list(posts):
        if rng.random() < plan.duplicate_rate:
            posts.append(Post(later(post.after_ms), post.event))
    posts.sort(key=lambda p: p.after_ms)
    return Fate(tuple(events), tuple(posts))


def _pick_failure(rng: random.Random) -> tuple[str, str]:
    draw = rng.random() * sum(w for _, _, w in FAIL_CODES)
    for code, text, weight in FAIL_CODES:
        draw -= weight
        if draw < 0:
            return code, text
    return FAIL_CODES[-1][0], FAIL_CODES[-1][1]


def _reply(rng: random.Random, record: AcceptedSend, at_ms: float, stop_share: float) -> Event:
    stop = rng.random() < stop_share
    if stop and record.channel_type.lower() == "viber" and rng.random() < 0.5:
        return Event("status", at_ms, "unsubscribe")
    inbound_id = f"{rng.getrandbits(64):016x}{rng.getrandbits(32):08x}"
    if rng.random() < 0.3:  # a quick-reply button
        buttons = [b for b in _BUTTONS if (b[1] == "STOP") == stop]
        text, payload = rng.choice(buttons)
        return Event(
            "inbound", at_ms, reply_type="REPLY", text=text, payload=payload, inbound_id=inbound_id
        )
    text = rng.choice(STOP_REPLIES if stop else _CHATTER)
    return Event("inbound", at_ms, reply_type="TEXT", text=text, inbound_id=inbound_id)


def _digits(number: str) -> str:
    return number[1:] if number.startswith("+") else number


def status_body(record: AcceptedSend, event: Event) -> dict[str, Any]:
    """One status receipt as CAMS pushes it (the docs' example's keys; the error pair only on
    Failed). ``Type`` is TEMPLATE for templates, else the message type upper-cased."""
    template = record.type.lower() == "template"
    at = _timestamp(record, event)
    body: dict[str, Any] = {"Status": event.status}
    if event.error_code is not None:
        body["ErrorCode"] = event.error_code
        body["ErrorDescription"] = event.error_description
    body.update(
        {
            "MsgFrameType": "template" if template else "message",
            "TaskId": record.task_id or record.message_id,
            "From": _digits(record.from_),
            "To": _digits(record.to),
            "Timestamp": at,
            "OriginPhoneNumber": _digits(record.from_),
            "TemplateCode": record.template_code if template else None,
            "Type": "TEMPLATE" if template else (record.message_type or "text").upper(),
            "Language": record.language if template else None,
            "TemplateName": record.template_code if template else None,
            "MessageId": record.message_id,
        }
    )
    return body


def inbound_body(record: AcceptedSend, event: Event) -> dict[str, Any]:
    """One inbound message from the recipient to the business number, as CAMS pushes it. A
    REPLY carries the button's ``text`` and ``payload`` in ``Message`` as a JSON string (the
    way media messages carry theirs; the docs show no REPLY example)."""
    body: dict[str, Any] = {
        "MessageId": event.inbound_id,
        "From": _digits(record.to),
        "To": _digits(record.from_),
        "DisplayName": "Sandbox User",
        "Type": event.reply_type,
        "Timestamp": _timestamp(record, event),
        "Name": "sandbox",
    }
    if event.reply_type == "REPLY":
        button = {"text": event.text, "payload": event.payload}
        body["Message"] = json.dumps(button, ensure_ascii=False, separators=(",", ":"))
    else:
        body["Message"] = event.text
    return body


def _timestamp(record: AcceptedSend, event: Event) -> int:
    return int(record.received_wall * 1000 + event.at_ms)
