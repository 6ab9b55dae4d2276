"""The fill-in form for a campaign: its fields to the same TOML a campaign file holds,
checked by the config loader and the plan's own column check (with their did-you-mean).
Pure: no I/O."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from campaigner.channels import CHANNELS
from campaigner.config import parse_campaign
from campaigner.errors import CampaignerError
from campaigner.rows import Plan
from campaigner.spelling import closest

__all__ = ("PARAM_SLOTS", "CampaignForm", "FormCheck")

PARAM_SLOTS = 5  # template parameter rows the form offers
TYPES = ("template", "message")


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except DEL must be escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _column_template(column: str) -> str:
    return "{{ " + column + " }}"


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # "column" or "expression"
    value: str


@dataclass(frozen=True)
class FormCheck:
    toml: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CampaignForm:
    name: str = ""
    channel: str = "whatsapp"
    sender: str = ""
    type: str = "template"
    template_code: str = ""
    template_name: str = ""
    language: str = "en"
    text: str = ""  # Type=message: the text Content
    recipient_column: str = ""
    params: tuple[Param, ...] = ()
    default_region: str = ""
    qps: str = "250"

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CampaignForm:
        def get(key: str, default: str = "") -> str:
            value = fields.get(key, default)
            return value.strip() if isinstance(value, str) else default

        params = []
        for n in range(PARAM_SLOTS):
            key = get(f"param_key_{n}")
            if key:
                kind = "expression" if get(f"param_kind_{n}") == "expression" else "column"
                params.append(Param(key, kind, get(f"param_value_{n}")))
        return cls(
            name=get("name"),
            channel=get("channel", "whatsapp"),
            sender=get("sender"),
            type=get("type", "template"),
            template_code=get("template_code"),
            template_name=get("template_name"),
            language=get("language", "en"),
            text=get("text"),
            recipient_column=get("recipient_column"),
            params=tuple(params),
            default_region=get("default_region").upper(),
            qps=get("qps", "250"),
        )

    def _column_problem(self, what: str, column: str, columns: Sequence[str]) -> str | None:
        if not column:
            return f"{what}: choose a column"
        if column in columns:
            if not column.isidentifier():
                return (
                    f"{what}: the column name {column!r} is not a plain word, so a template "
                    "cannot name it; rename the column in the file"
                )
            return None
        hint = closest(column, columns)
        return f"{what}: the list has no column {column!r}" + (
            f" (did you mean {hint!r}?)" if hint else ""
        )

    def to_toml(self) -> str:
        lines = [f"name = {_toml_string(self.name or 'web-campaign')}", "", "[send]"]
        qps = self.qps if self.qps.isdigit() else "0"
        lines.append(f"qps = {int(qps)}")
        if self.default_region:
            lines.append(f"default_region = {_toml_string(self.default_region)}")
        lines += ["", "[message]"]
        message = {
            "ChannelType": self.channel,
            "Type": self.type,
            "From": self.sender,
            "To": _column_template(self.recipient_column) if self.recipient_column else "",
        }
        if self.type == "template":
            if self.template_code:
                message["TemplateCode"] = self.template_code
            if self.template_name:
                message["TemplateName"] = self.template_name
            message["Language"] = self.language
        else:
            message["MessageType"] = "text"
        lines += [f"{key} = {_toml_string(value)}" for key, value in message.items()]
        if self.type == "template" and self.params:
            lines += ["", "[message.TemplateParams]"]
            for p in self.params:
                value = _column_template(p.value) if p.kind == "column" else p.value
                lines.append(f"{_toml_string(p.key)} = {_toml_string(value)}")
        if self.type == "message":
            lines += ["", "[message.Content]", f"text = {_toml_string(self.text)}"]
        return "\n".join(lines) + "\n"

    def check(self, columns: Sequence[str]) -> FormCheck:
        """The TOML, and what is wrong with it for a list with these ``columns``."""
        problems = []
        if self.channel not in CHANNELS:
            problems.append(f"channel: choose one of {', '.join(CHANNELS)}")
        if self.type not in TYPES:
            problems.append("message type: template or message")
        if not self.qps.isdigit():
            problems.append("QPS: a whole number from 1 to 250")
        column_problem = self._column_problem("recipient column", self.recipient_column, columns)
        if column_problem:
            problems.append(column_problem)
        for p in self.params:
            if p.kind == "column":
                problem = self._column_problem(f"parameter {p.key!r}", p.value, columns)
                if problem:
                    problems.append(problem)
        text = self.to_toml()
        if problems:
            return FormCheck(text, problems)
        try:
            campaign = parse_campaign(tomllib.loads(text))
            Plan(campaign).check_columns(tuple(columns))
        except CampaignerError as exc:
            problems.append(str(exc))
        except tomllib.TOMLDecodeError as exc:  # not expected: every value is quoted
            problems.append(f"the campaign is not valid TOML: {exc}")
        return FormCheck(text, problems)
