"""``send --test-to``: the first valid row's call, To replaced by each test number, sent
for real to the simulator; CAMS's answers returned and printed with masked numbers; no
run folder, record of runs or ledger touched."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from campaigner import api
from campaigner.columns import ROW
from campaigner.config import load_campaign
from campaigner.errors import ConfigError, InputError
from campaigner.rows import Deduper, Plan, open_campaign_input, resolve_input
from campaigner.signing import canonical_query
from campaigner.sim.harness import Sandbox, run
from tests.operator_kit import send_options, write_campaign


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # One test number is refused, as CAMS refuses a number that cannot receive the message.
    with Sandbox(
        latency_ms=5, extra=["--fail-recipient", "8613700000002=InvalidParameter.To"]
    ) as s:
        yield s


def _state_files() -> list[Path]:
    return [p for p in Path(os.environ["XDG_STATE_HOME"]).rglob("*") if p.is_file()]


def row_three_query(options: api.SendOptions) -> dict[str, str]:
    campaign = load_campaign(options.campaign_file)
    plan = Plan(campaign)
    table = open_campaign_input(campaign, resolve_input(campaign, None), plan)
    prepared = plan.prepare(next(iter(table.batches())), Deduper())
    return plan.query(prepared.filter(pl.col(ROW) == 3).row(0, named=True))


def test_the_first_valid_row_goes_to_each_test_number(tmp_path: Path, sandbox: Sandbox) -> None:
    options = send_options(tmp_path, sandbox)
    # Row 2 is invalid now: the first valid row is row 3 (Name3).
    lines = (tmp_path / "list.csv").read_text().splitlines()
    lines[1] = "no number,Nobody"
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    before = len(sandbox.accepted())
    state_before = _state_files()

    answers = api.test_send(options, ["+86 137 0000 0001", "8613700000002"])

    assert [a.to for a in answers] == ["86*******0001", "86*******0002"]
    assert all(a.row == 3 for a in answers)
    assert answers[0].sent and answers[0].code == "OK" and answers[0].message_id
    assert not answers[1].sent and answers[1].code == "InvalidParameter.To"
    accepted = sandbox.accepted()[before:]
    assert [a["to"] for a in accepted] == ["8613700000001"]  # normalized like the list's
    # Exactly row 3's rendered call, To replaced: the simulator hashes the query it got.
    expected = {**row_three_query(options), "To": "8613700000001"}
    assert (
        accepted[0]["params_hash"] == hashlib.sha256(canonical_query(expected).encode()).hexdigest()
    )
    assert not options.out.exists()  # no run folder, no workspace ledger
    assert _state_files() == state_before  # no record of runs


@pytest.mark.parametrize(
    ("numbers", "says"),
    [
        (["8613700000001"] * 6, "at most 5"),
        ([], "at least one"),
        (["12ab"], "contains letters"),
        (["8613700000001", "+1 555"], r"--test-to \*+"),  # named masked
    ],
)
def test_bad_test_numbers_are_refused_before_anything_is_sent(
    tmp_path: Path, sandbox: Sandbox, numbers: list[str], says: str
) -> None:
    before = len(sandbox.accepted())
    with pytest.raises(ConfigError, match=says):
        api.test_send(send_options(tmp_path, sandbox), numbers)
    assert len(sandbox.accepted()) == before


def test_a_list_without_a_valid_row_has_nothing_to_test(tmp_path: Path, sandbox: Sandbox) -> None:
    options = send_options(tmp_path, sandbox)
    (tmp_path / "list.csv").write_text("phone,name\nnope,A\n")
    with pytest.raises(InputError, match="no row of the list is valid"):
        api.test_send(options, ["8613700000001"])


def test_the_cli_prints_masked_answers(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    args = ["send", str(campaign), "--endpoint", sandbox.url, "--out", str(out)]
    code, stdout, err = run(*args, "--test-to", "8613700000001,8613700000002", timeout=120)
    assert code == 3, err  # one test number was refused
    assert "86*******0001: sent · Code OK" in stdout
    assert "86*******0002: NOT sent · Code InvalidParameter.To" in stdout
    assert "8613700000001" not in stdout + err
    assert not out.exists()
    code, _, err = run(*args, "--test-to", "8613700000001", "--limit", "2", timeout=60)
    assert code == 2 and "--test-to" in err


def test_the_sandbox_works_too(tmp_path: Path) -> None:
    options = replace(api.SendOptions(write_campaign(tmp_path), out=tmp_path / "out"), sandbox=True)
    [answer] = api.test_send(options, ["8613700000001"])
    assert answer.sent and answer.code == "OK"
