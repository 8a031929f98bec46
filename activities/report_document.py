"""Every report to a court, probation officer or employer as a document a person can read: a PDF (reportlab
platypus, as api/equity_pdf.py) and a plain-text / HTML mail body, both from the signed JSON payload, so the
document says exactly what the payload says and nothing more."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer

from domain.report_content import REPORT_TITLES, RETRACTED_TYPE_SUFFIX

DEFAULT_LETTERHEAD = "Intensive outpatient program"
_LABELS = {
    "case_number": "Case number",
    "docket_number": "Docket number",
    "supervision_id": "Supervision id",
    "employee_id": "Employee id",
    "recipient_reference": "Participant reference",
}


def title(payload: Mapping[str, Any]) -> str:
    kind = str(payload.get("type", "report"))
    retracted = kind.endswith(RETRACTED_TYPE_SUFFIX)
    kind = kind.removesuffix(RETRACTED_TYPE_SUFFIX)
    name = REPORT_TITLES.get(kind, kind.replace(".", " ").replace("-", " ").capitalize())
    if retracted:
        return f"Confidential: retraction of a report ({name.lower()})"
    if payload.get("amends"):
        return f"Confidential: {name} (amended report)"
    return f"Confidential: {name}"


def _letter_paragraphs(payload: Mapping[str, Any]) -> list[str]:
    """A letter's text as its paragraphs, without the 42 CFR 2.32 notice the document prints once at its foot."""
    notice = " ".join(str(payload.get("redisclosure_notice", {}).get("text", "")).split())
    paragraphs = [" ".join(part.split()) for part in str(payload.get("data", {}).get("text") or "").split("\n\n")]
    return [part for part in paragraphs if part and part != notice]


def lines(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs in reading order: who it is about, the facts, their basis, what it amends, the consent."""
    out = [(_LABELS.get(key, key), str(value)) for key, value in payload.get("subject", {}).items()]
    data = payload.get("data", {})
    for key, value in data.items():
        if key in ("sections", "text"):
            continue
        out.append((key.replace("_", " ").capitalize(), _plain(value)))
    for category, section in (data.get("sections") or {}).items():
        out.append((category.replace("-", " ").capitalize(), _plain(section)))
    if payload.get("basis") and "basis" not in data:
        out.append(("Basis", str(payload["basis"])))
    if "forensic" in payload:
        out.append(("Testing", "forensic (observed, chain of custody)" if payload["forensic"] else "clinical"))
    if payload.get("amends"):
        what = "withdraws" if data.get("retracted") else "amends"
        out.append(("Amendment", f"this report {what} report {payload['amends']}"))
    consent = payload.get("consent", {})
    out.append(
        (
            "Consent",
            f"{consent.get('consent_id')} signed {consent.get('signed_at')}, purpose: "
            f"{consent.get('purpose')}; categories: {', '.join(consent.get('categories', []))}",
        )
    )
    out.append(("Report id", str(payload.get("disclosure_id"))))
    out.append(("Generated at", str(payload.get("timestamp"))))
    return out


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k.replace('_', ' ')}: {_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "not recorded" if value is None else str(value)


def text_body(payload: Mapping[str, Any], letterhead: str = DEFAULT_LETTERHEAD) -> str:
    body = [letterhead, "", title(payload), ""]
    for paragraph in _letter_paragraphs(payload):
        body += [paragraph, ""]
    body += [f"{label}: {value}" for label, value in lines(payload)]
    body += [
        "",
        payload.get("redisclosure_notice", {}).get("text", ""),
        f"({payload.get('redisclosure_notice', {}).get('citation', '')})",
    ]
    if payload.get("use_restriction"):
        body += ["", payload["use_restriction"]]
    body += ["", "The same report is attached as a PDF."]
    return "\n".join(body) + "\n"


def html_body(payload: Mapping[str, Any], letterhead: str = DEFAULT_LETTERHEAD) -> str:
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in lines(payload)
    )
    letter_text = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in _letter_paragraphs(payload))
    notice = payload.get("redisclosure_notice", {})
    return (
        f"<html><body><p><b>{html.escape(letterhead)}</b></p><h2>{html.escape(title(payload))}</h2>"
        + letter_text
        + f"<table>{rows}</table><p><small>{html.escape(notice.get('text', ''))}<br>"
        f"({html.escape(notice.get('citation', ''))})</small></p>"
        + (f"<p><small>{html.escape(payload['use_restriction'])}</small></p>" if payload.get("use_restriction") else "")
        + "</body></html>"
    )


def render_pdf(payload: Mapping[str, Any], letterhead: str = DEFAULT_LETTERHEAD) -> bytes:
    """The report as a one- or two-page PDF: letterhead, title, the participant reference, the facts, the basis,
    the consent reference, the 42 CFR 2.32 notice and when it was generated. Byte-identical for one payload."""
    out = BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=letter,
        leftMargin=0.8 * inch,
        rightMargin=0.8 * inch,
        topMargin=0.7 * inch,
        bottomMargin=0.7 * inch,
        title=title(payload),
        author=letterhead,
        invariant=True,
    )
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    story: list[Flowable] = [
        Paragraph(html.escape(letterhead), styles["Heading2"]),
        Paragraph(html.escape(title(payload)), styles["Title"]),
    ]
    paragraphs = _letter_paragraphs(payload)
    for paragraph in paragraphs:
        story += [Paragraph(html.escape(paragraph), styles["BodyText"]), Spacer(1, 4)]
    if paragraphs:
        story.append(Spacer(1, 6))
    for label, value in lines(payload):
        story.append(Paragraph(f"<b>{html.escape(label)}:</b> {html.escape(value)}", styles["BodyText"]))
    notice = payload.get("redisclosure_notice", {})
    story += [
        Spacer(1, 10),
        Paragraph(html.escape(notice.get("text", "")).replace("\n", "<br/>"), small),
        Paragraph(html.escape(f"({notice.get('citation', '')})"), small),
    ]
    if payload.get("use_restriction"):
        story.append(Paragraph(html.escape(payload["use_restriction"]), small))
    doc.build(story)
    return out.getvalue()


def content_hash(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()
