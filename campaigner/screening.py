"""The rows a workspace's own knowledge keeps from being sent.

After ``Plan.prepare`` a row is ``would_send``; the screen may hold it back:

- ``suppressed``: its recipient is on the workspace's suppression list for the campaign's
  sender number (``From``): they opted out (a stop word, a Viber unsubscribe, a manual
  entry). The row's error says since when and why.
- ``already_sent`` (``send --only-new``): the workspace ledger says an earlier run of the
  campaign sent (or possibly delivered) the very same call to this recipient. The row's
  error names that run's folder.

Whole batches at a time: the recipients and sender numbers are looked up once per distinct
value. What the screen reads (the suppression list, the ledger) comes in as callables, so
this module does no I/O of its own except ``Suppressions``, the reader of the list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO, internal
from campaigner.ledger import Ledger, LedgerEntry, call_fingerprint
from campaigner.rows import Plan
from campaigner.statuses import Status

__all__ = (
    "CALL",
    "OnlyNew",
    "Screen",
    "SuppressionLike",
    "Suppressions",
    "WorkspaceScreen",
    "recipient_keys",
    "record_run",
    "suppression_error",
)

CALL = internal("call_fingerprint")  # a sendable row's call_fingerprint (null for others)
_KEY, _BUSINESS, _HELD_ERROR = (
    internal("screen:key"),
    internal("screen:business"),
    internal("screen:error"),
)


class SuppressionLike(Protocol):
    """What the screen reads of a suppression (``receipts.suppression.Suppression``)."""

    @property
    def since_ms(self) -> int | None: ...

    @property
    def reason(self) -> str: ...


# business number (phone key) -> {recipient phone key: suppression}
SuppressionLookup = Callable[[str], Mapping[str, SuppressionLike]]


def recipient_keys(values: pl.Series) -> pl.Series:
    """``receipts.parse.phone_key`` for a whole column: the digits of a phone number; a value
    with a letter in it (a Messenger or Instagram ID) stripped, as it is."""
    stripped = values.str.strip_chars()
    return (
        pl.select(
            pl.when(stripped.str.contains(r"\p{L}"))
            .then(stripped)
            .otherwise(stripped.str.replace_all(r"\D", ""))
        )
        .to_series()
        .alias(values.name)
    )


def suppression_error(suppression: SuppressionLike) -> str:
    """``opted out on 2026-11-20 14:03 UTC: replied STOP``."""
    reason = " ".join(suppression.reason.split()) or "on the suppression list"
    if suppression.since_ms is None:
        return f"opted out: {reason}"
    when = datetime.fromtimestamp(suppression.since_ms / 1000, UTC)
    return f"opted out on {when:%Y-%m-%d %H:%M} UTC: {reason}"


@dataclass(frozen=True)
class OnlyNew:
    """``send --only-new``: the ledger of ``workspace``, for ``campaign`` sent to
    ``destination``, leaving out the run being sent (a resume) itself. The ledger is
    opened per batch (a connection costs far less than a batch), so nothing stays open."""

    workspace: Path
    campaign: str
    destination: str | None  # None: sent anywhere (a preview does not know where it goes)
    this_run: str | None = None

    def earlier(self, calls: Sequence[tuple[str, str]]) -> list[LedgerEntry | None]:
        with Ledger(self.workspace) as ledger:
            return ledger.earlier(self.campaign, self.destination, calls, exclude_run=self.this_run)

    def error(self, entry: LedgerEntry) -> str:
        folder = self.workspace / entry.run
        if entry.certain:
            return f"already sent by run {folder} (row {entry.row})"
        return (
            f"may already have been sent by run {folder} (row {entry.row}: its outcome is "
            "unknown; reconcile that run to know)"
        )


class Screen:
    """Holds back the would_send rows the workspace knows must not be sent; with
    ``fingerprints``, adds ``CALL`` to every row it leaves sendable (and to held ones)."""

    def __init__(
        self,
        plan: Plan,
        *,
        suppressed: SuppressionLookup | None = None,
        only_new: OnlyNew | None = None,
        fingerprints: bool = False,
    ) -> None:
        self.plan = plan
        self.suppressed = suppressed
        self.only_new = only_new
        self.fingerprints = fingerprints or only_new is not None
        self._frames: dict[str, tuple[Mapping[str, SuppressionLike], pl.DataFrame]] = {}
        # The last batch's queries by row, as fingerprinted: the send feed reuses them.
        self.queries: dict[int, dict[str, str]] = {}
        slot = plan.template.slot("From")
        self._from_column: str | None = None
        self._from_value = ""
        if slot is None:
            value = plan.campaign.message.get("From")
            self._from_value = "" if value is None else str(value)
        elif slot.kind == "static":
            self._from_value = slot.parts[0][1]
        else:
            self._from_column = slot.column

    @property
    def idle(self) -> bool:
        return self.suppressed is None and not self.fingerprints

    def apply(self, prepared: pl.DataFrame) -> pl.DataFrame:
        if self.idle:
            return prepared
        frame = prepared
        if self.fingerprints:
            frame = self._add_fingerprints(frame)
        if self.suppressed is not None:
            frame = self._hold(frame, Status.SUPPRESSED, self._suppressions(frame))
        if self.only_new is not None:
            frame = self._hold(frame, Status.ALREADY_SENT, self._earlier(frame, self.only_new))
        return frame

    def _sendable(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col(STATUS) == Status.WOULD_SEND.value)

    def _add_fingerprints(self, frame: pl.DataFrame) -> pl.DataFrame:
        rows: list[int] = []
        prints: list[str] = []
        self.queries = {}
        for row in self._sendable(frame).iter_rows(named=True):
            query = self.plan.query(row)
            rows.append(row[ROW])
            prints.append(call_fingerprint(query))
            self.queries[row[ROW]] = query
        found = pl.DataFrame(
            {ROW: rows, CALL: prints}, schema={ROW: frame.schema[ROW], CALL: pl.String}
        )
        return frame.join(found, on=ROW, how="left", maintain_order="left")

    def _suppressions(self, frame: pl.DataFrame) -> pl.DataFrame:
        """(ROW, error) of the sendable rows whose recipient opted out of their sender."""
        assert self.suppressed is not None
        business = (
            pl.lit(self._from_value, pl.String)
            if self._from_column is None
            else pl.col(self._from_column)
        )
        keyed = self._sendable(frame).select(
            ROW,
            recipient_keys(self._sendable(frame)[TO]).alias(_KEY),
            business.alias(_BUSINESS),
        )
        keyed = keyed.with_columns(recipient_keys(keyed[_BUSINESS]).alias(_BUSINESS))
        found = [
            self._listed(str(number)).with_columns(pl.lit(number, pl.String).alias(_BUSINESS))
            for (number,) in keyed.select(_BUSINESS).unique().iter_rows()
            if number
        ]
        if not found:
            return pl.DataFrame(schema={ROW: frame.schema[ROW], _HELD_ERROR: pl.String})
        return keyed.join(pl.concat(found), on=[_BUSINESS, _KEY], how="inner").select(
            ROW, _HELD_ERROR
        )

    def _listed(self, business: str) -> pl.DataFrame:
        """(key, error) of everyone ``business`` must not send to, built again only when
        the lookup answers with a new list."""
        assert self.suppressed is not None
        listed = self.suppressed(business)
        cached = self._frames.get(business)
        if cached is not None and cached[0] is listed:
            return cached[1]
        keys = list(listed)
        frame = pl.DataFrame(
            {_KEY: keys, _HELD_ERROR: [suppression_error(listed[k]) for k in keys]},
            schema={_KEY: pl.String, _HELD_ERROR: pl.String},
        )
        self._frames[business] = (listed, frame)
        return frame

    def _earlier(self, frame: pl.DataFrame, only_new: OnlyNew) -> pl.DataFrame:
        """(ROW, error) of the sendable rows whose call an earlier run already sent."""
        calls = self._sendable(frame).filter(pl.col(CALL).is_not_null()).select(ROW, TO, CALL)
        entries = only_new.earlier(
            list(zip(calls[TO].to_list(), calls[CALL].to_list(), strict=True))
        )
        rows = [r for r, e in zip(calls[ROW].to_list(), entries, strict=True) if e is not None]
        errors = [only_new.error(e) for e in entries if e is not None]
        return pl.DataFrame(
            {ROW: rows, _HELD_ERROR: errors},
            schema={ROW: frame.schema[ROW], _HELD_ERROR: pl.String},
        )

    def _hold(self, frame: pl.DataFrame, status: Status, held: pl.DataFrame) -> pl.DataFrame:
        if held.is_empty():
            return frame
        joined = frame.join(held, on=ROW, how="left", maintain_order="left")
        hit = pl.col(_HELD_ERROR).is_not_null()
        return joined.with_columns(
            pl.when(hit).then(pl.lit(status.value)).otherwise(pl.col(STATUS)).alias(STATUS),
            pl.when(hit).then(pl.col(_HELD_ERROR)).otherwise(pl.col(ERROR)).alias(ERROR),
        ).drop(_HELD_ERROR)


class Suppressions:
    """The workspace's suppression list (``receipts.sqlite``), read per sender number and
    read again after ``refresh_s``, so a long send honours an opt-out that arrives while
    it runs. No ``receipts.sqlite`` in the workspace: nobody opted out (none is created)."""

    def __init__(
        self,
        workspace: Path,
        stop_words: Sequence[str] = (),
        *,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.stop_words = tuple(stop_words)
        self.refresh_s = refresh_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, SuppressionLike]]] = {}

    def __call__(self, business: str) -> Mapping[str, SuppressionLike]:
        now = self._clock()
        cached = self._cache.get(business)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        listed = self._read(business)
        self._cache[business] = (now, listed)
        return listed

    def _read(self, business: str) -> Mapping[str, SuppressionLike]:
        from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore

        if not (self.workspace / RECEIPTS_NAME).exists():
            return {}
        with ReceiptStore.open(self.workspace) as store:
            return store.suppressed(business, self.stop_words)


class WorkspaceScreen:
    """The screens of one preview or send in ``workspace``: its suppression list, and with
    ``only_new`` its ledger, brought up to date from the runs' journals first."""

    def __init__(
        self,
        plan: Plan,
        workspace: Path,
        *,
        only_new: bool = False,
        destination: str | None = "cams",
        this_run: Path | None = None,
    ) -> None:
        self.plan = plan
        self.suppressions = Suppressions(workspace, plan.campaign.send.stop_words)
        self.only_new: OnlyNew | None = None
        if only_new:
            # Before deciding: what every run's journal says was sent, crashed ones included.
            with Ledger(workspace) as ledger:
                ledger.sync(plan.campaign.name, also=() if this_run is None else (this_run,))
            name = None if this_run is None else this_run.name
            self.only_new = OnlyNew(workspace, plan.campaign.name, destination, name)

    def check(self) -> Screen:
        """For counting (preview, the check before a send): fingerprints only if needed."""
        return Screen(self.plan, suppressed=self.suppressions, only_new=self.only_new)

    def feed(self) -> Screen:
        """For the send: every sendable row gets its fingerprint (journaled)."""
        return Screen(
            self.plan, suppressed=self.suppressions, only_new=self.only_new, fingerprints=True
        )


def record_run(workspace: Path, campaign: str, run_dir: Path) -> None:
    """Copy a run's sends (and those of the workspace's other runs of the campaign not yet
    read) into the ledger."""
    with Ledger(workspace) as ledger:
        ledger.sync(campaign, also=(run_dir,))
