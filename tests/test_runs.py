"""Run folders, the per-user record of runs, report temporary files, and the run tally."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from campaigner.journal import Journal
from campaigner.report import ReportLayout, Tally, remove_stale_report_temps, report_writing
from campaigner.runs import RunRegistry, find_earlier_runs, new_run_dir


def test_reasons_are_kept_per_status_and_failed_rows_show_the_answer() -> None:
    layout = ReportLayout.for_input(["phone"])
    report = pl.DataFrame(
        {
            "phone": ["x", "8613900000001", "8613900000002"],
            "row": [2, 3, 4],
            "status": ["invalid", "failed", "sent"],
            "To": ["x", "8613900000001", "8613900000002"],
            "MessageId": [None, None, "m1"],
            "Code": [None, "InvalidParameter.PhoneNumberError", "OK"],
            "Message": [None, "invalid phone number", "OK"],
            "RequestId": [None, "r1", "r2"],
            "attempts": [0, 1, 1],
            "error": ["contains letters", None, None],
        }
    )
    tally = Tally()
    tally.add(report, layout.result_names)
    reasons = tally.as_dict()["invalid_reasons"]
    assert sorted((r["status"], r["reason"], r["first_rows"]) for r in reasons) == [
        ("failed", "InvalidParameter.PhoneNumberError: invalid phone number", [3]),
        ("invalid", "contains letters", [2]),
    ]


def test_a_run_folder_appears_only_once_prepared(tmp_path: Path) -> None:
    seen: list[list[Path]] = []

    def prepare(folder: Path) -> None:
        (folder / "journal.sqlite").write_text("x")
        seen.append(sorted(p for p in tmp_path.iterdir() if not p.name.startswith(".")))

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = new_run_dir(tmp_path, "spring", when, prepare=prepare)
    second = new_run_dir(tmp_path, "spring", when, prepare=prepare)  # the same second
    assert seen == [[], [first]]  # nothing under the run's name while it is prepared
    assert (first.name, second.name) == ("spring-20260102T030405Z", "spring-20260102T030405Z-2")
    assert (second / "journal.sqlite").exists()
    assert oct(first.stat().st_mode & 0o777) == "0o700"

    def fail(folder: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        new_run_dir(tmp_path, "spring", when, prepare=fail)
    assert sorted(tmp_path.iterdir()) == [first, second]  # no half-made folder, hidden or not


def test_stale_report_temps_go_but_not_while_a_report_is_written(tmp_path: Path) -> None:
    temps = [tmp_path / ".report.csv.a1b2.tmp", tmp_path / ".report.xlsx.c3d4.tmp"]
    for temp in temps:
        temp.write_text("half a report")
    (tmp_path / "report.csv").write_text("the last complete report")
    with report_writing(tmp_path):  # a writer at work (another process, as far as flock goes)
        assert remove_stale_report_temps(tmp_path) == 0
        assert all(t.exists() for t in temps)
    assert remove_stale_report_temps(tmp_path) == 2
    assert not any(t.exists() for t in temps)
    assert (tmp_path / "report.csv").exists()


def test_the_record_of_runs_finds_folders_by_campaign_name(tmp_path: Path) -> None:
    warnings: list[str] = []
    registry = RunRegistry(warnings.append, tmp_path / "state" / "runs.jsonl")
    registry.record("spring", tmp_path / "a")
    registry.record("autumn", tmp_path / "b")
    registry.record("spring", tmp_path / "a")  # recorded once
    with (tmp_path / "state" / "runs.jsonl").open("a") as f:
        f.write('{"name": "spring", "run_d')  # a torn line does not hide the others
    assert registry.folders("spring") == [(tmp_path / "a").resolve()]
    assert warnings == []


def test_an_unusable_record_of_runs_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    warnings: list[str] = []
    registry = RunRegistry(warnings.append, tmp_path / "file" / "campaigner" / "runs.jsonl")
    assert registry.folders("spring") == []
    registry.record("spring", tmp_path / "a")
    registry.record("spring", tmp_path / "b")
    assert len(warnings) == 1 and "only under --out" in warnings[0]


def test_the_record_of_runs_follows_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert RunRegistry(print).path == tmp_path / "xdg" / "campaigner" / "runs.jsonl"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # ignored, as the spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = RunRegistry(print).path
    assert path == tmp_path / "home" / ".local" / "state" / "campaigner" / "runs.jsonl"


def test_earlier_runs_of_a_long_named_campaign_are_found(tmp_path: Path) -> None:
    name = "é" * 150 + "日本" * 75
    meta = {"name": name, "campaign_sha256": "c", "input_sha256": "i", "created_at": "1"}
    run = new_run_dir(tmp_path, name)
    journal = Journal.in_run(run)
    journal.set_meta(meta)
    journal.close()
    assert [r.run_dir for r in find_earlier_runs(tmp_path, meta)] == [run]


def test_earlier_runs_recorded_with_another_file_or_list_are_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign sent daily with a new list has hundreds of recorded runs: a send start
    opens only the journals of those recorded with its campaign file, list and destination
    (and those recorded before records held them)."""
    meta = {"name": "daily", "campaign_sha256": "c1", "input_sha256": "i1", "destination": "cams"}
    other = meta | {"input_sha256": "i2"}
    registry = RunRegistry(print, tmp_path / "state" / "runs.jsonl")
    runs = {}
    for name, recorded in (("same", meta), ("other", other), ("unkeyed", None)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        journal = Journal.in_run(run)
        journal.set_meta({**(recorded or meta), "created_at": str(len(runs))})
        journal.close()
        registry.record("daily", run, recorded)
        runs[name] = run.resolve()
    opened: list[Path] = []
    real_open = Journal.in_run

    def counted(run_dir: Path, *, check: bool = True) -> Journal:
        opened.append(run_dir.resolve())
        return real_open(run_dir, check=check)

    monkeypatch.setattr(Journal, "in_run", counted)
    found = find_earlier_runs(tmp_path / "out", meta, registry)
    assert [r.run_dir.resolve() for r in found] == [runs["same"], runs["unkeyed"]]
    assert sorted(opened) == sorted([runs["same"], runs["unkeyed"]])
    assert registry.folders("daily") == list(runs.values())  # without a meta: every one
