"""Every test keeps campaigner's per-user state (the record of runs) in its own folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Child processes inherit it: no test reads or writes the real ~/.local/state.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
