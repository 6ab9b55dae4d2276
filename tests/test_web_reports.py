"""When the web app rebuilds a watched run's report for its delivery funnel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from campaigner.web import reports
from campaigner.web.reports import ReportRebuilds
from tests.test_web_status import a_run


def spied(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], threading.Event]:
    """The runs rebuilt (the real rebuild still runs), and an event set at each."""
    rebuilt: list[str] = []
    happened = threading.Event()
    real = ReportRebuilds._rebuild

    def rebuild(self: ReportRebuilds, run_id: str, run_dir: Path, xlsx: bool | None) -> object:
        rebuilt.append(run_id)
        happened.set()
        return real(self, run_id, run_dir, xlsx)

    monkeypatch.setattr(ReportRebuilds, "_rebuild", rebuild)
    return rebuilt, happened


def test_a_run_that_has_just_begun_sending_is_rebuilt_one_period_after_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "_SENDING_EVERY_S", 2.0)
    rebuilt, happened = spied(monkeypatch)
    run_dir = a_run(tmp_path)
    rebuilds = ReportRebuilds()
    began = time.time() - 0.2  # created a moment ago
    rebuilds.refresh_soon("r1", run_dir, sending=True, began=began)
    rebuilds.refresh_soon("r1", run_dir, sending=True, began=began)
    assert not happened.wait(0.2) and rebuilt == []  # nothing to count yet
    while not happened.is_set():
        rebuilds.refresh_soon("r1", run_dir, sending=True, began=began)
        assert time.time() - began < 10
        time.sleep(0.05)
    assert rebuilt == ["r1"] and time.time() - began >= 2.0


def test_a_run_watched_long_after_it_began_sending_is_rebuilt_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI run, or one this server resumed after a restart: its receipts are counted as
    soon as its page is open."""
    rebuilt, happened = spied(monkeypatch)
    rebuilds = ReportRebuilds()
    rebuilds.refresh_soon("r1", a_run(tmp_path), sending=True, began=time.time() - 3600)
    assert happened.wait(10) and rebuilt == ["r1"]


def test_a_run_that_is_not_sending_is_rebuilt_when_first_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt, happened = spied(monkeypatch)
    rebuilds = ReportRebuilds()
    rebuilds.refresh_soon("r1", a_run(tmp_path), sending=False)
    assert happened.wait(10) and rebuilt == ["r1"]


def test_a_run_whose_report_was_just_rebuilt_is_not_rebuilt_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that has just ended wrote its report and funnel: its page, watched on, does not
    rebuild them again until they are as old as any other refresh."""
    rebuilt, happened = spied(monkeypatch)
    fresh, stale = a_run(tmp_path, "fresh"), a_run(tmp_path, "stale")
    for run_dir in (fresh, stale):
        (run_dir / "summary.json").write_text("{}", encoding="utf-8")
    old = time.time() - 60
    os.utime(stale / "summary.json", (old, old))
    rebuilds = ReportRebuilds()
    rebuilds.refresh_soon("fresh", fresh, sending=False)
    assert not happened.wait(0.3) and rebuilt == []
    rebuilds.refresh_soon("stale", stale, sending=False)
    assert happened.wait(10) and rebuilt == ["stale"]
