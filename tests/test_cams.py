"""The wire mapping against the official SDK's captured requests, and answer classification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaigner.cams import ReplyKind, build_query, classify_reply

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sdk-capture"
SINGLE_SEND = (
    sorted(
        p.name
        for p in CAPTURES.glob("[a-k]-*.json")
        if json.loads(p.read_text()).get("input", {}).get("Type")
    )
    if CAPTURES.exists()
    else []
)


@pytest.mark.skipif(not CAPTURES.exists(), reason="shared/reference not beside the repo")
@pytest.mark.parametrize("name", SINGLE_SEND)
def test_query_matches_the_sdk_capture(name: str) -> None:
    capture = json.loads((CAPTURES / name).read_text())
    expected = [tuple(pair) for pair in capture["requests"][0]["query"]]
    assert list(build_query(capture["input"]).items()) == expected


def test_empty_cells_never_become_json_null() -> None:
    query = build_query({"TemplateParams": {"a": "1", "b": None}, "Payload": ["x", None]})
    assert query == {"Payload": '["x"]', "TemplateParams": '{"a":"1"}'}


def test_content_table_is_compact_json_with_unicode_kept() -> None:
    assert build_query({"Content": {"text": "Olá 😀"}})["Content"] == '{"text":"Olá 😀"}'


def test_content_string_is_sent_unchanged() -> None:
    assert build_query({"Content": '{"text": "hi"}'})["Content"] == '{"text": "hi"}'


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("status", "headers", "payload", "kind", "code"),
    [
        (200, {}, body(Code="OK", MessageId="m1", RequestId="r"), ReplyKind.SENT, "OK"),
        (200, {}, body(Code="OK", RequestId="r"), ReplyKind.UNKNOWN, "OK"),  # no MessageId
        (200, {}, b'{"Code":"OK","Mess', ReplyKind.UNKNOWN, "HTTP200"),  # truncated
        (200, {}, b"<html>oops</html>", ReplyKind.UNKNOWN, "HTTP200"),
        (
            200,
            {},
            body(Code="Template.NotExist", Message="x"),
            ReplyKind.FAILED,
            "Template.NotExist",
        ),
        (400, {}, body(Code="System.LimitControl"), ReplyKind.RETRY, "System.LimitControl"),
        (400, {}, body(Code="Throttling.User"), ReplyKind.RETRY, "Throttling.User"),
        (429, {}, b"", ReplyKind.RETRY, "HTTP429"),
        (400, {"x-acs-retry-after": "1500"}, body(Code="X"), ReplyKind.RETRY, "X"),
        (503, {}, body(Code="ServiceUnavailable"), ReplyKind.RETRY, "ServiceUnavailable"),
        (503, {}, b"<html>503</html>", ReplyKind.RETRY, "HTTP503"),
        (500, {}, body(Code="InternalError"), ReplyKind.UNKNOWN, "InternalError"),
        (502, {}, b"bad gateway", ReplyKind.UNKNOWN, "HTTP502"),
        (504, {}, b"", ReplyKind.UNKNOWN, "HTTP504"),
        (400, {}, body(Code="InvalidParameter.PhoneNumberError"), ReplyKind.FAILED, None),
        (400, {}, body(Code="SignatureDoesNotMatch"), ReplyKind.ACCOUNT, None),
        (404, {}, body(Code="InvalidAccessKeyId.NotFound"), ReplyKind.ACCOUNT, None),
        (400, {}, body(Code="Ram.PermissionDeny"), ReplyKind.ACCOUNT, None),
        (400, {}, body(Code="Product.Unsubscript"), ReplyKind.ACCOUNT, None),
        (403, {}, body(Code="Forbidden"), ReplyKind.ACCOUNT, None),
    ],
)
def test_answers_are_classified_once(
    status: int, headers: dict[str, str], payload: bytes, kind: ReplyKind, code: str | None
) -> None:
    reply = classify_reply(status, headers, payload)
    assert reply.kind is kind
    if code is not None:
        assert reply.code == code


def test_throttling_is_told_apart_from_unavailability() -> None:
    assert classify_reply(400, {}, body(Code="System.LimitControl")).throttled
    assert classify_reply(429, {}, b"").throttled
    assert not classify_reply(503, {}, body(Code="ServiceUnavailable")).throttled


def test_retry_after_header_is_milliseconds() -> None:
    reply = classify_reply(400, {"x-acs-retry-after": "1500"}, body(Code="Throttling.User"))
    assert reply.retry_after_s == 1.5
