"""Leakage (ROAD section 3; the leakage audit of every verdict lives beside it, roar.report.leakage_audit):
the accuracy of models retrained on the masks alone (``fill=mask_only``) against chance."""

from roar.report import html
from roar.report.leakage_audit import leakage
from roar.report.sections.section import Section

COLUMNS = ["base", "estimator", "mode", "fraction", "n", "mean", "ci_low", "ci_high", "chance"]

SECTION = Section(
    name="leakage",
    title="Leakage: the mask alone (fill=mask_only) vs chance",
    gather=lambda data: leakage(data["summary"], data["num_classes"]),
    html=lambda data: html.table(COLUMNS, data["leakage"]) if data["leakage"] else "",
)
