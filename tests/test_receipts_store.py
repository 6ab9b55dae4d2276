"""receipts.sqlite on real files: the contract's schema, idempotence, durability, sharing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from campaigner.errors import StorageError
from campaigner.receipts.parse import Inbound, Receipt, parse_inbound_body, parse_status_body
from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore


def receipt(message_id: str, status: str, ts_ms: int | None = 1_700_000_000_000) -> Receipt:
    return Receipt(message_id, status, ts_ms, None, None, "8613800000001", "8613900000000", "{}")


def test_open_creates_the_workspace_and_the_contract_schema(tmp_path: Path) -> None:
    workspace = tmp_path / "reports" / "nested"
    with ReceiptStore.open(workspace) as store:
        assert store.path == workspace / RECEIPTS_NAME
    db = sqlite3.connect(workspace / RECEIPTS_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    columns = [row[1] for row in db.execute("PRAGMA table_info(receipts)")]
    assert columns == [
        "message_id", "status", "ts_ms", "error_code", "error_description",
        "recipient", "sender", "source", "received_ms", "raw",
    ]  # fmt: skip
    columns = [row[1] for row in db.execute("PRAGMA table_info(inbound)")]
    assert columns == [
        "message_id", "sender", "recipient", "type", "text", "payload",
        "ts_ms", "source", "received_ms", "raw",
    ]  # fmt: skip
    indexes = {row[1] for row in db.execute("PRAGMA index_list(inbound)")}
    assert "inbound_by_pair" in indexes
    db.close()


def test_a_store_made_with_the_earlier_key_keeps_working(tmp_path: Path) -> None:
    # Stores made before the receipts table had a rowid keep their WITHOUT ROWID table.
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    db.execute(
        "CREATE TABLE receipts (message_id TEXT NOT NULL, status TEXT NOT NULL, ts_ms INTEGER, "
        "error_code TEXT, error_description TEXT, recipient TEXT, sender TEXT, "
        "source TEXT NOT NULL, received_ms INTEGER NOT NULL, raw TEXT NOT NULL, "
        "PRIMARY KEY (message_id, status)) WITHOUT ROWID"
    )
    db.close()
    with ReceiptStore.open(tmp_path) as store:
        assert store.add_receipts([receipt("m1", "Sent", None), receipt("m1", "Read")]) == 2
        assert store.add_receipts([receipt("m1", "Sent"), receipt("m1", "Read")]) == 1
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    rows = db.execute("SELECT status, ts_ms FROM receipts ORDER BY 1").fetchall()
    assert rows == [("Read", 1_700_000_000_000), ("Sent", 1_700_000_000_000)]  # time filled in
    db.close()


def test_receipts_are_idempotent_on_message_id_and_status(tmp_path: Path) -> None:
    with ReceiptStore.open(tmp_path) as store:
        assert store.add_receipts([receipt("m1", "Sent"), receipt("m1", "Delivered")]) == 2
        assert store.add_receipts([receipt("m1", "Sent"), receipt("m1", "Read")]) == 1
        # Duplicates inside one batch count once too.
        assert store.add_receipts([receipt("m2", "Read"), receipt("m2", "Read")], "lookup") == 1
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    rows = db.execute("SELECT message_id, status, source FROM receipts ORDER BY 1, 2").fetchall()
    assert rows == [
        ("m1", "Delivered", "push"),
        ("m1", "Read", "push"),
        ("m1", "Sent", "push"),
        ("m2", "Read", "lookup"),
    ]
    db.close()


def test_inbound_is_idempotent_on_message_id(tmp_path: Path) -> None:
    body = b'[{"MessageId":"i1","From":"861","To":"862","Type":"TEXT","Message":"hi"}]'
    (message,) = parse_inbound_body(body)
    with ReceiptStore.open(tmp_path) as store:
        assert store.add_inbound([message]) == 1
        assert store.add_inbound([message, message]) == 0
        stored = store.add(
            receipts=parse_status_body(b'{"MessageId":"m","Status":"Sent"}'),
            inbound=[Inbound("i2", "861", "862", "TEXT", "yo", None, 5, "{}")],
            source="queue",
        )
        assert (stored.receipts, stored.inbound) == (1, 1)
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    assert db.execute("SELECT message_id, text, source FROM inbound ORDER BY 1").fetchall() == [
        ("i1", "hi", "push"),
        ("i2", "yo", "queue"),
    ]
    db.close()


def test_a_write_is_visible_to_another_process_when_it_returns(tmp_path: Path) -> None:
    with ReceiptStore.open(tmp_path) as store:
        store.add_receipts([receipt("m1", "Read")])
        # The store stays open (a receiver): another process reads the committed row.
        script = (
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]);"
            "print(db.execute('SELECT count(*) FROM receipts').fetchone()[0])"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / RECEIPTS_NAME)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == "1"


def test_threads_share_one_store(tmp_path: Path) -> None:
    with ReceiptStore.open(tmp_path) as store:

        def write(prefix: str) -> None:
            for i in range(50):
                store.add_receipts([receipt(f"{prefix}-{i}", "Sent")])

        threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
        assert db.execute("SELECT count(*) FROM receipts").fetchone() == (200,)
        db.close()


def test_two_stores_on_one_workspace(tmp_path: Path) -> None:
    with ReceiptStore.open(tmp_path) as one, ReceiptStore.open(tmp_path) as two:
        assert one.add_receipts([receipt("m", "Sent")]) == 1
        assert two.add_receipts([receipt("m", "Sent"), receipt("m", "Read")]) == 1


def test_raw_keeps_unknown_fields(tmp_path: Path) -> None:
    body = b'[{"MessageId":"m","Status":"Sent","Extra":{"deep":[1,2]},"Name":"\xe5\xbc\xa0"}]'
    with ReceiptStore.open(tmp_path) as store:
        store.add_receipts(parse_status_body(body))
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    (raw,) = db.execute("SELECT raw FROM receipts").fetchone()
    assert json.loads(raw) == {"MessageId": "m", "Status": "Sent", "Extra": {"deep": [1, 2]},
                               "Name": "张"}  # fmt: skip
    db.close()


def test_an_unusable_store_is_a_clear_storage_error(tmp_path: Path) -> None:
    (tmp_path / RECEIPTS_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="receipts store"):
        ReceiptStore.open(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="receipts store"):
        ReceiptStore.open(blocker / "sub")


def test_a_pushed_time_fills_in_a_looked_up_state_without_one(tmp_path: Path) -> None:
    with ReceiptStore.open(tmp_path) as store:
        assert store.add_receipts([receipt("m1", "Delivered", None)], source="lookup") == 1
        assert store.add_receipts([receipt("m1", "Delivered", 1_700_000_000_500)]) == 1
        # A repeat with another time changes nothing: the first time a state had stays.
        assert store.add_receipts([receipt("m1", "Delivered", 1_700_000_009_999)]) == 0
        assert store.add_receipts([receipt("m1", "Delivered", None)], source="lookup") == 0
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    rows = db.execute("SELECT status, ts_ms, source FROM receipts").fetchall()
    assert rows == [("Delivered", 1_700_000_000_500, "push")]
