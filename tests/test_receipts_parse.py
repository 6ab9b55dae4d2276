"""Pushed receipt and inbound bodies parsed defensively: odd spellings kept, bad bodies refused."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigner.errors import CampaignerError, ReceiptFormatError
from campaigner.receipts import parse
from campaigner.receipts.parse import (
    CANONICAL_STATUSES,
    parse_inbound_body,
    parse_status_body,
    phone_key,
)

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


# The plain definitions the parser's fast paths must match, value for value.


def _plain_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _plain_phone_key(value: object) -> str:
    text = value.strip() if isinstance(value, str) else parse._text(value) or ""
    if any(ch.isalpha() for ch in text):
        return text
    return "".join(ch for ch in text if ch.isdigit())


def _plain_timestamp_ms(value: object) -> int | None:
    number: float
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number <= 0 or number >= 1e16:
        return None
    if number < 100_000_000_000:
        number *= 1000
    return int(number)


def _plain_status(value: object) -> str:
    text = parse._text(value) or ""
    return CANONICAL_STATUSES.get(text.casefold(), text)


def _plain_folded(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        folded = key.strip().casefold()
        if out.get(folded) in (None, ""):
            out[folded] = value
    return out


_NUMBERS: list[object] = [
    *(
        sign * n
        for n in (0, 1, 10**11 - 1, 10**11, 10**11 + 1, 2**53 - 1, 2**53)
        for sign in (1, -1)
    ),
    *(2**53 + 1, 2**53 + 2, 10**16 - 1, 10**16, 10**16 + 1, 2**63, 10**30, 1764470000000),
    *(0.0, -0.0, 0.5, 1.5, 99999999999.5, 1e11, 1.7e12, 1e16, 1e20, 1e300, 2.0**53 + 2),
    *(math.nan, math.inf, -math.inf, True, False, None),
]
_TEXTS: list[str] = [
    *("", " ", "\t\n", "\u00a0", "\u2003", "\x00", "-", "+", "a", "Z", "_", "."),
    *("8613800000000", " 8613800000000\n", "+86 138-0000", "(0086) 138.0000", "1e5", "12\u200b34"),
    *("\u0661\u0662\u0663", "\u0661\u0662\u0663 \u0664", "\u00b2", "12\u00b2", "\u2460\u2461"),
    *("\U0001d7d9\U0001d7da", "\u07c0", "\u216b", "\u00bd", "\u4e00\u4e8c\u4e09", "\u0663a"),
    *("\u0661\u0662\u0663abc", "abc\u0661", "\u01c5", "\u00aa", "\u00b5", "\u00df", "\u066b"),
    *("\u00a0123\u00a0", "PSID_abc 12", "  user.name ", "ABC123", "1764470000000", " 1691043638 "),
    *(
        "nan",
        "inf",
        "-5",
        "1_000",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662",
    ),
    *("Sent", "Delivered", "Read", "Failed", "Deleted", "unsubscribe", "subscribe", "Queued"),
    *(
        "delivered",
        " READ ",
        "Read ",
        "\u017fent",
        "DEL\u0130VERED",
        "\uff32\uff25\uff21\uff24",
        "Read\u00a0",
    ),
    *("Subscribe", "UNSUBSCRIBE", "a?b", "\U0001f600", "\u2028", '"\\'),
]
_VALUES: list[object] = [*_NUMBERS, *_TEXTS, [], {}, [1, "\u0663"], {"a": [1.5, None]}, ["Read"]]


def test_no_character_is_both_a_digit_and_a_letter() -> None:
    # Why phone_key may return a text of digits unchanged; and its ASCII path's classes.
    assert not [ch for ch in map(chr, range(0x110000)) if ch.isdigit() and ch.isalpha()]
    for ch in map(chr, range(128)):
        assert ch.isalpha() == ("A" <= ch <= "Z" or "a" <= ch <= "z")
        assert ch.isdigit() == ("0" <= ch <= "9")


@pytest.mark.parametrize(
    ("fast", "plain"),
    [
        (phone_key, _plain_phone_key),
        (parse._timestamp_ms, _plain_timestamp_ms),
        (parse._status, _plain_status),
    ],
)
def test_fast_paths_match_the_plain_definitions(
    fast: Callable[[object], object], plain: Callable[[object], object]
) -> None:
    for value in _VALUES:
        expected = plain(value)
        assert fast(value) == expected, value
        assert type(fast(value)) is type(expected), value


@given(st.text() | st.integers() | st.floats() | st.text(alphabet="0123456789+-() .\u0663\u00b2a"))
def test_fast_paths_match_the_plain_definitions_for_any_value(value: object) -> None:
    assert phone_key(value) == _plain_phone_key(value)
    assert parse._timestamp_ms(value) == _plain_timestamp_ms(value)
    assert parse._status(value) == _plain_status(value)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from([*_TEXTS, "STATUS", " Status", "x" * 100]), _JSON_VALUES))
def test_folded_keys_and_raw_json_match_the_plain_definitions(obj: dict[str, Any]) -> None:
    for _ in range(2):  # the second time with every short key's folding remembered
        folded = parse._folded(obj)
        assert folded == _plain_folded(obj)
        assert list(folded) == list(_plain_folded(obj))
    assert parse._raw(obj) == _plain_dumps(obj)
    for value in obj.values():
        assert parse._text(value) == (
            _plain_dumps(value) if isinstance(value, list | dict) else parse._text(value)
        )


def test_raw_json_matches_json_dumps_for_odd_values() -> None:
    obj = {
        "Text": '\u4f60\u597d \u00e9 \U0001f600 \u2028 \x00\x1f "q" \\ a?b',
        "Numbers": [0.1, -0.0, 1e300, 1.7976931348623157e308, 2**100, -(2**70), 5e-324],
        "Odd": [math.nan, math.inf, -math.inf, True, False, None, {}, []],
        "Nested": {"a": [{"b": {"c": ["\u0663"]}}]},
        "Lone": "\ud800",
    }
    assert parse._raw(obj) == _plain_dumps(obj)
    body = b'[{"MessageId":"a\\ud800b","\\udc00":"\xc3\xa9","Big":123456789012345678901234567890}]'
    (receipt,) = parse_status_body(body)
    expected = {"MessageId": "a?b", "?": "\u00e9", "Big": 123456789012345678901234567890}
    assert receipt.raw == _plain_dumps(expected)


def _deepest(encode: Callable[[Any], object]) -> int:
    """The deepest nesting of lists, in an object, ``encode`` takes within the recursion limit."""
    low, high = 0, 100_000  # low encodes, high does not
    while high - low > 1:
        middle = (low + high) // 2
        value: list[Any] = []
        for _ in range(middle):
            value = [value]
        try:
            encode({"x": value})
        except RecursionError:
            high = middle
        else:
            low = middle
    return low


def test_raw_json_fails_as_deep_as_json_dumps_did() -> None:
    # _raw and _text called json.dumps directly, as _plain_dumps does: a value nested near the
    # recursion limit must be refused, or kept, exactly as before.
    deepest = _deepest(_plain_dumps)
    assert _deepest(parse._raw) == deepest
    assert _deepest(parse._text) == deepest


@pytest.mark.parametrize(
    "obj",
    [
        {"Status": "", "status": "x"},
        {"Status": None, " STATUS ": "y", "status": "z"},
        {"Status": 0, "status": "x"},
        {"Status": False, "status": "x"},
        {"Status": [], "status": "x"},
        {"Status": {}, "status": "x"},
        {"Status": " ", "status": "x"},
        {"Sent": "", "\u017fent": "", "SENT": None, "sent": "a", "Sent ": "b"},
        {"": 1, " ": 2, "\t": ""},
    ],
)
def test_folded_keys_keep_the_first_non_empty_value(obj: dict[str, Any]) -> None:
    for _ in range(2):  # the second time with every key's folding remembered
        assert list(parse._folded(obj).items()) == list(_plain_folded(obj).items())


def test_remembered_key_foldings_are_bounded() -> None:
    for index in range(3000):
        parse._folded({f"Key{index}": 1, "K" * 200 + str(index): 2})
    assert len(parse._FOLDED_KEYS) <= 1024
    assert all(len(key) <= 64 for key in parse._FOLDED_KEYS)
