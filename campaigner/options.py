"""The values of the library API (``campaigner.api``): the frozen options each call takes,
the frozen results it returns, and the progress snapshots a send passes to its callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.limits import RECONCILE_GRACE_S
from campaigner.signing import Credentials
from campaigner.statuses import Status

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
)


@dataclass(frozen=True)
class PreviewOptions:
    """``campaigner preview``: validate and render every row, send nothing."""

    campaign_file: Path
    input_path: Path | None = None  # None: the campaign file's ``input``
    out: Path = Path("reports")  # one sub-folder per run
    xlsx: bool | None = None  # report.xlsx besides report.csv; None: for XLSX input


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
    credentials: Credentials | None = None  # None: the ALIBABA_CLOUD_* variables


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
        return self.tally.count(Status.SENT) == self.tally.rows


@dataclass(frozen=True)
class ReportResult:
    run_dir: Path
    tally: Tally
    paths: tuple[Path, ...]  # report.csv, and report.xlsx when the run has one

    @property
    def all_sent(self) -> bool:
        return self.tally.count(Status.SENT) == self.tally.rows


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
