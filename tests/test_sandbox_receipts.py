"""``send --sandbox`` pushes the run's receipts to a receiver in the same process: they are in
the workspace's receipts.sqlite by the time the report is written."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import campaigner
from campaigner.receipts.stopwords import normalize_stop_word, stop_word_set
from campaigner.send.client import CamsClient
from campaigner.signing import Credentials
from campaigner.sim.fate import ReceiptPlan
from campaigner.sim.sandbox import SANDBOX_KEY_ID, SANDBOX_SECRET, serve_sandbox
from tests.samples import sample_campaign

QUERY = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "Language": "en",
    "From": "8613800000000",
}


def _listing(folder: Path, rows: int) -> Path:
    path = folder / "list.csv"
    path.write_text(
        "phone,first_name,coupon\n" + "".join(f"86139{i:08d},ana,C{i}\n" for i in range(rows)),
        encoding="utf-8",
    )
    return path


def test_a_sandbox_send_has_its_receipts_stored_before_the_report(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    options = campaigner.SendOptions(
        sample_campaign(tmp_path), _listing(tmp_path, 40), out=out, sandbox=True, yes=True
    )
    result = campaigner.send(options, confirm=lambda _: True)
    with (result.run_dir / "report.csv").open(newline="", encoding="utf-8-sig") as f:
        ids = {row["MessageId"] for row in csv.DictReader(f) if row["MessageId"]}
    assert len(ids) == 40
    with sqlite3.connect(out / "receipts.sqlite") as db:
        rows = db.execute("SELECT message_id, status, source, ts_ms FROM receipts").fetchall()
        inbound = db.execute("SELECT recipient, sender FROM inbound").fetchall()
    by_id: dict[str, set[str]] = {}
    for message_id, status, source, ts_ms in rows:
        assert source == "push" and ts_ms > 0
        by_id.setdefault(message_id, set()).add(status)
    assert set(by_id) == ids  # every message of the run, and nothing else
    ends = [{"Sent"}, {"Sent", "Failed"}, {"Sent", "Delivered"}, {"Sent", "Delivered", "Read"}]
    for seen in by_id.values():  # each message's fate ran to its end before the report
        assert seen in ends
    assert sum("Delivered" in s for s in by_id.values()) >= 30  # 95 % of 97 % of 40
    assert all(recipient == "8613800000000" for recipient, _ in inbound)


def _recording_receiver(
    bodies: list[tuple[str, list[dict[str, str]]]], arrived: list[float], token: str
) -> Starlette:
    async def post(request: Request) -> JSONResponse:
        assert request.path_params["token"] == token
        bodies.append((request.path_params["kind"], json.loads(await request.body())))
        arrived.append(time.monotonic())
        return JSONResponse({"code": 0, "msg": "OK"})

    return Starlette(routes=[Route("/cams/{kind}/{token}", post, methods=["POST"])])


@pytest.mark.anyio
async def test_the_sandbox_waits_for_the_last_receipts_when_it_ends(tmp_path: Path) -> None:
    bodies: list[tuple[str, list[dict[str, str]]]] = []
    tokens: list[str] = []
    arrived: list[float] = []

    def receiver(workspace: Path, token: str) -> Starlette:
        assert workspace == tmp_path
        tokens.append(token)
        return _recording_receiver(bodies, arrived, token)

    # Slow enough that the Read receipts are due seconds after the sends are done.
    plan = ReceiptPlan(
        fail_rate=0, deliver_rate=1, read_rate=1, reply_rate=0.5, delay_ms=(1000.0, 1500.0)
    )
    sent = []
    async with serve_sandbox(tmp_path, plan=plan, receiver=receiver, drain_s=60) as url:
        async with CamsClient(Credentials(SANDBOX_KEY_ID, SANDBOX_SECRET), endpoint=url) as c:
            for i in range(5):
                reply = await c.send({**QUERY, "To": f"86139{i:08d}"})
                assert reply.message_id
                sent.append(reply.message_id)
        ended = time.monotonic()
    assert len(tokens) == 1 and len(tokens[0]) >= 16
    assert max(arrived) > ended  # it waited for them
    got = {(i["MessageId"], i["Status"]) for kind, body in bodies if kind == "status" for i in body}
    assert got == {(m, s) for m in sent for s in ("Sent", "Delivered", "Read")}
    replies = [i for kind, body in bodies if kind == "inbound" for i in body]
    assert all(i["To"] == QUERY["From"] for i in replies)


@pytest.mark.anyio
async def test_without_a_workspace_nothing_is_pushed(tmp_path: Path) -> None:
    def receiver(workspace: Path, token: str) -> Starlette:
        raise AssertionError("no receiver without a workspace")

    async with serve_sandbox(None, receiver=receiver) as url:
        async with httpx.AsyncClient() as client:
            stats = (await client.get(url + "/_sim/stats")).json()
    assert "push" not in stats


@pytest.mark.slow
def test_sandbox_opt_outs_suppress_those_numbers_in_the_next_send(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    campaign = sample_campaign(tmp_path)
    campaigner.send(campaigner.SendOptions(campaign, out=out, sandbox=True, yes=True))
    words = stop_word_set()
    with sqlite3.connect(out / "receipts.sqlite") as db:
        said = db.execute("SELECT sender, text, payload FROM inbound").fetchall()
    stopped = {
        sender
        for sender, text, payload in said
        if {normalize_stop_word(text or ""), normalize_stop_word(payload or "")} & words
    }
    assert stopped  # about 1.7 % of 924 replies opt out: some 16 numbers
    options = campaigner.SendOptions(campaign, out=out, sandbox=True, yes=True, again=True)
    result = campaigner.send(options)
    with (result.run_dir / "report.csv").open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert {r["To"] for r in rows if r["status"] == "suppressed"} == stopped
