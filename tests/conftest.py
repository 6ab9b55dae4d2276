"""Fixtures every test shares: a private state folder, the anyio backend, the corpus check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The shared bad-input corpus, beside the repository (../shared/corpus).
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Child processes inherit it: no test reads or writes the real ~/.local/state.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


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
