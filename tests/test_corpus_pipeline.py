"""Every third-party bad-input file through the whole preview: a report or one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigner.config import parse_campaign
from campaigner.errors import CampaignerError
from campaigner.inputs import open_input
from campaigner.preview import run_preview
from tests.conftest import CORPUS

SKIP = {"README.md", "MANIFEST.tsv"}
FILES = (
    sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in SKIP and "LICENSES" not in p.parts
    )
    if CORPUS.exists()
    else []
)


def campaign_for(columns: tuple[str, ...]) -> dict[str, object]:
    """Use the first column a template can name, so rows really render."""
    usable = [c for c in columns if c.isidentifier()]
    params = {"a": "{{ " + usable[0] + " }}"} if usable else {}
    return {
        "name": "corpus",
        "message": {
            "ChannelType": "messenger",
            "Type": "template",
            "From": "page-1",
            "To": "{{ " + usable[0] + " }}" if usable else "psid-1",
            "TemplateCode": "t",
            "Language": "en",
            "TemplateParams": params,
        },
    }


@pytest.mark.corpus
def test_every_corpus_file_gives_a_report_or_one_clear_error(tmp_path: Path) -> None:
    reports = errors = 0
    for path in FILES:
        try:
            columns = open_input(path).columns
            campaign = parse_campaign(campaign_for(columns))
            result = run_preview(campaign, input_path=path, out=tmp_path)
        except CampaignerError as exc:
            assert str(exc).strip(), path
            assert "Traceback" not in str(exc)
            errors += 1
            continue
        report = (result.run_dir / "report.csv").read_text(encoding="utf-8-sig")
        assert result.tally.rows == sum(result.tally.by_status.values()), path
        assert report.count("\n") >= result.tally.rows, path
        reports += 1
    assert reports + errors == len(FILES)
    assert reports > len(FILES) // 2  # most of the corpus is readable data
