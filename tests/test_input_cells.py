"""Input cells through the whole preview: real files, the real reader, Plan and CLI.

What a cell holds must reach the message as the user sees it (no invisible characters) and
come back in the report exactly as it was; how an ambiguous phone number is read is the
campaign's choice, and the preview shows what each choice would send.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from campaigner.config import load_campaign, parse_campaign
from campaigner.errors import ConfigError
from campaigner.inputs import open_input
from campaigner.preview import run_preview
from campaigner.rows import Deduper, Plan
from campaigner.statuses import Status

ROOT = Path(__file__).resolve().parents[1]


def campaign(folder: Path, data: str | bytes, **send: object) -> dict[str, Any]:
    path = folder / "list.csv"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return {
        "name": "cells",
        "input": str(path),
        "send": {"default_region": "CN", **send},
        "message": {
            "ChannelType": "whatsapp",
            "Type": "template",
            "From": "8613800000000",
            "To": "{{ phone }}",
            "TemplateCode": "t1",
            "Language": "en",
            "TemplateParams": {"name": "{{ first_name }}", "code": "{{ coupon }}"},
        },
    }


def prepared(data: dict[str, Any]) -> tuple[Plan, pl.DataFrame]:
    plan = Plan(parse_campaign(data))
    table = open_input(Path(data["input"]))
    return plan, pl.concat(plan.prepare(batch, Deduper()) for batch in table.batches())


# --------------------------------------------------------------------------- trimming

INVISIBLE_NAMES = [
    "\ufeffAnn",  # a BOM left by concatenating two CSV files
    "\u200bBob\u200b",  # zero-width spaces pasted from a web page
    "Zo\u00eb\u2060",  # word joiner
    "\u00a0\u200e Li \u200f",  # NBSP and direction marks
    "\u2028Mia\u00ad",  # line separator, soft hyphen
]


def test_invisible_characters_at_a_cells_edges_never_reach_the_message(tmp_path: Path) -> None:
    rows = "".join(
        f"{name},+86 138 0000 00{i:02d},C{i}\n" for i, name in enumerate(INVISIBLE_NAMES)
    )
    # A second BOM before the header (the codec eats only the first) is trimmed there too.
    data = campaign(
        tmp_path, "\ufeff\ufefffirst_name,phone,coupon\n" + rows + "\u200b,+8613800000099,X\n"
    )
    plan, frame = prepared(data)
    params = [
        json.loads(plan.query(row)["TemplateParams"])["name"]
        for row in frame.filter(pl.col(" status") == Status.WOULD_SEND.value).iter_rows(named=True)
    ]
    assert params == ["Ann", "Bob", "Zo\u00eb", "Li", "Mia"]
    # A cell of invisible characters only is empty: a row error naming the column.
    assert frame[" error"].to_list()[-1].startswith("empty value in column 'first_name'")
    # The report still has every input cell exactly as it was.
    result = run_preview(parse_campaign(data), input_path=None, out=tmp_path / "out")
    with (result.run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as fh:
        report = list(csv.DictReader(fh))
    assert [r["first_name"] for r in report] == [*INVISIBLE_NAMES, "\u200b"]


# --------------------------------------------------------------------------- line ends


def test_report_gives_back_cells_with_cr_and_crlf_byte_for_byte(tmp_path: Path) -> None:
    cells = ["two\r\nlines", "old\rmac", "unix\nline", "mixed\r\n\r\rend", "plain"]
    body = "".join(f'"{cell}",+86 138 0000 00{i:02d},C{i}\r\n' for i, cell in enumerate(cells))
    data = campaign(tmp_path, "first_name,phone,coupon\r\n" + body)
    result = run_preview(parse_campaign(data), input_path=None, out=tmp_path / "out")
    raw = (result.run_dir / "report.csv").read_bytes()
    assert b'"two\r\nlines"' in raw and b'"old\rmac"' in raw and b'"mixed\r\n\r\rend"' in raw
    with (result.run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as fh:
        report = list(csv.DictReader(fh))
    assert [r["first_name"] for r in report] == cells
    assert {r["status"] for r in report} == {"would_send"}


# --------------------------------------------------------------------------- ambiguous

# CN mobiles written without 86 whose digits are also a +1 number (150, 170, 180 are NANP
# area codes), next to a number that is not ambiguous.
AMBIGUOUS_LIST = (
    "first_name,phone,coupon\n"
    "Ann,15012345678,A\n"  # +86 150... or +1 501...
    "Bob,+86 150 1234 5678,B\n"  # the CN reading of Ann's number: a duplicate under "region"
    "Cy,17012345678,C\n"
    "Di,+1 701 234 5678,D\n"  # the +1 reading of Cy's number: a duplicate under "country_code"
    "Ed,18012345678,\n"  # ambiguous, but invalid anyway (no coupon): never sent
    "Fay,13812345678,F\n"  # only valid in CN
    "Gus,2024-03-01,G\n"  # a date: its own reason
    "Hal,-8613800000011,H\n"  # a negative number: never read as 8613800000011
)


def test_ambiguous_setting_is_checked() -> None:
    base = {"name": "x", "message": {"ChannelType": "whatsapp"}}
    assert parse_campaign(base).send.ambiguous == "reject"
    for choice in ("reject", "region", "country_code"):
        assert parse_campaign({**base, "send": {"ambiguous": choice}}).send.ambiguous == choice
    with pytest.raises(ConfigError, match='ambiguous must be one of "reject", "region"'):
        parse_campaign({**base, "send": {"ambiguous": "guess"}})


@pytest.mark.parametrize("choice", ["reject", "region", "country_code"])
def test_each_ambiguous_choice_sends_what_the_preview_said(tmp_path: Path, choice: str) -> None:
    data = campaign(tmp_path, AMBIGUOUS_LIST, ambiguous=choice)
    result = run_preview(parse_campaign(data), input_path=None, out=tmp_path / "out")
    report = pl.read_csv(result.run_dir / "report.csv", infer_schema=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    # What each choice sends, counted in one run; the run with that choice agrees.
    expected = {"reject": 3, "region": 4, "country_code": 4}
    assert summary["ambiguous"] == {"rows": 2, "choice": choice, "would_send": expected}
    assert result.would_send == expected[choice]
    to = dict(zip(report["first_name"], report["To"], strict=True))
    status = dict(zip(report["first_name"], report["status"], strict=True))
    if choice == "reject":
        assert status["Ann"] == status["Cy"] == "invalid"
        assert status["Bob"] == status["Di"] == "would_send"
    elif choice == "region":
        assert (to["Ann"], to["Cy"]) == ("8615012345678", "8617012345678")
        assert status["Bob"] == "duplicate"
    else:
        assert (to["Ann"], to["Cy"]) == ("15012345678", "17012345678")
        assert status["Di"] == "duplicate"
    errors = dict(zip(report["first_name"], report["error"], strict=True))
    assert errors["Gus"] == "looks like a date, not a phone number"
    assert errors["Hal"].startswith("starts with '-'")
    assert status["Ed"] == "invalid" and "coupon" in errors["Ed"]


def test_preview_prints_the_count_of_each_ambiguous_choice(tmp_path: Path) -> None:
    data = campaign(tmp_path, AMBIGUOUS_LIST)
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'name = "cells"\ninput = "{data["input"]}"\n[send]\ndefault_region = "CN"\n'
        "[message]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in data["message"].items() if isinstance(v, str))
        + '[message.TemplateParams]\nname = "{{ first_name }}"\ncode = "{{ coupon }}"\n'
    )
    args = [sys.executable, "-m", "campaigner", "preview", str(toml), "--out", str(tmp_path)]
    shown = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    assert shown.returncode == 3, shown.stderr
    assert (
        "2 ambiguous numbers (valid as CN numbers and with a country code): rows sent with "
        '[send] ambiguous = "reject" (this campaign) 3, "region" 4, "country_code" 4'
    ) in shown.stdout
    as_json = subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=ROOT)
    summary = json.loads(as_json.stdout)
    assert summary["ambiguous"]["would_send"] == {"reject": 3, "region": 4, "country_code": 4}


def test_sample_list_loses_no_mobile_when_the_campaign_reads_them_as_cn(tmp_path: Path) -> None:
    # The sample CN list: 12 mobiles written without 86 also read as +1 numbers.
    text = (ROOT / "sample_data" / "whatsapp_template.toml").read_text()
    text = text.replace('input = "recipients.csv"', f'input = "{ROOT}/sample_data/recipients.csv"')
    path = tmp_path / "c.toml"
    path.write_text(
        text.replace('default_region = "CN"', 'default_region = "CN"\nambiguous = "region"')
    )
    result = run_preview(load_campaign(path), input_path=None, out=tmp_path / "out")
    counts = result.ambiguous_summary()
    assert counts["rows"] == 12
    assert (
        result.would_send == counts["would_send"]["region"] == counts["would_send"]["reject"] + 12
    )
    reasons = " ".join(reason for _, reason in result.tally.reasons)
    assert "ambiguous" not in reasons
