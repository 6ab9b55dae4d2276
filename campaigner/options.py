"""The values of the library API (``campaigner.api``): the frozen options each call takes,
the frozen results it returns, and the progress snapshots a send passes to its callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.limits import LIST_QPS, RECONCILE_GRACE_S
from campaigner.signing import Credentials
from campaigner.statuses import HELD, Status

if TYPE_CHECKING:  # types only: the send stack loads when a send runs
    from campaigner.report.tally import Tally
    from campaigner.send.stats import PoolStats

__all__ = (
    "PreviewOptions",
    "ReconcileOptions",
    "ReconcileResult",
    "ReportOptions",
    "ReportResult",
    "SendOptions",
    "SendProgress",
    "SendResult",
    "StatusOptions",
    "StatusResult",
    "TestSendAnswer",
)


@dataclass(frozen=True)
class PreviewOptions:
    """``campaigner preview``: validate and render every row, send nothing."""

    campaign_file: Path
    input_path: Path | None = None  # None: the campaign file's ``input``
    out: Path = Path("reports")  # one sub-folder per run
    xlsx: bool | None = None  # report.xlsx besides report.csv; None: for XLSX input
    only_new: bool = False  # show as already_sent the calls earlier runs sent (the ledger)


@dataclass(frozen=True)
class SendOptions:
    """``campaigner send``: validate, confirm, send the valid rows, write the report."""

    campaign_file: Path
    input_path: Path | None = None
    out: Path = Path("reports")
    endpoint: str = DEFAULT_ENDPOINT
    qps: int | None = None  # None: the campaign's [send] qps
    yes: bool = False  # answer yes to questions (not to sending a campaign again)
    resume: Path | None = None  # continue the run in this folder
    resend_unknown: bool = False  # with resume: resend rows whose outcome is unknown
    xlsx: bool | None = None
    again: bool = False  # send a campaign and list that an earlier run already sent
    sandbox: bool = False  # send to a CAMS simulator started in this process
    only_new: bool = False  # hold back calls an earlier run of the campaign sent (the ledger)
    credentials: Credentials | None = None  # None: the ALIBABA_CLOUD_* variables
    # The account's shared rate budget: "host", "local" or "redis://HOST:PORT/DB";
    # None: CAMPAIGNER_RATE_BUDGET, else "host" (this host's processes share it).
    rate_budget: str | None = None
    at: datetime | None = None  # send then (validated now; naive: local time); None: now
    limit: int | None = None  # send this many valid rows, then stop resumably


@dataclass(frozen=True)
class ReportOptions:
    """``campaigner report``: rebuild a run's report from its input and journal."""

    run_dir: Path
    xlsx: bool | None = None  # None: the run's own formats


@dataclass(frozen=True)
class ReconcileOptions:
    """``campaigner reconcile``: settle a run's ``unknown`` rows with ListChatappMessage."""

    run_dir: Path
    endpoint: str = DEFAULT_ENDPOINT
    grace_s: float = RECONCILE_GRACE_S  # called unsent only this long after its request
    credentials: Credentials | None = None  # None: the ALIBABA_CLOUD_* variables
    rate_budget: str | None = None  # ListChatappMessage's budget, as SendOptions.rate_budget


@dataclass(frozen=True)
class SendProgress:
    """Where a send stands, as of one moment (a new snapshot every half second)."""

    total: int  # rows this send has to settle
    done: int
    sent: int
    failed: int
    unknown: int
    outage: str | None  # why CAMS cannot be reached right now, in words

    @classmethod
    def of(cls, stats: PoolStats, total: int) -> SendProgress:
        return cls(total, stats.done, stats.sent, stats.failed, stats.unknown, stats.outage())


@dataclass(frozen=True)
class SendResult:
    run_dir: Path
    tally: Tally
    stats: PoolStats
    seconds: float
    stop_reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # what summary.json holds

    @property
    def all_sent(self) -> bool:
        """Every row sent, or held back on purpose (suppressed, already sent)."""
        held = sum(self.tally.count(s) for s in HELD)
        return self.tally.count(Status.SENT) + held == self.tally.rows


@dataclass(frozen=True)
class TestSendAnswer:
    """CAMS's answer to one ``send --test-to`` message (the first valid row's call)."""

    __test__ = False  # not a pytest test class, whatever its name says

    to: str  # the test number, masked
    row: int  # the input row whose call was sent
    sent: bool  # CAMS accepted it
    code: str | None
    message: str | None
    message_id: str | None
    request_id: str | None


@dataclass(frozen=True)
class ReportResult:
    run_dir: Path
    tally: Tally
    paths: tuple[Path, ...]  # report.csv, and report.xlsx when the run has one

    @property
    def all_sent(self) -> bool:
        """Every row sent, or held back on purpose (suppressed, already sent)."""
        held = sum(self.tally.count(s) for s in HELD)
        return self.tally.count(Status.SENT) + held == self.tally.rows


@dataclass(frozen=True)
class ReconcileResult:
    run_dir: Path
    interrupted: int  # rows found in flight (a killed run), looked up like unknown ones
    found_sent: int
    not_sent: int  # confirmed not sent: a resume sends them
    still_unknown: int
    lookup_errors: int
    tally: Tally  # the rebuilt report's counts

    @property
    def settled(self) -> bool:
        return not self.still_unknown and not self.lookup_errors


@dataclass(frozen=True)
class StatusOptions:
    """``campaigner status``: ask ListChatappMessage how far a run's sent messages got."""

    run_dir: Path
    endpoint: str = DEFAULT_ENDPOINT
    qps: int = LIST_QPS  # lookups per second: their own budget, apart from sends
    credentials: Credentials | None = None  # None: the ALIBABA_CLOUD_* variables
    rate_budget: str | None = None  # ListChatappMessage's budget, as SendOptions.rate_budget


@dataclass(frozen=True)
class StatusResult:
    run_dir: Path
    channel: str
    unsettled: int  # sent rows without a final receipt (Read or Failed) before the lookup
    cannot_look_up: int  # ... of them on a channel ListChatappMessage does not list
    requests: int
    found: dict[str, int]  # rows listed, by the state the listing gave
    not_listed: int  # asked about, absent from the listing
    failed_windows: int  # time windows given up after repeated failures
    unreadable: int  # listed with a MessageStatus that could not be read
    stored: int  # receipts new to the workspace's store
    tally: Tally  # the rebuilt report's counts, with its delivery funnel
    paths: tuple[Path, ...]

    @property
    def complete(self) -> bool:
        """Every window was read (rows may still be undelivered: that is an answer too)."""
        return not self.failed_windows
