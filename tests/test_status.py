"""``campaigner status``: ListChatappMessage asked about the sent rows without a final
receipt, end to end against the simulator as a real HTTP server in a child process; and
the lookup's pure parts (the MessageStatus mapping, the time windows)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from campaigner.config import parse_campaign
from campaigner.inputs import open_input
from campaigner.lookup import Unsettled, listed_receipt, look_up, windows, with_business
from campaigner.receipts.parse import Inbound, Receipt, phone_key
from campaigner.receipts.store import ReceiptStore
from campaigner.rows import Plan
from campaigner.send.client import CamsClient
from campaigner.signing import Credentials
from campaigner.sim.faults import SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox, run, send_args
from campaigner.sim.server import serve

FINAL = {"Read", "Failed"}
PHONES = [f"86139{i:08d}" for i in range(40)]
CAMPAIGN = """\
name = "status-test"
input = "list.csv"

[message]
ChannelType = "{channel}"
Type = "template"
From = "8613800000000"
To = "{{{{ phone }}}}"
TemplateCode = "tpl"
Language = "en"
"""


def campaign(folder: Path, channel: str = "whatsapp", ids: bool = False) -> Path:
    recipients = [f"user.{i}" for i in range(10)] if ids else PHONES
    (folder / "list.csv").write_text("phone\n" + "".join(f"{p}\n" for p in recipients))
    path = folder / "c.toml"
    text = CAMPAIGN.format(channel=channel)
    if channel == "messenger":  # no Language or template codes off WhatsApp/Viber
        text = text.replace('Type = "template"', 'Type = "message"\nMessageType = "text"')
        text = text.replace('TemplateCode = "tpl"\nLanguage = "en"\n', "")
        text += '\n[message.Content]\ntext = "hello"\n'
    path.write_text(text)
    return path


def sent_run(sim: Sandbox, folder: Path, channel: str = "whatsapp") -> Path:
    out = folder / "workspace"
    code, stdout, stderr = run(*send_args(campaign(folder, channel, channel != "whatsapp"), out,
                                          sim.url, None))  # fmt: skip
    assert code == 0, stderr
    return Path(json.loads(stdout)["run_dir"])


def report_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def stored(workspace: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(workspace / "receipts.sqlite") as db:
        return db.execute("SELECT message_id, status, source FROM receipts").fetchall()


def funnel_of(rows: list[dict[str, str]]) -> dict[str, object]:
    """The funnel summary.json must hold, counted from report.csv itself."""
    sent = [r for r in rows if r["status"] == "sent"]
    failed = [r for r in sent if r["delivery"] == "Failed"]
    codes: dict[str, int] = {}
    for r in failed:
        code = r["delivery_error"].partition(":")[0] or "unknown"
        codes[code] = codes.get(code, 0) + 1
    return {
        "sent": len(sent),
        "delivered": sum(r["delivery"] in ("Delivered", "Read") for r in sent),
        "read": sum(r["delivery"] == "Read" for r in sent),
        "replied": sum(bool(r["reply"]) for r in sent),
        "failed": len(failed),
        "failed_by_code": codes,
        "pending": sum(r["delivery"] in ("", "Sent") for r in sent),
    }


@pytest.mark.slow
def test_status_looks_up_stores_and_rebuilds_the_report(tmp_path: Path) -> None:
    rates = ["--fail-rate", "0.25", "--deliver-rate", "0.7", "--read-rate", "0.5",
             "--receipt-delay-ms", "0:0", "--seed", "5"]  # fmt: skip
    with Sandbox(latency_ms=0, extra=rates) as sim:
        run_dir = sent_run(sim, tmp_path)
        before = report_rows(run_dir)
        assert {r["status"] for r in before} == {"sent"}
        assert {r["delivery"] for r in before} == {""}  # nothing pushed: no callbacks
        assert not (run_dir.parent / "receipts.sqlite").exists()

        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 0, err
        assert f"Looked up {len(PHONES)} sent rows without a final receipt in 1 request:" in out
        rows = report_rows(run_dir)
        states = [r["delivery"] for r in rows]
        assert set(states) <= {"Sent", "Delivered", "Read", "Failed"} and "" not in states
        assert {"Failed", "Read"} <= set(states)  # the seeded rates give some of each
        for r in rows:
            failed = r["delivery"] == "Failed"
            assert bool(r["delivery_error"]) == failed
            if failed:
                assert r["delivery_error"].split(": ", 1)[0].isdigit(), r["delivery_error"]
            assert r["delivered_at"] == r["read_at"] == ""  # a listing says no time
        receipts = stored(run_dir.parent)
        assert {source for _, _, source in receipts} == {"lookup"}
        by_id = {mid: status for mid, status, _ in receipts}
        assert by_id == {r["MessageId"]: r["delivery"] for r in rows}
        summary = json.loads((run_dir / "summary.json").read_text())
        assert {k: summary["delivery"][k] for k in funnel_of(rows)} == funnel_of(rows)
        assert summary["delivery"]["no_receipt"] == 0
        assert summary["mode"] == "send"  # the rest of the summary is kept
        assert f"Delivery: sent {len(PHONES)} → delivered" in out
        assert sim.stats()["outcomes"]["listed"] == 1

        # Again: only the rows whose state can still move are asked about.
        moving = sum(s in ("Sent", "Delivered") for s in states)
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 0, err
        assert f"Looked up {moving} sent rows without a final receipt" in out
        assert len(stored(run_dir.parent)) == len(receipts)  # nothing changed: nothing new


@pytest.mark.slow
def test_pushed_final_receipts_are_not_asked_about_and_report_shows_replies(
    tmp_path: Path,
) -> None:
    with Sandbox(latency_ms=0, extra=["--fail-rate", "0", "--receipt-delay-ms", "0:0"]) as sim:
        run_dir = sent_run(sim, tmp_path)
        rows = report_rows(run_dir)
        first = rows[0]
        with ReceiptStore.open(run_dir.parent) as store:
            store.add_receipts(
                Receipt(r["MessageId"], "Read", 1_900_000_000_000, None, None, r["To"],
                        "8613800000000", "{}")
                for r in rows[:30]
            )  # fmt: skip
            store.add_inbound(
                [Inbound("in-1", phone_key(first["To"]), "8613800000000", "TEXT",
                         "@SUM(1+1) thanks", None, 1_900_000_001_000, "{}")]
            )  # fmt: skip
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 0, err
        assert f"Looked up {len(PHONES) - 30} sent rows without a final receipt" in out
        rows = report_rows(run_dir)
        assert rows[0]["delivery"] == "Read" and rows[0]["read_at"] == "2030-03-17T17:46:40.000Z"
        assert rows[0]["reply"] == "'@SUM(1+1) thanks"  # defused in the CSV
        assert "replied 1" in out

        # `report` rebuilds from the same store and prints the funnel too.
        code, out, err = run("report", str(run_dir))
        assert code == 0, err
        assert f"Delivery: sent {len(PHONES)} →" in out and "replied 1" in out
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["delivery"]["replied"] == 1

        # Every row final: nothing to ask.
        listed = sim.stats()["outcomes"]["listed"]
        with ReceiptStore.open(run_dir.parent) as store:
            store.add_receipts(
                Receipt(r["MessageId"], "Failed", None, "131050", None, r["To"], None, "{}")
                for r in rows[30:]
            )
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 0, err
        assert "Every sent row has a final receipt (Read or Failed): nothing to look up" in out
        assert sim.stats()["outcomes"]["listed"] == listed
        assert "failed 10: 131050 × 10" in out


@pytest.mark.slow
def test_messenger_rows_are_not_looked_up_and_the_summary_says_so(tmp_path: Path) -> None:
    with Sandbox(latency_ms=0) as sim:
        run_dir = sent_run(sim, tmp_path, "messenger")
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 0, err
        assert (
            "10 sent rows have no final receipt, but messenger messages cannot be looked up" in out
        )
        assert sim.stats()["outcomes"].get("listed", 0) == 0  # never asked
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["delivery"]["cannot_look_up"] == 10
        assert summary["delivery"]["no_receipt"] == 0 and summary["delivery"]["lookup"] is False
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url, "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["run_dir"] == str(run_dir) and answer["channel"] == "messenger"
        assert (answer["unsettled"], answer["cannot_look_up"], answer["requests"]) == (10, 10, 0)
        assert answer["delivery"] == summary["delivery"]


@pytest.mark.slow
def test_a_refused_account_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    with Sandbox(latency_ms=0) as sim:
        run_dir = sent_run(sim, tmp_path)
        wrong = {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret"}
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url, env=wrong)
        assert code == 1, (out, err)
        [line] = [x for x in err.splitlines() if x.startswith("error: ")]
        assert "CAMS refused the lookup" in line and "Traceback" not in err
        assert stored(run_dir.parent) == []

        store = run_dir.parent / "receipts.sqlite"
        for leftover in store.parent.glob("receipts.sqlite-*"):
            leftover.unlink()
        store.write_bytes(b"not a database" * 1000)
        code, out, err = run("status", str(run_dir), "--endpoint", sim.url)
        assert code == 1, (out, err)
        [line] = [x for x in err.splitlines() if x.startswith("error: ")]
        assert "receipts.sqlite cannot be read" in line and "Traceback" not in err


@pytest.mark.parametrize(
    ("status", "reason", "want"),
    [
        ("success", None, ("Sent", None, None)),
        ("SENT", None, ("Sent", None, None)),
        (" Delivered ", None, ("Delivered", None, None)),
        ("read", None, ("Read", None, None)),
        ("failed", "131026:Receiver is incapable of receiving this message",
         ("Failed", "131026", "Receiver is incapable of receiving this message")),
        ("Fail", "no reason code here", ("Failed", None, "no reason code here")),
        ("FAILED", None, ("Failed", None, None)),
    ],
)  # fmt: skip
def test_message_status_is_read_case_insensitively(
    status: str, reason: str | None, want: tuple[str, str | None, str | None]
) -> None:
    item = {"MessageId": "m1", "MessageStatus": status, "FailReason": reason,
            "UserNumber": "+86 139 0000 0000", "BusinessNumber": "8613800000000"}  # fmt: skip
    got = listed_receipt(item)
    assert got is not None
    assert (got.status, got.error_code, got.error_description) == want
    assert got.ts_ms is None and got.recipient == "8613900000000"
    assert json.loads(got.raw)["MessageStatus"] == status


@pytest.mark.parametrize("status", ["", "pending", None, "deleted"])
def test_an_unreadable_message_status_is_not_stored(status: str | None) -> None:
    assert listed_receipt({"MessageId": "m1", "MessageStatus": status}) is None


def test_windows_are_cut_per_sender_and_span() -> None:
    rows = [Unsettled(2, "a", 1000.0, "B1"), Unsettled(3, "b", 1500.0, "B1"),
            Unsettled(4, "c", 1700.0, "B1"), Unsettled(5, "d", 1100.0, "B2")]  # fmt: skip
    got = windows(rows, now_s=1750.0, window_s=600.0, skew_s=120.0)
    assert [(w.business, w.start_ms, w.end_ms, sorted(w.message_ids)) for w in got] == [
        ("B1", 880_000, 1_620_000, ["a", "b"]),
        ("B1", 1_580_000, 1_750_000, ["c"]),  # never past now
        ("B2", 980_000, 1_220_000, ["d"]),
    ]


def test_a_per_row_sender_number_is_rendered_again_from_the_input(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("phone,sender\n8613900000002,8613800000001\n8613900000003, 8613800000009\n")
    data = {
        "name": "per-row-from",
        "message": {"ChannelType": "whatsapp", "Type": "template", "From": "{{ sender }}",
                    "To": "{{ phone }}", "TemplateCode": "tpl", "Language": "en"},
    }  # fmt: skip
    plan = Plan(parse_campaign(data, base_dir=tmp_path))
    rows = [Unsettled(2, "m2", 1.0), Unsettled(3, "m3", 2.0)]
    got = with_business(rows, plan, open_input(source))
    assert [(r.row, r.business) for r in got] == [(2, "8613800000001"), (3, "8613800000009")]
    fixed = Plan(parse_campaign({**data, "message": {**data["message"], "From": "8613800000005"}},
                                base_dir=tmp_path))  # fmt: skip
    assert {r.business for r in with_business(rows, fixed, open_input(source))} == {"8613800000005"}


@pytest.mark.anyio
async def test_a_long_lookup_says_how_far_it_got_and_counts_what_was_not_listed(
    tmp_path: Path,
) -> None:
    rows = [Unsettled(r, f"m{r}", 1_000_000.0 + 1000 * r, "8613800000000") for r in range(2, 6)]
    ticks = iter(range(0, 10_000, 40))  # every look at the clock: 40 s later
    said: list[str] = []
    async with serve(Simulator(SimulatorConfig(latency_ms=1))) as url:
        client = CamsClient(Credentials(KEY_ID, SECRET), endpoint=url)
        with ReceiptStore.open(tmp_path) as store:
            counts = await look_up(
                rows,
                "whatsapp",
                client,
                store,
                grant=anyio.lowlevel.checkpoint,
                clock=lambda: 2_000_000.0 + next(ticks),
                say=said.append,
            )
        await client.aclose()
    assert (counts.requests, counts.not_listed, counts.found, counts.stored) == (4, 4, {}, 0)
    assert said == [f"looked up {n} of 4 time windows ({n} requests)" for n in (1, 2, 3)]
