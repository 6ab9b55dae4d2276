"""The one error hierarchy of campaigner.

Run-level failures are exceptions; per-row problems are values (see ``outcomes``).
The CLI catches ``CampaignerError`` once and maps it to a message and an exit code::

    CampaignerError
    ├── ConfigError            the campaign file is unusable (unknown key, bad value, bad template)
    ├── InputError             the recipient file cannot be used at all
    │   ├── UnreadableInputError   not a spreadsheet, encrypted, wrong format, hostile, damaged
    │   ├── EmptyInputError        no header, or a header and no rows
    │   └── MissingColumnsError    templates use columns the file does not have
    ├── CredentialsError       ALIBABA_CLOUD_* variables missing or unusable
    ├── AccountError           CAMS refused the account itself (bad key, signature, permission)
    ├── UnreachableError       CAMS could not be reached for longer than [send] outage_limit_s
    ├── JournalError           the run journal is unusable, locked, or does not match the input
    └── InterruptedRunError    the run was stopped by a signal (graceful stop)
"""

from __future__ import annotations

__all__ = (
    "AccountError",
    "CampaignerError",
    "ConfigError",
    "CredentialsError",
    "EmptyInputError",
    "InputError",
    "InterruptedRunError",
    "JournalError",
    "MissingColumnsError",
    "UnreachableError",
    "UnreadableInputError",
)


class CampaignerError(Exception):
    """Root of every run-level failure. ``str(err)`` is the message shown to the user."""

    exit_code: int = 1


class ConfigError(CampaignerError):
    """The campaign file cannot be used as written."""


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


class InterruptedRunError(CampaignerError):
    """The run stopped on a signal after finishing in-flight work."""

    exit_code = 130
