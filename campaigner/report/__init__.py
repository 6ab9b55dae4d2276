"""The run report: its layout, its assembly from input and journal, and the atomic
report.csv / report.xlsx writers."""

from campaigner.report.atomic import (
    REPORT_LOCK,
    remove_stale_report_temps,
    report_writing,
    write_json_atomic,
)
from campaigner.report.build import rebuild_report, report_batch
from campaigner.report.delivery_source import LOOKUP_CHANNELS, DeliverySource
from campaigner.report.funnel import Funnel
from campaigner.report.layout import ReportLayout
from campaigner.report.safety import neutralize
from campaigner.report.summary import record_delivery
from campaigner.report.tally import Tally
from campaigner.report.writer import CSV_NAME, XLSX_NAME, ReportWriter, report_paths

__all__ = (
    "CSV_NAME",
    "LOOKUP_CHANNELS",
    "REPORT_LOCK",
    "XLSX_NAME",
    "DeliverySource",
    "Funnel",
    "ReportLayout",
    "ReportWriter",
    "Tally",
    "neutralize",
    "rebuild_report",
    "record_delivery",
    "remove_stale_report_temps",
    "report_batch",
    "report_paths",
    "report_writing",
    "write_json_atomic",
)
