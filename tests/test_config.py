"""The campaign file: every rule a user can trip over, with the message they get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigner.config import load_campaign, parse_campaign
from campaigner.errors import ConfigError
from campaigner.rows import Plan

BASE: dict[str, Any] = {
    "name": "spring",
    "message": {
        "ChannelType": "whatsapp",
        "Type": "template",
        "From": "8613800000000",
        "To": "{{ phone }}",
        "TemplateCode": "abc",
        "Language": "en",
    },
}


def with_changes(**message: Any) -> dict[str, Any]:
    data = {**BASE, "message": {**BASE["message"], **message}}
    data["message"] = {k: v for k, v in data["message"].items() if v is not None}
    return data


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({**BASE, "nmae": "x"}, "unknown key 'nmae' in the campaign file; did you mean 'name'?"),
        (
            with_changes(Languge="en"),
            "unknown key 'Languge' in [message]; did you mean 'Language'?",
        ),
        ({**BASE, "send": {"qps": 300}}, "qps must be a whole number from 1 to 250"),
        ({**BASE, "send": {"qps": 0}}, "qps must be a whole number from 1 to 250"),
        ({**BASE, "send": {"default_region": "China"}}, "two-letter country code"),
        ({**BASE, "send": {"qsp": 10}}, "did you mean 'qps'?"),
        ({**BASE, "send": {"outage_limit_s": 0}}, "outage_limit_s must be from 1 to 86400"),
        ({"message": BASE["message"]}, "needs a name"),
        ({"name": "x"}, "needs a [message] table"),
        ({**BASE, "encoding": "klingon"}, "unknown encoding"),
        (with_changes(TemplateParams="x"), "TemplateParams must be a table"),
        (with_changes(Payload=[1, 2]), "Payload must be an array of strings"),
        (with_changes(Ttl=True), "Ttl must be a string or a whole number"),
    ],
)
def test_config_errors(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_campaign(data)
    assert error in str(info.value)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"TemplateCode": None}, "TemplateCode is required for Type=template"),
        ({"Language": None}, "Language is required for Type=template"),
        ({"Type": "message"}, "MessageType is required for Type=message"),
        ({"Type": "message", "MessageType": "text"}, "Content is required"),
        (
            {"Type": "message", "MessageType": "sticker!", "Content": {"link": "x"}},
            "is not supported on whatsapp",
        ),
        (
            {"Type": "message", "MessageType": "document", "Content": {"link": "x"}},
            "Content for whatsapp document needs a 'fileName' field",
        ),
        (
            {"Type": "message", "MessageType": "text", "Content": {"text": "x", "caption": "y"}},
            "must not have a 'caption' field",
        ),
        ({"Ttl": 10}, "Ttl must be a whole number of seconds from 30 to 1209600 (got 10)"),
        ({"FallBackDuration": 50000}, "FallBackDuration must be a whole number"),
        ({"Label": "promo"}, "Label must be promotion or transaction"),
        ({"FallBackRule": "never"}, "FallBackRule must be undelivered or sentFailed"),
        ({"RecipientType": "crowd"}, "RecipientType must be individual or group"),
        ({"ChannelType": "telegram"}, "ChannelType 'telegram' is not supported"),
        ({"ChannelType": "{{ channel }}"}, "ChannelType must be a fixed value"),
        ({"To": None}, "To is required"),
        ({"TemplateParams": {"n": "{{ name "}}, "TemplateParams.n: template error on line 1"),
    ],
)
def test_calls_every_row_would_share_are_checked_before_reading(
    message: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Plan(parse_campaign(with_changes(**message)))
    assert error in str(info.value)


def test_deprecated_parameters_warn() -> None:
    campaign = parse_campaign(with_changes(CustWabaId="cams-1"))
    assert any("CustWabaId is deprecated" in w for w in campaign.warnings)


def test_templated_rule_fields_are_checked_per_row_not_up_front() -> None:
    Plan(parse_campaign(with_changes(Ttl="{{ ttl }}")))  # no error yet: depends on the row


def test_input_is_relative_to_the_campaign_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        'name = "x"\ninput = "list.csv"\n[message]\nChannelType = "whatsapp"\nType = "template"\n'
        'From = "1"\nTo = "{{ p }}"\nTemplateCode = "t"\nLanguage = "en"\n'
    )
    campaign = load_campaign(tmp_path / "c.toml")
    assert campaign.input == tmp_path / "list.csv"
    assert campaign.source == tmp_path / "c.toml"


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_campaign(tmp_path / "c.toml")


def test_names_become_safe_folder_names() -> None:
    assert parse_campaign({**BASE, "name": "spring sale/2026"}).name == "spring-sale-2026"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('{ a = "b", c = ["d"] }', "TemplateParams.extra must be a string, not a table"),
        ('["a"]', "TemplateParams.extra must be a string, not an array"),
        ("true", 'TemplateParams.extra must be a string; quote it: extra = "true"'),
        ("5", 'TemplateParams.extra must be a string; quote it: extra = "5"'),
        ("2.5", 'TemplateParams.extra must be a string; quote it: extra = "2.5"'),
    ],
)
def test_template_params_values_must_be_strings(tmp_path: Path, value: str, error: str) -> None:
    # The input does not exist: the campaign file is refused before any list is read.
    (tmp_path / "c.toml").write_text(
        'name = "x"\ninput = "missing.csv"\n[message]\nChannelType = "whatsapp"\n'
        'Type = "template"\nFrom = "1"\nTo = "{{ p }}"\nTemplateCode = "t"\nLanguage = "en"\n'
        f'[message.TemplateParams]\nname = "{{{{ p }}}}"\nextra = {value}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_campaign(tmp_path / "c.toml")
    assert str(info.value) == f"[message] {error}"
