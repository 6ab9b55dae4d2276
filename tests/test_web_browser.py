"""The web app in headless chromium, against the page contract: the whole flow gives the CLI's
figures and report, hostile cells are shown as text and run nothing, every page needs a
session, and a form without its CSRF token is refused."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openpyxl
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser import (
    CAMPAIGN,
    SAMPLES,
    WAIT_S,
    Serve,
    alert_present,
    click_button,
    click_send,
    counts,
    download,
    read_csv,
    run_id_of,
    session_client,
    settled_counts,
    sign_in,
    upload_campaign,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.slow

RECIPIENTS = SAMPLES / "recipients.csv"
FIGURES = ("rows", "would_send", "invalid", "duplicate", "suppressed")
# Report columns that legitimately differ between two sends of the same list: the ids CAMS
# hands out afresh, the attempts (a request the rate limit refused is retried), and what
# receipts have told so far (they arrive over time).
VOLATILE = frozenset(
    {"MessageId", "RequestId", "attempts"}
    | {"delivery", "delivery_error", "delivered_at", "read_at", "reply"}
)
# A send of ~1,000 rows at 250/s takes seconds; the margin is for a slow, shared machine.
SEND_WAIT_S = 300.0
FINAL_STATES = {"done", "stopped", "interrupted", "cancelled"}


def cli(*args: str | Path) -> dict[str, Any]:
    """`campaigner ARGS --json` as a child; the run finished (exit 0, or 3: not all sent)."""
    done = subprocess.run(
        [sys.executable, "-m", "campaigner", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 3), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_same_report(web: Path, cli_report: Path) -> None:
    """Row by row, every column equal except the volatile ones; the MessageIds must still be
    present exactly where the CLI's report has them."""
    web_header, web_rows = read_csv(web)
    cli_header, cli_rows = read_csv(cli_report)
    assert web_header == cli_header
    assert len(web_rows) == len(cli_rows)
    stable = [i for i, name in enumerate(cli_header) if name not in VOLATILE]
    volatile = [i for i, name in enumerate(cli_header) if name in {"MessageId", "RequestId"}]
    status, attempts = cli_header.index("status"), cli_header.index("attempts")
    differences = [
        (cli_row[cli_header.index("row")], cli_header[i], web_row[i], cli_row[i])
        for web_row, cli_row in zip(web_rows, cli_rows, strict=True)
        for i in stable
        if web_row[i] != cli_row[i]
    ]
    assert not differences, differences[:10]
    for web_row, cli_row in zip(web_rows, cli_rows, strict=True):
        assert [bool(web_row[i]) for i in volatile] == [bool(cli_row[i]) for i in volatile]
        if web_row[status] == "sent":
            assert int(web_row[attempts]) >= 1


