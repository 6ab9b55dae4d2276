"""campaigner: bulk chat-app campaigns from a spreadsheet through Alibaba Cloud CAMS."""

from __future__ import annotations

from campaigner.errors import CampaignerError
from campaigner.statuses import Status

__all__ = ("CampaignerError", "Status")
