"""``campaigner retry RUN_DIR``: a new run, linked to the old one, that sends again the rows
that failed with a retriable code (``campaigner.retriable``).

The new run reads the same campaign and list (both must be unchanged), so its rows keep
their original numbers. Its report lists every row of the list: the retried rows with their
new outcome, the others as they were checked (invalid, duplicate) or ``not_attempted``
with "not retried" and the run that has their outcome. The old run's report gets the
new run in its ``retried_in`` column. A run is retried once: to retry what failed again,
retry the new run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from campaigner.config import Campaign
from campaigner.errors import (
    CampaignerError,
    ConfirmationDeclined,
    JournalError,
    RunStateError,
)
from campaigner.journal import RunLock, file_fingerprint
from campaigner.retriable import RetryPlan, code_matches, failed_codes, matching_rows
from campaigner.runs import load_run
from campaigner.runstate import META_RETRIED_IN
from campaigner.sending import rebuild_run_report, tidy_run_folder

__all__ = ("RetryChoice", "choose_rows", "hold_run", "mark_old_report", "retry_question")


@dataclass(frozen=True)
class RetryChoice:
    """What a retry of a run sends: the plan, and the campaign and list it reads."""

    plan: RetryPlan
    campaign: Campaign
    input_path: Path
    failed: dict[str, int]  # the run's failed rows by code, retried or not

    def question(self) -> str:
        chosen = ", ".join(
            f"{code} ({n:,})"
            for code, n in sorted(self.failed.items())
            if code_matches(code, self.plan.codes)
        )
        return f"Retry {len(self.plan.rows):,} rows of {self.plan.of} that failed with {chosen}?"


def choose_rows(run_dir: Path, codes: Sequence[str]) -> RetryChoice:
    """The rows of ``run_dir`` a retry with ``codes`` sends (the caller holds its lock)."""
    tidy_run_folder(run_dir)
    campaign, input_path, journal = load_run(run_dir)
    try:
        meta = journal.meta()
        rows = matching_rows(journal, codes)
        failed = dict(failed_codes(journal))
    finally:
        journal.close()
    if meta.get(META_RETRIED_IN):
        done = meta[META_RETRIED_IN]
        raise RunStateError(
            f"{run_dir} was already retried in {done}; to retry what failed there: "
            f"campaigner retry {done}"
        )
    for what, label in (("campaign", "campaign file"), ("input", "recipient list")):
        path = Path(meta.get(f"{what}_path", ""))
        if not path.is_file() or file_fingerprint(path)["sha256"] != meta.get(f"{what}_sha256"):
            raise JournalError(
                f"cannot retry {run_dir}: its {label} {path} is gone or changed since the run; "
                "a retry sends the same messages, so restore it (or start a new send)"
            )
    if not rows:
        listed = ", ".join(f"{code} ({n:,})" for code, n in sorted(failed.items()))
        found = f"its failed rows: {listed}" if failed else "no row of it failed"
        raise RunStateError(
            f"nothing to retry in {run_dir}: no failed row has a code of "
            f"{','.join(codes)} ({found}); name the codes to retry with --codes"
        )
    return RetryChoice(RetryPlan(run_dir, rows, tuple(codes)), campaign, input_path, failed)


def hold_run(run_dir: Path) -> RunLock:
    """The old run's lock, held through the retry: it is neither sent nor retried meanwhile."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except JournalError:
        raise RunStateError(
            f"{run_dir} is being worked on by another process (sending or scheduled); "
            "retry it once that has ended"
        ) from None
    return lock


def retry_question(choice: RetryChoice, confirm: Callable[[str], bool], *, yes: bool) -> None:
    if not yes and not confirm(choice.question()):
        raise ConfirmationDeclined(
            f"not retried: {len(choice.plan.rows):,} rows of {choice.plan.of} would be sent "
            "again; pass --yes to retry them"
        )


def mark_old_report(run_dir: Path, say: Callable[[str], None]) -> None:
    """The old run's report rebuilt with its ``retried_in`` column."""
    try:
        rebuild_run_report(run_dir)
    except (CampaignerError, OSError) as exc:
        say(
            f"warning: the report of {run_dir} was not rebuilt ({exc}); "
            f"`campaigner report {run_dir}` rebuilds it"
        )
