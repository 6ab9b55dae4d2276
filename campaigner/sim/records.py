"""Accepted sends: what the recipients "really received", and the JSON-lines log that keeps them,
written and flushed before each answer (docs/simulator.md#the-accepted-log).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ("AcceptedLog", "AcceptedSend", "iso_ms", "read_accepted_log")


def iso_ms(epoch_s: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class AcceptedSend:
    """One send the fake CAMS accepted: what the recipient "really received"."""

    message_id: str
    request_id: str
    to: str
    from_: str
    channel_type: str
    type: str
    template_code: str | None
    language: str | None
    message_type: str | None
    task_id: str | None
    access_key_id: str
    params_hash: str  # sha256 hex of the canonical (sorted, encoded) query; no secrets in it
    received_monotonic: float
    received_wall: float
    fault: str | None  # the post-acceptance fault applied to the answer, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "to": self.to,
            "from": self.from_,
            "channel_type": self.channel_type,
            "type": self.type,
            "template_code": self.template_code,
            "language": self.language,
            "message_type": self.message_type,
            "task_id": self.task_id,
            "access_key_id": self.access_key_id,
            "params_hash": self.params_hash,
            "received_monotonic": self.received_monotonic,
            "received_wall": self.received_wall,
            "received_at": iso_ms(self.received_wall),
            "fault": self.fault,
        }

    def to_line(self) -> str:
        """One JSON line (with its newline), as the log and ``/_sim/accepted`` hold it."""
        return json.dumps(self.to_json(), ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AcceptedSend:
        return cls(
            message_id=data["message_id"],
            request_id=data["request_id"],
            to=data["to"],
            from_=data["from"],
            channel_type=data["channel_type"],
            type=data["type"],
            template_code=data.get("template_code"),
            language=data.get("language"),
            message_type=data.get("message_type"),
            task_id=data.get("task_id"),
            access_key_id=data["access_key_id"],
            params_hash=data["params_hash"],
            received_monotonic=float(data["received_monotonic"]),
            received_wall=float(data["received_wall"]),
            fault=data.get("fault"),
        )


def read_accepted_log(path: Path) -> list[AcceptedSend]:
    """Read a JSON-lines accepted-send log; a torn last line (writer killed) is skipped."""
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            records.append(AcceptedSend.from_json(json.loads(line)))
    return records


class AcceptedLog:
    """Appends accepted sends to a JSON-lines file (mode 0600: it holds phone numbers).

    Each line is flushed to the OS as it is written; ``claim_sync`` hands the file to a
    background fsync in batches.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: TextIO = os.fdopen(fd, "a", encoding="utf-8")
        self._dirty = False

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, record: AcceptedSend) -> None:
        """Append and flush one record (before its answer: the log is what recipients got)."""
        self._file.write(record.to_line())
        self._file.flush()
        self._dirty = True

    def claim_sync(self) -> int | None:
        """The file descriptor to fsync if lines were written since the last claim, else None."""
        if not self._dirty or self._file.closed:
            return None
        self._dirty = False
        return self._file.fileno()

    def flush(self, *, fsync: bool = True) -> None:
        """Push the log to the OS (it is flushed per line anyway) and optionally to disk."""
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())
        self._dirty = False

    def close(self) -> None:
        self.flush()
        self._file.close()
