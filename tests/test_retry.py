"""``campaigner retry RUN_DIR``: a new run, linked to the old one, of the rows that failed
with a retriable code (throttling and system errors by default; others only when named with
--codes); original row numbers; the old report's retried_in column; never sent twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from campaigner import api
from campaigner.errors import ConfigError, ConfirmationDeclined, RunStateError
from campaigner.retriable import DEFAULT_RETRIABLE, code_matches, parse_codes
from campaigner.runstate import RunState
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox, run
from tests.operator_kit import PHONES, report_rows, send_options, sent_to

# Row 3 gets a system error (failed), row 4 a parameter error (failed, never retried by
# default), row 5 throttling until the send gives up on it ([send] max_attempts = 1).
FAULTS = {PHONES[1]: "System.Busy", PHONES[2]: "InvalidParameter.To", PHONES[3]: "Throttling.User"}


@pytest.fixture(scope="module")
def faulty() -> Iterator[Sandbox]:
    extra = [a for to, code in FAULTS.items() for a in ("--fail-recipient", f"{to}={code}")]
    with Sandbox(latency_ms=5, extra=extra) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def healthy() -> Iterator[Sandbox]:
    with Sandbox(latency_ms=5) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        ("Throttling.User", True),
        ("Throttling", True),
        ("System.LimitControl", True),
        ("ServiceUnavailable", True),
        ("InternalError", True),
        ("InvalidParameter.To", False),
        ("Forbidden.AccountBlocked", False),
        ("InvalidUser.Blocked", False),
        ("ThrottlingX", False),  # a prefix names whole segments
        (None, False),
    ],
)
def test_the_default_retriable_codes(code: str | None, retried: bool) -> None:
    assert code_matches(code, DEFAULT_RETRIABLE) is retried


def test_codes_are_exact_codes_or_prefixes() -> None:
    assert parse_codes("InvalidParameter.*, System.Busy") == ("InvalidParameter.*", "System.Busy")
    assert code_matches("InvalidParameter.To", parse_codes("InvalidParameter.*"))
    assert not code_matches("InvalidParameter.To", parse_codes("InvalidParameter"))
    for bad in ("", "*", "a b", "Invalid*", "x.*.y"):
        with pytest.raises(ConfigError, match="--codes"):
            parse_codes(bad)


def _failed_run(tmp_path: Path, faulty: Sandbox) -> api.SendResult:
    result = api.send(send_options(tmp_path, faulty))
    rows = report_rows(result.run_dir)
    assert [rows[r]["Code"] for r in range(2, 7)] == [
        "OK",
        "System.Busy",
        "InvalidParameter.To",
        "Throttling.User",
        "OK",
    ]
    return result


def test_retry_sends_the_retriable_rows_once_in_a_linked_run(
    tmp_path: Path, faulty: Sandbox, healthy: Sandbox
) -> None:
    old = _failed_run(tmp_path, faulty)
    before = len(healthy.accepted())
    questions: list[str] = []

    def no(question: str) -> bool:
        questions.append(question)
        return False

    credentials = Credentials(KEY_ID, SECRET)
    with pytest.raises(ConfirmationDeclined):
        api.retry(old.run_dir, endpoint=healthy.url, credentials=credentials, confirm=no)
    assert "Retry 2 rows" in questions[0]
    assert "System.Busy (1)" in questions[0] and "Throttling.User (1)" in questions[0]
    assert sent_to(healthy, before) == []

    new = api.retry(old.run_dir, endpoint=healthy.url, credentials=credentials, yes=True)

    assert sorted(sent_to(healthy, before)) == [PHONES[1], PHONES[3]]
    assert new.run_dir != old.run_dir and new.run_dir.parent == old.run_dir.parent
    rows = report_rows(new.run_dir)  # every row of the list, with its original number
    assert {r: rows[r]["status"] for r in rows} == {
        2: "not_attempted",
        3: "sent",
        4: "not_attempted",
        5: "sent",
        6: "not_attempted",
        7: "invalid",
    }
    assert rows[2]["error"] == f"not retried: its outcome is in {old.run_dir.resolve()}"
    assert rows[3]["To"] == PHONES[1]

    old_rows = report_rows(old.run_dir)
    link = str(new.run_dir.resolve())
    assert {r: old_rows[r]["retried_in"] for r in range(2, 8)} == {
        2: "",
        3: link,
        4: "",
        5: link,
        6: "",
        7: "",
    }
    runs = {r.run_dir: r for r in api.list_runs(old.run_dir.parent)}
    assert runs[old.run_dir].retried_in == new.run_dir.resolve()
    assert runs[new.run_dir].retry_of == old.run_dir.resolve()
    assert runs[new.run_dir].state is RunState.DONE

    # Neither a resume of the old run nor a second retry of it sends those rows again.
    options = send_options(tmp_path, healthy)
    api.send(replace(options, resume=old.run_dir))
    with pytest.raises(RunStateError, match="already retried in"):
        api.retry(old.run_dir, endpoint=healthy.url, credentials=credentials, yes=True)
    assert sorted(sent_to(healthy, before)) == [PHONES[1], PHONES[3]]


def test_codes_retry_what_the_default_never_does(
    tmp_path: Path, faulty: Sandbox, healthy: Sandbox
) -> None:
    old = _failed_run(tmp_path, faulty)
    credentials = Credentials(KEY_ID, SECRET)
    before = len(healthy.accepted())
    api.retry(
        old.run_dir,
        ["InvalidParameter.*"],
        endpoint=healthy.url,
        credentials=credentials,
        yes=True,
    )
    assert sent_to(healthy, before) == [PHONES[2]]


def test_nothing_to_retry_says_which_codes_failed(tmp_path: Path, faulty: Sandbox) -> None:
    old = _failed_run(tmp_path, faulty)
    with pytest.raises(RunStateError, match=r"InvalidParameter\.To \(1\)"):
        api.retry(
            old.run_dir,
            ["Forbidden.*"],
            endpoint=faulty.url,
            credentials=Credentials(KEY_ID, SECRET),
            yes=True,
        )


@pytest.mark.slow
def test_a_retry_run_stopped_and_resumed_sends_only_its_rows(
    tmp_path: Path, faulty: Sandbox, healthy: Sandbox
) -> None:
    old = _failed_run(tmp_path, faulty)
    before = len(healthy.accepted())
    # The retry run sees throttling again for row 5 and gives up on it; the CLI reports it.
    code, stdout, err = run(
        "retry", str(old.run_dir), "--endpoint", faulty.url, "--yes", timeout=120
    )
    assert code == 3, err
    assert "Retry of" in stdout
    [retry_run] = [r for r in api.list_runs(old.run_dir.parent) if r.retry_of is not None]
    # Resuming that retry run sends what it left pending of its own rows (row 5; row 3
    # failed again, for good), never a row it did not retry.
    options = send_options(tmp_path, healthy)
    api.send(replace(options, resume=retry_run.run_dir))
    assert sent_to(healthy, before) == [PHONES[3]]
    assert report_rows(retry_run.run_dir)[5]["status"] == "sent"
    code, _, err = run("retry", str(old.run_dir), "--codes", "a b", "--yes", timeout=60)
    assert code == 1 and "--codes" in err
