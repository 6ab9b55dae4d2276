"""Pause, Resume and Cancel on a run page in headless chromium: a paused run takes no new
rows and loses none in flight, Resume sends the rest exactly once, Cancel leaves the rest
not attempted; the report has every row exactly once at each step."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser import (
    Serve,
    click_button,
    click_send,
    counts,
    download,
    read_csv,
    run_id_of,
    settled_counts,
    sign_in,
    upload_campaign,
    wait_for,
    wait_state,
    write_big_campaign,
)

pytestmark = pytest.mark.slow

ROWS = 3000
QPS = 100  # about 30 s of sending: time to press the buttons in the middle
RUN_WAIT_S = 600.0


def report_rows(driver: WebDriver, run_id: str, folder: Path) -> list[dict[str, str]]:
    """Download the run's report.csv from its page; its rows as dicts."""
    link = driver.find_element(By.CSS_SELECTOR, f'a[href$="/runs/{run_id}/report.csv"]')
    header, rows = read_csv(download(driver, folder, link.click))
    return [dict(zip(header, row, strict=True)) for row in rows]


def sent_at_least(n: int) -> Callable[[WebDriver], int | None]:
    def check(driver: WebDriver) -> int | None:
        sent = counts(driver, ("sent",))["sent"]
        return sent if sent >= n else None

    check.__name__ = f"sent >= {n}"
    return check


def test_pause_resume_and_cancel_keep_every_row_once(
    driver: WebDriver, serve: Serve, tmp_path: Path
) -> None:
    listing, campaign = write_big_campaign(tmp_path / "inputs", ROWS, QPS)
    sign_in(driver, serve.url)
    upload_campaign(driver, serve.url, listing, campaign)
    click_send(driver, ROWS)
    run_id = run_id_of(driver)
    wait_for(driver, sent_at_least(200), RUN_WAIT_S)

    # Pause: the requests in flight finish and are journaled; no row is left in between.
    click_button(driver, "Pause")
    assert wait_state(driver, {"paused", "done", "stopped"}) == "paused"
    paused = report_rows(driver, run_id, tmp_path / "dl-paused")
    assert [int(r["row"]) for r in paused] == list(range(2, ROWS + 2))
    by_status = Counter(r["status"] for r in paused)
    assert set(by_status) <= {"sent", "not_attempted"}, by_status
    assert 200 <= by_status["sent"] < ROWS
    assert settled_counts(driver, {"sent": by_status["sent"]}) == {"sent": by_status["sent"]}

    # Resume sends the rest once: the rows sent before the pause keep their MessageIds.
    click_button(driver, "Resume")
    wait_for(driver, sent_at_least(by_status["sent"] + 200), RUN_WAIT_S)
    click_button(driver, "Cancel")
    assert wait_state(driver, {"cancelled", "done", "stopped"}, RUN_WAIT_S) == "cancelled"
    cancelled = report_rows(driver, run_id, tmp_path / "dl-cancelled")
    assert [int(r["row"]) for r in cancelled] == list(range(2, ROWS + 2))
    after = Counter(r["status"] for r in cancelled)
    assert set(after) <= {"sent", "not_attempted"}, after
    assert by_status["sent"] + 200 <= after["sent"] < ROWS
    ids = [r["MessageId"] for r in cancelled if r["status"] == "sent"]
    assert all(ids) and len(set(ids)) == len(ids)
    before = {r["row"]: r["MessageId"] for r in paused if r["status"] == "sent"}
    assert {r["row"]: r["MessageId"] for r in cancelled if r["row"] in before} == before
    assert settled_counts(driver, {"sent": after["sent"]}) == {"sent": after["sent"]}
