"""The simulator's receipts: seeded fates, the documented bodies, the pusher over real loopback
HTTP (batches, duplicates, disorder, retries after a 500 or a timeout) and ListChatappMessage
agreeing with what was pushed."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web

from campaigner.cams import LIST_ACTION
from campaigner.receipts.parse import parse_inbound_body, parse_status_body
from campaigner.receipts.stopwords import normalize_stop_word, stop_word_set
from campaigner.send.client import CamsClient
from campaigner.signing import Credentials
from campaigner.sim.fate import (
    FAIL_CODES,
    STOP_REPLIES,
    Fate,
    ReceiptPlan,
    fate_of,
    inbound_body,
    status_body,
)
from campaigner.sim.faults import SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.push import Pusher, PushTarget
from campaigner.sim.records import AcceptedSend
from campaigner.sim.server import serve

# The status receipt example of the CAMS docs (reference/receipts-inbound.md), verbatim.
DOCS_EXAMPLE = (
    '[{"Status":"Failed","ErrorDescription":"131026:Receiver is incapable of receiving this '
    'message(Message Undeliverable.)","MsgFrameType":"template","TaskId":"202307030171*******9",'
    '"From":"86131*******8","Timestamp":1691043638000,"OriginPhoneNumber":"86130*******8",'
    '"TemplateCode":"820561547132813184","Type":"TEMPLATE","Language":"id","TemplateName":'
    '"wa_otp_v_0_0_3","To":"86138*******8","ErrorCode":"131026","MessageId":'
    '"2023078469463703*******3"}]'
)
TOKEN = "test-token-0123456789abcdef"
FAST = ReceiptPlan(delay_ms=(0.0, 30.0))
ORDER = {"Sent": 0, "Delivered": 1, "Read": 2}
LISTED = {"Sent": "success", "Delivered": "delivered", "Read": "read", "Failed": "failed"}


def record(
    n: int, *, channel: str = "whatsapp", task_id: str | None = None, when: float = 0.0
) -> AcceptedSend:
    return AcceptedSend(
        message_id=f"{n:024x}",
        request_id=f"R{n}",
        to=f"861390000{n:04d}",
        from_="8613800000000",
        channel_type=channel,
        type="template",
        template_code="744c4b5c79c9432497a075bdfca3****",
        language="en",
        message_type=None,
        task_id=task_id,
        access_key_id="testAccessKeyId",
        params_hash="0" * 64,
        received_monotonic=when,
        received_wall=1_700_000_000.0 + n,
        fault=None,
    )


def statuses(fate: Fate) -> list[str]:
    return [e.status for e in fate.events if e.kind == "status" and e.status]


# ---------------------------------------------------------------------------- fates (pure)


def test_rates_are_within_tolerance_over_a_seeded_run() -> None:
    plan = ReceiptPlan(fail_rate=0.05, deliver_rate=0.9, read_rate=0.5, reply_rate=0.2)
    counts: Counter[str] = Counter()
    n = 20_000
    for i in range(n):
        seen = statuses(fate_of(record(i), plan, seed=7))
        counts.update(seen)
        counts["replied"] += fate_of(record(i), plan, seed=7).reply() is not None
    assert counts["Sent"] == n
    # Binomial standard deviations here are at most ~0.005: 0.02 is four of them or more.
    assert counts["Failed"] / n == pytest.approx(0.05, abs=0.01)
    assert counts["Delivered"] / (n - counts["Failed"]) == pytest.approx(0.9, abs=0.02)
    assert counts["Read"] / counts["Delivered"] == pytest.approx(0.5, abs=0.02)
    assert counts["replied"] / counts["Read"] == pytest.approx(0.2, abs=0.02)


def test_a_fate_is_seeded_ordered_and_terminal() -> None:
    plan = ReceiptPlan(fail_rate=0.2, delay_ms=(10.0, 500.0))
    for i in range(2000):
        fate = fate_of(record(i), plan, seed=3)
        assert fate == fate_of(record(i), plan, seed=3)
        seen = statuses(fate)
        assert seen[0] == "Sent"
        if "Failed" in seen:
            assert seen == ["Sent", "Failed"]
            failed = fate.events[1]
            assert failed.error_code in {code for code, _, _ in FAIL_CODES}
            assert failed.error_description is not None
            assert failed.error_description.startswith(f"{failed.error_code}:")
        else:
            assert seen == ["Sent", "Delivered", "Read"][: len(seen)]
        times = [e.at_ms for e in fate.events]
        assert times == sorted(times) and times[0] >= 10.0
        # Every event is posted at least once, never before it happened.
        assert {p.event for p in fate.posts} == set(fate.events)
        assert all(p.after_ms >= p.event.at_ms for p in fate.posts)
    others = [statuses(fate_of(record(i), plan, seed=4)) for i in range(200)]
    assert others != [statuses(fate_of(record(i), plan, seed=3)) for i in range(200)]


def test_duplicates_and_read_before_delivered_are_planned() -> None:
    plan = ReceiptPlan(fail_rate=0, deliver_rate=1, read_rate=1, duplicate_rate=0.1)
    duplicated = disordered = 0
    for i in range(1000):
        fate = fate_of(record(i), plan, seed=1)
        posted = [p.event.status for p in fate.posts if p.event.kind == "status"]
        duplicated += len(posted) > len(set(posted))
        disordered += posted.index("Read") < posted.index("Delivered")
    assert 150 <= duplicated <= 400  # about 1 - 0.9**3 = 27 %
    assert 20 <= disordered <= 90  # about 5 %


def test_a_disordered_delivered_is_posted_after_its_read_even_without_delays() -> None:
    plan = ReceiptPlan(
        fail_rate=0,
        deliver_rate=1,
        read_rate=1,
        reply_rate=0,
        disorder_rate=1,
        duplicate_rate=0,
        delay_ms=(0, 0),
    )
    for i in range(50):
        posted = [p.event.status for p in fate_of(record(i), plan, seed=1).posts]
        assert posted == ["Sent", "Read", "Delivered"]


def test_replies_include_stop_words_and_viber_unsubscribes() -> None:
    plan = ReceiptPlan(
        fail_rate=0, deliver_rate=1, read_rate=1, reply_rate=1, stop_share=0.5, delay_ms=(1, 2)
    )
    whatsapp = [fate_of(record(i), plan, seed=2).reply() for i in range(400)]
    assert all(r is not None for r in whatsapp)
    texts = Counter(r.text for r in whatsapp if r is not None and r.reply_type == "TEXT")
    payloads = Counter(r.payload for r in whatsapp if r is not None and r.reply_type == "REPLY")
    assert sum(texts[w] for w in STOP_REPLIES) > 50
    assert payloads["STOP"] > 10 and payloads["YES"] + payloads["LATER"] > 10
    assert not any("unsubscribe" in statuses(fate_of(record(i), plan, seed=2)) for i in range(400))
    viber = [statuses(fate_of(record(i, channel="viber"), plan, seed=2)) for i in range(400)]
    unsubscribed = sum("unsubscribe" in s for s in viber)
    assert 60 <= unsubscribed <= 140  # half of the half that opt out
    resubscribed = [s for s in viber if "subscribe" in s]
    assert 5 <= len(resubscribed) <= 0.4 * unsubscribed  # about 20 % of them
    assert all(s[-2:] == ["unsubscribe", "subscribe"] for s in resubscribed)
    # A subscription change is no delivery state: the listing still says Read.
    for i in range(400):
        fate = fate_of(record(i, channel="viber"), plan, seed=2)
        state = fate.state_at(fate.events[-1].at_ms)
        assert state is not None and state.status == "Read"


def test_status_bodies_have_the_documented_keys() -> None:
    example = json.loads(DOCS_EXAMPLE)[0]
    plan = ReceiptPlan(fail_rate=0.5)
    seen: set[str] = set()
    for i in range(200):
        rec = record(i, task_id="spring-sale" if i % 2 else None)
        for event in fate_of(rec, plan, seed=5).events:
            if event.kind != "status":
                continue
            body = status_body(rec, event)
            seen.add(body["Status"])
            expected = set(example)
            if body["Status"] != "Failed":
                expected -= {"ErrorCode", "ErrorDescription"}
            assert set(body) == expected
            assert body["MessageId"] == rec.message_id
            assert body["TaskId"] == (rec.task_id or rec.message_id)
            assert body["Timestamp"] == int(rec.received_wall * 1000 + event.at_ms)
            assert (body["From"], body["To"]) == (rec.from_, rec.to)
            assert body["MsgFrameType"] == "template" and body["Type"] == "TEMPLATE"
            if body["Status"] == "Failed":
                assert body["ErrorDescription"].startswith(body["ErrorCode"] + ":")
            json.dumps(body)
    assert seen == {"Sent", "Delivered", "Read", "Failed"}


def test_inbound_bodies_come_from_the_recipient() -> None:
    plan = ReceiptPlan(fail_rate=0, deliver_rate=1, read_rate=1, reply_rate=1)
    kinds = set()
    for i in range(100):
        rec = record(i)
        reply = fate_of(rec, plan, seed=9).reply()
        assert reply is not None
        body = inbound_body(rec, reply)
        kinds.add(body["Type"])
        assert (body["From"], body["To"]) == (rec.to, rec.from_)
        assert body["MessageId"] != rec.message_id and len(body["MessageId"]) == 24
        assert isinstance(body["Timestamp"], int)
        if body["Type"] == "REPLY":
            assert json.loads(body["Message"]) == {"text": reply.text, "payload": reply.payload}
        else:
            assert body["Message"] == reply.text
    assert kinds == {"TEXT", "REPLY"}


# ---------------------------------------------------------------------------- the pusher


@dataclass
class Receiver:
    """A callback endpoint recording every post; ``fail`` answers the first posts 500,
    ``hang`` leaves the first posts unanswered (the pusher times out)."""

    fail: int = 0
    hang: int = 0
    posts: list[tuple[str, list[dict[str, object]]]] = field(default_factory=list)
    answered: list[tuple[str, list[dict[str, object]]]] = field(default_factory=list)
    seen: int = 0
    base: str = ""

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            if request.match_info["token"] != TOKEN:
                return web.Response(status=404)
            kind = request.match_info["kind"]
            body = json.loads(await request.read())
            assert isinstance(body, list)
            self.posts.append((kind, body))
            self.seen += 1
            if self.seen <= self.hang:
                await asyncio.sleep(3600)  # cancelled when the pusher gives up the connection
            if self.seen <= self.hang + self.fail:
                return web.json_response({"code": 1, "msg": "busy"}, status=500)
            self.answered.append((kind, body))
            return web.json_response({"code": 0, "msg": "OK"})

        app = web.Application()
        app.router.add_post("/cams/{kind}/{token}", handle)
        return app

    def delivered(self) -> Counter[tuple[str, str]]:
        """(MessageId, Status or 'inbound') -> how many times it was acknowledged."""
        found: Counter[tuple[str, str]] = Counter()
        for kind, body in self.answered:
            for item in body:
                key = str(item["Status"]) if kind == "status" else "inbound"
                found[str(item["MessageId"]), key] += 1
        return found


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    runner = web.AppRunner(receiver.app(), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver.base
    finally:
        await runner.cleanup()


@asynccontextmanager
async def pushing(pusher: Pusher) -> AsyncIterator[Pusher]:
    task = asyncio.create_task(pusher.run())
    try:
        yield pusher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def expected_posts(records: list[AcceptedSend], plan: ReceiptPlan, seed: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for rec in records:
        for post in fate_of(rec, plan, seed).posts:
            found[post.event.status or "inbound"] += 1
    return found


def wanted(records: list[AcceptedSend], plan: ReceiptPlan, seed: int) -> set[tuple[str, str]]:
    keys = set()
    for rec in records:
        for event in fate_of(rec, plan, seed).events:
            if event.kind == "status":
                keys.add((rec.message_id, str(event.status)))
            else:
                keys.add((str(event.inbound_id), "inbound"))
    return keys


@pytest.mark.anyio
async def test_every_receipt_is_pushed_in_batches_of_at_most_100() -> None:
    plan = replace(FAST, reply_rate=0.3, duplicate_rate=0.1, disorder_rate=0.3)
    receiver = Receiver()
    async with receiving(receiver) as base:
        pusher = Pusher(PushTarget(base, TOKEN, timeout_s=60), plan, seed=11)
        now = time.monotonic()
        records = [record(i, when=now) for i in range(1500)]
        async with pushing(pusher):
            for rec in records:
                pusher.schedule(rec)
            assert await pusher.drain(120)
    stats = pusher.stats()
    assert (
        stats["acknowledged"]
        == stats["scheduled"]
        == sum(expected_posts(records, plan, 11).values())
    )
    assert stats["outstanding"] == 0 and stats.get("retried", 0) == 0
    assert set(receiver.delivered()) == wanted(records, plan, 11)
    sizes = [len(body) for _, body in receiver.posts]
    assert max(sizes) <= 100 and max(sizes) > 1  # batched, never over 100
    assert stats["max_batch"] == max(sizes)
    assert any(n > 1 for n in receiver.delivered().values())  # duplicates were posted
    # Some Read was posted before its Delivered; Timestamps still say what happened when.
    order: dict[tuple[str, str], int] = {}
    stamps: dict[tuple[str, str], int] = {}
    for position, (kind, body) in enumerate(receiver.posts):
        for item in body:
            if kind == "status":
                key = (str(item["MessageId"]), str(item["Status"]))
                order.setdefault(key, position)
                stamps[key] = int(str(item["Timestamp"]))
    late = [m for (m, s) in order if s == "Read" and order[m, "Read"] < order[m, "Delivered"]]
    assert late
    assert all(stamps[m, "Delivered"] <= stamps[m, "Read"] for m in late)
    kinds = {kind for kind, _ in receiver.posts}
    assert kinds == {"status", "inbound"}


@pytest.mark.anyio
async def test_due_receipts_are_gathered_into_few_full_posts() -> None:
    # The linger was skipped while more than 100 receipts were queued, due or not: a post
    # per wake-up, a few receipts each.
    plan = ReceiptPlan(delay_ms=(0.0, 500.0))
    receiver = Receiver()
    async with receiving(receiver) as base:
        pusher = Pusher(PushTarget(base, TOKEN, linger_s=0.1), plan, seed=16)
        now = time.monotonic()
        async with pushing(pusher):
            for i in range(1000):
                pusher.schedule(record(i, when=now))
            assert await pusher.drain(120)
    posts = len(receiver.posts)
    # About 2 s of receipts, taken every 0.1 s or less often, in two endpoints' posts.
    assert posts <= 100, posts
    assert pusher.counters["scheduled"] / posts >= 20


@pytest.mark.anyio
async def test_a_500_answer_is_retried_until_every_receipt_arrives() -> None:
    receiver = Receiver(fail=3)
    async with receiving(receiver) as base:
        target = PushTarget(base, TOKEN, retry_s=(0.1, 0.2, 0.3), timeout_s=60)
        pusher = Pusher(target, FAST, seed=12)
        now = time.monotonic()
        records = [record(i, when=now) for i in range(300)]
        async with pushing(pusher):
            for rec in records:
                pusher.schedule(rec)
            assert await pusher.drain(120)
    stats = pusher.stats()
    assert stats["posts_failed"] == 3 and stats["retried"] > 0
    assert stats.get("given_up", 0) == 0
    assert set(receiver.delivered()) == wanted(records, FAST, 12)
    assert stats["acknowledged"] == stats["scheduled"]


@pytest.mark.anyio
async def test_a_timeout_is_retried_until_every_receipt_arrives() -> None:
    receiver = Receiver(hang=1)
    async with receiving(receiver) as base:
        # Retried for as long as it takes: on a busy machine other posts may time out too.
        target = PushTarget(base, TOKEN, retry_s=(0.1, 0.2, 0.3, 1, 2, 4, 8), timeout_s=1.0)
        pusher = Pusher(target, FAST, seed=13)
        now = time.monotonic()
        records = [record(i, when=now) for i in range(200)]
        async with pushing(pusher):
            for rec in records:
                pusher.schedule(rec)
            assert await pusher.drain(120)
    stats = pusher.stats()
    assert stats["posts_failed"] >= 1 and stats["retried"] >= len(receiver.posts[0][1])
    assert stats.get("given_up", 0) == 0
    hung = {(str(i["MessageId"]), str(i.get("Status", "inbound"))) for i in receiver.posts[0][1]}
    assert hung <= set(receiver.delivered())
    assert set(receiver.delivered()) == wanted(records, FAST, 13)


@pytest.mark.anyio
async def test_a_receipt_is_given_up_after_the_last_retry() -> None:
    receiver = Receiver(fail=10**9)
    async with receiving(receiver) as base:
        pusher = Pusher(PushTarget(base, TOKEN, retry_s=(0.05, 0.05)), FAST, seed=14)
        now = time.monotonic()
        async with pushing(pusher):
            for i in range(20):
                pusher.schedule(record(i, when=now))
            assert await pusher.drain(120)
    stats = pusher.stats()
    assert stats["given_up"] == stats["scheduled"] and stats.get("acknowledged", 0) == 0
    posted: Counter[tuple[str, str]] = Counter()
    for kind, body in receiver.posts:
        for item in body:
            posted[str(item["MessageId"]), str(item.get("Status", kind))] += 1
    assert min(posted.values()) >= 3  # the first attempt and both retries


@pytest.mark.anyio
async def test_a_wrong_token_is_never_acknowledged() -> None:
    receiver = Receiver()
    async with receiving(receiver) as base:
        pusher = Pusher(PushTarget(base, "wrong", retry_s=(0.05,)), FAST, seed=15)
        now = time.monotonic()
        async with pushing(pusher):
            pusher.schedule(record(1, when=now))
            assert await pusher.drain(60)
    assert pusher.stats()["given_up"] == pusher.stats()["scheduled"]
    assert receiver.posts == []


# ---------------------------------------------------------------------------- with the gateway


@pytest.mark.anyio
async def test_listing_agrees_with_what_was_pushed() -> None:
    plan = ReceiptPlan(fail_rate=0.2, deliver_rate=0.8, read_rate=0.5, delay_ms=(0.0, 50.0))
    config = SimulatorConfig(seed=21, receipts=plan)
    simulator = Simulator(config)
    receiver = Receiver()
    creds = Credentials("testAccessKeyId", "testAccessKeySecret")
    numbers = [f"86139000{n:05d}" for n in random.Random(5).sample(range(100_000), 60)]
    async with receiving(receiver) as base:
        pusher = Pusher(PushTarget(base, TOKEN), plan, config.seed)
        async with serve(simulator, pusher=pusher) as url:
            async with CamsClient(creds, endpoint=url) as client:
                for to in numbers:
                    reply = await client.send(
                        {
                            "ChannelType": "whatsapp",
                            "Type": "template",
                            "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
                            "Language": "en",
                            "From": "8613800000000",
                            "To": to,
                        }
                    )
                    assert reply.message_id
                assert await pusher.drain(120)
                furthest: dict[str, str] = {}
                for message_id, state in receiver.delivered():
                    old = furthest.get(message_id)
                    if (
                        state != "inbound"
                        and old != "Failed"
                        and (state == "Failed" or old is None or ORDER[state] > ORDER[old])
                    ):
                        furthest[message_id] = state
                assert len(furthest) == len(numbers)
                assert set(furthest.values()) == {"Sent", "Delivered", "Read", "Failed"}
                for to in numbers:
                    http, body = await client.call(
                        LIST_ACTION,
                        {
                            "ChannelType": "whatsapp",
                            "BusinessNumber": "8613800000000",
                            "UserNumber": to,
                            "Page": '{"Index":1,"Size":10}',
                        },
                    )
                    assert http == 200
                    [item] = body["Data"]
                    pushed = furthest[item["MessageId"]]
                    assert item["MessageStatus"] == LISTED[pushed]
                    assert item["MessageStatusName"] == pushed
                    if pushed == "Failed":
                        assert item["FailReason"].split(":")[0] in {c for c, _, _ in FAIL_CODES}
                    else:
                        assert item["FailReason"] is None
                failed = [m for m, s in furthest.items() if s == "Failed"]
                http, body = await client.call(
                    LIST_ACTION,
                    {
                        "ChannelType": "whatsapp",
                        "BusinessNumber": "8613800000000",
                        "MessageStatus": "failed",
                        "Page": '{"Index":1,"Size":100}',
                    },
                )
                assert sorted(i["MessageId"] for i in body["Data"]) == sorted(failed)


def test_the_receiver_s_parser_reads_every_body_as_meant() -> None:
    plan = ReceiptPlan(
        fail_rate=0.2, deliver_rate=1, read_rate=1, reply_rate=1, stop_share=0.5, delay_ms=(1, 2)
    )
    stop_words = stop_word_set()
    assert {normalize_stop_word(w) for w in STOP_REPLIES} <= stop_words
    opt_outs = replies = unsubscribes = subscribes = 0
    for i in range(300):
        rec = record(i, channel="viber" if i % 2 else "whatsapp")
        for event in fate_of(rec, plan, seed=8).events:
            if event.kind == "status":
                [receipt] = parse_status_body(json.dumps([status_body(rec, event)]).encode())
                assert (receipt.message_id, receipt.status) == (rec.message_id, event.status)
                assert receipt.ts_ms == int(rec.received_wall * 1000 + event.at_ms)
                assert (receipt.sender, receipt.recipient) == (rec.from_, rec.to)
                assert receipt.error_code == event.error_code
                unsubscribes += event.status == "unsubscribe"
                subscribes += event.status == "subscribe"
                continue
            [inbound] = parse_inbound_body(json.dumps([inbound_body(rec, event)]).encode())
            assert (inbound.sender, inbound.recipient) == (rec.to, rec.from_)
            assert (inbound.type, inbound.text) == (event.reply_type, event.text)
            assert inbound.payload == event.payload
            replies += 1
            said = {
                normalize_stop_word(inbound.text or ""),
                normalize_stop_word(inbound.payload or ""),
            }
            opt_outs += bool(said & stop_words)
    assert unsubscribes > 10 and subscribes > 0 and replies > 100
    assert 0.25 * replies <= opt_outs <= 0.75 * replies  # stop_share of the replies opt out
