"""Reconcile settles ``unknown`` rows from ListChatappMessage: a real SQLite journal and
the simulator over real loopback HTTP, in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from campaigner.cams import SEND_ACTION
from campaigner.columns import ROW, STATUS, TO
from campaigner.config import parse_campaign
from campaigner.inputs import open_input
from campaigner.journal import Journal
from campaigner.reconcile import reconcile_rows
from campaigner.rows import Deduper, Plan
from campaigner.send.client import CamsClient
from campaigner.signing import Credentials
from campaigner.sim.faults import SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.server import serve
from campaigner.statuses import JournalState, Status

pytestmark = pytest.mark.anyio
CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")
CAMPAIGN = {
    "name": "reconcile",
    "message": {
        "ChannelType": "whatsapp",
        "Type": "template",
        "From": "8613800000000",
        "To": "{{ phone }}",
        "TemplateCode": "tpl",
        "Language": "en",
        "TemplateParams": {"name": "{{ name }}"},
    },
}
PHONES = ["8613900000002", "8613900000003", "8613900000004", "8613900000005"]


class Run:
    """A run whose four rows were all in flight when it was killed; rows 2 and 3 reached
    the simulator, rows 4 and 5 did not."""

    def __init__(self, folder: Path) -> None:
        source = folder / "list.csv"
        source.write_text("phone,name\n" + "".join(f"{p},Ana\n" for p in PHONES), encoding="utf-8")
        self.plan = Plan(parse_campaign(CAMPAIGN, base_dir=folder))
        self.table = open_input(source)
        prepared = pl.concat([self.plan.prepare(b, Deduper()) for b in self.table.batches()])
        assert prepared[STATUS].to_list() == [Status.WOULD_SEND.value] * len(PHONES)
        self.rows = {row[ROW]: row for row in prepared.iter_rows(named=True)}
        self.journal = Journal.in_run(folder)
        self.journal.add_rows(
            (r, JournalState.PENDING, row[TO], None) for r, row in self.rows.items()
        )
        self.journal.apply(list(self.rows), [])  # every row's intent is committed

    def query(self, row: int) -> dict[str, str]:
        return self.plan.query(self.rows[row])

    def states(self) -> dict[int, str]:
        return self.journal.states()


async def deliver(url: str, run: Run, rows: list[int]) -> dict[int, str]:
    """Send these rows for real (their answers are 'lost'); their MessageIds."""
    ids = {}
    async with CamsClient(CREDS, endpoint=url) as client:
        for row in rows:
            status, body = await client.call(SEND_ACTION, run.query(row))
            assert status == 200 and body["Code"] == "OK", body
            ids[row] = body["MessageId"]
    return ids


async def reconcile(url: str, run: Run, **options: Any) -> Any:
    async with CamsClient(CREDS, endpoint=url) as client:
        return await reconcile_rows(run.plan, run.table, run.journal, client, **options)


async def test_found_messages_are_sent_and_the_rest_wait_out_the_grace_period(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path)
    async with serve(Simulator(SimulatorConfig(latency_ms=1))) as url:
        ids = await deliver(url, run, [2, 3])

        first = await reconcile(url, run, grace_s=3600)
        assert (first.interrupted, first.found_sent, first.not_sent) == (4, 2, 0)
        assert (first.still_unknown, first.lookup_errors) == (2, 0)
        assert run.states() == {2: "sent", 3: "sent", 4: "unknown", 5: "unknown"}
        found = {r[0]: r[3] for r in run.journal.rows_between(2, 5)}  # row → MessageId
        assert {2: found[2], 3: found[3]} == ids

        # Once the grace period has passed, a message not listed was not sent: a resume
        # sends it (pending); the rows already settled are not looked up again.
        second = await reconcile(url, run, grace_s=0)
        assert (second.interrupted, second.found_sent, second.not_sent) == (0, 0, 2)
        assert run.states() == {2: "sent", 3: "sent", 4: "pending", 5: "pending"}

        third = await reconcile(url, run, grace_s=0)
        assert (third.found_sent, third.not_sent, third.still_unknown) == (0, 0, 0)


async def test_a_failed_lookup_leaves_the_row_unknown(tmp_path: Path) -> None:
    run = Run(tmp_path)
    async with serve(Simulator(SimulatorConfig(latency_ms=1))) as url:
        await deliver(url, run, [2])
        async with CamsClient(Credentials("testAccessKeyId", "wrong"), endpoint=url) as client:
            said: list[str] = []
            result = await reconcile_rows(
                run.plan, run.table, run.journal, client, grace_s=0, say=said.append
            )
    assert (result.interrupted, result.lookup_errors, result.found_sent) == (4, 4, 0)
    assert set(run.states().values()) == {"unknown"}  # never guessed
    assert len(said) == 4 and all("lookup answered" in line for line in said)
