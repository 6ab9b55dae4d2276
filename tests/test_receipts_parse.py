"""Pushed receipt and inbound bodies parsed defensively: odd spellings kept, bad bodies refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigner.errors import CampaignerError, ReceiptFormatError
from campaigner.receipts.parse import parse_inbound_body, parse_status_body, phone_key

# The documentation's own example, its trailing-space key and trailing comma included.
DOCS_STATUS = (
    b'[{"Status":"Failed","ErrorDescription":"131026:Receiver is incapable of receiving this '
    b'message(Message Undeliverable.)","MsgFrameType":"template","TaskId":"2023070301719",'
    b'"From":"+86 131-0000-0008","Timestamp ":1691043638000,"OriginPhoneNumber":"8613000000008",'
    b'"TemplateCode":"820561547132813184","Type":"TEMPLATE","Language":"id",'
    b'"TemplateName":"wa_otp_v_0_0_3","To":"8613800000008","ErrorCode":"131026",'
    b'"MessageId":"20230784694637033",}]'
)


def test_the_documented_example_with_its_odd_spellings() -> None:
    (receipt,) = parse_status_body(DOCS_STATUS)
    assert receipt.message_id == "20230784694637033"
    assert receipt.status == "Failed"
    assert receipt.ts_ms == 1691043638000
    assert receipt.error_code == "131026"
    assert receipt.error_description is not None
    assert receipt.error_description.startswith("131026:Receiver")
    assert receipt.recipient == "8613800000008"
    assert receipt.sender == "8613100000008"
    # Unknown fields are kept, with their original spelling, in raw.
    raw = json.loads(receipt.raw)
    assert raw["TemplateName"] == "wa_otp_v_0_0_3"
    assert "Timestamp " in raw


@pytest.mark.parametrize(
    ("given_status", "canonical"),
    [
        ("delivered", "Delivered"),
        (" READ ", "Read"),
        ("Sent", "Sent"),
        ("FAILED", "Failed"),
        ("deleted", "Deleted"),
        ("Unsubscribe", "unsubscribe"),
        ("SUBSCRIBE", "subscribe"),
        (" Queued ", "Queued"),
    ],
)
def test_statuses_are_canonical_and_unknown_ones_kept(given_status: str, canonical: str) -> None:
    body = json.dumps({"messageid": "m1", "STATUS": given_status}).encode()
    (receipt,) = parse_status_body(body)
    assert receipt.status == canonical
    assert receipt.message_id == "m1"


def test_a_single_object_and_numbers_in_odd_types() -> None:
    body = json.dumps(
        {"MessageId": 123, "Status": "Read", "Timestamp": "1691043638", "ErrorCode": 0, "To": 86138}
    ).encode()
    (receipt,) = parse_status_body(body)
    assert receipt.message_id == "123"
    assert receipt.ts_ms == 1691043638000  # seconds read as seconds
    assert receipt.error_code == "0"
    assert receipt.recipient == "86138"
    assert receipt.sender is None


def test_bad_timestamps_are_none_not_errors() -> None:
    for value in ("soon", None, True, -5, 1e30, [1], {"a": 1}, float("nan")):
        body = json.dumps({"MessageId": "m", "Status": "Sent", "Timestamp": value}).encode()
        assert parse_status_body(body)[0].ts_ms is None


def test_a_receipt_without_a_message_id_is_kept_under_a_stable_id() -> None:
    body = b'[{"Status":"Sent","To":"8613800000001"}]'
    first = parse_status_body(body)[0].message_id
    assert first.startswith("no-message-id:")
    assert parse_status_body(body)[0].message_id == first
    other = parse_status_body(b'[{"Status":"Sent","To":"8613800000002"}]')[0].message_id
    assert other != first


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe[]", "not UTF-8"),
        (b"[{]", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"42", "not an object or array"),
        (b'"text"', "not an object or array"),
        (b'[{"MessageId":"a"}, 3]', "item 1"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_bodies_raise_one_error_type(body: bytes, words: str) -> None:
    with pytest.raises(ReceiptFormatError, match=words) as caught:
        parse_status_body(body)
    assert isinstance(caught.value, CampaignerError)
    with pytest.raises(ReceiptFormatError):
        parse_inbound_body(body)


def test_an_empty_array_is_no_receipts() -> None:
    assert parse_status_body(b"[]") == []
    assert parse_status_body(b"\xef\xbb\xbf[]") == []  # a UTF-8 BOM


def test_inbound_text_and_reply_in_their_spellings() -> None:
    body = json.dumps(
        [
            {
                "MessageId": "in-1",
                "From": "+86 138 8888 0001",
                "To": "8613788880000",
                "Type": "TEXT",
                "Message": "  hello, it's me ",
                "Timestamp ": 1662104191973,
                "DisplayName": "Mr Liu",
            },
            {
                "messageId": "in-2",
                "from": "861",
                "to": "862",
                "type": "reply",
                "text": "Yes please",
                "payload": "YES_PAYLOAD",
            },
            {"MessageId": "in-3", "Type": "REPLY", "Message": '{"Text":"Stop","Payload":"STOP"}'},
            {"MessageId": "in-4", "Type": "Reply", "Message": "Not now"},
            {"MessageId": "in-5", "Type": "image", "Message": '{"url":"https://x/y.png"}'},
        ]
    ).encode()
    text, reply, nested, plain, image = parse_inbound_body(body)
    assert (text.sender, text.recipient, text.type) == ("8613888880001", "8613788880000", "TEXT")
    assert text.text == "hello, it's me"
    assert text.ts_ms == 1662104191973
    assert json.loads(text.raw)["DisplayName"] == "Mr Liu"
    assert (reply.type, reply.text, reply.payload) == ("REPLY", "Yes please", "YES_PAYLOAD")
    assert (nested.text, nested.payload) == ("Stop", "STOP")
    assert (plain.text, plain.payload) == ("Not now", None)
    assert (image.type, image.text, image.payload) == ("IMAGE", None, None)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("+86 138-0000", "861380000"),
        ("(0086) 138.0000", "00861380000"),
        (" 8613800000001 ", "8613800000001"),
        ("PSID_abc 12", "PSID_abc 12"),
        ("  user.name ", "user.name"),
        (8613800000001, "8613800000001"),
        ("", ""),
    ],
)
def test_phone_key(value: object, key: str) -> None:
    assert phone_key(value) == key


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_the_one_error(body: bytes) -> None:
    try:
        parse_status_body(body)
        parse_inbound_body(body)
    except ReceiptFormatError:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_any_json_value_parses_or_raises_the_one_error(value: object) -> None:
    body = json.dumps(value).encode()
    try:
        receipts = parse_status_body(body)
    except ReceiptFormatError:
        assert not isinstance(value, dict) and not (
            isinstance(value, list) and all(isinstance(item, dict) for item in value)
        )
    else:
        assert len(receipts) == (1 if isinstance(value, dict) else len(value))  # type: ignore[arg-type]


def test_lone_surrogates_become_question_marks_and_pairs_stay() -> None:
    body = b'[{"MessageId":"a\\ud800b","Status":"\\ud83d\\ude00","\\udc00":"x"}]'
    (receipt,) = parse_status_body(body)
    assert receipt.message_id == "a?b"
    assert receipt.status == "\U0001f600"
    receipt.raw.encode("utf-8")  # storable
    deep = b'[{"a":' + b"[" * 995 + b'"\\ud800"' + b"]" * 995 + b"}]"
    with pytest.raises(ReceiptFormatError, match="nested too deeply"):
        parse_status_body(deep)
