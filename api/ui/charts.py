"""Pictures drawn on the server as inline SVG (no charting library, nothing loaded at run time):
a participant's testing calendar and a medication order's adherence chart.

Colour is never the only signal: every calendar day also carries a letter, every mark has a
tooltip title, and the pages print the same facts as a table beside each picture.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

from domain import ledger
from domain.calendar import WEEKDAY_NAMES
from domain.vocab import DayKind
from domain.vocab import DayKind as D
from domain.vocab import FinalOutcome as F
from domain.vocab import ScreeningStatus as S

# kind -> (label, fill, text colour, letter). Fills keep at least 4.5:1 against their letter.
CALENDAR_KINDS: dict[str, tuple[str, str, str, str]] = {
    D.NEGATIVE: ("Negative", "#2e7d32", "#ffffff", "N"),
    D.POSITIVE: ("Positive", "#c62828", "#ffffff", "P"),
    D.MISSED: ("Missed", "#a84b00", "#ffffff", "M"),
    D.EXCUSED: ("Excused", "#3949ab", "#ffffff", "E"),
    D.EXPLAINED: ("Explained on review", "#00695c", "#ffffff", "X"),
    D.REFUSED: ("Refused", "#6a1b9a", "#ffffff", "R"),
    D.INVALID: ("Invalid specimen", "#5d4037", "#ffffff", "I"),
    D.NO_RESULT: ("No result from the lab", "#616161", "#ffffff", "?"),
    D.PENDING: ("Pending (not collected or no final result yet)", "#ffffff", "#1a237e", "…"),
    D.CANCELLED: ("Cancelled", "#cfd8dc", "#263238", "C"),
    D.PAUSED: ("Testing paused", "#fff3c4", "#4e342e", "–"),
    D.NOT_SELECTED: ("Not selected that day", "#eceff1", "#455a64", ""),
}
# When a day has two screenings (a random one and a for-cause one), the day shows the worse.
SEVERITY = tuple(DayKind)

WEEKDAYS = WEEKDAY_NAMES


@dataclass(frozen=True)
class DayMark:
    day: date
    kind: str
    note: str = ""


def worse(a: DayMark | None, b: DayMark) -> DayMark:
    if a is None:
        return b
    if SEVERITY.index(b.kind) < SEVERITY.index(a.kind):
        return DayMark(b.day, b.kind, "; ".join(x for x in (b.note, a.note) if x))
    return DayMark(a.day, a.kind, "; ".join(x for x in (a.note, b.note) if x))


def screening_kind(status: str, final_outcome: str | None) -> str:
    """A screening's place on the calendar, from its status and (when final) its outcome."""
    if status in (S.FINAL, S.COMPLETED):
        by_outcome: dict[str, D] = {
            F.NEGATIVE: D.NEGATIVE,
            F.POSITIVE: D.POSITIVE,
            F.EXPLAINED: D.EXPLAINED,
            F.INVALID: D.INVALID,
            F.REFUSAL: D.REFUSED,
        }
        return by_outcome.get(final_outcome or "", D.PENDING)
    by_status: dict[str, D] = {
        S.MISSED: D.MISSED,
        S.EXCUSED: D.EXCUSED,
        S.REFUSED: D.REFUSED,
        S.CANCELLED: D.CANCELLED,
        S.NO_RESULT: D.NO_RESULT,
    }
    return by_status.get(status, D.PENDING)


def _attrs(**values: Any) -> str:
    return " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in values.items())