def test_the_web_flow_gives_the_cli_figures_and_report(
    driver: WebDriver, serve: Serve, tmp_path: Path
) -> None:
    preview = cli("preview", CAMPAIGN, "--out", tmp_path / "cli-preview")
    sign_in(driver, serve.url)
    upload_campaign(driver, serve.url, RECIPIENTS, CAMPAIGN)

    # The same figures as `campaigner preview`.
    figures = counts(driver, FIGURES)
    by_status = preview["by_status"]
    assert figures == {"rows": preview["rows"], **{s: by_status.get(s, 0) for s in FIGURES[1:]}}
    assert figures["rows"] == 1000 and figures["invalid"] > 0 and figures["duplicate"] > 0

    # The first rendered message is the first valid row's, as the recipient reads it.
    header, preview_rows = read_csv(Path(preview["run_dir"]) / "report.csv")
    status = header.index("status")
    first = dict(
        zip(header, next(r for r in preview_rows if r[status] == "would_send"), strict=True)
    )
    rendered = driver.find_elements(By.CLASS_NAME, "rendered-message")
    assert 1 <= len(rendered) <= 5
    assert first["first_name"].title() in rendered[0].text
    assert first["coupon"] in rendered[0].text

    # The preview report download is the CLI's preview report.
    report = download(
        driver,
        tmp_path / "dl-preview",
        driver.find_element(By.ID, "preview-report").click,
    )
    assert read_csv(report) == read_csv(Path(preview["run_dir"]) / "report.csv")

    # Test send: CAMS's answers are shown; nothing is journaled for the campaign.
    journals = sorted(serve.out.rglob("journal.sqlite"))
    driver.find_element(By.NAME, "test_numbers").send_keys("8613800000011, 8613800000012")
    click_button(driver, "Test send")
    answer: str = wait_for(driver, lambda d: d.find_element(By.ID, "test-send-result").text.strip())
    # One answer per number (masked or not), each accepted by the simulator.
    for tail in ("0011", "0012"):
        assert any(tail in line and "sent" in line for line in answer.splitlines()), answer
    assert sorted(serve.out.rglob("journal.sqlite")) == journals

    # Confirm and send.
    n = figures["would_send"]
    summary = driver.find_element(By.ID, "confirm-summary").text
    number = f"(?:{n}|{n:,})"
    assert re.fullmatch(
        rf"This sends {number} messages to {number} recipients from 8613800000000 with .+, "
        r"in about .+\.",
        summary.strip(),
    ), summary
    click_send(driver, n)
    run_id = run_id_of(driver)
    assert wait_state(driver, FINAL_STATES, SEND_WAIT_S) == "done"

    sent = cli("send", CAMPAIGN, "--sandbox", "--yes", "--out", tmp_path / "cli-send")
    expected = {
        "sent": sent["by_status"]["sent"],
        "failed": sent["by_status"].get("failed", 0),
        "unknown": 0,
        "remaining": 0,
    }
    assert settled_counts(driver, expected) == expected
    for stage in ("delivered", "read", "replied", "failed"):
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-funnel="{stage}"]'), stage

    # report.csv, row by row against the CLI's report of the same input.
    csv_link = driver.find_element(By.CSS_SELECTOR, f'a[href$="/runs/{run_id}/report.csv"]')
    web_csv = download(driver, tmp_path / "dl-csv", csv_link.click)
    cli_csv = Path(sent["run_dir"]) / "report.csv"
    assert_same_report(web_csv, cli_csv)

    # report.xlsx: the same rows and statuses.
    xlsx_link = driver.find_element(By.CSS_SELECTOR, f'a[href$="/runs/{run_id}/report.xlsx"]')
    web_xlsx = download(driver, tmp_path / "dl-xlsx", xlsx_link.click)
    book = openpyxl.load_workbook(web_xlsx, read_only=True)
    sheet_rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    csv_header, csv_rows = read_csv(web_csv)
    status = csv_header.index("status")
    assert [str(c) for c in sheet_rows[0]] == csv_header
    assert [r[status] for r in sheet_rows[1:]] == [r[status] for r in csv_rows]

    # The campaigns list shows the run, done.
    driver.get(serve.url)
    row = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-run="{run_id}"]'))
    assert row[0].get_attribute("data-state") == "done"


# Cells, column names and a file name that run script if any page renders them as HTML.
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


def hostile_list(folder: Path) -> Path:
    """Valid rows whose other cells are markup, rows whose phone is markup, markup headers."""
    folder.mkdir(parents=True)
    path = folder / (IMG + ".csv")
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "first_name", "coupon", SCRIPT, IMG])
        for i in range(1, 6):
            out.writerow([f"86139{i:08d}", SCRIPT, IMG, SCRIPT, IMG])
        out.writerow([SCRIPT, "ana", "C1", SCRIPT, IMG])
        out.writerow([IMG, "bo", "C2", SCRIPT, IMG])
    return path


def assert_nothing_ran(driver: WebDriver) -> None:
    """No dialog opened and no markup from the data became an element."""
    assert not alert_present(driver), driver.current_url
    assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x'], [onerror]")
    assert not driver.find_elements(By.XPATH, "//script[contains(., 'alert')]")


