"""Send windows: when a row may be sent, in its recipient's local time (``[send] window``).

A row's time zones come from its ``timezone`` column (or ``[send] timezone_column``) when
that cell is filled, else from the phone number (libphonenumber's time zone data). A number
whose prefix spans several zones gets all of them, and the row is sent only while the window
is open in every one: the most conservative reading (a Russian mobile number, which may be
anywhere from Kaliningrad to Kamchatka, goes out in the hour 09:00-20:00 covers in all).
``[send] deadline`` ends the campaign: rows whose window does not open before it are never
sent. Pure: the clock is an argument.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import polars as pl
from phonenumbers import timezone as phone_timezones

from campaigner.columns import ERROR, STATUS, TO
from campaigner.errors import ConfigError
from campaigner.statuses import Status

__all__ = (
    "SendPlan",
    "SendWindow",
    "Timing",
    "Zones",
    "parse_deadline",
    "zones_for_number",
    "zones_label",
    "zones_named",
)

Zones = tuple[str, ...]  # IANA names, sorted; () when nothing is known (then UTC)

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_UNKNOWN = "Etc/Unknown"
# How far ahead a window is looked for: a day and a half covers every zone offset.
_HORIZON = timedelta(hours=50)


def _clock(hours: str, minutes: str, text: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time(0, 0)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ConfigError(f'[send] window has no such time of day: "{text}"')
    return time(h, m)


@dataclass(frozen=True)
class SendWindow:
    """``start``-``end`` each day in local time (end excluded); it may span midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        match = _WINDOW.match(text)
        if match is None:
            raise ConfigError(f'[send] window must look like "09:00-20:00" (got {text!r})')
        start = _clock(match[1], match[2], text)
        end = _clock(match[3], match[4], text)
        if start == end:
            raise ConfigError(f"[send] window opens and closes at the same time: {text!r}")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def is_open_at(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def is_open(self, zones: Zones, at: datetime) -> bool:
        """Open at ``at`` (aware) in every zone."""
        return all(self.is_open_at(at.astimezone(_zone(z))) for z in zones or ("UTC",))

    def opens(self, zones: Zones, now: datetime, deadline: datetime | None) -> datetime | None:
        """The first moment from ``now`` when the window is open in every zone, or None
        when that is not before ``deadline`` (nor within two days: never)."""
        if self.is_open(zones, now):
            return now if deadline is None or now < deadline else None
        # Open in all zones starts when the last of them opens: one of their openings.
        candidates: list[datetime] = []
        for name in zones or ("UTC",):
            tz = _zone(name)
            local = now.astimezone(tz)
            for days in range(3):
                day = (local + timedelta(days=days)).date()
                opening = datetime.combine(day, self.start, tz).astimezone(UTC)
                if now < opening <= now + _HORIZON:
                    candidates.append(opening)
        for moment in sorted(candidates):
            if deadline is not None and moment >= deadline:
                return None
            if self.is_open(zones, moment):
                return moment
        return None


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zones_named(cell: str) -> Zones | None:
    """The zone a ``timezone`` cell names (``Asia/Jakarta``, ``UTC``), or None if none."""
    name = cell.strip()
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return (name,)


def _zones_of(digits: str) -> Zones:
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return ()
    zones: Sequence[str] = phone_timezones.time_zones_for_number(number)
    if not zones or _UNKNOWN in zones:
        # Not tied to a place: every zone of its country (the conservative reading).
        zones = phone_timezones._country_level_time_zones_for_number(number)
    return tuple(sorted(z for z in zones if z != _UNKNOWN))


_BY_PREFIX: dict[str, Zones] = {}
_MAX_PREFIXES = 200_000


def zones_for_number(e164: str) -> Zones:
    """The time zones of a number in E.164 digits. libphonenumber's time zone data reads at
    most 9 digits after the +, so numbers sharing their first 10 digits are looked up once."""
    prefix = e164[:10]
    zones = _BY_PREFIX.get(prefix)
    if zones is None:
        zones = _zones_of(e164)
        if len(_BY_PREFIX) < _MAX_PREFIXES:
            _BY_PREFIX[prefix] = zones
    return zones


def parse_deadline(value: object) -> datetime:
    """``[send] deadline``: an ISO 8601 text or a TOML date-time; without an offset it is
    this machine's local time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f'[send] deadline must be a date and time like "2026-12-01T20:00+08:00" '
                f"(got {value!r})"
            ) from None
    else:
        raise ConfigError(f"[send] deadline must be a date and time (got {value!r})")
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Timing:
    """A campaign's send window over its rows: each row's zones, and when it may go."""

    window: SendWindow
    deadline: datetime | None = None
    column: str | None = None  # the input column naming each row's zone, if any

    @classmethod
    def of(
        cls,
        window: SendWindow | None,
        deadline: datetime | None,
        timezone_column: str | None,
        columns: Sequence[str],
    ) -> Timing | None:
        """None without a window. The zone column is ``timezone_column`` (which must exist),
        else a column called ``timezone`` when the list has one."""
        if timezone_column is not None and timezone_column not in columns:
            raise ConfigError(
                f"[send] timezone_column {timezone_column!r} is not a column of the list"
            )
        if window is None:
            return None
        column = timezone_column or ("timezone" if "timezone" in columns else None)
        return cls(window, deadline, column)

    def zones(self, row: Mapping[str, Any]) -> Zones | None:
        """A prepared row's zones; None when its zone cell names no time zone."""
        if self.column is not None:
            cell = row.get(self.column)
            if cell is not None and str(cell).strip():
                return zones_named(str(cell))
        to = row.get(TO)
        return zones_for_number(to) if isinstance(to, str) and to.isdigit() else ()

    def check(self, prepared: pl.DataFrame) -> pl.DataFrame:
        """Sendable rows whose zone cell names no time zone become invalid."""
        if self.column is None:
            return prepared
        sendable = prepared[STATUS] == Status.WOULD_SEND.value
        cells = prepared[self.column].str.strip_chars().fill_null("")
        named = {c: zones_named(c) is not None for c in cells.filter(sendable).unique() if c}
        bad = sendable & cells.replace_strict(named, default=True, return_dtype=pl.Boolean).not_()
        if not bad.any():
            return prepared
        error = pl.format(
            "{} is not a time zone name (such as Asia/Jakarta or UTC)", pl.col(self.column)
        )
        return prepared.with_columns(
            pl.when(bad).then(pl.lit(Status.INVALID.value)).otherwise(pl.col(STATUS)).alias(STATUS),
            pl.when(bad).then(error).otherwise(pl.col(ERROR)).alias(ERROR),
        )

    def opens(self, zones: Zones, now: datetime) -> datetime | None:
        return self.window.opens(zones, now, self.deadline)

    def never(self, zones: Zones) -> str:
        """Why a row is not sent: its window does not open before the deadline."""
        where = ", ".join(zones) if zones else "UTC"
        when = f"{self.deadline:%Y-%m-%d %H:%M} UTC" if self.deadline else "within two days"
        return f"its send window {self.window} ({where}) does not open before {when}"


def zones_label(zones: Zones) -> str:
    if not zones:
        return "UTC"
    return zones[0] if len(zones) == 1 else f"{zones[0]} (+{len(zones) - 1} zones)"


@dataclass
class SendPlan:
    """The preview's plan under a send window: how many rows go in each hour from ``start``,
    by time zone, and when the last one goes. Rows are counted per set of zones; each hour
    sends, at ``qps``, the rows whose window is open then (half an hour's worth when it
    opens or closes within the hour), oldest waiting first."""

    timing: Timing
    qps: int
    groups: dict[Zones, int] = field(default_factory=dict)

    def add(self, prepared: pl.DataFrame) -> None:
        sendable = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)
        columns = [TO, *([self.timing.column] if self.timing.column else [])]
        for row in sendable.select(columns).iter_rows(named=True):
            zones = self.timing.zones(row) or ()
            self.groups[zones] = self.groups.get(zones, 0) + 1

    def hours(self, start: datetime, max_hours: int = 72) -> dict[str, Any]:
        hour = timedelta(hours=1)
        remaining = {z: n for z, n in self.groups.items() if n}
        never = 0
        for zones in list(remaining):
            if self.timing.opens(zones, start) is None:
                never += remaining.pop(zones)
        rows: list[dict[str, Any]] = []
        finish: datetime | None = None
        at = start
        while remaining and len(rows) < max_hours:
            if self.timing.deadline is not None and at >= self.timing.deadline:
                break
            room = self.qps * 3600
            sent: dict[str, int] = {}
            for zones in sorted(remaining, key=lambda z: self.timing.opens(z, at) or at):
                share = sum(self.timing.window.is_open(zones, at + hour * f) for f in (0, 0.5))
                take = min(remaining[zones], room * share // 2)
                if take <= 0:
                    continue
                remaining[zones] -= take
                room -= take
                label = zones_label(zones)
                sent[label] = sent.get(label, 0) + take
                finish = at + timedelta(seconds=(self.qps * 3600 - room) / self.qps)
                if not remaining[zones]:
                    del remaining[zones]
            if sent:
                rows.append(
                    {
                        "hour": f"{at:%Y-%m-%d %H:%M} UTC",
                        "rows": sum(sent.values()),
                        "by_zone": sent,
                    }
                )
            at += hour
        return {
            "window": str(self.timing.window),
            "deadline": f"{self.timing.deadline:%Y-%m-%d %H:%M} UTC"
            if self.timing.deadline
            else None,
            "hours": rows,
            "finish": None if finish is None or remaining else f"{finish:%Y-%m-%d %H:%M} UTC",
            "not_before_deadline": never + sum(remaining.values()),
        }