def testing_calendar(
    marks: dict[date, DayMark], first: date, last: date, today: date, *, ident: str = "testing-calendar"
) -> Markup:
    """Weeks as rows (Monday first), one square per program day from `first` to `last`."""
    cell, gap, left, top = 36, 4, 64, 22
    start = first - timedelta(days=first.weekday())
    weeks = (last - start).days // 7 + 1
    width, height = left + 7 * (cell + gap), top + weeks * (cell + gap)
    counts = Counter(m.kind for m in marks.values() if first <= m.day <= last)
    tested = {k: v for k, v in counts.items() if k not in (D.NOT_SELECTED, D.PAUSED)}
    summary = ", ".join(
        f"{n} {CALENDAR_KINDS[k][0].lower()}" for k, n in sorted(tested.items(), key=lambda kv: SEVERITY.index(kv[0]))
    )
    svg = _attrs(
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        aria_labelledby=f"{ident}-title {ident}-desc",
        id=ident,
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart calendar" role="img" {svg}>',
        f'<title id="{ident}-title">Testing calendar, {first.isoformat()} to {last.isoformat()}</title>',
        f'<desc id="{ident}-desc">{escape(summary or "No screenings in this period")}.</desc>',
    ]
    for i, name in enumerate(WEEKDAYS):
        x = left + i * (cell + gap) + cell / 2
        parts.append(f"<text {_attrs(x=x, y=14, text_anchor='middle', font_size=11, fill='#37474f')}>{name}</text>")
    for week in range(weeks):
        monday = start + timedelta(days=7 * week)
        y = top + week * (cell + gap)
        parts.append(
            f"<text {_attrs(x=0, y=y + cell / 2 + 4, font_size=11, fill='#37474f')}>"
            f"{monday.strftime('%b')} {monday.day}</text>"
        )
        for weekday in range(7):
            day = monday + timedelta(days=weekday)
            x = left + weekday * (cell + gap)
            if day < first or day > last:  # the rest of the week, outside the period: a faint outline
                why = "before the period shown" if day < first else "after today"
                outline = _attrs(
                    x=x + 0.5, y=y + 0.5, width=cell - 1, height=cell - 1, rx=4, fill="none", stroke="#cfd8dc"
                )
                parts.append(
                    f'<g class="day outside" data-day="{day.isoformat()}">'
                    f"<title>{day.isoformat()}: {why}</title>"
                    f'<rect {outline} stroke-dasharray="2 3"/>'
                    f"<text {_attrs(x=x + 3, y=y + 10, font_size=8, fill='#90a4ae')}>{day.day}</text></g>"
                )
                continue
            mark = marks.get(day)
            kind = mark.kind if mark else None
            label, fill, ink, letter = CALENDAR_KINDS.get(kind or "", ("No draw recorded", "#ffffff", "#78909c", ""))
            future = day > today
            stroke = "#000000" if day == today else ("#1a237e" if kind == "pending" else "#b0bec5")
            dash = ' stroke-dasharray="4 3"' if kind == "pending" or future else ""
            title = f"{day.isoformat()} ({WEEKDAYS[weekday]}): {'today, ' if day == today else ''}{label}"
            if mark and mark.note:
                title += f" ({mark.note})"
            square = _attrs(
                x=x, y=y, width=cell, height=cell, rx=4, fill=fill, stroke=stroke, stroke_width=2 if day == today else 1
            )
            parts.append(
                f'<g class="day" data-day="{day.isoformat()}" data-kind="{escape(kind or "none")}">'
                f"<title>{escape(title)}</title>"
                f"<rect {square}{dash}/>"
                f"<text {_attrs(x=x + 3, y=y + 10, font_size=8, fill=ink)}>{day.day}</text>"
            )
            if letter:
                centre = _attrs(
                    x=x + cell / 2, y=y + cell / 2 + 6, text_anchor="middle", font_size=15, font_weight="bold", fill=ink
                )
                parts.append(f"<text {centre}>{escape(letter)}</text>")
            parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def legend_kinds(marks: dict[date, DayMark]) -> list[tuple[str, str, str, str, str]]:
    """(kind, label, fill, ink, letter) for the legend, in severity order, for the kinds shown."""
    shown = {m.kind for m in marks.values()}
    return [(k, *CALENDAR_KINDS[k]) for k in SEVERITY if k in shown]


def swatch(kind: str) -> Markup:
    label, fill, ink, letter = CALENDAR_KINDS.get(kind, ("", "#ffffff", "#000000", ""))
    dash = ' stroke-dasharray="3 2"' if kind == "pending" else ""
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 20 20" '
        'aria-hidden="true" focusable="false">'
        f'<rect x="1" y="1" width="18" height="18" rx="3" fill="{fill}" stroke="#78909c"{dash}/>'
        f'<text x="10" y="14.5" text-anchor="middle" font-size="11" font-weight="bold" '
        f'fill="{ink}">{escape(letter)}</text></svg>'
    )


# --- adherence -----------------------------------------------------------------------------

ADHERENCE_KINDS: dict[str, tuple[str, str]] = {
    ledger.DOSED: ("Observed dose", "#2e7d32"),
    ledger.INJECTED: ("Injection given", "#1b5e20"),
    ledger.GUEST_DOSED: ("Observed dose at another site", "#388e3c"),
    ledger.TAKE_HOME: ("Take-home dose", "#81c784"),
    ledger.MISSED: ("Missed", "#c62828"),
    ledger.HELD: ("Held (not a dose taken)", "#a84b00"),
    ledger.REFUSED: ("Refused", "#6a1b9a"),
    ledger.CLOSED: ("Clinic closed (no dose due)", "#b0bec5"),
}


