"""Send windows: the window in every zone of a row, the deadline, the feed that holds rows
whose window is closed while the others go (a fake clock, the real journal and list), and a
send to the loopback simulator where rows past the deadline end not_attempted."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import anyio
import polars as pl
import pytest

from campaigner import api
from campaigner.columns import ERROR, ROW, STATUS
from campaigner.config import load_campaign, parse_campaign
from campaigner.errors import ConfigError
from campaigner.feed import feed
from campaigner.inputs import open_input
from campaigner.journal import Journal
from campaigner.rows import Deduper, Plan
from campaigner.send.journaling import JournalWriter
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from campaigner.statuses import Status
from campaigner.windows import SendPlan, SendWindow, Timing, parse_deadline, zones_for_number

MOSCOW_KAMCHATKA = ("Asia/Kamchatka", "Europe/Moscow")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the window, pure -------------------------------------------------------------------------


def test_a_window_is_read_from_hh_mm_and_may_span_midnight() -> None:
    day = SendWindow.parse("09:00-20:00")
    assert (day.start, day.end) == (time(9), time(20)) and str(day) == "09:00-20:00"
    night = SendWindow.parse(" 22:30 - 06:00 ")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert night.is_open_at(at.replace(hour=23)) and night.is_open_at(at.replace(hour=5))
    assert not night.is_open_at(at.replace(hour=6)) and not day.is_open_at(at.replace(hour=20))
    for bad in ("9-20", "09:00", "25:00-26:00", "09:00-09:00", "09:60-10:00"):
        with pytest.raises(ConfigError, match=r"\[send\] window"):
            SendWindow.parse(bad)


def test_a_row_goes_when_its_window_is_open_in_every_one_of_its_zones() -> None:
    window = SendWindow.parse("09:00-20:00")
    # 08:00 in Shanghai: opens at 09:00 local, 01:00 UTC.
    assert window.opens(("Asia/Shanghai",), utc("2026-12-01T00:00"), None) == utc(
        "2026-12-01T01:00"
    )
    assert window.opens(("Asia/Shanghai",), utc("2026-12-01T02:00"), None) == utc(
        "2026-12-01T02:00"
    )
    # Moscow is open 06:00-17:00 UTC, Kamchatka 21:00-08:00 UTC: both only 06:00-08:00.
    assert window.opens(MOSCOW_KAMCHATKA, utc("2026-12-01T00:00"), None) == utc("2026-12-01T06:00")
    assert window.opens(MOSCOW_KAMCHATKA, utc("2026-12-01T08:00"), None) == utc("2026-12-02T06:00")
    # Zones 13 hours apart share no minute of 09:00-20:00: never.
    assert (
        window.opens(("America/New_York", "Asia/Shanghai"), utc("2026-12-01T00:00"), None) is None
    )
    # The deadline: an opening at or after it is no opening.
    deadline = utc("2026-12-01T06:00")
    assert window.opens(MOSCOW_KAMCHATKA, utc("2026-12-01T00:00"), deadline) is None
    assert window.opens(("Asia/Shanghai",), utc("2026-12-01T02:00"), deadline) is not None
    assert window.opens(("Asia/Shanghai",), utc("2026-12-01T07:00"), deadline) is None
    assert window.opens((), utc("2026-12-01T10:00"), None) == utc("2026-12-01T10:00")  # UTC


def test_zones_come_from_the_number_and_span_its_whole_region_when_it_is_not_local() -> None:
    assert zones_for_number("8613900000002") == ("Asia/Shanghai",)
    assert zones_for_number("14155550123") == ("America/Los_Angeles",)
    russian_mobile = zones_for_number("79161234567")
    assert {"Europe/Moscow", "Asia/Kamchatka"} <= set(russian_mobile)
    assert zones_for_number("999") == ()


def test_the_deadline_is_iso_8601_or_a_toml_date_time() -> None:
    assert parse_deadline("2026-12-01T20:00+08:00") == utc("2026-12-01T12:00")
    assert parse_deadline(datetime(2026, 12, 1, 12, tzinfo=UTC)) == utc("2026-12-01T12:00")
    local = parse_deadline("2026-12-01T20:00")  # no offset: this machine's local time
    assert local == datetime(2026, 12, 1, 20).astimezone().astimezone(UTC)
    for bad in ("tomorrow", 5, "2026-13-01T00:00"):
        with pytest.raises(ConfigError, match=r"\[send\] deadline"):
            parse_deadline(bad)


def test_the_campaign_file_takes_window_timezone_column_and_deadline() -> None:
    base = {"name": "x", "message": {"ChannelType": "whatsapp"}}
    send = parse_campaign(
        {
            **base,
            "send": {
                "window": "09:00-20:00",
                "timezone_column": "tz",
                "deadline": "2026-12-01T20:00+08:00",
            },
        }
    ).send
    assert str(send.window) == "09:00-20:00" and send.timezone_column == "tz"
    assert send.deadline == utc("2026-12-01T12:00")
    with pytest.raises(ConfigError, match="timezone_column"):
        parse_campaign({**base, "send": {"timezone_column": ""}})
    with pytest.raises(ConfigError, match=r"timezone_column 'tz' is not a column"):
        Timing.of(send.window, None, "tz", ("phone", "name"))
    assert Timing.of(None, None, None, ("phone", "timezone")) is None
    assert Timing.of(send.window, None, None, ("phone", "timezone")) == Timing(
        send.window, None, "timezone"
    )


# -- the feed, with a fake clock ------------------------------------------------------------

CAMPAIGN = """\
name = "windows"
input = "list.csv"

