"""SendChatappMessage rules: one table case per rule, the data, and check_call's robustness."""

from __future__ import annotations

import json

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
)

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
    # Content fields (cams-wire §10)
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
            "MESSAGE_TYPES",
            "PARAMETERS",
            "PHONE_CHANNELS",
            "RANGES",
            "TYPES",
            "ContentRule",
            "ParamSpec",
            "Problem",
            "check_call",
            "check_recipient",
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
