"""campaigner: bulk chat-app campaigns from a spreadsheet through Alibaba Cloud CAMS.

The library API (``campaigner.api``) is re-exported here: preview, send, report, reconcile,
status."""

from __future__ import annotations

# The functions below share their names with modules (``campaigner.reconcile``,
# ``campaigner.report``, ``campaigner.preview``, and the send stack): a module's first
# import binds its name here, so those modules are imported before the functions are.
from importlib import import_module

for _module in ("campaigner.reconcile", "campaigner.sending"):  # sending: the send stack
    import_module(_module)

from campaigner.api import (  # noqa: E402
    PreviewOptions,
    PreviewResult,
    ReconcileOptions,
    ReconcileResult,
    ReportOptions,
    ReportResult,
    RunControl,
    RunInfo,
    SendOptions,
    SendProgress,
    SendResult,
    SharedLoop,
    StatusOptions,
    StatusResult,
    TestSendAnswer,
    cancel_run,
    list_runs,
    preview,
    reconcile,
    report,
    retry,
    send,
    status,
    test_send,
)
from campaigner.errors import CampaignerError, ConfirmationDeclined, RunStopped  # noqa: E402
from campaigner.statuses import Status  # noqa: E402

__all__ = (
    "CampaignerError",
    "ConfirmationDeclined",
    "PreviewOptions",
    "PreviewResult",
    "ReconcileOptions",
    "ReconcileResult",
    "ReportOptions",
    "ReportResult",
    "RunControl",
    "RunInfo",
    "RunStopped",
    "SendOptions",
    "SendProgress",
    "SendResult",
    "SharedLoop",
    "Status",
    "StatusOptions",
    "StatusResult",
    "TestSendAnswer",
    "cancel_run",
    "list_runs",
    "preview",
    "reconcile",
    "report",
    "retry",
    "send",
    "status",
    "test_send",
)
