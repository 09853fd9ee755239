"""The campaign report: report.html and report.json from the catalog."""

from faceloop.report.build import build_report
from faceloop.report.data import posterior_mean_ctr

__all__ = ["build_report", "posterior_mean_ctr"]
