"""SendChatappMessage rules: one table case per rule, the data, and check_call's robustness."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigner import channels
from campaigner.channels import (
    CONTENT_RULES,
    MESSAGE_TYPES,
    PARAMETERS,
    Problem,
    check_call,
    check_recipient,
    unknown_keys,
)
from campaigner.config import load_campaign, parse_campaign
from campaigner.errors import ConfigError
from campaigner.preview import run_preview
from campaigner.signing import canonical_query
from campaigner.sim.crashcheck import read_report
from campaigner.sim.harness import Sandbox, run

GROUP_ID = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
TEMPLATE = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "Language": "en",
    "TemplateParams": '{"name":"Ana Maria","code":"X1"}',
    "From": "8613800000000",
    "To": "8613900000000",
    "TaskId": "task-0001",
}


def message(channel: str, kind: str, content: object, **extra: str) -> dict[str, str]:
    sender = "8613800000000" if channel == "whatsapp" else "page-or-service-1"
    text = content if isinstance(content, str) else json.dumps(content)
    return {
        "ChannelType": channel,
        "Type": "message",
        "MessageType": kind,
        "Content": text,
        "From": sender,
        "To": "8613900000000",
        **extra,
    }


def codes(query: dict[str, str]) -> list[tuple[str, str]]:
    return [(p.code, p.field) for p in check_call(query)]


# --- valid calls -----------------------------------------------------------------------------

VALID = [
    TEMPLATE,
    {**TEMPLATE, "Payload": '["p1","p2"]', "FallBackRule": "", "Tag": ""},
    message("whatsapp", "text", {"text": "hello"}),
    message("whatsapp", "image", {"link": "https://example.com/a.png", "caption": "A"}),
    message("whatsapp", "document", {"Link": "https://example.com/a.pdf", "FileName": "a.pdf"}),
    message("whatsapp", "contacts", [{"name": {"formatted_name": "Ana"}, "phones": []}]),
    message("whatsapp", "location", {"longitude": 103.8, "latitude": 1.35, "name": "HQ"}),
    message("whatsapp", "reaction", {"messageId": "61851ccb2f1365b16aee****", "emoji": "👍"}),
    message("whatsapp", "pin", {}, RecipientType="group"),
    message("whatsapp", "typing_indicator", {}),
    message("viber", "text", {"text": "hi"}, Ttl="3600", Label="promotion"),
    message(
        "viber",
        "text_video_button",
        {
            "text": "t",
            "link": "https://example.com/v.mp4",
            "thumbnail": "https://example.com/t.png",
            "fileSize": 1024,
            "duration": 10,
            "caption": "c",
        },
    ),
    message("viber", "text_image", {}),  # the reference names no fields for it
    message("messenger", "text", {"text": "hi"}),
    message("messenger", "quickReply", {"text": "pick", "quick_replies": []}),
    message("instagram", "image", {"link": "https://example.com/a.png"}),
    message("instagram", "document", {}),  # no required field in the reference
]


@pytest.mark.parametrize("query", VALID)
def test_valid_calls_have_no_problems(query: dict[str, str]) -> None:
    assert check_call(query) == []


# --- one case per rule -----------------------------------------------------------------------

NOT_SUPPORTED = "InvalidParameter.MessageTypeNotSupport"
CONTENT_ERROR = "InvalidParameter.ContentError"
RULES = [
    # required parameters and their values
    ({**TEMPLATE, "ChannelType": ""}, "InvalidParameter.ChannelTypeNotSupport", "ChannelType"),
    ({**TEMPLATE, "ChannelType": "sms"}, "InvalidParameter.ChannelTypeNotSupport", "ChannelType"),
    (
        {**TEMPLATE, "ChannelType": "telegram"},
        "InvalidParameter.ChannelTypeNotSupport",
        "ChannelType",
    ),
    ({**TEMPLATE, "Type": ""}, "InvalidParameter", "Type"),
    ({**TEMPLATE, "Type": "notice"}, "InvalidParameter", "Type"),
    ({**TEMPLATE, "From": ""}, "InvalidParameter", "From"),
    ({**TEMPLATE, "From": "+8613800000000"}, "InvalidParameter.FromOnlyNumeric", "From"),
    ({**TEMPLATE, "To": " "}, "InvalidParameter", "To"),
    # Type=template
    ({**TEMPLATE, "TemplateCode": ""}, "InvalidParameter.TemplateCodeNotEmpty", "TemplateCode"),
    (
        {**{k: v for k, v in TEMPLATE.items() if k != "TemplateCode"}, "TemplateName": "hello"},
        "InvalidParameter.TemplateCodeNotEmpty",
        "TemplateCode",
    ),
    ({**TEMPLATE, "Language": ""}, "InvalidParameter.LanguageNotEmpty", "Language"),
    # Type=message
    (
        message("whatsapp", "", {"text": "hi"}),
        "InvalidParameter.MessageTypeNotEmpty",
        "MessageType",
    ),
    (message("whatsapp", "text_button", {"text": "hi"}), NOT_SUPPORTED, "MessageType"),
    (message("whatsapp", "carousel", {}), NOT_SUPPORTED, "MessageType"),
    (message("whatsapp", "pin", {}), NOT_SUPPORTED, "MessageType"),  # groups only
    (message("viber", "audio", {"link": "https://x.io/a.mp3"}), NOT_SUPPORTED, "MessageType"),
    (message("viber", "sticker", {}), NOT_SUPPORTED, "MessageType"),
    (message("messenger", "location", {}), NOT_SUPPORTED, "MessageType"),
    (message("instagram", "contacts", []), NOT_SUPPORTED, "MessageType"),
    (message("messenger", "quickreply", {}), NOT_SUPPORTED, "MessageType"),  # case matters
    (message("whatsapp", "text", ""), "InvalidParameter.ContentNotEmpty", "Content"),
    (message("whatsapp", "text", '{"text": "hi"'), CONTENT_ERROR, "Content"),
    (message("whatsapp", "text", "hello"), CONTENT_ERROR, "Content"),  # not JSON
    (message("whatsapp", "text", '["hi"]'), CONTENT_ERROR, "Content"),  # not an object
    # Content fields (docs/wire-format.md#content-fields)
    (message("whatsapp", "text", {"text": " "}), "InvalidParameter.TextNotEmpty", "Content"),
    (message("whatsapp", "text", {"text": "hi", "caption": "c"}), CONTENT_ERROR, "Content"),
    (message("whatsapp", "text", {"text": "hi", "Caption": "c"}), CONTENT_ERROR, "Content"),
    (message("whatsapp", "image", {"caption": "c"}), "InvalidParameter.LinkNotEmpty", "Content"),
    (
        message("whatsapp", "audio", {"link": "https://x.io/a.mp3", "caption": "c"}),
        CONTENT_ERROR,
        "Content",
    ),
    (message("whatsapp", "document", {"link": "https://x.io/a.pdf"}), CONTENT_ERROR, "Content"),
    (
        message(
            "whatsapp", "document", {"link": "https://x.io/a", "fileName": "a", "caption": "c"}
        ),
        CONTENT_ERROR,
        "Content",
    ),
    (
        message("whatsapp", "sticker", {"link": "https://x.io/s.webp", "fileName": "s"}),
        CONTENT_ERROR,
        "Content",
    ),
    (message("whatsapp", "interactive", {"type": "button"}), CONTENT_ERROR, "Content"),
    (message("whatsapp", "location", {"longitude": 1.0}), CONTENT_ERROR, "Content"),
    (message("whatsapp", "reaction", {"emoji": "👍"}), CONTENT_ERROR, "Content"),
    (message("whatsapp", "contacts", {"name": "Ana"}), CONTENT_ERROR, "Content"),  # not an array
    (message("whatsapp", "contacts", []), CONTENT_ERROR, "Content"),
    (message("whatsapp", "contacts", [{"phones": []}]), CONTENT_ERROR, "Content"),
    (message("whatsapp", "contacts", ["Ana"]), CONTENT_ERROR, "Content"),
    (
        message("whatsapp", "image", {"link": "www.x.io/a.png"}),
        "ERR-OPERATION-MAAP-0085",
        "Content",
    ),
    (
        message("messenger", "text", {"link": "https://x.io"}),
        "InvalidParameter.TextNotEmpty",
        "Content",
    ),
    (message("messenger", "document", {}), "InvalidParameter.LinkNotEmpty", "Content"),
    (message("instagram", "audio", {"link": None}), "InvalidParameter.LinkNotEmpty", "Content"),
    (message("viber", "image", {"text": "t"}), "InvalidParameter.LinkNotEmpty", "Content"),
    (
        message("viber", "document", {"link": "https://x.io/a", "fileName": "a"}),
        CONTENT_ERROR,
        "Content",
    ),
    (
        message("viber", "text_button", {"text": "t", "caption": "c", "action": {}}),
        CONTENT_ERROR,
        "Content",
    ),
    (
        message(
            "viber",
            "text_video_button",
            {
                "text": "t",
                "link": "https://x.io/v",
                "thumbnail": "https://x.io/t",
                "fileSize": 1,
                "duration": 1,
                "caption": "c",
                "action": {"url": "https://x.io"},
            },
        ),
        CONTENT_ERROR,
        "Content",
    ),
    # enumerations
    ({**TEMPLATE, "Label": "Promotion"}, "InvalidParameter", "Label"),
    ({**TEMPLATE, "FallBackRule": "failed"}, "InvalidParameter", "FallBackRule"),
    ({**TEMPLATE, "RecipientType": "team"}, "InvalidParameter", "RecipientType"),
    (
        message("viber", "text", {"text": "hi"}, RecipientType="group"),
        "InvalidParameter",
        "RecipientType",
    ),
    # integers and ranges
    ({**TEMPLATE, "Ttl": "29"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": "1209601"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": "3600.0"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": " 3600"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": "-40"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": "9" * 5000}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "Ttl": "an hour"}, "InvalidParameter", "Ttl"),
    ({**TEMPLATE, "FallBackDuration": "59"}, "InvalidParameter", "FallBackDuration"),
    ({**TEMPLATE, "FallBackDuration": "43201"}, "InvalidParameter", "FallBackDuration"),
    ({**TEMPLATE, "OwnerId": "12a"}, "InvalidParameter", "OwnerId"),
    # JSON parameters
    ({**TEMPLATE, "TemplateParams": '{"name":'}, "InvalidParameter", "TemplateParams"),
    ({**TEMPLATE, "TemplateParams": '["Ana"]'}, "InvalidParameter", "TemplateParams"),
    ({**TEMPLATE, "TemplateParams": '{"age":30}'}, "InvalidParameter", "TemplateParams"),
    ({**TEMPLATE, "Payload": "p1,p2"}, "InvalidParameter", "Payload"),
    ({**TEMPLATE, "Payload": "[1,2]"}, "InvalidParameter", "Payload"),
    ({**TEMPLATE, "ProductAction": "[]"}, "InvalidParameter", "ProductAction"),
    (
        {**TEMPLATE, "ProductAction": json.dumps({"Sections": [{"Title": "t"}] * 11})},
        "InvalidParameter",
        "ProductAction",
    ),
    (
        {
            **TEMPLATE,
            "ProductAction": json.dumps(
                {"Sections": [{"ProductItems": [{"ProductRetailerId": "s"}] * 31}]}
            ),
        },
        "InvalidParameter",
        "ProductAction",
    ),
    (
        {**TEMPLATE, "ProductAction": '{"Sections":[{"ProductItems":[{"Id":"s"}]}]}'},
        "InvalidParameter",
        "ProductAction",
    ),
    ({**TEMPLATE, "FlowAction": '{"FlowActionData":[1]}'}, "InvalidParameter", "FlowAction"),
    ({**TEMPLATE, "FlowAction": '{"FlowToken":7}'}, "InvalidParameter", "FlowAction"),
    ({**TEMPLATE, "FlowAction": "{" * 100_000}, "InvalidParameter", "FlowAction"),  # too deep
    ({**TEMPLATE, "FlowAction": '{"flowToken":"t"}'}, "InvalidParameter", "FlowAction"),
    (
        {**TEMPLATE, "FlowAction": '{"FlowActionData":{"x":NaN}}'},
        "InvalidParameter",
        "FlowAction",
    ),
    (
        {**TEMPLATE, "ProductAction": '{"Sections":[{"Title":"t","productItems":[]}]}'},
        "InvalidParameter",
        "ProductAction",
    ),
    (
        {**TEMPLATE, "ProductAction": '{"Sections":[{"Title":7}]}'},
        "InvalidParameter",
        "ProductAction",
    ),
    ({**TEMPLATE, "ProductAction": '{"sections":[]}'}, "InvalidParameter", "ProductAction"),
]


@pytest.mark.parametrize(("query", "code", "field"), RULES)
def test_rule(query: dict[str, str], code: str, field: str) -> None:
    assert codes(query) == [(code, field)]


@pytest.mark.parametrize(
    ("query", "edges"),
    [
        ({**TEMPLATE, "Ttl": "30"}, None),
        ({**TEMPLATE, "Ttl": "1209600"}, None),
        ({**TEMPLATE, "Ttl": "+3600"}, None),
        ({**TEMPLATE, "FallBackDuration": "60"}, None),
        ({**TEMPLATE, "FallBackDuration": "43200"}, None),
        ({**TEMPLATE, "Label": "transaction"}, None),
        ({**TEMPLATE, "FallBackRule": "sentFailed"}, None),
        ({**TEMPLATE, "FallBackRule": "undelivered"}, None),
        ({**TEMPLATE, "RecipientType": "individual"}, None),
        ({**TEMPLATE, "OwnerId": "1234"}, None),
        ({**TEMPLATE, "CustWabaId": "cams-8c8", "IsvCode": "123"}, None),  # deprecated, allowed
        ({**TEMPLATE, "UnknownParameter": "x"}, None),
        (
            {
                **TEMPLATE,
                "ProductAction": '{"Sections":[{"ProductItems":[{"ProductRetailerId":"sku-1"}],'
                '"Title":"Shoes"}],"ThumbnailProductRetailerId":"sku-thumb"}',
                "FlowAction": '{"FlowActionData":{"n":1,"ok":true},"FlowToken":"kde"}',
            },
            None,
        ),
    ],
)
def test_edges_that_are_accepted(query: dict[str, str], edges: None) -> None:
    assert check_call(query) == []


def test_messages_say_what_to_fix() -> None:
    (ttl,) = check_call({**TEMPLATE, "Ttl": "10"})
    assert ttl.message == "Ttl must be a whole number of seconds from 30 to 1209600 (got 10)"
    (kind,) = check_call(message("messenger", "quickreply", {}))
    assert "did you mean 'quickReply'?" in kind.message
    (channel,) = check_call({**TEMPLATE, "ChannelType": "WhatsApp"})
    assert "did you mean 'whatsapp'?" in channel.message
    (name_only,) = check_call(
        {**{k: v for k, v in TEMPLATE.items() if k != "TemplateCode"}, "TemplateName": "hello"}
    )
    assert "TemplateName alone is not enough" in name_only.message


def test_all_problems_are_listed() -> None:
    found = codes({"Type": "message", "Ttl": "0", "Label": "x"})
    assert found == [
        ("InvalidParameter.ChannelTypeNotSupport", "ChannelType"),
        ("InvalidParameter", "From"),
        ("InvalidParameter", "To"),
        ("InvalidParameter.MessageTypeNotEmpty", "MessageType"),
        ("InvalidParameter.ContentNotEmpty", "Content"),
        ("InvalidParameter", "Label"),
        ("InvalidParameter", "Ttl"),
    ]


@pytest.mark.parametrize(("channel", "kind"), sorted(CONTENT_RULES))
def test_every_required_content_field(channel: str, kind: str) -> None:
    rule = CONTENT_RULES[(channel, kind)]
    full = {name: f"https://x.io/{name}" for name in rule.required}
    content: object = [full] if rule.array else full
    extra = {"RecipientType": "group"} if kind == "pin" else {}
    assert check_call(message(channel, kind, content, **extra)) == []
    for name in rule.required:
        partial = {key: value for key, value in full.items() if key != name}
        content = [partial] if rule.array else partial
        expected = {
            "text": "InvalidParameter.TextNotEmpty",
            "link": "InvalidParameter.LinkNotEmpty",
        }
        assert codes(message(channel, kind, content, **extra)) == [
            (expected.get(name, CONTENT_ERROR), "Content")
        ]


def test_content_rules_follow_the_reference() -> None:
    assert set(MESSAGE_TYPES) == {"whatsapp", "messenger", "instagram", "viber"}
    assert len(MESSAGE_TYPES["whatsapp"]) == 12
    assert len(MESSAGE_TYPES["viber"]) == 9
    assert MESSAGE_TYPES["messenger"] == MESSAGE_TYPES["instagram"]
    assert CONTENT_RULES[("whatsapp", "document")].required == ("link", "fileName")
    assert CONTENT_RULES[("whatsapp", "sticker")].forbidden == ("caption", "fileName")
    assert CONTENT_RULES[("whatsapp", "contacts")].array
    assert CONTENT_RULES[("viber", "text_video_button")].forbidden == ("action",)
    assert CONTENT_RULES[("instagram", "document")].required == ()


REFERENCE_NAMES = (
    "ChannelType Type MessageType TemplateCode Language From To TemplateParams Content Payload "
    "CustWabaId FallBackId FallBackContent IsvCode CustSpaceId ContextMessageId TrackingData "
    "Label Ttl Tag TaskId FallBackDuration ProductAction FallBackRule FlowAction TemplateName "
    "RecipientType MessageCampaignId AdAccountId TokenType Category"
).split()


def test_parameters() -> None:
    documented = [name for name, spec in PARAMETERS.items() if spec.documented]
    assert documented == REFERENCE_NAMES
    assert {n for n, s in PARAMETERS.items() if not s.documented} == {
        "OwnerId",
        "ResourceOwnerId",
        "ResourceOwnerAccount",
    }
    assert {n for n, s in PARAMETERS.items() if s.deprecated} == {"CustWabaId", "IsvCode"}
    assert {n for n, s in PARAMETERS.items() if s.required} == {"ChannelType", "Type", "From", "To"}
    kinds = {name: spec.kind for name, spec in PARAMETERS.items() if spec.kind != "string"}
    assert kinds == {
        "TemplateParams": "object",
        "Content": "json",
        "Payload": "array",
        "Ttl": "integer",
        "FallBackDuration": "integer",
        "ProductAction": "object",
        "FlowAction": "object",
        "OwnerId": "integer",
        "ResourceOwnerId": "integer",
    }
    assert all(name == spec.name for name, spec in PARAMETERS.items())


def test_public_names() -> None:
    assert sorted(channels.__all__) == sorted(
        (
            "CHANNELS",
            "CONTENT_RULES",
            "ENUMS",
            "GROUP_CHANNELS",
            "ID_PATTERN",
            "MAX_ID_CHARS",
            "MESSAGE_TYPES",
            "OBJECT_KEYS",
            "PARAMETERS",
            "PHONE_CHANNELS",
            "RANGES",
            "TYPES",
            "ContentRule",
            "ParamSpec",
            "Problem",
            "check_call",
            "check_recipient",
            "id_rule",
            "takes_phone_number",
            "unknown_keys",
        )
    )
    assert all(hasattr(channels, name) for name in channels.__all__)


# --- recipients ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "to", "recipient_type", "code"),
    [
        ("whatsapp", "8613900000000", None, None),
        ("whatsapp", "12345678", None, None),  # 8 digits
        ("whatsapp", "123456789012345", None, None),  # 15 digits
        ("whatsapp", "1234567", None, "InvalidParameter.PhoneNumberError"),
        ("whatsapp", "1234567890123456", None, "InvalidParameter.PhoneNumberError"),
        ("whatsapp", "+8613900000000", None, "InvalidParameter.PhoneNumberError"),
        ("whatsapp", "86 139 0000 0000", None, "InvalidParameter.PhoneNumberError"),
        ("whatsapp", "٨٦١٣٩٠٠٠٠٠٠٠٠", None, "InvalidParameter.PhoneNumberError"),
        ("whatsapp", "120363043968@g.us", "group", None),
        ("whatsapp", GROUP_ID, "group", None),  # the Groups API's form
        ("whatsapp", "g" * 128, "group", None),
        ("whatsapp", "g" * 129, "group", "InvalidParameter"),
        ("whatsapp", "", "group", "InvalidParameter"),
        ("whatsapp", "Y2Fw aV9n", "group", "InvalidParameter"),
        ("whatsapp", "Y2Fw\u200baV9n", "group", "InvalidParameter"),  # zero-width space
        ("whatsapp", "Y2Fw\u00a0aV9n", "group", "InvalidParameter"),  # no-break space
        ("viber", GROUP_ID, "group", "InvalidParameter.PhoneNumberError"),  # WhatsApp only
        ("messenger", "6" * 129, None, "InvalidParameter"),
        ("viber", "447911123456", None, None),
        ("viber", "not-a-number", None, "InvalidParameter.PhoneNumberError"),
        ("messenger", "6789012345678901", None, None),
        ("messenger", "", None, "InvalidParameter"),
        ("instagram", "1784 1400", None, "InvalidParameter"),
        ("instagram", "17841400000000", None, None),
        ("sms", "8613900000000", None, None),  # the channel is check_call's concern
    ],
)
def test_check_recipient(
    channel: str, to: str, recipient_type: str | None, code: str | None
) -> None:
    problem = check_recipient(channel, to, recipient_type)
    assert (problem.code if problem else None) == code
    if problem:
        assert problem.field == "To"


# --- never raises ----------------------------------------------------------------------------

json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "Link", "caption", "name", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
).map(json.dumps)
values = st.one_of(st.text(max_size=30), json_text, st.sampled_from(["3600", "30", "-1", "group"]))
names = st.one_of(st.sampled_from(sorted(PARAMETERS)), st.text(max_size=10))
known_values = {
    "ChannelType": st.sampled_from([*MESSAGE_TYPES, "", "sms"]),
    "Type": st.sampled_from(["template", "message", "", "x"]),
    "MessageType": st.sampled_from(sorted({k for ks in MESSAGE_TYPES.values() for k in ks})),
}


@settings(max_examples=400, deadline=None)
@given(
    query=st.dictionaries(names, values, max_size=12),
    fixed=st.fixed_dictionaries({}, optional=known_values),
)
def test_check_call_never_raises(query: dict[str, str], fixed: dict[str, str]) -> None:
    problems = check_call({**query, **fixed})
    assert all(isinstance(p, Problem) and p.code and p.field and p.message for p in problems)


@settings(max_examples=200, deadline=None)
@given(channel=st.text(max_size=10), to=st.text(max_size=20), kind=st.none() | st.text(max_size=6))
def test_check_recipient_never_raises(channel: str, to: str, kind: str | None) -> None:
    check_recipient(channel, to, kind)


# --- keys inside ProductAction and FlowAction --------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "found"),
    [
        (
            "FlowAction",
            {"flowToken": "t", "FlowActionData": {"anyKey": 1, "flowToken": 2}},
            [("FlowAction", "flowToken", "FlowToken")],
        ),
        (
            "ProductAction",
            {"Sections": [{"Title": "a"}, {"Title": "b", "productItems": []}]},
            [("ProductAction section 2", "productItems", "ProductItems")],
        ),
        (
            "ProductAction",
            {
                "Sections": [
                    {"ProductItems": [{"ProductRetailerId": "a"}, {"ProductRetailerID": "b"}]}
                ]
            },
            [("ProductAction section 1 product 2", "ProductRetailerID", "ProductRetailerId")],
        ),
        (
            "ProductAction",
            {"ThumbnailProductRetailerID": "s", "Colour": "red"},
            [
                ("ProductAction", "ThumbnailProductRetailerID", "ThumbnailProductRetailerId"),
                ("ProductAction", "Colour", None),
            ],
        ),
        ("ProductAction", {"Sections": "{{ sections }}"}, []),  # a shape problem, not a key
        ("ProductAction", ["Sections"], []),
        ("TemplateParams", {"any": "x"}, []),  # free keys
    ],
)
def test_unknown_keys_inside_objects(
    name: str, value: object, found: list[tuple[str, str, str | None]]
) -> None:
    assert unknown_keys(name, value) == found


def test_an_unknown_nested_key_names_the_closest_one() -> None:
    (problem,) = check_call({**TEMPLATE, "FlowAction": '{"flowToken":"t"}'})
    assert (
        problem.message == "FlowAction has an unknown key 'flowToken' (did you mean 'FlowToken'?)"
    )


CAMPAIGN: dict[str, Any] = {
    "name": "nested",
    "input": "not-read.csv",
    "message": {
        "ChannelType": "whatsapp",
        "Type": "template",
        "From": "8613800000000",
        "To": "{{ phone }}",
        "TemplateCode": "tpl",
        "Language": "en",
    },
}


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            {"FlowAction": {"flowToken": "{{ token }}"}},
            "unknown key 'flowToken' in [message] FlowAction; did you mean 'FlowToken'?",
        ),
        (
            {
                "ProductAction": {
                    "Sections": [{"Title": "Shoes", "productItems": [{"ProductRetailerId": "s"}]}]
                }
            },
            "unknown key 'productItems' in [message] ProductAction section 1; "
            "did you mean 'ProductItems'?",
        ),
    ],
)
def test_misspelt_nested_keys_are_campaign_errors(extra: dict[str, Any], error: str) -> None:
    # parse_campaign never opens the input: the error comes before the list is read.
    with pytest.raises(ConfigError) as caught:
        parse_campaign({**CAMPAIGN, "message": {**CAMPAIGN["message"], **extra}})
    assert str(caught.value) == error


# --- WhatsApp groups, end to end ---------------------------------------------------------

PIN_CAMPAIGN = """
name = "pin"
input = "groups.csv"
[message]
ChannelType = "whatsapp"
Type = "message"
MessageType = "pin"
RecipientType = "group"
From = "8613800000000"
To = "{{ group }}"
Content = '{"type":"pin","message_id":"{{ mid }}"}'
"""


def write_list(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_pin_messages_reach_whatsapp_groups_as_the_sdk_sends_them(tmp_path: Path) -> None:
    (tmp_path / "pin.toml").write_text(PIN_CAMPAIGN)
    rows = [
        [GROUP_ID, "wamid.1"],
        [" 120363043968@g.us ", "wamid.2"],  # cells are trimmed
        [GROUP_ID, "wamid.3"],  # the same group again
        [GROUP_ID.lower(), "wamid.4"],  # IDs are case-sensitive: another group
        ["my group", "wamid.5"],
    ]
    write_list(tmp_path / "groups.csv", ["group", "mid"], rows)
    out = tmp_path / "out"
    with Sandbox(log=tmp_path / "accepted.jsonl", latency_ms=0) as sandbox:
        code, _, err = run(
            "send", str(tmp_path / "pin.toml"), "--endpoint", sandbox.url,
            "--out", str(out), "--yes", "--json",
        )  # fmt: skip
        accepted = sandbox.accepted()
    assert code == 3, err  # one row is invalid
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    report = read_report(run_dir / "report.csv")
    assert [r["status"] for r in report] == ["sent", "sent", "duplicate", "sent", "invalid"]
    assert [r["To"] for r in report[:4]] == [
        GROUP_ID,
        "120363043968@g.us",
        GROUP_ID,
        GROUP_ID.lower(),
    ]
    assert report[2]["error"] == "same recipient as row 2"
    assert report[4]["error"] == (
        "To must be a WhatsApp group ID: 1 to 128 letters, digits or symbols, no spaces"
    )
    # What the official SDK would put in the query for the first row: every parameter as
    # the string given, in alphabetical order; the simulator hashes what it received.
    sdk_query = {
        "ChannelType": "whatsapp",
        "Content": '{"type":"pin","message_id":"wamid.1"}',
        "From": "8613800000000",
        "MessageType": "pin",
        "RecipientType": "group",
        "To": GROUP_ID,
        "Type": "message",
    }
    received = {str(a["to"]): a["params_hash"] for a in accepted}
    assert len(accepted) == 3
    assert received[GROUP_ID] == hashlib.sha256(canonical_query(sdk_query).encode()).hexdigest()


def test_recipient_type_per_row_checks_each_to_as_a_number_or_a_group(tmp_path: Path) -> None:
    (tmp_path / "mixed.toml").write_text(
        """
        name = "mixed"
        input = "groups.csv"
        [send]
        default_region = "CN"
        [message]
        ChannelType = "whatsapp"
        Type = "message"
        MessageType = "text"
        RecipientType = "{{ kind }}"
        From = "8613800000000"
        To = "{{ group }}"
        Content = '{"text":"{{ mid }}"}'
        """
    )
    rows = [
        ["individual", "+86 139 0000 0001", "hi"],
        ["group", GROUP_ID, "hi"],
        ["individual", GROUP_ID, "hi"],  # a group ID is not a number
        ["group", "0120363043968", "hi"],  # an ID, not a number: kept as it is
        ["group", "two words", "hi"],
        ["Group", GROUP_ID, "hi"],  # RecipientType is case-sensitive
    ]
    write_list(tmp_path / "groups.csv", ["kind", "group", "mid"], rows)
    result = run_preview(load_campaign(tmp_path / "mixed.toml"), input_path=None, out=tmp_path)
    report = read_report(result.run_dir / "report.csv")
    assert [(r["status"], r["To"]) for r in report] == [
        ("would_send", "8613900000001"),
        ("would_send", GROUP_ID),
        ("invalid", GROUP_ID),
        ("would_send", "0120363043968"),
        ("invalid", "two words"),
        ("invalid", GROUP_ID),
    ]
    assert "letters" in report[2]["error"]
    assert report[4]["error"].startswith("To must be a WhatsApp group ID")
    assert report[5]["error"] == "RecipientType must be individual or group (got 'Group')"
