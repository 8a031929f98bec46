"""Optional demographic fields for the equity report: closed vocabularies, nothing free text.

Collected only with the participant's consent and kept apart from the clinical record (their own
table, participant_demographics): never in a workflow, an activity, a search attribute, a report
to a recipient or the FHIR export. Every field may be left unanswered; "declined" records that
the participant chose not to say.

Race and ethnicity follow the OMB minimum categories (Statistical Policy Directive No. 15,
62 FR 58782 (1997), revised 89 FR 22182 (2024), which adds Middle Eastern or North African);
the two questions are kept apart here so records collected under either version can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Race(StrEnum):
    """Race as the participant answers it (OMB Statistical Policy Directive No. 15 minimum categories)."""

    AMERICAN_INDIAN_ALASKA_NATIVE = "american-indian-or-alaska-native"
    ASIAN = "asian"
    BLACK_AFRICAN_AMERICAN = "black-or-african-american"
    MIDDLE_EASTERN_NORTH_AFRICAN = "middle-eastern-or-north-african"
    NATIVE_HAWAIIAN_PACIFIC_ISLANDER = "native-hawaiian-or-pacific-islander"
    WHITE = "white"
    MORE_THAN_ONE = "more-than-one-race"
    DECLINED = "declined"


class Ethnicity(StrEnum):
    """Hispanic or Latino ethnicity as the participant answers it."""

    HISPANIC_LATINO = "hispanic-or-latino"
    NOT_HISPANIC_LATINO = "not-hispanic-or-latino"
    DECLINED = "declined"


class Sex(StrEnum):
    """Sex as the participant answers it."""

    FEMALE = "female"
    MALE = "male"
    INTERSEX = "intersex"
    DECLINED = "declined"


class AgeBand(StrEnum):
    """The participant's age band."""

    UNDER_18 = "under-18"
    AGE_18_25 = "18-25"
    AGE_26_34 = "26-34"
    AGE_35_44 = "35-44"
    AGE_45_54 = "45-54"
    AGE_55_64 = "55-64"
    AGE_65_UP = "65-and-over"
    DECLINED = "declined"


class Payer(StrEnum):
    """Who pays for the participant's treatment."""

    MEDICAID = "medicaid"
    MEDICARE = "medicare"
    PRIVATE = "private-insurance"
    OTHER_PUBLIC = "other-public"  # TRICARE, VA, state block grant
    COURT_FUNDED = "court-funded"
    SELF_PAY = "self-pay-or-uninsured"
    DECLINED = "declined"


# The report's dimensions, in display order: field name -> vocabulary.
DIMENSIONS: dict[str, type[StrEnum]] = {
    "race": Race,
    "ethnicity": Ethnicity,
    "sex": Sex,
    "age_band": AgeBand,
    "payer": Payer,
}

NOT_RECORDED = "not-recorded"  # no answer on file (no consent, not asked, or left blank)


@dataclass(frozen=True)
class Demographics:
    """One participant's answers; a field is None when not given."""

    race: Race | None = None
    ethnicity: Ethnicity | None = None
    sex: Sex | None = None
    age_band: AgeBand | None = None
    payer: Payer | None = None

    def group(self, dimension: str) -> str:
        """The participant's group on a dimension; NOT_RECORDED when not given."""
        if dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
        value = getattr(self, dimension)
        return str(value) if value is not None else NOT_RECORDED
