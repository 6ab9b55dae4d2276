"""Opt-outs in receipts.sqlite: stop words, Viber unsubscribe/subscribe, manual entries."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from campaigner.receipts.parse import parse_inbound_body, parse_status_body
from campaigner.receipts.stopwords import DEFAULT_STOP_WORDS, normalize_stop_word
from campaigner.receipts.store import ReceiptStore
from campaigner.receipts.suppression import ANY_BUSINESS, Action, Event, resolve

BUSINESS = "8613900000000"
USER = "8613800000001"
T0 = 1_700_000_000_000  # Timestamps are milliseconds


def inbound(message_id: str, text: str, ts_ms: int, *, kind: str = "TEXT", to: str = BUSINESS,
            user: str = USER) -> bytes:  # fmt: skip
    item: dict[str, object] = {"MessageId": message_id, "From": user, "To": to, "Type": kind,
                               "Timestamp": ts_ms}  # fmt: skip
    if kind == "REPLY":
        item["Text"] = "a button"
        item["Payload"] = text
    else:
        item["Message"] = text
    return json.dumps([item]).encode()


def status(message_id: str, value: str, ts_ms: int, user: str = USER) -> bytes:
    item = {"MessageId": message_id, "Status": value, "From": BUSINESS, "To": user,
            "Timestamp": ts_ms}  # fmt: skip
    return json.dumps([item]).encode()


@pytest.fixture
def store(tmp_path: Path) -> ReceiptStore:
    opened = ReceiptStore.open(tmp_path)
    yield opened  # type: ignore[misc]
    opened.close()


@pytest.mark.parametrize(
    "said",
    [
        "STOP",
        " stop ",
        "Stop!",
        "退订",
        "berhenti",
        "Parar.",
        "BAJA",
        "unsubscribe",
        "cancelar inscrição",
        "Dar de  baja",
    ],  # fmt: skip
)
def test_a_stop_word_suppresses_from_its_timestamp(store: ReceiptStore, said: str) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", said, T0 + 1_000)))
    found = store.suppressed("+86 139 0000 0000")
    assert set(found) == {USER}
    entry = found[USER]
    assert (entry.business, entry.since_ms, entry.source) == (BUSINESS, T0 + 1_000, "inbound")
    assert said.strip() in entry.reason


@pytest.mark.parametrize("said", ["please don't stop", "stopping", "hello", "", "STOP NOW please"])
def test_other_messages_do_not(store: ReceiptStore, said: str) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", said, T0 + 1_000)))
    assert store.suppressed(BUSINESS) == {}


def test_a_reply_button_payload_counts(store: ReceiptStore) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", "UNSUBSCRIBE", T0 + 7, kind="REPLY")))
    assert set(store.suppressed(BUSINESS)) == {USER}


def test_suppression_is_per_business_number(store: ReceiptStore) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", "STOP", T0 + 1, to="8613900000099")))
    assert store.suppressed(BUSINESS) == {}
    assert set(store.suppressed("8613900000099")) == {USER}


def test_campaign_stop_words_add_to_the_defaults(store: ReceiptStore) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", "Basta", T0 + 1)))
    assert store.suppressed(BUSINESS) == {}
    assert set(store.suppressed(BUSINESS, extra_stop_words=["BASTA"])) == {USER}


def test_viber_unsubscribe_then_subscribe(store: ReceiptStore) -> None:
    store.add_receipts(parse_status_body(status("v1", "unsubscribe", T0 + 100)))
    assert store.suppressed(BUSINESS)[USER].source == "receipt"
    store.add_receipts(parse_status_body(status("v2", "subscribe", T0 + 200)))
    assert store.suppressed(BUSINESS) == {}
    # A late-arriving older unsubscribe does not undo the newer subscribe.
    store.add_receipts(parse_status_body(status("v0", "unsubscribe", T0 + 50)))
    assert store.suppressed(BUSINESS) == {}


def test_manual_remove_lifts_a_stop_word_and_a_later_stop_counts_again(
    store: ReceiptStore,
) -> None:
    store.add_inbound(parse_inbound_body(inbound("i1", "STOP", T0 + 1_000)))
    store.remove_suppression(BUSINESS, USER)
    assert store.suppressed(BUSINESS) == {}
    later = 2**50  # after the manual remove (now)
    store.add_inbound(parse_inbound_body(inbound("i2", "stop", later)))
    assert store.suppressed(BUSINESS)[USER].since_ms == later


def test_manual_add_for_any_business_and_list(store: ReceiptStore) -> None:
    store.add_suppression("", "+86 138 0000 0002", "asked by phone")
    store.add_suppression(BUSINESS, "8613800000003", "complaint")
    store.add_inbound(parse_inbound_body(inbound("i1", "STOP", T0 + 5)))
    assert set(store.suppressed(BUSINESS)) == {USER, "8613800000002", "8613800000003"}
    assert set(store.suppressed("8613900000077")) == {"8613800000002"}
    listed = [(s.business, s.recipient, s.source) for s in store.list_suppressions()]
    assert listed == [
        (ANY_BUSINESS, "8613800000002", "manual"),
        (BUSINESS, USER, "inbound"),
        (BUSINESS, "8613800000003", "manual"),
    ]
    assert [s.recipient for s in store.list_suppressions(BUSINESS)] == [
        "8613800000001", "8613800000002", "8613800000003",
    ]  # fmt: skip
    # Removing without a business lifts it everywhere, business-specific ones included.
    store.remove_suppression("*", USER)
    assert USER not in store.suppressed(BUSINESS)


def test_import_many(store: ReceiptStore) -> None:
    count = store.add_suppressions(
        [(BUSINESS, f"86138{i:08d}", "imported", None) for i in range(500)]
    )
    assert count == 500
    found = store.suppressed(BUSINESS)
    assert len(found) == 500
    assert {s.source for s in found.values()} == {"import"}


def test_default_stop_words_cover_the_languages() -> None:
    words = {normalize_stop_word(word) for word in DEFAULT_STOP_WORDS}
    for needed in ("stop", "unsubscribe", "退订", "berhenti", "parar", "baja"):
        assert needed in words


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["111111", "222222"]),  # recipient
            st.integers(min_value=0, max_value=20),  # at_ms
            st.sampled_from(list(Action)),
            st.integers(min_value=0, max_value=3),  # order
        ),
        max_size=30,
    )
)
def test_resolve_keeps_the_latest_event_per_recipient(
    raw: list[tuple[str, int, Action, int]],
) -> None:
    events = [Event(BUSINESS, r, at, action, f"#{i}", "manual", order)
              for i, (r, at, action, order) in enumerate(raw)]  # fmt: skip
    found = resolve(events)
    for recipient in ("111111", "222222"):
        mine = [e for e in events if e.recipient == recipient]
        if not mine:
            assert recipient not in found
            continue
        # The last of the latest (at_ms, order): a later arrival wins a tie.
        latest = max(enumerate(mine), key=lambda ie: (ie[1].at_ms, ie[1].order, ie[0]))[1]
        if latest.action is Action.ADD:
            assert found[recipient].reason == latest.reason
            assert found[recipient].since_ms == latest.at_ms
        else:
            assert recipient not in found


@settings(max_examples=100, deadline=None)
@example(
    [
        ("receipt", "8613800000001", "unsubscribe", 1),
        ("receipt", "8613800000001", "subscribe", 2),
        ("inbound", "8613800000002", "STOP", 5),
        ("receipt", "8613800000002", "subscribe", 3),
    ]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["inbound", "receipt"]),
            st.sampled_from(["8613800000001", "8613800000002", "8613800000003"]),
            st.sampled_from(["STOP", "stop!", "hello", "unsubscribe", "subscribe", "Baja"]),
            st.integers(min_value=0, max_value=50),
        ),
        max_size=25,
    )
)
def test_the_store_agrees_with_the_event_model(
    history: list[tuple[str, str, str, int]],
) -> None:
    # The model: every event, the latest per recipient decides (ties: any of them).
    latest: dict[str, tuple[int, bool]] = {}
    ties: dict[str, set[bool]] = {}
    inbound_items, receipt_items = [], []
    for i, (kind, user, said, offset) in enumerate(history):
        at = T0 + offset
        if kind == "inbound":
            inbound_items.append({"MessageId": f"i{i}", "From": user, "To": BUSINESS,
                                  "Type": "TEXT", "Message": said, "Timestamp": at})  # fmt: skip
            event = normalize_stop_word(said) in {"stop", "unsubscribe", "baja"}
            if not event:
                continue
            adds = True
        else:
            if said not in ("unsubscribe", "subscribe"):
                continue
            receipt_items.append({"MessageId": f"r{i}", "Status": said, "From": BUSINESS,
                                  "To": user, "Timestamp": at})  # fmt: skip
            adds = said == "unsubscribe"
        known = latest.get(user)
        if known is None or at > known[0]:
            latest[user] = (at, adds)
            ties[user] = {adds}
        elif at == known[0]:
            ties[user].add(adds)
    with tempfile.TemporaryDirectory() as folder, ReceiptStore.open(Path(folder)) as store:
        store.add_inbound(parse_inbound_body(json.dumps(inbound_items).encode()))
        store.add_receipts(parse_status_body(json.dumps(receipt_items).encode()))
        found = store.suppressed(BUSINESS)
    for user in ("8613800000001", "8613800000002", "8613800000003"):
        if user not in latest:
            assert user not in found
        elif len(ties[user]) == 1:
            assert (user in found) == latest[user][1]
            if user in found:
                assert found[user].since_ms == latest[user][0]
