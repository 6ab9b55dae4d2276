"""The one error hierarchy of campaigner.

Run-level failures are exceptions; per-row problems are values (see ``statuses``).
The CLI catches ``CampaignerError`` once and maps it to a message and an exit code::

    CampaignerError
    ├── ConfigError            the campaign file is unusable (unknown key, bad value, bad template)
    ├── ConfirmationDeclined   a question before the send was answered no (or nobody could answer)
    ├── InputError             the recipient file cannot be used at all
    │   ├── UnreadableInputError   not a spreadsheet, encrypted, wrong format, hostile, damaged
    │   ├── EmptyInputError        no header, or a header and no rows
    │   └── MissingColumnsError    templates use columns the file does not have
    ├── CredentialsError       ALIBABA_CLOUD_* variables missing or unusable
    ├── AccountError           CAMS refused the account itself (bad key, signature, permission)
    ├── UnreachableError       CAMS could not be reached for longer than [send] outage_limit_s
    ├── JournalError           the run journal is unusable, locked, or does not match the input
    ├── StorageError           a file could not be written: disk full, read-only, name too long
    ├── ReceiptFormatError     a pushed receipt body is not JSON objects (the receiver answers 400)
    ├── ReceiverError          the receipt receiver cannot start (callback token, store)
    ├── RateBudgetError        the rate budget cannot be used (--rate-budget, Redis, the run lease)
    │   └── BudgetUnavailable      ... for now (Redis went away): sending waits for it
    ├── RunStateError          the run is not in a state for that (cancel when sending, retry)
    └── InterruptedRunError    the run was stopped by a signal (graceful stop)
        ├── RunStopped             ... after the send finished its report: carries the result
        └── RunCancelled           a scheduled run cancelled before it sent anything

Foreign exceptions reach the CLI as they are; ``meaningful_leaf`` finds the one that matters
inside anyio's exception groups, and ``storage_problem`` puts file-system failures (OSError,
SQLite's "disk is full") in words, so only real bugs are reported as internal errors.
"""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = (
    "AccountError",
    "BudgetUnavailable",
    "CampaignerError",
    "ConfigError",
    "ConfirmationDeclined",
    "CredentialsError",
    "EmptyInputError",
    "InputError",
    "InterruptedRunError",
    "JournalError",
    "MissingColumnsError",
    "RateBudgetError",
    "ReceiptFormatError",
    "ReceiverError",
    "RunCancelled",
    "RunStateError",
    "RunStopped",
    "UnreachableError",
    "UnreadableInputError",
)


