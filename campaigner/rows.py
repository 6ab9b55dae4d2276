"""Turning input batches into checked rows: render, normalize ``To``, validate, dedupe.

Everything here works on whole polars batches. The result of ``Plan.prepare`` is the
input batch plus ``STATUS`` (would_send / invalid / duplicate), ``TO`` (the
normalized recipient), ``ERROR`` and one column per rendered template slot, from
which ``Plan.query`` builds a row's API call. Preparation is deterministic, so a report
can always be rebuilt from the input and the journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from campaigner.cams import build_query
from campaigner.channels import GROUP_CHANNELS, ID_PATTERN, PHONE_CHANNELS, check_call, id_rule
from campaigner.columns import ERROR, ISSUE, RENDER_ERROR, ROW, STATUS, TO, internal
from campaigner.config import Campaign
from campaigner.errors import ConfigError
from campaigner.inputs import InputTable, open_input
from campaigner.phones import Ambiguity, normalize_phones
from campaigner.rendering import MessageTemplate, Slot, compile_message
from campaigner.statuses import Status

__all__ = (
    "AMBIGUOUS_READINGS",
    "Deduper",
    "Plan",
    "mask_recipient",
    "open_campaign_input",
    "resolve_input",
)

# Work columns added next to the input columns (whose names may be anything).
_FIRST_ROW = internal("first_row")
_TO_RAW, _TO_ERROR, _CALL_ERROR = internal("to_raw"), internal("to_error"), internal("call_error")
# Both readings of an ambiguous phone number (null for every other row, and for rows invalid
# for another reason), whatever [send] ambiguous chose: the preview counts what each choice
# would send.
AMBIGUOUS_READINGS: dict[Ambiguity, str] = {
    "region": internal("region_reading"),
    "country_code": internal("country_code_reading"),
}
# A syntactically valid stand-in used when checking a call's other parameters.
_PLACEHOLDER_TO = "8613800000000"
# Slots under these parameters carry free text the reference puts no rules on.
_FREE_TEXT = frozenset({"TemplateParams", "Payload", "FlowAction", "ProductAction", "To"})


def _calling_code_length(digits: str) -> int:
    # Calling codes are prefix-free, so the first known 1-3 digit prefix is the code.
    for length in (1, 2, 3):
        if int(digits[:length] or 0) in COUNTRY_CODE_TO_REGION_CODE:
            return length
    return 2


def mask_recipient(to: str) -> str:
    """Country code and last 4 digits only (``86*******5678``), as Alibaba's examples show
    numbers; other IDs keep only their last 4 characters."""
    if len(to) <= 6:
        return "*" * len(to)
    keep = _calling_code_length(to) if to.isdigit() else 0
    return to[:keep] + "*" * (len(to) - keep - 4) + to[-4:]


@dataclass
class Deduper:
    """Remembers the first row of every recipient across batches.

    Recipients are kept as 64-bit hashes (16 bytes a recipient with the row number), so a
    million-row list costs ~16 MB; a collision between two of a million numbers has odds
    of about 1 in 10^7.
    """

    seen: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"__key": pl.UInt64, "__first": pl.Int64})
    )

    def mark(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Set later rows of an already seen recipient to duplicate (pointing to the first)."""
        sendable = frame[STATUS] == Status.WOULD_SEND.value
        candidates = (
            frame.filter(sendable)
            .select(pl.col(TO).hash(seed=0).alias("__key"), ROW)
            .with_columns(pl.col(ROW).first().over("__key").alias("__first_here"))
        )
        joined = candidates.join(self.seen, on="__key", how="left", maintain_order="left")
        first = joined.select(pl.coalesce("__first", "__first_here").alias("f"))["f"]
        dup_rows = joined.with_columns(first.alias(_FIRST_ROW)).filter(
            pl.col(_FIRST_ROW) != pl.col(ROW)
        )
        fresh = joined.filter(pl.col("__first").is_null() & (pl.col("__first_here") == pl.col(ROW)))
        self.seen = pl.concat(
            [self.seen, fresh.select("__key", pl.col(ROW).alias("__first"))], rechunk=True
        )
        if dup_rows.is_empty():
            return frame
        pointers = dup_rows.select(ROW, _FIRST_ROW)
        out = frame.join(pointers, on=ROW, how="left", maintain_order="left")
        return out.with_columns(
            pl.when(pl.col(_FIRST_ROW).is_not_null())
            .then(pl.lit(Status.DUPLICATE.value))
            .otherwise(pl.col(STATUS))
            .alias(STATUS),
            pl.when(pl.col(_FIRST_ROW).is_not_null())
            .then(pl.format("same recipient as row {}", pl.col(_FIRST_ROW)))
            .otherwise(pl.col(ERROR))
            .alias(ERROR),
        ).drop(_FIRST_ROW)


