"""The crash campaign and its Jepsen-style check: a generated list, its run folders, and the
report compared with the simulator's accepted log (lost, duplicated, unexpected).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from campaigner.statuses import Status

__all__ = ("CAMPAIGN", "Verdict", "check", "read_report", "run_dir", "write_campaign")

CAMPAIGN = """
name = "crash"
input = "recipients.csv"
[send]
qps = 250
timeout_s = 5
[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "tpl-crash"
Language = "en"
[message.TemplateParams]
name = "{{ name }}"
"""


def write_campaign(folder: Path, rows: int, *, bad_every: int = 50, dup_every: int = 100) -> Path:
    """A campaign and a list with a few invalid rows and a few repeated recipients."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(CAMPAIGN)
    with (folder / "recipients.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name"])
        for i in range(rows):
            if bad_every and i % bad_every == 7:
                phone = "not a number"
            elif dup_every and i % dup_every == 9 and i > 10:
                phone = f"86139{i - 5:08d}"
            else:
                phone = f"86139{i:08d}"
            writer.writerow([phone, f"user{i}"])
    return folder / "campaign.toml"


def run_dir(out: Path) -> Path | None:
    """The newest run folder of the crash campaign under ``out`` (None if none has a journal)."""
    runs = sorted(p for p in out.glob("crash-*") if (p / "journal.sqlite").exists())
    return runs[-1] if runs else None


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class Verdict:
    input_rows: int
    report_rows: int
    missing_rows: int
    repeated_rows: int
    duplicates: int  # recipients the server accepted more than once
    lost: int  # reported sent, but the server has no such MessageId
    unexpected: int  # accepted by the server, reported neither sent nor unknown
    statuses: dict[str, int]

    @property
    def ok(self) -> bool:
        return (
            self.report_rows == self.input_rows
            and not self.missing_rows
            and not self.repeated_rows
            and not self.duplicates
            and not self.lost
            and not self.unexpected
        )


def check(report: Path, input_rows: int, accepted: list[dict[str, object]]) -> Verdict:
    rows = read_report(report)
    numbers = Counter(int(r["row"]) for r in rows)
    expected = set(range(2, input_rows + 2))
    per_recipient = Counter(str(a["to"]) for a in accepted)
    accepted_ids = {str(a["message_id"]) for a in accepted}
    by_to = {r["To"]: r for r in rows if r["status"] in (Status.SENT, Status.UNKNOWN)}
    lost = sum(1 for r in rows if r["status"] == Status.SENT and r["MessageId"] not in accepted_ids)
    unexpected = sum(1 for to in per_recipient if to not in by_to)
    return Verdict(
        input_rows=input_rows,
        report_rows=len(rows),
        missing_rows=len(expected - set(numbers)),
        repeated_rows=sum(1 for n in numbers.values() if n > 1),
        duplicates=sum(1 for n in per_recipient.values() if n > 1),
        lost=lost,
        unexpected=unexpected,
        statuses=dict(Counter(r["status"] for r in rows)),
    )