def test_a_list_full_of_markup_is_shown_as_text(
    driver: WebDriver, serve: Serve, tmp_path: Path
) -> None:
    listing = hostile_list(tmp_path / "hostile")
    sign_in(driver, serve.url)
    upload_campaign(driver, serve.url, listing, CAMPAIGN)
    assert_nothing_ran(driver)
    assert counts(driver, ("rows", "would_send", "invalid")) == {
        "rows": 7,
        "would_send": 5,
        "invalid": 2,
    }
    rendered = driver.find_elements(By.CLASS_NAME, "rendered-message")
    assert rendered
    # The markup of `first_name | title` and of the coupon cell appear literally.
    assert "alert(1)</script>" in rendered[0].text
    assert "<img src=x onerror=alert(2)>" in rendered[0].text
    # The invalid rows' cells are shown as the spreadsheet has them.
    assert SCRIPT in driver.find_element(By.TAG_NAME, "body").text

    click_send(driver, 5)
    run_id = run_id_of(driver)
    assert wait_state(driver, FINAL_STATES, SEND_WAIT_S) == "done"
    assert_nothing_ran(driver)
    assert settled_counts(driver, {"sent": 5}) == {"sent": 5}

    driver.get(serve.url)
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-run="{run_id}"]'))
    assert_nothing_ran(driver)


PROTECTED = ("", "campaigns/new", "runs/no-such-run", "runs/no-such-run/report.csv")


def test_pages_without_a_session_send_to_sign_in(driver: WebDriver, serve: Serve) -> None:
    for path in (*PROTECTED, "runs/no-such-run/events"):
        answer = httpx.get(serve.url + path, timeout=WAIT_S)
        assert answer.status_code == 303, path
        target = urlsplit(answer.headers["location"])
        assert target.path == "/signin" and "next" in parse_qs(target.query), path
    # Sign-in and static files need no session.
    assert httpx.get(serve.url + "signin", timeout=WAIT_S).status_code == 200
    assert httpx.get(serve.url + "static/htmx.min.js", timeout=WAIT_S).status_code == 200

    for path in PROTECTED:
        driver.get(serve.url + path)
        assert urlsplit(driver.current_url).path == "/signin", path

    # A wrong password shows the form again; the right one goes on to the page asked for.
    driver.get(serve.url + "campaigns/new")
    driver.find_element(By.NAME, "password").send_keys("not the password")
    click_button(driver, "Sign in")
    wait_for(driver, lambda d: d.find_elements(By.NAME, "password"))
    assert urlsplit(driver.current_url).path == "/signin"
    driver.find_element(By.NAME, "password").send_keys(serve.password)
    click_button(driver, "Sign in")
    wait_for(driver, lambda d: urlsplit(d.current_url).path == "/campaigns/new")
    assert driver.find_elements(By.NAME, "recipients")


# The form holding the `Send N messages` button.
SEND_FORM = (
    "//form[.//button[starts-with(normalize-space(.), 'Send ')]"
    " or .//input[@type='submit' and starts-with(@value, 'Send ')]]"
)


def test_a_form_without_its_csrf_token_is_refused(
    driver: WebDriver, serve: Serve, tmp_path: Path
) -> None:
    sign_in(driver, serve.url, path="campaigns/new")
    form = wait_for(
        driver, lambda d: d.find_elements(By.XPATH, "//form[.//*[@name='recipients']]")
    )[0]
    action = str(form.get_attribute("action"))
    token = str(form.find_element(By.NAME, "csrf_token").get_attribute("value"))
    files = {
        "recipients": ("recipients.csv", RECIPIENTS.read_bytes(), "text/csv"),
        "campaign": ("campaign.toml", CAMPAIGN.read_bytes(), "application/toml"),
    }
    with session_client(driver, serve.url) as client:
        assert client.post(action, files=files).status_code == 403
        assert client.post(action, data={"csrf_token": token[::-1]}, files=files).status_code == 403
        # The same request with the token is taken: the refusals were about the token alone.
        assert client.post(action, data={"csrf_token": token}, files=files).status_code in {
            200,
            303,
        }

    # The form that sends: without its token, refused, and nothing starts.
    upload_campaign(driver, serve.url, RECIPIENTS, CAMPAIGN)
    send_form = driver.find_element(By.XPATH, SEND_FORM)
    fields = {
        str(e.get_attribute("name")): str(e.get_attribute("value"))
        for e in send_form.find_elements(By.CSS_SELECTOR, "input[type=hidden][name]")
    }
    assert fields.get("csrf_token")
    del fields["csrf_token"]
    with session_client(driver, serve.url) as client:
        refused = client.post(str(send_form.get_attribute("action")), data=fields)
    assert refused.status_code == 403
    assert not list(serve.out.rglob("journal.sqlite"))
