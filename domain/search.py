"""Finding a participant from what the front desk has in hand (a name, a birth date, a case number), and
noticing a likely duplicate before a second record is made for the same person.

Pure: the caller runs the query and passes the rows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y")


@dataclass(frozen=True)
class Search:
    birth_date: date | None  # the text was a date: match the birth date
    words: tuple[str, ...]  # otherwise each word must be in the name, or the text in a case number
    text: str


def parse(text: str) -> Search:
    """A date in one of the usual forms (1987-03-14, 03/14/1987) searches birth dates; anything else names."""
    text = " ".join(text.split())[:100]
    for form in _DATE_FORMATS:
        try:
            return Search(datetime.strptime(text, form).date(), (), text)
        except ValueError:
            continue
    return Search(None, tuple(w for w in re.split(r"[\s,]+", text) if w), text)


def fold(text: str | None) -> str:
    """Case- and accent-insensitive form of a name: 'José' and 'jose' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def phone_digits(phone: str | None) -> str:
    """The last ten digits (a US number without its country code): '+1 (555) 555-0123' -> '5555550123'."""
    return re.sub(r"\D", "", phone or "")[-10:]


@dataclass(frozen=True)
class Person:
    given_name: str
    family_name: str
    date_of_birth: date | None
    phone: str | None


def duplicate_reason(new: Person, existing: Person) -> str | None:
    """Why `existing` is likely the same person as `new`, or None: same name and birth date, or same phone."""
    if (
        new.date_of_birth
        and new.date_of_birth == existing.date_of_birth
        and fold(new.given_name) == fold(existing.given_name)
        and fold(new.family_name) == fold(existing.family_name)
    ):
        return "same name and date of birth"
    digits = phone_digits(new.phone)
    if len(digits) >= 7 and digits == phone_digits(existing.phone):
        return "same phone number"
    return None