[send]
window = "09:00-20:00"
deadline = "{deadline}"

[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{{{ phone }}}}"
TemplateCode = "tpl"
Language = "en"

[message.TemplateParams]
name = "{{{{ name }}}}"
"""
# At 05:00 UTC: Shanghai (13:00) and Tokyo (14:00) are open; London (05:00) opens at
# 09:00 UTC; Los Angeles (21:00 the day before) opens at 17:00 UTC, after the 16:00
# deadline; "Mars/Base" is no time zone.
LIST = [
    ("8613900000002", "Ana", ""),
    ("14155550123", "Bo", ""),
    ("8613900000004", "Cy", "Europe/London"),
    ("8613900000005", "Di", "Asia/Tokyo"),
    ("8613900000006", "Ed", "Mars/Base"),
]


def write(folder: Path, deadline: str) -> Path:
    (folder / "campaign.toml").write_text(CAMPAIGN.format(deadline=deadline), encoding="utf-8")
    with (folder / "list.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("phone", "name", "timezone"), *LIST])
    return folder / "campaign.toml"


def test_rows_wait_for_their_window_while_the_others_go(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, "2026-12-01T16:00Z"))
    plan = Plan(campaign)
    table = open_input(tmp_path / "list.csv")
    send = campaign.send
    timing = Timing.of(send.window, send.deadline, send.timezone_column, table.columns)
    assert timing is not None and timing.column == "timezone"
    [batch] = list(table.batches())
    checked = timing.check(plan.prepare(batch, Deduper()))
    assert checked.filter(pl.col(ROW) == 6).select(STATUS, ERROR).row(0) == (
        Status.INVALID,
        "Mars/Base is not a time zone name (such as Asia/Jakarta or UTC)",
    )

    now = [utc("2026-12-01T05:00")]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    journal = Journal.in_run(tmp_path)
    given: list[tuple[datetime, list[int]]] = []

    async def run() -> None:
        writer = JournalWriter(journal)
        async for jobs in feed(
            plan, table, writer, journal, timing=timing, clock=lambda: now[0], sleep=sleep
        ):
            given.append((now[0], [job.row for job in jobs]))
            assert all(job.query["To"] for job in jobs)

    try:
        anyio.run(run)
        # Shanghai and Tokyo at once; London when its window opened; nobody twice.
        assert given == [(utc("2026-12-01T05:00"), [2, 5]), (utc("2026-12-01T09:00"), [4])]
        assert slept == [4 * 3600.0]
        rows = {r[0]: (r[1], r[7]) for r in journal.rows_between(2, 6)}
        assert rows[3] == (
            "pending",
            "its send window 09:00-20:00 (America/Los_Angeles) does not open before "
            "2026-12-01 16:00 UTC",
        )
        assert rows[6][0] == "invalid"
    finally:
        journal.close()


# -- a send to the simulator ----------------------------------------------------------------


@pytest.mark.slow
def test_a_send_leaves_rows_past_the_deadline_not_attempted_with_the_reason(
    tmp_path: Path,
) -> None:
    # Now: every zone where it is 09:00-20:00 goes; the others cannot before the deadline,
    # which is an hour away (no zone opens and closes within it for every row).
    now = datetime.now(UTC)
    deadline = (now + timedelta(minutes=30)).isoformat(timespec="minutes")
    campaign = write(tmp_path, deadline)
    zones = ["Asia/Shanghai", "Europe/London", "America/Los_Angeles", "Asia/Tokyo", "UTC"]
    window = SendWindow.parse("09:00-20:00")
    soon = now + timedelta(minutes=1)
    rows = [(f"86139000000{i:02d}", f"N{i}", z) for i, z in enumerate(zones)]
    with (tmp_path / "list.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("phone", "name", "timezone"), *rows])
    open_now = {z for z in zones if window.is_open((z,), soon) and window.is_open((z,), now)}
    never = {z for z in zones if window.opens((z,), now, parse_deadline(deadline)) is None}
    if open_now | never != set(zones):
        pytest.skip("a zone's window opens within the next half hour: nothing to wait for here")
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=5) as sandbox:
        result = api.send(
            api.SendOptions(
                campaign,
                out=tmp_path / "out",
                endpoint=sandbox.url,
                yes=True,
                credentials=Credentials(KEY_ID, SECRET),
            )
        )
        received = sorted(str(a["to"]) for a in sandbox.accepted())
    assert received == sorted(p for p, _, z in rows if z in open_now)
    with (result.run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        report = {r["timezone"]: (r["status"], r["error"]) for r in csv.DictReader(f)}
    for zone in never:
        status, error = report[zone]
        assert status == Status.NOT_ATTEMPTED
        assert error.startswith(f"its send window 09:00-20:00 ({zone}) does not open before ")
    for zone in open_now:
        assert report[zone] == (Status.SENT, "")


def test_the_preview_plan_counts_rows_per_hour_by_zone_and_the_finish() -> None:
    window = SendWindow.parse("09:00-20:00")
    plan = SendPlan(Timing(window, utc("2026-12-01T05:00")), qps=1)  # 3,600 rows an hour
    plan.groups = {("Asia/Shanghai",): 5000, ("America/Los_Angeles",): 500, MOSCOW_KAMCHATKA: 10}
    assert plan.hours(utc("2026-12-01T00:00")) == {
        "window": "09:00-20:00",
        "deadline": "2026-12-01 05:00 UTC",
        "hours": [  # Los Angeles is open until 04:00 UTC, Shanghai from 01:00 UTC
            {"hour": "2026-12-01 00:00 UTC", "rows": 500, "by_zone": {"America/Los_Angeles": 500}},
            {"hour": "2026-12-01 01:00 UTC", "rows": 3600, "by_zone": {"Asia/Shanghai": 3600}},
            {"hour": "2026-12-01 02:00 UTC", "rows": 1400, "by_zone": {"Asia/Shanghai": 1400}},
        ],
        "finish": "2026-12-01 02:23 UTC",
        "not_before_deadline": 10,  # Moscow and Kamchatka share 06:00-08:00 UTC only
    }


def test_preview_shows_the_plan_and_marks_bad_zone_cells_invalid(tmp_path: Path) -> None:
    result = api.preview(
        api.PreviewOptions(write(tmp_path, "2099-01-01T00:00Z"), out=tmp_path / "out")
    )
    assert result.tally.count(Status.INVALID) == 1  # Mars/Base
    assert result.plan is not None
    assert sum(h["rows"] for h in result.plan["hours"]) == result.would_send == 4
    assert result.plan["not_before_deadline"] == 0 and result.plan["finish"] is not None
    zones = {z for h in result.plan["hours"] for z in h["by_zone"]}
    assert zones == {"Asia/Shanghai", "America/Los_Angeles", "Europe/London", "Asia/Tokyo"}
