"""The browser kit's own rules: without chromium the browser tests are skipped with the reason,
except under ``CI=true``, where they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import browser


def test_a_missing_browser_skips_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium not installed"):
        browser.require_browser()


def test_a_missing_browser_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMEDRIVER", tmp_path / "no-driver")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but .*no-driver not installed"):
        browser.require_browser()


def test_an_installed_browser_is_required_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where chromium and its driver exist (as `make test` installs them as root), nothing
    # is skipped: the browser tests run.
    if not (browser.CHROMIUM.exists() and browser.CHROMEDRIVER.exists()):
        pytest.skip("chromium or chromedriver not installed here")
    monkeypatch.setenv("CI", "true")
    browser.require_browser()
