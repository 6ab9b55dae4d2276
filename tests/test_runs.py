"""The run tally: counts, and the reasons rows were not sent, per status."""

from __future__ import annotations

import polars as pl

from campaigner.runs import ReportLayout, Tally


def test_reasons_are_kept_per_status_and_failed_rows_show_the_answer() -> None:
    layout = ReportLayout.for_input(["phone"])
    report = pl.DataFrame(
        {
            "phone": ["x", "8613900000001", "8613900000002"],
            "row": [2, 3, 4],
            "status": ["invalid", "failed", "sent"],
            "To": ["x", "8613900000001", "8613900000002"],
            "MessageId": [None, None, "m1"],
            "Code": [None, "InvalidParameter.PhoneNumberError", "OK"],
            "Message": [None, "invalid phone number", "OK"],
            "RequestId": [None, "r1", "r2"],
            "attempts": [0, 1, 1],
            "error": ["contains letters", None, None],
        }
    )
    tally = Tally()
    tally.add(report, layout.result_names)
    reasons = tally.as_dict()["invalid_reasons"]
    assert sorted((r["status"], r["reason"], r["first_rows"]) for r in reasons) == [
        ("failed", "InvalidParameter.PhoneNumberError: invalid phone number", [3]),
        ("invalid", "contains letters", [2]),
    ]
