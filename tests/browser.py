"""Real-browser test kit: Debian's headless chromium driven by Selenium, `campaigner serve` as
a child process, and the page contract's moves (sign in, upload, read figures, download).

Nothing here sleeps to synchronize: every wait is an explicit condition with a generous
deadline, because the machine running the tests is small and shared.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

__all__ = (
    "CAMPAIGN",
    "PASSWORD",
    "SAMPLES",
    "WAIT_S",
    "Serve",
    "alert_present",
    "chrome",
    "click_button",
    "click_send",
    "counts",
    "describe",
    "download",
    "read_csv",
    "require_browser",
    "run_id_of",
    "session_client",
    "settled_counts",
    "sign_in",
    "upload_campaign",
    "wait_for",
    "wait_state",
    "write_big_campaign",
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
CAMPAIGN = SAMPLES / "whatsapp_template.toml"
PASSWORD = "correct horse battery staple"
# Deadline for any one wait: pages, previews and downloads (the machine is slow and shared).
WAIT_S = 90.0
_URL_LINE = re.compile(r"^campaigner web: (http://\S+?)/?$")

T = TypeVar("T")


def require_browser() -> None:
    """Skip without chromium and chromedriver, with the reason; under ``CI=true``, fail."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (`make sysdeps` installs them as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def chrome(folder: Path) -> Iterator[WebDriver]:
    """A fresh headless chromium with its own profile; downloads land in ``folder/downloads``."""
    require_browser()
    downloads = folder / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={folder / 'profile'}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    # An alert stays open instead of being dismissed, so a test can see that one fired.
    options.unhandled_prompt_behavior = "ignore"
    # The Debian driver matches the Debian browser: Selenium Manager must download nothing.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        driver.set_page_load_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


class Serve:
    """`campaigner serve --sandbox --port 0 --out OUT` as a child process; ``url`` ends in /."""

    def __init__(self, out: Path, *, password: str = PASSWORD, sandbox: bool = True) -> None:
        self.out = out
        self.password = password
        self.sandbox = sandbox
        self.url = ""
        self.lines: list[str] = []
        self.stderr = out.parent / f"{out.name}-serve.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> Serve:
        """Start it and wait for the `campaigner web: URL` line (printed once listening)."""
        cmd = [sys.executable, "-m", "campaigner", "serve", "--port", "0", "--out", str(self.out)]
        if self.sandbox:
            cmd.append("--sandbox")
        env = {**os.environ, "CAMPAIGNER_WEB_PASSWORD": self.password, "PYTHONUNBUFFERED": "1"}
        self.url, self.lines = "", []
        listening = threading.Event()
        with self.stderr.open("ab") as err:
            # This interpreter running campaigner with arguments built here: no untrusted input.
            # Its own session, so cleanup can end anything it started by its group id.
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True
            )
        proc = self._proc

        def pump() -> None:
            # Keeps draining stdout for the process's whole life so a full pipe never blocks it.
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.lines.append(line)
                match = _URL_LINE.match(line)
                if match and not self.url:
                    self.url = match.group(1) + "/"
                    listening.set()
            listening.set()  # stdout closed: the process is gone

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(WAIT_S) or not self.url:
            tail = self.stderr.read_text("utf-8", "replace")[-3000:]
            self.stop()
            raise RuntimeError(f"campaigner serve did not start: {self.lines!r}\n{tail}")
        return self

    def kill9(self) -> None:
        """SIGKILL the server process alone (what a crash or the OOM killer does)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(WAIT_S)

    def stop(self) -> None:
        """End the server and anything it started (its process group), SIGTERM first."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(WAIT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], T | None], timeout: float = WAIT_S
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that."""
    waiting = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        result = waiting.until(condition)
    except TimeoutException:
        name = getattr(condition, "__name__", "a condition")
        raise AssertionError(f"waited {timeout:.0f} s for {name}: {describe(driver)}") from None
    assert result is not None
    return result


# What a timed-out wait reports: where the browser is and what the page says.
_DESCRIBE = """
const run = document.getElementById('run');
const counts = {};
for (const e of document.querySelectorAll('[data-count]')) counts[e.dataset.count] = e.innerText;
const errors = Array.from(document.querySelectorAll('.error, [role=alert], .notices li'))
  .map(e => e.innerText.trim()).filter(t => t);
return {state: run ? run.dataset.state : null, counts: counts, messages: errors};
"""


def describe(driver: WebDriver) -> str:
    """The page's URL, run state, figures and messages (for failure messages)."""
    try:
        return f"{driver.current_url} {driver.execute_script(_DESCRIBE)}"
    except WebDriverException as exc:
        return f"(page unreadable: {exc.msg})"


def _button_xpath(text: str) -> str:
    return (
        f"//button[normalize-space()='{text}' and not(@disabled)] | "
        f"//input[(@type='submit' or @type='button') and @value='{text}' and not(@disabled)]"
    )


def click_button(driver: WebDriver, *texts: str) -> None:
    """Click the enabled button whose text is exactly one of ``texts`` (the contract names
    buttons by their text)."""
    xpath = " | ".join(_button_xpath(text) for text in texts)
    wait_for(driver, lambda d: d.find_elements(By.XPATH, xpath))[0].click()