class CampaignerError(Exception):
    """Root of every run-level failure. ``str(err)`` is the message shown to the user.

    ``details`` holds what is known about the run when it failed (run_dir, counts), which
    ``--json`` prints with the message.
    """

    exit_code: int = 1

    def __init__(
        self,
        message: str = "",
        *,
        exit_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.details: dict[str, Any] = dict(details or {})


class ConfigError(CampaignerError):
    """The campaign file cannot be used as written."""


class ConfirmationDeclined(CampaignerError):
    """A question asked before the send (resend? send only the valid rows?) was answered
    no, or could not be asked; nothing was sent."""


class InputError(CampaignerError):
    """The recipient file cannot be used at all (a file-level problem)."""


class UnreadableInputError(InputError):
    """Not a readable CSV/XLSX: wrong format, encrypted, damaged or hostile."""


class EmptyInputError(InputError):
    """The file has no header row, or a header and no data rows."""


class MissingColumnsError(InputError):
    """The campaign's templates use columns that the file does not have."""


class CredentialsError(CampaignerError):
    """The ALIBABA_CLOUD_* credentials are missing or unusable."""


class AccountError(CampaignerError):
    """CAMS rejected the account or the request signature: no further row can succeed."""


class UnreachableError(CampaignerError):
    """CAMS stayed unreachable past the outage limit; the run stopped and can be resumed."""


class JournalError(CampaignerError):
    """The run journal is locked by another process, damaged, or belongs to other input."""


class StorageError(CampaignerError):
    """A file or folder could not be created or written (disk full, read-only file system,
    permission denied, name too long); the message says what was already sent and what to do."""


class ReceiptFormatError(CampaignerError):
    """A pushed receipt body is not UTF-8 JSON holding an object or an array of objects."""


class ReceiverError(CampaignerError):
    """The receipt receiver cannot start: no usable callback token, or the store is unusable."""


class RateBudgetError(CampaignerError):
    """The shared rate budget cannot be used: a bad ``--rate-budget``, Redis unreachable when
    the run starts, or the run's lease held by another host."""


class BudgetUnavailable(RateBudgetError):
    """The budget cannot answer right now (Redis went away): no grant, ask again later."""


class InterruptedRunError(CampaignerError):
    """The run stopped on a signal after finishing in-flight work."""

    exit_code = 130


class RunStopped(InterruptedRunError):
    """A signal stopped the send and the report was written: ``result`` is the run's result
    (a ``SendResult``) as far as it got, ``exit_code`` 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(
        self,
        message: str,
        result: object,
        *,
        exit_code: int,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, exit_code=exit_code, details=details)
        self.result = result


class RunCancelled(InterruptedRunError):
    """A scheduled run was cancelled (``campaigner cancel``, or a signal while it waited)
    before it sent anything; its report lists every row not_attempted."""


class RunStateError(CampaignerError):
    """The run is not in a state for what was asked: cancelling a run that is already
    sending, retrying a run twice or one that is still sending."""


@dataclass(frozen=True, slots=True)
class StorageProblem:
    """A file-system failure in words: ``what`` happened (to ``path``) and the ``remedy``."""

    what: str
    path: str | None
    remedy: str

    def describe(self, fallback_path: object = None) -> str:
        path = self.path or (str(fallback_path) if fallback_path is not None else None)
        return f"{self.what}: {path}" if path else self.what


_FREE_SPACE = "free space"
_BY_ERRNO: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FREE_SPACE),
    errno.EDQUOT: ("the disk quota is exhausted", _FREE_SPACE),
    errno.EFBIG: ("the file size limit was reached", "raise the file size limit (ulimit -f)"),
    errno.EROFS: ("the file system is read-only", "use a writable folder (--out)"),
    errno.EACCES: ("permission denied", "fix the folder's permissions or use --out"),
    errno.EPERM: ("operation not permitted", "fix the folder's permissions or use --out"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter --out path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "use a folder for --out"),
    errno.EEXIST: ("a file of that name is in the way", "use a folder for --out"),
    errno.EIO: ("the disk reported an input/output error", "check the disk"),
    errno.ENOENT: ("no such file or folder (deleted meanwhile?)", "check the path"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
    errno.ENFILE: ("too many open files on this machine", "close other programs"),
}
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
# SQLite reports file-system failures as result codes; the primary code is the low byte.
_BY_SQLITE_CODE: dict[int, tuple[str, str]] = {
    13: ("the disk is full", _FREE_SPACE),  # SQLITE_FULL
    10: ("a disk write failed (full, a size limit, or a faulty disk)", "free space"),  # IOERR
    8: ("the file system is read-only", "use a writable folder (--out)"),  # SQLITE_READONLY
    14: ("the journal file cannot be opened", "check the run folder's permissions"),
    3: ("permission denied", "fix the folder's permissions"),  # SQLITE_PERM
}


def storage_problem(exc: BaseException | None) -> StorageProblem | None:
    """``exc`` in words if it (or what it was raised from) is a file-system failure, else None.

    One of our errors is looked through (``__cause__``, else ``__context__``) because
    wrappers such as JournalError are raised ``from None`` over the SQLite error that says
    "disk is full". Other exceptions are not: a bug raised while handling an OSError is a bug.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            code = exc.errno
            if code is None:  # Rust libraries (polars' writers): OSError("... (os error 28)")
                found = _RUST_OS_ERROR.search(str(exc))
                code = int(found.group(1)) if found else None
            if code is None or code not in _BY_ERRNO:
                return None
            what, remedy = _BY_ERRNO[code]
            path = None if exc.filename is None else str(exc.filename)
            return StorageProblem(what, path, remedy)
        if isinstance(exc, sqlite3.Error):
            result = getattr(exc, "sqlite_errorcode", None)
            if isinstance(result, int) and result & 0xFF in _BY_SQLITE_CODE:
                what, remedy = _BY_SQLITE_CODE[result & 0xFF]
                return StorageProblem(what, None, remedy)
            return None
        if not isinstance(exc, CampaignerError):
            return None
        exc = exc.__cause__ or exc.__context__
    return None


def meaningful_leaf(exc: BaseException) -> BaseException:
    """The exception that explains a failure, from inside (nested) exception groups.

    A task group wraps what one task raised and adds the cancellations of the others; the
    leaf that matters is, in this order: a signal (KeyboardInterrupt, SystemExit), one of our
    errors, a file-system failure, any other exception, and only then a cancellation.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        else:
            leaves.append(current)

    def rank(leaf: BaseException) -> int:
        if isinstance(leaf, KeyboardInterrupt | SystemExit):
            return 0
        if isinstance(leaf, CampaignerError):
            return 1
        if storage_problem(leaf) is not None:
            return 2
        if isinstance(leaf, Exception):
            return 3
        return 4  # cancellations and other BaseExceptions

    return min(leaves, key=rank) if leaves else exc