def ledger_days(live: dict[str, Any]) -> dict[str, str]:
    """What each day of an order's live state reads on the chart: the recorded outcomes, the days a
    dispensed take-home supply covers, and clinic-closed days (domain.ledger, the same ledger
    the adherence figures are counted from)."""
    days = dict(live.get("outcomes") or {})
    for supply in live.get("supplies") or []:
        for day in supply.get("dates") or []:
            days.setdefault(day, "take-home")
    for day in live.get("closed_days") or []:
        days.setdefault(day, "closed")
    return days


NONE_FILL = "#eceff1"


def _ratio_text(window: dict[str, Any]) -> str:
    if not window or window.get("ratio") is None:
        return "no dose expected"
    return f"{round(window['ratio'] * 100)}% ({window.get('taken', 0)} of {window.get('expected', 0)} doses)"


def adherence_text(window: dict[str, Any]) -> str:
    return _ratio_text(window)


def adherence_chart(
    outcomes: dict[str, str],
    today: date,
    adherence_7d: dict[str, Any],
    adherence_30d: dict[str, Any],
    *,
    days: int = 45,
    ident: str = "adherence",
) -> Markup:
    """One bar per day for the last `days` days (what happened to the dose), then the 7- and
    30-day adherence the order's workflow computed."""
    bar, gap, left, top, height = 12, 2, 70, 4, 30
    first = today - timedelta(days=days - 1)
    strip_width = days * (bar + gap)
    width = left + strip_width + 34
    ratio_top = top + height + 26
    total_height = ratio_top + 2 * 24 + 4
    counts = Counter(kind for day, kind in outcomes.items() if first.isoformat() <= day <= today.isoformat())
    summary = "; ".join(f"{ADHERENCE_KINDS.get(k, (k,))[0].lower()}: {n} day(s)" for k, n in sorted(counts.items()))
    svg = _attrs(
        viewBox=f"0 0 {width} {total_height}",
        width=width,
        height=total_height,
        aria_labelledby=f"{ident}-title {ident}-desc",
        id=ident,
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart adherence" role="img" {svg}>',
        f'<title id="{ident}-title">Doses, {first.isoformat()} to {today.isoformat()}</title>',
        f'<desc id="{ident}-desc">{escape(summary or "No doses recorded in this period")}. Last 7 days: '
        f"{escape(_ratio_text(adherence_7d))}. Last 30 days: {escape(_ratio_text(adherence_30d))}.</desc>",
        f"<text {_attrs(x=0, y=top + height / 2 + 4, font_size=11, fill='#37474f')}>Each day</text>",
    ]
    for i in range(days):
        day = first + timedelta(days=i)
        kind = outcomes.get(day.isoformat())
        label, fill = ADHERENCE_KINDS.get(kind or "", ("No dose recorded", NONE_FILL))
        x = left + i * (bar + gap)
        outline = ' stroke="#000000" stroke-width="1.5"' if day == today else ""
        parts.append(
            f'<g class="dose" data-day="{day.isoformat()}" data-kind="{escape(kind or "none")}">'
            f"<title>{escape(day.isoformat())}: {escape(label)}</title>"
            f"<rect {_attrs(x=x, y=top, width=bar, height=height, rx=2, fill=fill)}{outline}/></g>"
        )
        if day.weekday() == 0:
            parts.append(
                f"<text {_attrs(x=x, y=top + height + 14, font_size=10, fill='#37474f')}>{day.month}/{day.day}</text>"
            )
    for row, (name, window) in enumerate((("Last 7 days", adherence_7d), ("Last 30 days", adherence_30d))):
        y = ratio_top + row * 24
        ratio = (window or {}).get("ratio")
        parts.append(f"<text {_attrs(x=0, y=y + 12, font_size=11, fill='#37474f')}>{name}</text>")
        parts.append(f"<rect {_attrs(x=left, y=y, width=300, height=16, rx=3, fill=NONE_FILL)}/>")
        if ratio is not None:
            fill = "#2e7d32" if ratio >= 0.9 else ("#a84b00" if ratio >= 0.7 else "#c62828")
            parts.append(f"<rect {_attrs(x=left, y=y, width=round(300 * ratio, 1), height=16, rx=3, fill=fill)}/>")
        parts.append(
            f"<text {_attrs(x=left + 310, y=y + 12, font_size=11, fill='#263238')}>{escape(_ratio_text(window))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def adherence_swatch(kind: str) -> Markup:
    label, fill = ADHERENCE_KINDS.get(kind, ("No dose recorded", NONE_FILL))
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" width="14" height="20" viewBox="0 0 14 20" '
        'aria-hidden="true" focusable="false">'
        f'<rect x="1" y="1" width="12" height="18" rx="2" fill="{fill}" stroke="#78909c"/></svg>'
    )
