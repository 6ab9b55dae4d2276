"""``send --test-to NUMBER[,NUMBER…]``: the first valid row's call, sent for real to a few
test numbers instead of its recipient, with CAMS's answers.

Nothing of a run is touched: no run folder, no journal, no record of runs, no ledger.
The numbers pass the same checks as the list's (a phone number is normalized to E.164
with the campaign's ``[send] default_region`` and ``ambiguous``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from campaigner.cams import ReplyKind
from campaigner.channels import check_recipient, takes_phone_number
from campaigner.columns import ROW, STATUS
from campaigner.config import Campaign
from campaigner.errors import ConfigError, InputError
from campaigner.options import TestSendAnswer
from campaigner.phones import normalize_phones
from campaigner.rows import Deduper, Plan, mask_recipient, open_campaign_input, resolve_input
from campaigner.send.client import CamsClient, check_endpoint
from campaigner.signing import Credentials
from campaigner.statuses import Status

__all__ = ("MAX_TEST_NUMBERS", "run_test_send", "check_test_numbers")

MAX_TEST_NUMBERS = 5  # a test, not a campaign: a handful of the sender's own phones


def check_test_numbers(plan: Plan, numbers: Sequence[str], recipient_type: str | None) -> list[str]:
    """The test numbers as CAMS takes them, or a ``ConfigError`` naming the first bad one
    (given masked: it may be someone's number)."""
    wanted = [n.strip() for n in numbers if n.strip()]
    if not wanted:
        raise ConfigError("--test-to needs at least one number")
    if len(wanted) > MAX_TEST_NUMBERS:
        raise ConfigError(f"--test-to takes at most {MAX_TEST_NUMBERS} numbers (got {len(wanted)})")
    values = wanted
    if takes_phone_number(plan.channel, recipient_type):
        send = plan.campaign.send
        found = normalize_phones(
            pl.Series(wanted, dtype=pl.String), send.default_region, send.ambiguous
        )
        values = []
        for raw, e164, error in zip(wanted, found["e164"], found["phone_error"], strict=True):
            if e164 is None:
                raise ConfigError(f"--test-to {mask_recipient(raw)}: {error}")
            values.append(str(e164))
    for value in values:
        problem = check_recipient(plan.channel, value, recipient_type)
        if problem is not None:
            raise ConfigError(f"--test-to {mask_recipient(value)}: {problem.message}")
    return list(dict.fromkeys(values))  # each number once


def _first_valid(plan: Plan, campaign: Campaign, input_path: Path | None) -> Mapping[str, Any]:
    table = open_campaign_input(campaign, resolve_input(campaign, input_path), plan)
    deduper = Deduper()
    for batch in table.batches():
        prepared = plan.prepare(batch, deduper)
        valid = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)
        if not valid.is_empty():
            return valid.row(0, named=True)
    raise InputError("--test-to: no row of the list is valid, so there is no message to test")


async def run_test_send(
    campaign: Campaign,
    numbers: Sequence[str],
    *,
    input_path: Path | None,
    endpoint: str,
    credentials: Credentials,
) -> list[TestSendAnswer]:
    """Send the first valid row's call to each of ``numbers`` (one at a time, well within
    any rate limit) and return CAMS's answers in the same order."""
    plan = Plan(campaign)
    check_endpoint(endpoint)
    row = _first_valid(plan, campaign, input_path)
    query = plan.query(row)
    targets = check_test_numbers(plan, numbers, query.get("RecipientType"))
    answers = []
    async with CamsClient(
        credentials, endpoint=endpoint, timeout_s=campaign.send.timeout_s
    ) as client:
        for to in targets:
            reply = await client.send({**query, "To": to})
            answers.append(
                TestSendAnswer(
                    to=mask_recipient(to),
                    row=int(row[ROW]),
                    sent=reply.kind is ReplyKind.SENT,
                    code=reply.code,
                    message=reply.message,
                    message_id=reply.message_id,
                    request_id=reply.request_id,
                )
            )
    return answers
