"""The wire mapping against the official SDK's captured requests, and answer classification."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigner.cams import ReplyKind, build_query, classify_reply
from campaigner.channels import check_call
from campaigner.signing import canonical_query
from campaigner.sim.crashcheck import read_report
from campaigner.sim.harness import Sandbox, run

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
CHECKED = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "tpl",
    "Language": "en",
    "From": "8613800000000",
    "To": "8613900000000",
}


@pytest.mark.skipif(not CAPTURES.exists(), reason="shared/reference not beside the repo")
@pytest.mark.parametrize("name", SINGLE_SEND)
def test_query_matches_the_sdk_capture(name: str) -> None:
    capture = json.loads((CAPTURES / name).read_text())
    expected = [tuple(pair) for pair in capture["requests"][0]["query"]]
    assert list(build_query(capture["input"]).items()) == expected


@pytest.mark.skipif(not CAPTURES.exists(), reason="shared/reference not beside the repo")
def test_a_section_without_products_has_the_empty_list_the_sdk_sends() -> None:
    capture = json.loads((CAPTURES / "d-product-flow-action.json").read_text())
    action = capture["input"]["ProductAction"]
    sent = build_query({"ProductAction": action})["ProductAction"]
    assert sent == dict(capture["requests"][0]["query"])["ProductAction"]
    bare = {"Sections": [{"Title": "Shoes"}, {"ProductItems": [{"ProductRetailerId": "s"}]}]}
    assert build_query({"ProductAction": bare})["ProductAction"] == (
        '{"Sections":[{"ProductItems":[],"Title":"Shoes"},'
        '{"ProductItems":[{"ProductRetailerId":"s"}]}]}'
    )
    assert build_query({"ProductAction": {}})["ProductAction"] == '{"Sections":[]}'


def test_flow_action_keeps_the_callers_data_order_and_json_types() -> None:
    action = {"FlowToken": "t", "FlowActionData": {"z": 1.5, "a": True, "m": {"y": 1, "b": 2}}}
    assert build_query({"FlowAction": action})["FlowAction"] == (
        '{"FlowActionData":{"z":1.5,"a":true,"m":{"y":1,"b":2}},"FlowToken":"t"}'
    )


@pytest.mark.parametrize(
    "action",
    [
        {"Sections": "{{ sections }}"},
        {"Sections": ["a", 1, None, {"ProductItems": "x"}, {"ProductItems": [7, "s", []]}]},
        {"Sections": [{"Title": {"nested": True}}]},
    ],
)
def test_odd_product_action_shapes_go_to_the_checker_not_a_crash(action: object) -> None:
    query = build_query({**CHECKED, "ProductAction": action})
    assert [p.field for p in check_call(query)] == ["ProductAction"]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("300", "300"),
        ("0300", "300"),
        ("+300", "300"),
        ("+000300", "300"),
        ("-0", "0"),
        ("000", "0"),
        (300, "300"),
        ("3600.0", "3600.0"),  # not an integer: left for the checker to refuse
        (" 300", " 300"),
        ("3e2", "3e2"),
        ("٣٠٠", "٣٠٠"),  # Arabic-Indic digits
        ("9" * 40, "9" * 40),
        ("", None),  # empty: not sent, as the SDK would not send an unset integer
    ],
)
def test_integer_parameters_are_sent_in_canonical_decimal(given: object, sent: str | None) -> None:
    for name in ("Ttl", "FallBackDuration", "OwnerId", "ResourceOwnerId"):
        assert build_query({name: given}).get(name) == sent


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Sections", "ProductItems", "ProductRetailerId", "Title", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(product=json_values, flow=json_values, ttl=json_values)
def test_build_query_never_raises(product: object, flow: object, ttl: object) -> None:
    message = {**CHECKED, "ProductAction": product, "FlowAction": flow, "Ttl": ttl}
    check_call(build_query(message))


VIBER_CAMPAIGN = """
name = "ttl"
input = "list.csv"
[message]
ChannelType = "viber"
Type = "message"
MessageType = "text"
From = "12345"
To = "{{ phone }}"
Content = '{"text":"hello viber"}'
Ttl = "{{ ttl }}"
"""


def test_a_ttl_from_a_cell_goes_out_as_the_sdk_writes_it(tmp_path: Path) -> None:
    (tmp_path / "ttl.toml").write_text(VIBER_CAMPAIGN)
    cells = ["0300", "+300", "300", "29", "5 minutes", "300.0"]
    rows = "".join(f"86139000000{i:02d},{ttl}\n" for i, ttl in enumerate(cells))
    (tmp_path / "list.csv").write_text("phone,ttl\n" + rows)
    out = tmp_path / "out"
    with Sandbox(log=tmp_path / "accepted.jsonl", latency_ms=0) as sandbox:
        code, _, err = run(
            "send", str(tmp_path / "ttl.toml"), "--endpoint", sandbox.url,
            "--out", str(out), "--yes", "--json",
        )  # fmt: skip
        accepted = sandbox.accepted()
    assert code == 3, err
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    report = read_report(run_dir / "report.csv")
    assert [r["status"] for r in report] == ["sent"] * 3 + ["invalid"] * 3
    assert all("Ttl must be a whole number" in r["error"] for r in report[3:])
    # The SDK takes Ttl as an int and writes str(300) (capture c-viber: Ttl=3600).
    received = {str(a["to"]): a["params_hash"] for a in accepted}
    for to in ("8613900000000", "8613900000001", "8613900000002"):
        sdk_query = {
            "ChannelType": "viber",
            "Content": '{"text":"hello viber"}',
            "From": "12345",
            "MessageType": "text",
            "To": to,
            "Ttl": "300",
            "Type": "message",
        }
        assert received[to] == hashlib.sha256(canonical_query(sdk_query).encode()).hexdigest()


def test_string_parameters_are_never_reformatted() -> None:
    query = build_query({"From": "0300", "TaskId": "+300", "Tag": ""})
    assert query == {"From": "0300", "Tag": "", "TaskId": "+300"}


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
