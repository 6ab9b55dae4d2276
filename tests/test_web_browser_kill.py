"""Kill -9 `campaigner serve` and start it again on the same workspace: a run killed in the
middle of its send continues to done, every row reported exactly once and nothing sent twice
(the in-process simulator dies with the server, so the report and journal are the
witnesses); a scheduled run keeps its time."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser import (
    Serve,
    click_send,
    counts,
    download,
    read_csv,
    require_browser,
    run_id_of,
    settled_counts,
    sign_in,
    upload_campaign,
    wait_for,
    wait_state,
    write_big_campaign,
)

pytestmark = [pytest.mark.slow, pytest.mark.stress]

ROWS = 3000
QPS = 100  # about 30 s of sending: plenty of time to kill it in the middle
KILL_AFTER = 300  # sent rows before the kill
# 3,000 rows at 100/s after a restart, on a slow shared machine.
RUN_WAIT_S = 600.0


def sent_so_far(driver: WebDriver) -> int | None:
    sent = counts(driver, ("sent",))["sent"]
    return sent if sent >= KILL_AFTER else None


def test_kill_9_mid_send_then_restart_finishes_the_run_once(
    driver: WebDriver, tmp_path: Path
) -> None:
    require_browser()
    listing, campaign = write_big_campaign(tmp_path / "inputs", ROWS, QPS)
    workspace = tmp_path / "workspace"
    first = Serve(workspace).start()
    try:
        sign_in(driver, first.url)
        upload_campaign(driver, first.url, listing, campaign)
        assert counts(driver, ("rows", "would_send")) == {"rows": ROWS, "would_send": ROWS}
        click_send(driver, ROWS)
        run_id = run_id_of(driver)
        wait_for(driver, sent_so_far, RUN_WAIT_S)
        assert wait_state(driver, {"sending", "done"}) == "sending"
        first.kill9()
    finally:
        first.stop()

    with Serve(workspace) as second:
        sign_in(driver, second.url, path=f"runs/{run_id}")
        assert wait_state(driver, {"done", "stopped", "cancelled"}, RUN_WAIT_S) == "done"
        settled_counts(driver, {"remaining": 0})
        figures = counts(driver, ("sent", "failed", "unknown", "remaining"))
        assert figures["remaining"] == 0 and figures["failed"] == 0
        assert figures["sent"] + figures["unknown"] == ROWS
        link = driver.find_element(By.CSS_SELECTOR, f'a[href$="/runs/{run_id}/report.csv"]')
        report = download(driver, tmp_path / "dl", link.click)

        # Rows in flight at the kill are unknown, and the campaigns list offers Reconcile.
        if figures["unknown"]:
            driver.get(second.url)
            row = wait_for(
                driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-run="{run_id}"]')
            )[0]
            buttons = [b.text.strip() for b in row.find_elements(By.TAG_NAME, "button")]
            assert "Reconcile" in buttons, buttons

    # The report: every input row exactly once; sent rows with distinct MessageIds.
    header, rows = read_csv(report)
    column = {name: i for i, name in enumerate(header)}
    numbers = [int(r[column["row"]]) for r in rows]
    assert numbers == list(range(2, ROWS + 2))
    statuses = Counter(r[column["status"]] for r in rows)
    assert set(statuses) <= {"sent", "unknown"}, statuses
    assert statuses["sent"] == figures["sent"] and statuses["unknown"] == figures["unknown"]
    ids = [r[column["MessageId"]] for r in rows if r[column["status"]] == "sent"]
    assert all(ids) and len(set(ids)) == len(ids)
    recipients = [r[column["To"]] for r in rows if r[column["status"]] == "sent"]
    assert len(set(recipients)) == len(recipients)

    # The journal says the same: one entry per row, settled, no MessageId given twice.
    journal = workspace / run_id / "journal.sqlite"
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        entries = db.execute("SELECT row, state, message_id FROM rows ORDER BY row").fetchall()
    db.close()
    assert [e[0] for e in entries] == numbers
    assert [e[1] for e in entries] == [r[column["status"]] for r in rows]
    journal_ids = [e[2] for e in entries if e[1] == "sent"]
    assert sorted(journal_ids) == sorted(ids)


SCHEDULE_S = 90  # far enough ahead to kill and restart the server before it comes


def test_a_scheduled_run_keeps_its_time_across_kill_9(driver: WebDriver, tmp_path: Path) -> None:
    require_browser()
    rows = 50
    listing, campaign = write_big_campaign(tmp_path / "inputs", rows, 250)
    workspace = tmp_path / "workspace"
    first = Serve(workspace).start()
    try:
        sign_in(driver, first.url)
        upload_campaign(driver, first.url, listing, campaign)
        # The server's local time, to the second (the field's step allows seconds).
        at = (datetime.now() + timedelta(seconds=SCHEDULE_S)).replace(microsecond=0)
        field = driver.find_element(By.NAME, "at")
        driver.execute_script(
            "arguments[0].step = 1; arguments[0].value = arguments[1];", field, at.isoformat()
        )
        click_send(driver, rows)
        run_id = run_id_of(driver)
        assert wait_state(driver, {"scheduled", "sending", "done"}) == "scheduled"
        first.kill9()
    finally:
        first.stop()

    with Serve(workspace) as second:
        sign_in(driver, second.url, path=f"runs/{run_id}")
        assert wait_state(driver, {"scheduled", "sending", "done", "stopped", "cancelled"}) in {
            "scheduled",
            "sending",  # only if the restart took until the scheduled time
        }
        assert wait_state(driver, {"done", "stopped", "cancelled"}, SCHEDULE_S + RUN_WAIT_S) == (
            "done"
        )
        assert settled_counts(driver, {"sent": rows}) == {"sent": rows}

    # Every row sent once, and none before its time (the journal's intent times).
    journal = workspace / run_id / "journal.sqlite"
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        entries = db.execute("SELECT row, state, intent_at FROM rows ORDER BY row").fetchall()
    db.close()
    assert [e[0] for e in entries] == list(range(2, rows + 2))
    assert {e[1] for e in entries} == {"sent"}
    assert min(e[2] for e in entries) >= at.timestamp()
