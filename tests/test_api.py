"""The library API called directly: frozen options in, frozen results out."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

import campaigner
from campaigner import api
from campaigner.errors import ConfirmationDeclined
from campaigner.options import SendProgress
from campaigner.signing import Credentials
from campaigner.statuses import Status

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "whatsapp_template.toml"
SAMPLE_ROWS = 1000


def sandbox_send(out: Path, **options: object) -> api.SendResult:
    return api.send(api.SendOptions(SAMPLE, out=out, sandbox=True, yes=True, **options))  # type: ignore[arg-type]


def test_the_package_exports_the_api() -> None:
    for name in api.__all__:
        if name not in ("Confirm", "Say"):
            assert getattr(campaigner, name) is getattr(api, name), name


def test_options_and_results_are_frozen(tmp_path: Path) -> None:
    options = api.PreviewOptions(SAMPLE, out=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.out = Path("elsewhere")  # type: ignore[misc]
    result = api.preview(options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.qps = 1  # type: ignore[misc]


def test_preview_of_the_sample(tmp_path: Path) -> None:
    warnings: list[str] = []
    result = api.preview(api.PreviewOptions(SAMPLE, out=tmp_path), say=warnings.append)
    assert result.tally.rows == SAMPLE_ROWS
    assert 900 < result.would_send < SAMPLE_ROWS  # the sample has invalid rows on purpose
    assert result.run_dir.parent == tmp_path and (result.run_dir / "report.csv").exists()
    assert all(re.fullmatch(r"\d+\*+\d{4}", q["To"]) for q in result.examples)  # masked
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["would_send"] == result.would_send


def test_send_to_an_in_process_simulator_then_rebuild_the_report(tmp_path: Path) -> None:
    snapshots: list[SendProgress] = []
    options = api.SendOptions(SAMPLE, out=tmp_path, sandbox=True, yes=True)
    result = api.send(options, snapshots.append)
    sent = result.tally.count(Status.SENT)
    assert sent > 900 and not result.all_sent
    assert result.summary["endpoint"] == "the built-in simulator"
    assert snapshots and snapshots[-1].done == snapshots[-1].total == sent
    assert snapshots[-1].outage is None
    (result.run_dir / "report.csv").unlink()
    rebuilt = api.report(api.ReportOptions(result.run_dir))
    assert rebuilt.paths == (result.run_dir / "report.csv",)
    assert rebuilt.tally.as_dict() == result.tally.as_dict()
    assert (result.run_dir / "report.csv").exists()


def test_reconcile_of_a_run_without_unknown_rows_looks_nothing_up(tmp_path: Path) -> None:
    run = sandbox_send(tmp_path)
    credentials = Credentials("id", "secret")
    result = api.reconcile(api.ReconcileOptions(run.run_dir, credentials=credentials))
    assert result.settled and result.found_sent == result.not_sent == 0
    assert result.tally.count(Status.SENT) == run.tally.count(Status.SENT)
    assert result.tally.delivery is not None  # summary.json's funnel follows the rebuild
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["delivery"] == result.tally.delivery.as_dict()


def test_a_declined_question_is_its_own_error(tmp_path: Path) -> None:
    questions: list[str] = []

    def no(question: str) -> bool:
        questions.append(question)
        return False

    options = api.SendOptions(SAMPLE, out=tmp_path, sandbox=True)
    with pytest.raises(ConfirmationDeclined, match="pass --yes to send the valid rows"):
        api.send(options, confirm=no)
    assert len(questions) == 1 and questions[0].endswith("Send the 924 valid rows?")
    with pytest.raises(ConfirmationDeclined):  # nobody to ask: declined
        api.send(options)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was started


def test_the_readme_python_api_snippets_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every ```python block of the README's "Python API" section, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")  # reconcile: nothing to look up
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "not sent: 76 rows are invalid or duplicate" in out
    assert "0 0 0" in out  # reconcile: no unknown rows in a finished sandbox run


def test_everything_the_package_lists_exists() -> None:
    assert all(hasattr(campaigner, name) for name in campaigner.__all__)
