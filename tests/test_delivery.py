"""The report's delivery columns and the delivery funnel: a real run journal and the
workspace's real receipts.sqlite (written by ReceiptStore), joined by DeliverySource."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from campaigner.columns import ERROR, ROW, STATUS, TO
from campaigner.journal import Journal, Outcome
from campaigner.receipts.parse import Inbound, Receipt, phone_key
from campaigner.receipts.store import ReceiptStore
from campaigner.report import (
    DeliverySource,
    Funnel,
    ReportLayout,
    ReportWriter,
    record_delivery,
    report_batch,
)
from campaigner.report.delivery import RECEIPT_SCHEMA, REPLY_CHARS, delivery_columns
from campaigner.report.delivery import phone_key as phone_key_expr
from campaigner.statuses import RESULT_COLUMNS, JournalState, Status

BUSINESS = "8613800000000"
ROWS = range(2, 10)  # 2-7 sent, 8 refused by CAMS, 9 never sent
PHONES = {r: f"86139000000{r:02d}" for r in ROWS}
DELIVERY = ["delivery", "delivery_error", "delivered_at", "read_at", "reply"]


def receipt(mid: str, status: str, ts_ms: int | None, code: str | None = None,
            description: str | None = None, to: str | None = None) -> Receipt:  # fmt: skip
    return Receipt(mid, status, ts_ms, code, description, to, BUSINESS, "{}")


def inbound(mid: str, frm: str, ts_ms: int | None, text: str | None = None,
            payload: str | None = None, kind: str = "TEXT",
            to: str = BUSINESS) -> Inbound:  # fmt: skip
    return Inbound(mid, phone_key(frm), phone_key(to), kind, text, payload, ts_ms, "{}")


def iso(ms: int) -> str:
    return pl.select(pl.lit(ms).cast(pl.Datetime("ms", "UTC"))).item().isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")  # fmt: skip


@dataclass
class Run:
    run_dir: Path
    journal: Journal
    store: ReceiptStore
    sent_ms: dict[int, int]  # each row's send time, as the journal has it

    def prepared(self, rows: range = ROWS) -> pl.DataFrame:
        phones = [PHONES[r] for r in rows]
        return pl.DataFrame(
            {
                "phone": phones,
                ROW: list(rows),
                STATUS: [Status.WOULD_SEND.value] * len(phones),
                TO: phones,
                ERROR: [None] * len(phones),
            },
            schema_overrides={ERROR: pl.String},
        )

    def source(self, **kwargs: object) -> DeliverySource:
        options: dict[str, object] = {"sender": "+86 138 0000 0000", **kwargs}
        return DeliverySource(self.run_dir, **options)  # type: ignore[arg-type]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """Rows 2-7 sent as m2-m7 (m6's answer journaled after its receipts came), row 8
    refused by CAMS, row 9 never sent; receipts and inbound messages of every kind."""
    run_dir = tmp_path / "workspace" / "run"
    run_dir.mkdir(parents=True)
    journal = Journal.in_run(run_dir)
    store = ReceiptStore.open(run_dir.parent)
    journal.add_rows((r, JournalState.PENDING, PHONES[r], None) for r in ROWS)
    journal.apply(list(range(2, 9)), [])
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        sent_ms = {r: int(t * 1000) for r, t in db.execute("SELECT row, intent_at FROM rows")
                   if t is not None}  # fmt: skip
    t = sent_ms[2]
    # Out of order (Read first), and the Delivered one twice: stored once.
    assert (
        store.add_receipts([receipt("m2", "Read", t + 3000), receipt("m2", "Sent", t + 1000)]) == 2
    )
    assert store.add_receipts([receipt("m2", "Delivered", t + 2000)] * 2) == 1
    assert store.add_receipts([receipt("m2", "Delivered", t + 2000)]) == 0
    store.add_receipts([receipt("m3", "Sent", t + 1000), receipt("m3", "Delivered", t + 2500)])
    store.add_receipts([
        receipt("m4", "Sent", t + 1000),
        receipt("m4", "Delivered", t + 1500),
        receipt("m4", "Failed", t + 2000, "131026",
                "131026:Receiver is incapable of receiving this message"),
    ])  # fmt: skip
    # m6's receipt comes before the journal has m6 (at 250/s this happens).
    store.add_receipts([receipt("m6", "Delivered", t + 1200)])
    store.add_receipts([receipt("m7", "Failed", None, "131050"), receipt("m7", "unsubscribe", t)])
    store.add_receipts([receipt("m-of-no-run", "Read", t + 5000)])  # of no run
    store.add_inbound([
        inbound("i1", PHONES[2], sent_ms[2] - 5000, "before the send"),
        inbound("i2", PHONES[2], sent_ms[2] + 9000, "later"),
        inbound("i3", PHONES[2], sent_ms[2] + 4000, "Yes please"),
        inbound("i4", PHONES[3], sent_ms[3] + 100, None, '=HYPERLINK("http://x","y")', "REPLY"),
        inbound("i5", PHONES[4], sent_ms[4] + 100, "a" * 300),
        inbound("i6", "+" + PHONES[5], sent_ms[5] + 100, None, None, "image"),
        inbound("i7", PHONES[6], sent_ms[6] + 100, "to another number", to="8613811111111"),
        inbound("i8", PHONES[7], None, "no Timestamp: placed at its arrival"),
        inbound("i9", PHONES[9], sent_ms[8] + 100, "from a row never sent"),
    ])  # fmt: skip
    journal.apply(
        [],
        [
            *(Outcome(r, JournalState.SENT, 1, f"m{r}", "OK", "OK", f"q{r}") for r in range(2, 8)),
            Outcome(8, JournalState.FAILED, 1, None, "Forbidden", "refused", "q8", "refused"),
        ],
    )
    try:
        yield Run(run_dir, journal, store, sent_ms)
    finally:
        store.close()
        journal.close()


def columns(frame: pl.DataFrame) -> dict[int, tuple[object, ...]]:
    return {row[0]: row[1:] for row in frame.select(ROW, *DELIVERY).iter_rows()}


def test_each_sent_row_gets_its_receipts_and_first_reply(run: Run) -> None:
    t = run.sent_ms[2]
    with run.source() as source:
        got = columns(source.batch(run.prepared()))
    assert got == {
        2: ("Read", None, iso(t + 2000), iso(t + 3000), "Yes please"),
        3: ("Delivered", None, iso(t + 2500), None, '=HYPERLINK("http://x","y")'),
        4: ("Failed", "131026: Receiver is incapable of receiving this message",
            iso(t + 1500), None, "a" * REPLY_CHARS),
        5: (None, None, None, None, "[image]"),
        6: ("Delivered", None, iso(t + 1200), None, None),
        7: ("Failed", "131050", None, None, "no Timestamp: placed at its arrival"),
    }  # fmt: skip
    assert got[2][2] is not None and got[2][2].endswith("Z") and "T" in got[2][2]


def test_the_funnel_counts_the_sent_rows(run: Run) -> None:
    with run.source() as source:
        source.batch(run.prepared())
        assert source.funnel.as_dict() == {
            "sent": 6,
            "delivered": 2 + 1,  # Read counts as delivered too
            "read": 1,
            "replied": 5,
            "failed": 2,
            "failed_by_code": {"131026": 1, "131050": 1},
            "pending": 1,
            "no_receipt": 1,
            "cannot_look_up": 0,
            "lookup": True,
        }


# Rows read ahead are used when they cover the next batch: exactly (2-5, 6-9), in part
# (2-6, then 7-9 of the 7-11 read ahead), not at all (2-4, then 5-9), or gaps in the rows.
@pytest.mark.parametrize(
    "cuts", [[2, 6, 10], [2, 7, 10], [2, 5, 10], [2, 4, 6, 8, 10], [2, 3, 9, 10]]
)
def test_batches_give_the_same_rows_and_funnel_as_one(run: Run, cuts: list[int]) -> None:
    with run.source() as whole:
        one = whole.batch(run.prepared())
    with run.source() as parts:
        split = pl.concat(
            parts.batch(run.prepared(range(a, b))) for a, b in zip(cuts, cuts[1:], strict=False)
        )
    assert split.equals(one)
    assert parts.funnel == whole.funnel


def test_messenger_rows_without_receipts_are_counted_apart(run: Run) -> None:
    with run.source(lookup=False) as source:
        source.batch(run.prepared())
    assert source.funnel.cannot_look_up == 1 and source.funnel.no_receipt == 0
    assert source.funnel.as_dict()["lookup"] is False


def test_a_per_row_sender_number_comes_from_the_prepared_column(run: Run) -> None:
    prepared = run.prepared().with_columns(
        pl.when(pl.col(ROW) == 6).then(pl.lit("8613811111111")).otherwise(pl.lit(BUSINESS))
        .alias(" rendered:From")
    )  # fmt: skip
    with DeliverySource(run.run_dir, sender_column=" rendered:From") as source:
        got = columns(source.batch(prepared))
    assert got[6][4] == "to another number"  # row 6 was sent from that number
    assert got[2][4] == "Yes please"


def test_a_workspace_without_receipts_leaves_the_columns_empty(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = Journal.in_run(run_dir)
    journal.add_rows([(2, JournalState.PENDING, "8613900000002", None)])
    journal.apply([2], [])
    journal.apply([], [Outcome(2, JournalState.SENT, 1, "m2", "OK", "OK", "q2")])
    journal.close()
    frame = pl.DataFrame({ROW: [2], TO: ["8613900000002"]})
    with DeliverySource(run_dir, sender=BUSINESS) as source:
        assert columns(source.batch(frame)) == {2: (None,) * 5}
    assert source.funnel.sent == 1 and source.funnel.no_receipt == 1
    assert not (tmp_path / "receipts.sqlite").exists()  # reading never creates the store


def test_a_damaged_store_is_a_warning_not_a_lost_report(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    run.store.close()
    store = run.run_dir.parent / "receipts.sqlite"
    for leftover in (
        store.with_name("receipts.sqlite-wal"),
        store.with_name("receipts.sqlite-shm"),
    ):
        leftover.unlink(missing_ok=True)
    store.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING), run.source() as source:
        got = columns(source.batch(run.prepared()))
    assert set(got.values()) == {(None,) * 5}
    assert "cannot be read" in caplog.text
    assert source.funnel.sent == 6


def test_the_report_carries_the_columns_defused(run: Run) -> None:
    layout = ReportLayout.for_input(["phone"])
    with run.source() as source:
        frame = report_batch(layout, run.prepared(), run.journal, delivery=source)
    assert frame.columns == ["phone", *RESULT_COLUMNS]
    with ReportWriter(run.run_dir, layout.columns, xlsx=False) as writer:
        writer.write(frame)
    with (run.run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {int(r["row"]): r for r in csv.DictReader(f)}
    assert rows[3]["reply"] == '\'=HYPERLINK("http://x","y")'  # a formula no more
    assert rows[4]["delivery"] == "Failed" and rows[4]["status"] == "sent"
    assert rows[8]["status"] == "failed" and rows[8]["delivery"] == ""  # CAMS refused it
    assert rows[9]["status"] == "not_attempted" and rows[9]["reply"] == ""


def test_failed_is_final_and_the_error_reads_as_code_and_words() -> None:
    folded = pl.DataFrame(
        {
            ROW: [2, 3, 4, 5, 6],
            "sent_ms": [0] * 5,
            "state": [4, 1, 2, 4, None],
            "delivered_ms": [0, None, 0, None, None],
            "read_ms": [None] * 5,
            "error_code": ["470", None, None, None, None],
            "error_description": ["Message failed", None, None, "131026:No WhatsApp", None],
        },
        schema=RECEIPT_SCHEMA,
    )
    got = delivery_columns(folded)
    assert got["delivery"].to_list() == ["Failed", "Sent", "Delivered", "Failed", None]
    assert got["delivery_error"].to_list() == [
        "470: Message failed", None, None, "131026:No WhatsApp", None,
    ]  # fmt: skip
    zero = "1970-01-01T00:00:00.000Z"  # a Failed message's delivery time is kept: it happened
    assert got["delivered_at"].to_list() == [zero, None, zero, None, None]


@pytest.mark.parametrize(
    "value",
    ["+86 138-0000", " 8613800000000 ", "(0086) 138.0000", "user.name_1", "Ab 12", "", "  ",
     "٨٦١٣٨", "tel:+65 9123"],
)  # fmt: skip
def test_the_column_key_is_the_receipts_phone_key(value: str) -> None:
    column = pl.select(phone_key_expr(pl.lit(value, pl.String))).item()
    assert column == phone_key(value)


def test_summary_json_gets_the_funnel_and_keeps_the_rest(tmp_path: Path) -> None:
    funnel = Funnel(sent=3, delivered=2, read=1, replied=1, pending=1, no_receipt=1)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"mode": "send", "delivery": {"sent": 0}, "rows": 3}))
    record_delivery(tmp_path, funnel)
    assert json.loads(summary.read_text()) == {
        "mode": "send",
        "delivery": funnel.as_dict(),
        "rows": 3,
    }
    for torn in ('{"mode": "se', "[1, 2]"):  # a torn file, or no object: just the funnel
        summary.write_text(torn)
        record_delivery(tmp_path, funnel)
        assert json.loads(summary.read_text()) == {"delivery": funnel.as_dict()}
    summary.unlink()
    record_delivery(tmp_path, funnel)  # a run killed before its summary
    assert json.loads(summary.read_text()) == {"delivery": funnel.as_dict()}


def test_folder_names_that_mean_something_in_a_uri_are_read_as_names(tmp_path: Path) -> None:
    run_dir = tmp_path / "work space #1 ?mode=rw&x=%20 é" / "run 2"
    run_dir.mkdir(parents=True)
    journal = Journal.in_run(run_dir)
    journal.add_rows([(2, JournalState.PENDING, "8613900000002", None)])
    journal.apply([2], [])
    journal.apply([], [Outcome(2, JournalState.SENT, 1, "m2", "OK", "OK", "q2")])
    journal.close()
    with ReceiptStore.open(run_dir.parent) as store:
        store.add_receipts([receipt("m2", "Read", 0)])
    with DeliverySource(run_dir, sender=BUSINESS) as source:
        got = columns(source.batch(pl.DataFrame({ROW: [2], TO: ["8613900000002"]})))
    assert got[2][0] == "Read"