class Plan:
    """A compiled campaign: what every row must satisfy and how its call is built."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.template: MessageTemplate = compile_message(campaign.message)
        channel_slot = self.template.slot("ChannelType")
        if channel_slot is None:
            raise ConfigError(
                "[message] ChannelType is required (whatsapp, messenger, instagram or viber)"
            )
        if channel_slot.kind != "static":
            raise ConfigError("[message] ChannelType must be a fixed value, not a template")
        self.channel = channel_slot.parts[0][1].strip()
        to_slot = self.template.slot("To")
        if to_slot is None:
            raise ConfigError('[message] To is required, e.g. To = "{{ phone }}"')
        self.to_slot: Slot = to_slot
        self.rule_slots = tuple(
            s for s in self.template.dynamic if str(s.path[0]) not in _FREE_TEXT
        )
        self._check_static()

    def _stand_in(self) -> dict[str, str]:
        return {s.column: "x" for s in self.template.dynamic}

    def _problems(self, values: Mapping[str, str | None]) -> list[str]:
        message = self.template.build(values)
        message["To"] = _PLACEHOLDER_TO
        return [p.message for p in check_call(build_query(message)) if p.field != "To"]

    def _check_static(self) -> None:
        """Problems every row would share are configuration errors, found before reading."""
        if self.rule_slots:
            return
        problems = self._problems(self._stand_in())
        if problems:
            raise ConfigError("[message] " + "; ".join(problems))

    def check_columns(self, columns: tuple[str, ...]) -> None:
        self.template.check_columns(columns)

    def prepare(self, batch: pl.DataFrame, deduper: Deduper) -> pl.DataFrame:
        """Render, normalize and validate one batch; mark duplicates."""
        rendered = self.template.render(batch)
        frame = pl.concat([batch, rendered], how="horizontal")
        to_raw = (
            frame[self.to_slot.column]
            if self.to_slot.kind != "static"
            else pl.Series([self.to_slot.parts[0][1]] * frame.height, dtype=pl.String)
        )
        to_value, to_error, readings = self._recipients(frame, to_raw)
        frame = frame.with_columns(
            to_value.alias(TO),
            to_raw.alias(_TO_RAW),
            to_error.alias(_TO_ERROR),
            self._call_errors(frame).alias(_CALL_ERROR),
            *readings,
        )
        otherwise_valid = pl.coalesce(ISSUE, RENDER_ERROR, _CALL_ERROR).is_null()
        frame = frame.with_columns(
            pl.coalesce(ISSUE, RENDER_ERROR, _TO_ERROR, _CALL_ERROR).alias(ERROR),
            *(
                pl.when(otherwise_valid).then(pl.col(c)).alias(c)
                for c in AMBIGUOUS_READINGS.values()
            ),
        )
        frame = frame.with_columns(
            pl.when(pl.col(ERROR).is_null())
            .then(pl.lit(Status.WOULD_SEND.value))
            .otherwise(pl.lit(Status.INVALID.value))
            .alias(STATUS),
            pl.coalesce(TO, _TO_RAW).alias(TO),
        ).drop(RENDER_ERROR, _TO_ERROR, _CALL_ERROR, _TO_RAW)
        return deduper.mark(frame)

    def _recipients(
        self, frame: pl.DataFrame, to_raw: pl.Series
    ) -> tuple[pl.Series, pl.Series, list[pl.Series]]:
        """Each row's ``To`` and its error: phone numbers in E.164; user and WhatsApp group
        IDs (``RecipientType=group``, fixed or per row) kept as the exact ID they are. Then
        the ``AMBIGUOUS_READINGS`` columns."""
        height = frame.height
        kind_slot = self.template.slot("RecipientType")
        if self.channel not in PHONE_CHANNELS:
            as_id = pl.Series([True] * height, dtype=pl.Boolean)
        elif self.channel not in GROUP_CHANNELS or kind_slot is None:
            as_id = pl.Series([False] * height, dtype=pl.Boolean)
        else:
            kinds = (
                frame[kind_slot.column]
                if kind_slot.kind != "static"
                else pl.Series([kind_slot.parts[0][1]] * height, dtype=pl.String)
            )
            # Loosely read here; check_call reports a RecipientType that is not exactly "group".
            as_id = (kinds.str.strip_chars().str.to_lowercase() == "group").fill_null(False)
        send = self.campaign.send
        phones = (
            None
            if as_id.all()
            else normalize_phones(to_raw, send.default_region, send.ambiguous).rename(
                {f"{choice}_reading": c for choice, c in AMBIGUOUS_READINGS.items()}
            )
        )
        readings = [
            pl.Series(c, [None] * height, dtype=pl.String)
            if phones is None
            else pl.select(pl.when(~as_id).then(phones[c])).to_series().alias(c)
            for c in AMBIGUOUS_READINGS.values()
        ]
        if phones is not None and not as_id.any():
            return phones["e164"], phones["phone_error"], readings
        ids = to_raw.str.strip_chars()
        ok = ids.str.contains(f"^(?:{ID_PATTERN})$").fill_null(False)
        rule = id_rule(self.channel, "group")  # the user-ID wording off WhatsApp
        id_value = pl.select(pl.when(ok).then(ids)).to_series()
        id_error = pl.select(pl.when(~ok).then(pl.lit(rule))).to_series()
        if phones is None:
            return id_value, id_error, readings
        mixed = pl.DataFrame({"id": as_id, "iv": id_value, "ie": id_error}).with_columns(
            phones["e164"].alias("pv"), phones["phone_error"].alias("pe")
        )
        chosen = mixed.select(
            pl.when("id").then("iv").otherwise("pv").alias("v"),
            pl.when("id").then("ie").otherwise("pe").alias("e"),
        )
        return chosen["v"], chosen["e"], readings

    def _call_errors(self, frame: pl.DataFrame) -> pl.Series:
        """check_call once per distinct combination of the rule-bearing rendered values."""
        if not self.rule_slots:
            return pl.Series([None] * frame.height, dtype=pl.String)
        cols = [s.column for s in self.rule_slots]
        keys = frame.select(cols)
        combos = keys.unique(maintain_order=True)
        stand_in = self._stand_in()
        errors: list[str | None] = []
        for row in combos.iter_rows(named=True):
            if any(v is None for v in row.values()):
                errors.append(None)  # already a render error
                continue
            problems = self._problems({**stand_in, **row})
            errors.append(problems[0] if problems else None)
        checked = combos.with_columns(pl.Series(_CALL_ERROR, errors, dtype=pl.String))
        joined = keys.join(checked, on=cols, how="left", nulls_equal=True, maintain_order="left")
        return joined[_CALL_ERROR]

    def message(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The API parameters of one prepared row (``To`` normalized)."""
        message = self.template.build(row)
        message["To"] = row[TO]
        return message

    def query(self, row: Mapping[str, Any]) -> dict[str, str]:
        return build_query(self.message(row))


def resolve_input(campaign: Campaign, input_path: Path | None) -> Path:
    """The recipient list to read: ``--input``, else the campaign file's ``input``."""
    path = input_path or campaign.input
    if path is None:
        raise ConfigError("no recipient list: set input in the campaign file or pass --input FILE")
    return path


def open_campaign_input(campaign: Campaign, path: Path, plan: Plan) -> InputTable:
    """Open the input and check it fits the campaign: all file-level errors surface here."""
    table = open_input(path, sheet=campaign.sheet, encoding=campaign.encoding)
    plan.check_columns(table.columns)
    return table
