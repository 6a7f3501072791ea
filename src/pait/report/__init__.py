"""Tables, figures and reports, drawn from the results table (and saved stage outputs) only."""

from pait.report.build import build_report

__all__ = ["build_report"]
