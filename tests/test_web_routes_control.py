"""RunControl: a send in another thread (the web app's) paused and resumed: the rows in
flight finish, nothing is sent twice, and a resume sends the rest."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from campaigner import api
from campaigner.journal import Journal
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from campaigner.statuses import Status

CAMPAIGN = """\
name = "controlled"
input = "list.csv"

[send]
qps = 20

[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "tpl"
Language = "en"
"""
ROWS = 200


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=50) as sandbox:
        yield sandbox


@pytest.fixture
def options(tmp_path: Path, sandbox: Sandbox) -> api.SendOptions:
    (tmp_path / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    (tmp_path / "list.csv").write_text(
        "phone\n" + "".join(f"86139{n:08d}\n" for n in range(ROWS)), encoding="utf-8"
    )
    return api.SendOptions(
        tmp_path / "campaign.toml",
        out=tmp_path / "out",
        endpoint=sandbox.url,
        yes=True,
        credentials=Credentials(KEY_ID, SECRET),
    )


def test_a_paused_send_in_a_thread_stops_cleanly_and_a_resume_sends_the_rest(
    options: api.SendOptions, sandbox: Sandbox
) -> None:
    control = api.RunControl()
    some_sent = threading.Event()
    results: list[api.SendResult] = []

    def progress(p: api.SendProgress) -> None:
        if p.sent >= 5:
            some_sent.set()

    thread = threading.Thread(
        target=lambda: results.append(api.send(options, progress, control=control))
    )
    thread.start()
    assert control.started.wait(60)
    assert some_sent.wait(60)
    control.stop("paused")
    thread.join(60)
    assert not thread.is_alive()
    [paused] = results
    assert paused.stop_reason == "paused"
    assert control.run_dir == paused.run_dir
    journal = Journal.in_run(paused.run_dir)
    try:
        counts = journal.counts()
        assert journal.meta()["finished"] == "no"
    finally:
        journal.close()
    assert "intent" not in counts  # nothing left in flight
    assert 5 <= counts.get("sent", 0) < ROWS

    finished = api.send(replace(options, resume=paused.run_dir))
    assert finished.stop_reason is None
    accepted = Counter(str(a["to"]) for a in sandbox.accepted())
    assert len(accepted) == ROWS and set(accepted.values()) == {1}  # each exactly once
    assert finished.tally.count(Status.SENT) == ROWS


def test_a_stop_asked_before_the_send_starts_sends_nothing(
    options: api.SendOptions, sandbox: Sandbox
) -> None:
    control = api.RunControl()
    control.stop("cancelled")
    result = api.send(options, control=control)
    assert result.stop_reason == "cancelled"
    assert sandbox.accepted() == []
