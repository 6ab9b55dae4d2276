"""Fixtures every test shares: a private state folder, the anyio backend, the corpus check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.browser import Serve

# The shared bad-input corpus, beside the repository (../shared/corpus).
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Child processes inherit it: no test reads or writes the real ~/.local/state.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    """A headless chromium of its own (tests/browser.py); selenium loads only when asked."""
    from tests.browser import chrome

    with chrome(tmp_path / "chrome") as d:
        yield d


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``campaigner serve --sandbox`` as a child on a free port, in a workspace of its own."""
    from tests.browser import Serve, require_browser

    require_browser()
    with Serve(tmp_path / "workspace") as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    """``pytest.mark.anyio`` tests run on asyncio, the loop campaigner runs on."""
    return "asyncio"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``corpus`` skip without the corpus, but fail under ``CI=true``."""
    if item.get_closest_marker("corpus") is None or CORPUS.is_dir():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the corpus folder {CORPUS} is missing", pytrace=False)
    pytest.skip(f"corpus folder {CORPUS} is not present")