def click_send(driver: WebDriver, n: int) -> None:
    """Press `Send N messages` (N as digits, or with thousands separators)."""
    click_button(driver, f"Send {n} messages", f"Send {n:,} messages")


def run_id_of(driver: WebDriver) -> str:
    """Wait for the browser to be on a run page and return the run's id."""
    match = wait_for(driver, lambda d: re.search(r"/runs/([^/?#]+)/?(?:[?#].*)?$", d.current_url))
    return match.group(1)


def write_big_campaign(folder: Path, rows: int, qps: int) -> tuple[Path, Path]:
    """A list of ``rows`` distinct valid recipients and the sample campaign at ``qps``."""
    folder.mkdir(parents=True)
    listing = folder / "big.csv"
    with listing.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "first_name", "coupon"])
        out.writerows([f"86139{i:08d}", "ana", f"BIG-{i}"] for i in range(1, rows + 1))
    text = CAMPAIGN.read_text(encoding="utf-8")
    assert "qps = 250 " in text
    campaign = folder / "big.toml"
    campaign.write_text(
        text.replace("qps = 250 ", f"qps = {qps} ").replace('"spring-sale"', '"big"'),
        encoding="utf-8",
    )
    return listing, campaign


def sign_in(driver: WebDriver, base: str, password: str = PASSWORD, path: str = "") -> None:
    """Open ``path`` and sign in through the form if it sends us there; waits to leave /signin."""
    driver.get(base + path)
    if "/signin" not in driver.current_url:
        return
    field = wait_for(driver, lambda d: d.find_elements(By.NAME, "password"))[0]
    field.send_keys(password)
    click_button(driver, "Sign in")
    wait_for(driver, lambda d: "/signin" not in d.current_url)


def upload_campaign(driver: WebDriver, base: str, recipients: Path, campaign: Path) -> None:
    """Upload a list and a campaign file on /campaigns/new and press Preview; waits for figures."""
    driver.get(base + "campaigns/new")
    wait_for(driver, lambda d: d.find_elements(By.NAME, "recipients"))
    driver.find_element(By.NAME, "recipients").send_keys(str(recipients))
    driver.find_element(By.NAME, "campaign").send_keys(str(campaign))
    click_button(driver, "Preview")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-count="rows"]'))


# Read in one script, so live updates swapping the elements cannot leave a stale reference.
_READ_COUNTS = """
const found = {};
for (const e of document.querySelectorAll('[data-count]')) {
  if (!(e.dataset.count in found)) found[e.dataset.count] = e.innerText;
}
return found;
"""


def counts(driver: WebDriver, names: Sequence[str]) -> dict[str, int]:
    """The numbers in the ``data-count`` elements (the contract: digits only)."""
    shown: dict[str, str] = driver.execute_script(_READ_COUNTS)
    found: dict[str, int] = {}
    for name in names:
        text = shown.get(name)
        assert text is not None, f"no data-count={name!r} on {driver.current_url}"
        assert text.strip().isdigit(), f"data-count={name!r} shows {text!r}, not digits"
        found[name] = int(text)
    return found


def settled_counts(
    driver: WebDriver, expected: dict[str, int], timeout: float = WAIT_S
) -> dict[str, int]:
    """The ``data-count`` figures once they equal ``expected`` (live pages may lag a moment
    behind their state); after ``timeout``, the figures as they are, for the assertion."""
    with contextlib.suppress(TimeoutException):
        wait_for(driver, lambda d: counts(d, list(expected)) == expected or None, timeout)
    return counts(driver, list(expected))


def wait_state(driver: WebDriver, states: set[str], timeout: float = WAIT_S) -> str:
    """Wait until the run page's ``#run`` element has a ``data-state`` in ``states``."""

    def state(d: WebDriver) -> str | None:
        value = d.execute_script("return document.getElementById('run')?.dataset.state;")
        return value if value in states else None

    state.__name__ = f"data-state in {sorted(states)}"
    return wait_for(driver, state, timeout)


def alert_present(driver: WebDriver) -> bool:
    """Whether a JavaScript dialog (alert, confirm, prompt) is open."""
    try:
        driver.switch_to.alert  # noqa: B018 - the property raises when no dialog is open
    except NoAlertPresentException:
        return False
    return True


def download(driver: WebDriver, folder: Path, start: Callable[[], object]) -> Path:
    """Run ``start`` (a click) with downloads going to a new empty ``folder``; wait for the one
    file it downloads to be complete (no ``.crdownload`` left) and return it."""
    folder.mkdir(parents=True)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
    )
    start()

    def finished(_: WebDriver) -> Path | None:
        files = list(folder.iterdir())
        if len(files) != 1 or files[0].suffix in {".crdownload", ".tmp"}:
            return None
        return files[0]

    return wait_for(driver, finished)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """A report CSV's header and rows, cells exactly as written."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def session_client(driver: WebDriver, base: str) -> httpx.Client:
    """An httpx client carrying the browser's cookies (its signed-in session)."""
    jar = httpx.Cookies()
    for cookie in driver.get_cookies():
        jar.set(cookie["name"], cookie["value"])
    return httpx.Client(base_url=base, cookies=jar, timeout=WAIT_S, follow_redirects=False)
