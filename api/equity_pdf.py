"""The equity report (domain/equity.py) as a PDF, with reportlab's platypus: the same numbers as the
JSON answer and the dashboard page, laid out for a court or an oversight board."""

from __future__ import annotations

from io import BytesIO

from reportlab.lib import colors
from reportlab.lib.pagesizes import landscape, letter
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from domain.equity import EquityReport

CITATION = (
    "All Rise, Adult Treatment Court Best Practice Standards, Standard II (Equity and Inclusion); "
    "four-fifths rule: 29 CFR 1607.4(D)."
)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def interval(low: float | None, high: float | None, as_percent: bool = True) -> str:
    if low is None or high is None:
        return "-"
    return f"{percent(low)}-{percent(high)}" if as_percent else f"{low:.2f}-{high:.2f}"


def render(report: EquityReport) -> bytes:
    out = BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(letter),
        leftMargin=0.5 * inch,
        rightMargin=0.5 * inch,
        topMargin=0.5 * inch,
        bottomMargin=0.5 * inch,
        title=f"Equity report {report.period}",
        author="iop-workflows",
    )
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    story = [
        Paragraph(f"Equity report, {report.period}", styles["Title"]),
        Paragraph(
            f"{report.period_start.isoformat()} to {report.period_end.isoformat()}: "
            f"{report.participants} participants enrolled; {report.flagged} flagged comparisons. "
            f"Groups under {report.min_group_size} participants (or whose complement is) are suppressed; "
            f"ratios at or above {report.ratio_high:g} or at or below {report.ratio_low:g} are flagged.",
            styles["BodyText"],
        ),
        Paragraph(report.method, small),
        Paragraph(CITATION, small),
        Spacer(1, 8),
    ]
    labels = {m.key: m for m in report.metrics}
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("FONTSIZE", (0, 0), (-1, -1), 7.5),
            ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    for section, title in report.sections.items():
        story.append(Paragraph(title, styles["Heading2"]))
        rows = [["Measure", "All participants", "Rate", "95% CI"]]
        for rate in report.overall:
            if labels[rate.metric].section == section:
                rows.append(
                    [
                        labels[rate.metric].label,
                        f"{rate.count} / {rate.of} {labels[rate.metric].per}",
                        percent(rate.rate),
                        interval(rate.ci_low, rate.ci_high),
                    ]
                )
        story += [Table(rows, style=grid, repeatRows=1), Spacer(1, 6)]
        rows = [["Dimension", "Group", "Measure", "Count", "Rate (95% CI)", "Others", "Ratio (95% CI)", "Flag"]]
        flagged = []
        for group in report.groups:
            if group.suppressed:
                rows.append([group.dimension, group.group, "suppressed (small group)", "", "", "", "", ""])
                continue
            for c in group.rates:
                if labels[c.metric].section != section:
                    continue
                ratio = (
                    "-" if c.ratio is None else f"{c.ratio:.2f} ({interval(c.ratio_ci_low, c.ratio_ci_high, False)})"
                )
                if c.flag:
                    flagged.append(len(rows))
                rows.append(
                    [
                        group.dimension,
                        group.group,
                        labels[c.metric].label,
                        f"{c.count} / {c.of}",
                        f"{percent(c.rate)} ({interval(c.ci_low, c.ci_high)})",
                        percent(c.others_rate),
                        ratio,
                        (c.flag or "") + (" *" if c.flag and c.interval_excludes_one else ""),
                    ]
                )
        style = TableStyle(grid.getCommands() + [("BACKGROUND", (0, r), (-1, r), colors.lightyellow) for r in flagged])
        story += [Table(rows, style=style, repeatRows=1), Spacer(1, 10)]
    story.append(Paragraph("* the ratio's interval excludes 1.", small))
    doc.build(story)
    return out.getvalue()
