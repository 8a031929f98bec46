"""HL7 v2 lab results (ORU^R01): parsing, acknowledgements and MLLP framing.

Pure code: no I/O, no clock, no environment, no logging. Lab messages carry PHI, so nothing here
puts patient data into an exception, a repr or a log line.

Message structure follows HL7 v2.5.1 (chapter 2 MSH, chapter 7 ORU^R01). Real lab feeds are messy:
mixed line endings, batch and MLLP envelopes,
local codes, flags shifted one field, cutoffs and even results in free-text NTE segments. We read
what can be read without guessing, keep every raw value beside its interpretation, and reject
what cannot be read with an HL7 table 0357 code plus a sentence the lab's integration engineer
can act on. Mapping codes to analytes and interpreting results is done elsewhere.

python-hl7 splits segments and fields with the message's own encoding characters (MSH-1/MSH-2);
we validate those characters first, because the library trusts them blindly, and we decode
escape sequences ourselves, because the library's decoder logs field contents on bad input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import hl7 as python_hl7

from domain.vocab import Vocabulary

__all__ = [
    "SUPPORTED_VERSIONS",
    "AckCode",
    "AckError",
    "Hl7Error",
    "Identifier",
    "MllpDecoder",
    "MllpError",
    "Observation",
    "Order",
    "OruMessage",
    "ParsedAck",
    "PatientIds",
    "ack_for_unparseable",
    "build_ack",
    "mllp_frame",
    "parse_ack",
    "parse_oru",
    "split_batch",
]

SUPPORTED_VERSIONS: tuple[str, ...] = ("2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1")


class AckCode(Vocabulary):
    """MSA-1, the acknowledgment code of an original-mode ACK (HL7 v2 table 0008)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


# HL7 table 0357 (message error condition codes): the texts that go with the codes in ERR.
_ERROR_CODE_TEXTS: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

# HL7 original-mode rule: a message refused for its header (type, event, processing id, version)
# or because we cannot process anything right now is rejected (AR); a message whose content is
# wrong gets an application error (AE).
_REJECT_CODES = frozenset({"200", "201", "202", "203", "207"})


# --- errors ---------------------------------------------------------------------------------------


class Hl7Error(Exception):
    """A message we cannot accept. `code` is from HL7 table 0357; `detail` is for the sender.

    `location` (e.g. "MSH-9", "OBX-3") points the ACK's ERR segment at the offending field.
    The detail never quotes patient data.
    """

    def __init__(self, code: str, detail: str, location: str | None = None) -> None:
        # All three go into args so the exception survives pickling (Temporal, process pools).
        super().__init__(code, detail, location)
        self.code = code
        self.detail = detail
        self.location = location

    def __str__(self) -> str:
        return f"HL7 error {self.code}: {self.detail}"


@dataclass(frozen=True)
class AckError:
    """One ERR segment of an ACK. Severity "E" is an error, "W" a warning (e.g. on an AA)."""

    code: str
    detail: str
    location: str | None = None
    severity: str = "E"


# --- data -----------------------------------------------------------------------------------------

_REDACTED = "<redacted>"


@dataclass(frozen=True, repr=False)
class Identifier:
    """One PID-3 repetition: the id, who issued it (CX-4) and what kind it is (CX-5, e.g. MR)."""

    id: str
    assigning_authority: str | None
    type_code: str | None

    def __repr__(self) -> str:
        # Medical record numbers identify a patient: a repr must be safe to log.
        return (
            f"Identifier(id={_REDACTED}, assigning_authority={self.assigning_authority!r}, "
            f"type_code={self.type_code!r})"
        )


@dataclass(frozen=True, repr=False)
class PatientIds:
    """Who the lab says the specimen belongs to; name and DOB are kept only for cross-checks."""

    identifiers: tuple[Identifier, ...]
    family_name: str | None
    given_name: str | None
    birth_date: str | None

    def __repr__(self) -> str:
        return (
            f"PatientIds(identifiers={self.identifiers!r}, family_name={_REDACTED}, "
            f"given_name={_REDACTED}, birth_date={_REDACTED})"
        )


@dataclass(frozen=True)
class Observation:
    """One OBX with its interpretation-ready values; the raw values are kept beside them."""

    set_id: str | None
    value_type: str | None
    code: str | None
    coding_system: str | None
    label: str | None
    value_raw: str | None  # OBX-5 exactly as received, in the message's own encoding
    value_numeric: float | None
    value_text: str | None  # upper case; "POS"/"NEG" when the wording is unambiguous
    comparator: str | None  # "<", ">", "<=" or ">=" in front of value_numeric
    units: str | None
    reference_range: str | None  # OBX-7 as received (escape sequences decoded)
    cutoff: float | None  # the lab's own cutoff, from OBX-7 or else from a following NTE
    abnormal_flag: str | None
    shifted_fields: bool  # the flag was found one field off (OBX-7 or OBX-9)
    status: str | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Order:
    """One OBR: a specimen's panel, with its results and comments."""

    placer_order_number: str | None  # OBR-2: the screening/specimen id we issued
    filler_order_number: str | None  # OBR-3: the lab's accession
    specimen_id: str | None  # SPM-2 (v2.5+)
    universal_service_id: str | None  # OBR-4 code
    collected_at: str | None  # OBR-7, ISO 8601
    result_status: str | None  # OBR-25: P preliminary, F final, C corrected, or as sent
    observations: tuple[Observation, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class OruMessage:
    """An accepted ORU^R01. Sender and receiver fields keep their components in standard HL7
    encoding (e.g. "LAB^2.16.840.1.113883.3.1^ISO") so that an ACK can address them exactly."""

    sending_application: str | None
    sending_facility: str | None
    receiving_application: str | None
    receiving_facility: str | None
    message_control_id: str
    message_datetime: str | None
    version: str
    message_type: str
    patient: PatientIds
    orders: tuple[Order, ...]
    # MSH-11: "P" production, "T" training, "D" debugging. A test message must never be filed
    # as a participant's real result, so callers need to see it.
    processing_id: str | None = None


class ParsedAck(NamedTuple):
    ack_code: str
    original_control_id: str
    error_texts: tuple[str, ...]


# --- encoding characters and escape sequences -----------------------------------------------------


@dataclass(frozen=True)
class _Separators:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


_STANDARD_ENCODING = "^~\\&"


def _separators_from_msh(msh_line: str) -> _Separators:
    """The message's own delimiters, checked before python-hl7 relies on them."""
    field_separator = msh_line[3] if len(msh_line) > 3 else ""
    encoding_end = msh_line.find(field_separator, 4) if field_separator else -1
    if encoding_end == -1:
        raise Hl7Error(
            "101",
            "The MSH segment has no fields after MSH-2; MSH-9 (message type), MSH-10 (message "
            "control id) and MSH-12 (version id) are required.",
            "MSH-9",
        )
    encoding = msh_line[4:encoding_end]
    if not encoding:
        raise Hl7Error("101", "MSH-2 (encoding characters) is empty; send '^~\\&'.", "MSH-2")
    separators = _Separators(
        field=field_separator,
        component=encoding[0],
        repetition=encoding[1] if len(encoding) > 1 else "~",
        escape=encoding[2] if len(encoding) > 2 else "\\",
        subcomponent=encoding[3] if len(encoding) > 3 else "&",
    )
    # A fifth character (v2.7 truncation) is allowed but must not clash with the others.
    delimiters = [
        field_separator,
        separators.component,
        separators.repetition,
        separators.escape,
        separators.subcomponent,
        *encoding[4:],
    ]
    unusable = any(char.isalnum() or char.isspace() for char in delimiters)
    if len(encoding) > 5 or unusable or len(set(delimiters)) != len(delimiters):
        raise Hl7Error(
            "102",
            f"MSH-1 and MSH-2 are {_quote(field_separator)} and {_quote(encoding)}; they must be "
            "distinct punctuation characters such as '|' and '^~\\&'.",
            "MSH-2",
        )
    return separators


# Formatting escapes (.br line break and friends) become plain text; highlighting (\H\, \N\) is
# dropped.
_FORMATTING_ESCAPES = {
    ".br": "\n",
    ".sp": "\n",
    ".ce": "\n",
    ".fi": "",
    ".nf": "",
    ".in": " ",
    ".ti": " ",
    ".sk": " ",
    "H": "",
    "N": "",
}


def _unescape(value: str, separators: _Separators) -> str:
    escape = separators.escape
    if escape not in value:
        return value
    pieces = value.split(escape)
    decoded = [pieces[0]]
    index = 1
    while index < len(pieces):
        if index + 1 < len(pieces):
            decoded.append(_decode_escape(pieces[index], separators))
            decoded.append(pieces[index + 1])
            index += 2
        else:  # an escape character with no closing one is taken literally
            decoded.append(escape + pieces[index])
            index += 1
    return "".join(decoded)


def _decode_escape(sequence: str, separators: _Separators) -> str:
    delimiters = {
        "F": separators.field,
        "S": separators.component,
        "T": separators.subcomponent,
        "R": separators.repetition,
        "E": separators.escape,
    }
    if sequence in delimiters:
        return delimiters[sequence]
    if sequence[:3] in _FORMATTING_ESCAPES:  # ".sp2" etc. carry a count we do not need
        return _FORMATTING_ESCAPES[sequence[:3]]
    if sequence.startswith("X") and _is_hex(sequence[1:]):
        return _decode_bytes(bytes.fromhex(sequence[1:]))
    # Unknown (character-set switches, local Z escapes): keep it visible rather than lose it.
    return separators.escape + sequence + separators.escape


def _is_hex(text: str) -> bool:
    return bool(text) and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


def _decode_bytes(data: bytes) -> str:
    """UTF-8 if it is, else Windows-1252 (common in lab systems), else Latin-1 (never fails)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_STANDARD_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def _escape(text: str) -> str:
    """Text safe inside one standard-encoded field component; control characters (including
    segment terminators and MLLP framing bytes) become spaces so they cannot break the ACK."""
    return "".join(_STANDARD_ESCAPES.get(char, " " if ord(char) < 0x20 or ord(char) == 0x7F else char) for char in text)


def _quote(value: str, limit: int = 40) -> str:
    """A header value quoted in an error detail: short and on one line."""
    flat = " ".join(value.split())
    return "'" + (flat if len(flat) <= limit else flat[: limit - 3] + "...") + "'"


# --- splitting messages ---------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n|\x0b|\x1c")  # MLLP start/end bytes count as breaks
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_ENVELOPE_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})


def split_batch(text: str) -> list[str]:
    """The messages in `text`, each as segments ending in carriage returns.

    Accepts a single message, FHS/BHS batches, messages back to back, CR, LF or CRLF line ends,
    MLLP framing bytes and surrounding whitespace. A line that is not a segment (free text that
    a sender wrapped onto its own line) is joined to the segment before it. Text before the
    first MSH is returned as its own item, so that a caller rejects it rather than dropping it.
    """
    # Each segment is kept as the list of its lines (joined at the end: no quadratic copying).
    messages: list[list[list[str]]] = []
    field_separator: str | None = None
    for line in _LINE_BREAK.split(text.replace("\ufeff", "")):
        line = line.strip()
        if not line:
            continue
        if line.startswith("MSH"):
            messages.append([[line]])
            field_separator = line[3] if len(line) > 3 else None
        elif line[:3] in _ENVELOPE_SEGMENTS and (len(line) == 3 or not line[3].isalnum()):
            continue
        elif messages and not _is_segment(line, field_separator):
            messages[-1][-1].append(line)
        elif messages:
            messages[-1].append([line])
        else:
            messages.append([[line]])
            field_separator = "|"
    return ["\r".join(" ".join(lines) for lines in segments) + "\r" for segments in messages]


def _is_segment(line: str, field_separator: str | None) -> bool:
    return bool(_SEGMENT_ID.fullmatch(line[:3])) and (len(line) == 3 or line[3] == field_separator)


# --- reading one message --------------------------------------------------------------------------

# A field as nested tuples: repetitions → components → subcomponents (still escaped).
_Field = tuple[tuple[tuple[str, ...], ...], ...]
_EMPTY_FIELD: _Field = ()


@dataclass(frozen=True)
class _Segment:
    name: str
    fields: tuple[_Field, ...]  # fields[n] is field n; for MSH, fields[1] is MSH-1

    def get(self, number: int) -> _Field:
        return self.fields[number] if 0 < number < len(self.fields) else _EMPTY_FIELD


@dataclass(frozen=True)
class _Message:
    separators: _Separators
    segments: tuple[_Segment, ...]

    @property
    def msh(self) -> _Segment:
        return self.segments[0]

    def first(self, name: str) -> _Segment | None:
        return next((segment for segment in self.segments if segment.name == name), None)


def _read_single_message(text: str) -> _Message:
    chunks = split_batch(text)
    if not chunks:
        raise Hl7Error("100", "The message is empty; it must start with an MSH segment.", "MSH")
    if not chunks[0].startswith("MSH"):
        first = chunks[0][:3]
        found = (
            f"it starts with {_quote(first)}"
            if _SEGMENT_ID.fullmatch(first)
            else ("no MSH segment was found at the start")
        )
        raise Hl7Error("100", f"The message must start with an MSH segment; {found}.", "MSH")
    if len(chunks) > 1:
        raise Hl7Error(
            "100",
            f"The text holds {len(chunks)} messages; send one message per MLLP frame or "
            "request, or post the file to the batch endpoint.",
            "MSH",
        )
    separators = _separators_from_msh(chunks[0].split("\r", 1)[0])
    return _Message(separators, _split_with_python_hl7(chunks[0]))


def _split_with_python_hl7(message_text: str) -> tuple[_Segment, ...]:
    try:
        parsed = python_hl7.parse(message_text)
    except Exception:  # noqa: BLE001 - any failure of the third-party splitter means "unreadable"
        # `from None`: the library's messages quote segment text, which may hold PHI.
        raise Hl7Error(
            "102",
            "The message could not be split into segments and fields; check MSH-1/MSH-2 and "
            "that segments end with a carriage return.",
            "MSH-2",
        ) from None
    return tuple(_segment_from_library(segment) for segment in parsed)


def _segment_from_library(segment: python_hl7.Segment) -> _Segment:
    # python-hl7 nests lists, but collapses a level to a plain string when it has no separators.
    fields = tuple(_field_from_library(node) for node in segment)
    return _Segment(name=_leaf(fields[0]) if fields else "", fields=fields)


def _field_from_library(node: python_hl7.Field | str) -> _Field:
    if isinstance(node, str):
        return (((node,),),)
    return tuple(_repetition_from_library(repetition) for repetition in node)


def _repetition_from_library(node: python_hl7.Repetition | str) -> tuple[tuple[str, ...], ...]:
    if isinstance(node, str):
        return ((node,),)
    return tuple(
        (component,) if isinstance(component, str) else tuple(str(sub) for sub in component) for component in node
    )


def _split_field_text(text: str, separators: _Separators) -> _Field:
    """Our own split, used only to salvage addressing from an MSH python-hl7 cannot read."""
    return tuple(
        tuple(tuple(component.split(separators.subcomponent)) for component in repetition.split(separators.component))
        for repetition in text.split(separators.repetition)
    )


# --- field access ---------------------------------------------------------------------------------


def _leaf(field_value: _Field, repetition: int = 1, component: int = 1, sub: int = 1) -> str:
    try:
        return field_value[repetition - 1][component - 1][sub - 1]
    except IndexError:
        return ""


def _text(field_value: _Field, separators: _Separators, repetition: int = 1, component: int = 1, sub: int = 1) -> str:
    value = _unescape(_leaf(field_value, repetition, component, sub), separators).strip()
    return "" if value == '""' else value  # '""' is HL7's explicit null


def _optional_text(
    field_value: _Field, separators: _Separators, repetition: int = 1, component: int = 1, sub: int = 1
) -> str | None:
    return _text(field_value, separators, repetition, component, sub) or None


def _whole_text(field_value: _Field, separators: _Separators) -> str:
    """Every part of a field, decoded, joined with standard delimiters (for free text)."""
    return "~".join(
        "^".join("&".join(_unescape(sub, separators) for sub in component) for component in rep) for rep in field_value
    ).strip()


def _raw_text(field_value: _Field, separators: _Separators) -> str:
    """A field exactly as it was received."""
    return separators.repetition.join(
        separators.component.join(separators.subcomponent.join(component) for component in rep) for rep in field_value
    )


def _standard_hl7(field_value: _Field, separators: _Separators) -> str:
    """The first repetition re-encoded with standard delimiters, ready to echo into an ACK."""
    if not field_value:
        return ""
    components = [
        "&".join(_escape(_unescape(sub, separators).strip()) for sub in component).rstrip("&")
        for component in field_value[0]
    ]
    return "^".join(components).rstrip("^")


# --- dates ----------------------------------------------------------------------------------------

_HL7_DATETIME = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?"
    r"([+-]\d{4})?"
)


def _iso_datetime(value: str) -> str | None:
    """HL7 DTM/TS to ISO 8601 at the precision sent; None when it is not a real date and time
    (a bad timestamp should not cost the lab its results)."""
    match = _HL7_DATETIME.fullmatch(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if offset and (int(offset[1:3]) > 14 or int(offset[3:]) > 59):
        return None
    iso = year + (f"-{month}" if month else "") + (f"-{day}" if day else "")
    if hour:
        iso += f"T{hour}:{minute or '00'}" + (f":{second}" if second else "")
        iso += f".{fraction}" if fraction else ""
        iso += f"{offset[:3]}:{offset[3:]}" if offset else ""
    return iso


def _iso_date(value: str) -> str | None:
    iso = _iso_datetime(value)
    return iso[:10] if iso else None


# --- parse_oru ------------------------------------------------------------------------------------


def parse_oru(message_text: str) -> OruMessage:
    """One ORU^R01 message (optionally MLLP-framed or batch-wrapped) as an `OruMessage`.

    Raises `Hl7Error` for anything we cannot accept; no other exception escapes.
    """
    message = _read_single_message(message_text)
    separators = message.separators
    msh = message.msh
    message_type, version = _check_header(msh, separators)
    patient, orders = _read_results(message.segments[1:], separators)
    return OruMessage(
        sending_application=_standard_hl7(msh.get(3), separators) or None,
        sending_facility=_standard_hl7(msh.get(4), separators) or None,
        receiving_application=_standard_hl7(msh.get(5), separators) or None,
        receiving_facility=_standard_hl7(msh.get(6), separators) or None,
        message_control_id=_whole_text(msh.get(10), separators),
        message_datetime=_iso_datetime(_text(msh.get(7), separators)),
        version=version,
        message_type=message_type,
        patient=patient,
        orders=orders,
        processing_id=_optional_text(msh.get(11), separators),
    )


def _check_header(msh: _Segment, separators: _Separators) -> tuple[str, str]:
    """MSH-9, MSH-10 and MSH-12 as this endpoint needs them; returns (message type, version)."""
    kind = _text(msh.get(9), separators).upper()
    trigger = _text(msh.get(9), separators, component=2).upper()
    shown = _quote(_standard_hl7(msh.get(9), separators))
    if not kind:
        raise Hl7Error("101", "MSH-9 (message type) is empty; this endpoint accepts ORU^R01 only.", "MSH-9")
    if kind != "ORU":
        raise Hl7Error("200", f"MSH-9 is {shown}; this endpoint accepts ORU^R01 only.", "MSH-9")
    # Some old senders omit the trigger event; we read a bare ORU as R01.
    if trigger not in ("R01", ""):
        raise Hl7Error("201", f"MSH-9 is {shown}; this endpoint accepts ORU^R01 only.", "MSH-9")
    if not _whole_text(msh.get(10), separators):
        raise Hl7Error(
            "101",
            "MSH-10 (message control id) is empty; every message needs a unique control id so "
            "that it can be acknowledged and recognised when resent.",
            "MSH-10",
        )
    version = _text(msh.get(12), separators)
    accepted = ", ".join(SUPPORTED_VERSIONS)
    if not version:
        raise Hl7Error("101", f"MSH-12 (version id) is empty; send one of {accepted}.", "MSH-12")
    if version not in SUPPORTED_VERSIONS:
        raise Hl7Error(
            "203",
            f"MSH-12 is {_quote(version)}; this endpoint accepts versions {accepted}.",
            "MSH-12",
        )
    return ("ORU^R01" if trigger else "ORU"), version


@dataclass
class _ObservationDraft:
    position: int
    obx: _Segment
    notes: list[str] = field(default_factory=list)


@dataclass
class _OrderDraft:
    position: int
    obr: _Segment
    orc: _Segment | None
    specimen_id: str | None = None
    observations: list[_ObservationDraft] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_results(segments: Sequence[_Segment], separators: _Separators) -> tuple[PatientIds, tuple[Order, ...]]:
    """Walk the segments after MSH, attaching each OBX, NTE and SPM to the order it follows."""
    patient: PatientIds | None = None
    orders: list[_OrderDraft] = []
    last_orc: _Segment | None = None
    observation: _ObservationDraft | None = None
    for position, segment in enumerate(segments, start=2):
        if segment.name == "PID":
            patient = _check_single_patient(patient, _read_patient(segment, separators), position)
        elif segment.name == "ORC":
            last_orc = segment
        elif segment.name == "OBR":
            orders.append(_OrderDraft(position, segment, last_orc))
            observation = None
        elif segment.name == "OBX":
            observation = _ObservationDraft(position, segment)
            _current_order(orders, segment, position, separators).observations.append(observation)
        elif segment.name == "NTE":
            _attach_note(segment, separators, orders, observation)
        elif segment.name == "SPM" and orders:
            # OBX after an SPM describe the specimen; NTE right after it belong to the order.
            observation = None
            if orders[-1].specimen_id is None:
                orders[-1].specimen_id = (
                    _text(segment.get(2), separators) or _text(segment.get(2), separators, component=2) or None
                )
    if not orders:
        raise Hl7Error(
            "100",
            "The message has no OBR segment; an ORU^R01 must carry at least one OBR (order) "
            "followed by its OBX results.",
            "OBR",
        )
    patient = patient or PatientIds(identifiers=(), family_name=None, given_name=None, birth_date=None)
    return patient, tuple(_build_order(draft, separators) for draft in orders)


def _check_single_patient(known: PatientIds | None, new: PatientIds, position: int) -> PatientIds:
    # Several patients in one message could file results under the wrong person; refuse.
    if known is not None and known.identifiers != new.identifiers:
        raise Hl7Error(
            "100",
            f"Segment {position} is a second PID with different PID-3 identifiers; send one patient per message.",
            "PID-3",
        )
    return known or new


def _current_order(orders: list[_OrderDraft], obx: _Segment, position: int, separators: _Separators) -> _OrderDraft:
    if not orders:
        set_id = _text(obx.get(1), separators)
        raise Hl7Error(
            "100",
            f"OBX segment {position} (OBX-1 {_quote(set_id)}) comes before any OBR; each OBX must "
            "follow the OBR of its order.",
            "OBX",
        )
    return orders[-1]


def _attach_note(
    nte: _Segment, separators: _Separators, orders: list[_OrderDraft], observation: _ObservationDraft | None
) -> None:
    # NTE-3 repeats line by line; notes before any OBR are patient-level and not ours to keep.
    text = "\n".join(line for line in (_whole_text((rep,), separators) for rep in nte.get(3)) if line)
    if not text:
        return
    if observation is not None:
        observation.notes.append(text)
    elif orders:
        orders[-1].notes.append(text)


def _read_patient(pid: _Segment, separators: _Separators) -> PatientIds:
    identifiers = tuple(
        Identifier(
            id=_text((rep,), separators),
            # CX-4 is an HD: namespace id, else the universal id (an OID).
            assigning_authority=(
                _optional_text((rep,), separators, component=4)
                or _optional_text((rep,), separators, component=4, sub=2)
            ),
            type_code=_optional_text((rep,), separators, component=5),
        )
        for rep in pid.get(3)
        if _text((rep,), separators)  # never keep an empty identifier: it would match anyone
    )
    return PatientIds(
        identifiers=identifiers,
        family_name=_optional_text(pid.get(5), separators),  # XPN-1 (FN-1 in v2.3+)
        given_name=_optional_text(pid.get(5), separators, component=2),
        birth_date=_iso_date(_text(pid.get(7), separators)),
    )


def _build_order(draft: _OrderDraft, separators: _Separators) -> Order:
    obr = draft.obr
    orc = draft.orc or _Segment("ORC", ())
    # ORC-2/3 repeat the order numbers; some senders fill only the ORC.
    placer = _text(obr.get(2), separators) or _text(orc.get(2), separators) or None
    filler = _text(obr.get(3), separators) or _text(orc.get(3), separators) or None
    if not (placer or filler or draft.specimen_id):
        raise Hl7Error(
            "101",
            f"The OBR at segment {draft.position} has no OBR-2 (placer order number), OBR-3 "
            "(filler order number) or SPM-2 (specimen id); results cannot be matched to a "
            "specimen without one. OBR-2 should carry the specimen id we issued.",
            "OBR-2",
        )
    return Order(
        placer_order_number=placer,
        filler_order_number=filler,
        specimen_id=draft.specimen_id,
        universal_service_id=_coded(obr.get(4), separators).code,
        collected_at=_iso_datetime(_text(obr.get(7), separators)),
        result_status=_text(obr.get(25), separators).upper() or None,
        observations=tuple(_build_observation(obs, separators) for obs in draft.observations),
        notes=tuple(draft.notes),
    )


# --- observations ---------------------------------------------------------------------------------


class _Coded(NamedTuple):
    code: str | None
    text: str | None
    system: str | None


def _coded(value: _Field, separators: _Separators) -> _Coded:
    """CE/CWE: the primary triplet (components 1-3), else the alternate one (4-6)."""
    for first in (1, 4):
        code = _text(value, separators, component=first)
        text = _text(value, separators, component=first + 1)
        if code or text:
            return _Coded(code or None, text or None, _optional_text(value, separators, component=first + 2))
    return _Coded(None, None, None)


class _Value(NamedTuple):
    numeric: float | None
    text: str | None
    comparator: str | None


_NO_VALUE = _Value(None, None, None)
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COMPARATOR = r"<=|>=|=<|=>|<|>"
# Patterns below run on text whose whitespace runs were collapsed to one space (_squeeze):
# adjacent optional "\s*" would backtrack exponentially on long runs of blanks.
_COMPARED_NUMBER = re.compile(rf"({_COMPARATOR})? ?({_NUMBER})")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})

_POSITIVE_WORDS = frozenset({"POS", "POSITIVE", "DETECTED", "PRESENT", "REACTIVE"})
_NEGATIVE_WORDS = frozenset(
    {
        "NEG",
        "NEGATIVE",
        "NOT DETECTED",
        "NONE DETECTED",
        "ND",
        "NOT PRESENT",
        "ABSENT",
        "NONREACTIVE",
        "NON-REACTIVE",
        "NON REACTIVE",
    }
)
# SNOMED CT answers labs use in CWE values.
_SNOMED_RESULTS = {
    "10828004": "POS",
    "260373001": "POS",
    "52101004": "POS",
    "260385009": "NEG",
    "260415000": "NEG",
    "2667000": "NEG",
}
_SNOMED_SYSTEMS = frozenset({"SCT", "SNM", "SNM3", "SNOMED", "SNOMED-CT", "SNOMEDCT"})


def _build_observation(draft: _ObservationDraft, separators: _Separators) -> Observation:
    obx = draft.obx
    value_type = _text(obx.get(2), separators).upper() or None
    observed = _coded(obx.get(3), separators)
    value = _read_value(value_type, obx.get(5), separators)
    reference_range = _whole_text(obx.get(7), separators) or None
    flag = _abnormal_flag(obx, separators)
    notes = tuple(draft.notes)
    return Observation(
        set_id=_optional_text(obx.get(1), separators),
        value_type=value_type,
        code=observed.code,
        coding_system=observed.system,
        label=observed.text,
        value_raw=_raw_text(obx.get(5), separators) or None,
        value_numeric=value.numeric,
        value_text=value.text,
        comparator=value.comparator,
        units=(_optional_text(obx.get(6), separators) or _optional_text(obx.get(6), separators, component=2)),
        reference_range=reference_range,
        cutoff=_cutoff(reference_range, notes),
        abnormal_flag=flag.value,
        shifted_fields=flag.found_in in (7, 9),
        status=_observation_status(obx, separators, shifted_right=flag.found_in == 9),
        notes=notes,
    )


def _read_value(value_type: str | None, value: _Field, separators: _Separators) -> _Value:
    if value_type == "SN":
        return _structured_numeric(value, separators)
    if value_type in _CODED_TYPES:
        return _coded_result(value, separators)
    return _plain_value(value, separators)


def _structured_numeric(value: _Field, separators: _Separators) -> _Value:
    """SN is comparator^number^separator^number: "^>^300", "<^50", "1^:^128", "^10^-^20"."""
    parts = [_text(value, separators, component=n) for n in (1, 2, 3, 4)]
    if not any(parts[1:]):  # everything in one component (">300"): read it as plain text
        return _plain_value(value, separators)
    if not parts[0] and _normalise_comparator(parts[1]) and not parts[3]:
        # Seen in the wild: "^>^300", the comparator one component late. Realign it.
        parts = [parts[1], parts[2], "", ""]
    comparator, number, separator, second = parts
    if separator or second:  # a range or a ratio is not one number
        return _Value(None, "".join(parts).upper(), None)
    numeric = _to_float(number)
    if numeric is None:
        return _Value(None, "".join(parts).upper(), None)
    if comparator in ("", "="):
        return _Value(numeric, None, None)
    normalised = _normalise_comparator(comparator)
    return _Value(numeric, None, normalised) if normalised else _Value(None, "".join(parts).upper(), None)


def _plain_value(value: _Field, separators: _Separators) -> _Value:
    """NM, ST, TX, FT or an unknown type: a number (maybe with a comparator) or a word."""
    parts = ("&".join(_unescape(sub, separators) for sub in component).strip() for rep in value for component in rep)
    text = " ".join(part for part in parts if part)  # "^>^300" sent as NM reads "> 300"
    if not text or text == '""':
        return _NO_VALUE
    match = _COMPARED_NUMBER.fullmatch(_THOUSANDS.sub("", _squeeze(text)))
    numeric = _to_float(match.group(2)) if match else None
    if match and numeric is not None:
        return _Value(numeric, None, _normalise_comparator(match.group(1) or ""))
    return _Value(None, _result_word(text), None)


def _coded_result(value: _Field, separators: _Separators) -> _Value:
    coded = _coded(value, separators)
    if coded.code and (coded.system or "").upper() in _SNOMED_SYSTEMS:
        answer = _SNOMED_RESULTS.get(coded.code)
        if answer:
            return _Value(None, answer, None)
    for candidate in (coded.code, coded.text):
        if candidate and _result_word(candidate) in ("POS", "NEG"):
            return _Value(None, _result_word(candidate), None)
    shown = coded.text or coded.code
    return _Value(None, _result_word(shown), None) if shown else _NO_VALUE


def _result_word(text: str) -> str:
    """Upper-case text, reduced to POS or NEG when the wording leaves no doubt."""
    words = " ".join(text.upper().split()).strip(" .!")
    if words in _POSITIVE_WORDS:
        return "POS"
    if words in _NEGATIVE_WORDS:
        return "NEG"
    return " ".join(text.upper().split())


def _normalise_comparator(comparator: str) -> str | None:
    flipped = {"=<": "<=", "=>": ">="}.get(comparator, comparator)
    return flipped if flipped in ("<", ">", "<=", ">=") else None


def _to_float(text: str) -> float | None:
    """A finite float, or None: JSON has no infinity, and 400 digits are not a lab value."""
    cleaned = _THOUSANDS.sub("", text.strip())
    if not re.fullmatch(_NUMBER, cleaned):
        return None
    number = float(cleaned)
    return number if math.isfinite(number) else None


# --- cutoffs, flags, status -----------------------------------------------------------------------

_UNIT = r"(?:[a-zA-Zµμ%]+(?:/[a-zA-Z]+)?)"
# "Cutoff 50 ng/mL", "cut-off level: 300", "Screening cutoff = 1", "threshold of <300".
_CUTOFF_WORDS = re.compile(
    rf"\b(?:cut[ -]?off|threshold)(?: (?:level|value|concentration))? ?(?:(?:is|of|at) )?"
    rf"(?:[:=] ?)?(?:(?:{_COMPARATOR}) ?)?({_NUMBER})",
    re.IGNORECASE,
)
# "<300", "300", "NEG <300 ng/mL", "Negative: < 300 ng/mL"; never a range such as "20-400".
_CUTOFF_RANGE_TEXT = re.compile(
    rf"(?:(?:NEG(?:ATIVE)?|POS(?:ITIVE)?|NOT DETECTED|NONE DETECTED|DETECTED) ?(?:[:=] ?)?)?"
    rf"(?:(?:{_COMPARATOR}) ?)?({_NUMBER})(?: ?{_UNIT})?",
    re.IGNORECASE,
)


def _cutoff(reference_range: str | None, notes: tuple[str, ...]) -> float | None:
    """The cutoff the lab reported: OBX-7 first, else a note that names a cutoff explicitly.
    Notes need the word "cutoff" because their other numbers are often results."""
    if reference_range:
        text = _squeeze(reference_range)
        match = _CUTOFF_WORDS.search(text) or _CUTOFF_RANGE_TEXT.fullmatch(text)
        if match:
            return _to_float(match.group(1))
    for note in notes:
        match = _CUTOFF_WORDS.search(_squeeze(note))
        if match:
            return _to_float(match.group(1))
    return None


def _squeeze(text: str) -> str:
    return " ".join(text.split())


_KNOWN_FLAGS = frozenset({"A", "AA", "N", "H", "HH", "L", "LL", "POS", "NEG"})
# In OBX-7 "NEG"/"POS" are ordinary reference ranges (the expected result), not a stray flag.
_FLAGS_OUT_OF_PLACE_IN_OBX7 = _KNOWN_FLAGS - {"POS", "NEG"}
_RESULT_STATUSES = frozenset("CDFIKNOPRSUWX")


class _Flag(NamedTuple):
    value: str | None
    found_in: int | None  # the OBX field it was read from


def _abnormal_flag(obx: _Segment, separators: _Separators) -> _Flag:
    """OBX-8, or else a known flag one field off: a sender added or dropped a field before it."""
    flag = _text(obx.get(8), separators).upper()
    if flag:
        return _Flag(flag, 8)
    after = _text(obx.get(9), separators).upper()
    if after in _KNOWN_FLAGS:
        return _Flag(after, 9)
    before = _text(obx.get(7), separators).upper()
    if before in _FLAGS_OUT_OF_PLACE_IN_OBX7:
        return _Flag(before, 7)
    return _Flag(None, None)


def _observation_status(obx: _Segment, separators: _Separators, shifted_right: bool) -> str | None:
    status = _text(obx.get(11), separators).upper()
    if not status and shifted_right:
        # The extra field that pushed the flag into OBX-9 pushed the status into OBX-12.
        moved = _text(obx.get(12), separators).upper()
        status = moved if moved in _RESULT_STATUSES else ""
    return status or None


# --- acknowledgements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Addressing:
    """What an ACK needs from the original, already in standard encoding where it is a field."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""  # plain text
    trigger: str = "R01"
    processing_id: str = "P"
    version: str = SUPPORTED_VERSIONS[-1]


_VERSION_SHAPE = re.compile(r"\d\.\d{1,2}(?:\.\d{1,2})?")
_TRIGGER_SHAPE = re.compile(r"[A-Z0-9]{3}")
_PROCESSING_IDS = frozenset({"P", "T", "D"})
_MSA_TEXT_LIMIT = 80  # MSA-3 is ST(80) in v2.2-2.5.1; the full detail goes in ERR


def build_ack(
    message: OruMessage | None,
    raw_msh: str | None,
    ack_code: AckCode,
    control_id: str,
    errors: Sequence[AckError],
    now_hl7: str,
) -> str:
    """An original-mode ACK: MSH, MSA and one ERR per error, segments ending in CR.

    Addressing comes from `message` when we parsed it, else is salvaged from `raw_msh`.
    `control_id` is our own MSH-10; `now_hl7` is the HL7 timestamp for MSH-7.
    """
    if ack_code not in tuple(AckCode):
        raise ValueError(f"ack_code must be AA, AE or AR, not {ack_code!r}")
    if message is not None:
        addressing = _addressing_from_message(message)
    elif raw_msh:
        addressing = _addressing_from_raw_msh(raw_msh)
    else:
        addressing = _Addressing()
    version_key = _version_key(addressing.version)
    segments = [
        _ack_msh(addressing, control_id, now_hl7, version_key),
        _segment(
            "MSA",
            ack_code,
            _escape(addressing.control_id),
            _escape(_shorten(errors[0].detail, _MSA_TEXT_LIMIT)) if errors else "",
        ),
        *(_err_segment(error, version_key) for error in errors),
    ]
    return "\r".join(segments) + "\r"


def ack_for_unparseable(raw_text: str, error: Hl7Error, control_id: str, now_hl7: str) -> str:
    """An AR or AE for text `parse_oru` refused, addressed from whatever MSH can be salvaged."""
    msh = _first_msh_line(raw_text)
    # Text with no MSH segment is not an HL7 message at all: rejected (AR), not an application
    # error to retry (HL7 v2.5.1 2.9.2.2: AR when the message itself is unacceptable).
    ack_code = AckCode.REJECT if error.code in _REJECT_CODES or msh is None else AckCode.ERROR
    return build_ack(None, msh, ack_code, control_id, [AckError(error.code, error.detail, error.location)], now_hl7)


def _first_msh_line(raw_text: str) -> str | None:
    for chunk in split_batch(raw_text):
        if chunk.startswith("MSH"):
            return chunk.split("\r", 1)[0]
    return None


def _addressing_from_message(message: OruMessage) -> _Addressing:
    return _Addressing(
        sending_application=_field_safe(message.sending_application),
        sending_facility=_field_safe(message.sending_facility),
        receiving_application=_field_safe(message.receiving_application),
        receiving_facility=_field_safe(message.receiving_facility),
        control_id=message.message_control_id,
        trigger=_sane_trigger(message.message_type.partition("^")[2]),
        processing_id=_sane_processing_id(message.processing_id or ""),
        version=_sane_version(message.version),
    )


def _field_safe(value: str | None) -> str:
    """Our own standard-encoded field, as parse_oru stores it; an OruMessage built by hand
    could still hold a field or repetition separator or a line break, which would break the ACK."""
    return "".join(_STANDARD_ESCAPES[c] if c in "|~" else " " if ord(c) < 0x20 else c for c in value or "")


def _sane_trigger(trigger: str) -> str:
    return trigger if _TRIGGER_SHAPE.fullmatch(trigger) else "R01"


def _sane_processing_id(processing_id: str) -> str:
    return processing_id if processing_id in _PROCESSING_IDS else "P"


def _sane_version(version: str) -> str:
    return version if _VERSION_SHAPE.fullmatch(version) else SUPPORTED_VERSIONS[-1]


def _addressing_from_raw_msh(raw_msh: str) -> _Addressing:
    """Best effort on an MSH we could not parse: take what looks sane, default the rest."""
    separators = _lenient_separators(raw_msh)
    if separators is None:
        return _Addressing()
    values = raw_msh.split(separators.field)

    def msh(number: int) -> _Field:  # values[0] is "MSH" and values[1] is MSH-2
        return _split_field_text(values[number - 1], separators) if number - 1 < len(values) else ()

    return _Addressing(
        sending_application=_standard_hl7(msh(3), separators),
        sending_facility=_standard_hl7(msh(4), separators),
        receiving_application=_standard_hl7(msh(5), separators),
        receiving_facility=_standard_hl7(msh(6), separators),
        control_id=_whole_text(msh(10), separators),
        trigger=_sane_trigger(_text(msh(9), separators, component=2).upper()),
        processing_id=_sane_processing_id(_text(msh(11), separators).upper()),
        version=_sane_version(_text(msh(12), separators)),
    )


def _lenient_separators(raw_msh: str) -> _Separators | None:
    try:
        return _separators_from_msh(raw_msh)
    except Hl7Error:
        pass
    field_separator = raw_msh[3] if len(raw_msh) > 3 else ""
    if not field_separator or field_separator.isalnum() or field_separator.isspace():
        return None
    # Broken encoding characters: fall back to the standard ones that differ from MSH-1.
    spare = [c for c in "^~\\&" + "#$*@%" if c != field_separator]
    return _Separators(field_separator, spare[0], spare[1], spare[2], spare[3])


def _version_key(version: str) -> tuple[int, ...]:
    """ "2.3.1" as (2, 3, 1), so versions compare as numbers; addressing versions are sane."""
    return tuple(int(part) for part in version.split("."))


def _ack_msh(addressing: _Addressing, control_id: str, now_hl7: str, version_key: tuple[int, ...]) -> str:
    # MSG gained its third component (message structure) in v2.3.1.
    message_type = f"ACK^{addressing.trigger}" + ("^ACK" if version_key >= (2, 3, 1) else "")
    return "|".join(
        [
            "MSH",
            _STANDARD_ENCODING,
            addressing.receiving_application,
            addressing.receiving_facility,  # we answer as them
            addressing.sending_application,
            addressing.sending_facility,
            _escape(now_hl7),
            "",
            message_type,
            _escape(control_id),
            addressing.processing_id,
            addressing.version,
        ]
    )


def _err_segment(error: AckError, version_key: tuple[int, ...]) -> str:
    location = _LOCATION.fullmatch(error.location or "")
    segment_id, sequence, field_number, component = location.groups() if location else ("",) * 4
    if version_key >= (2, 5):
        # ERR-2 location (ERL), ERR-3 code (CWE, table 0357), ERR-4 severity, ERR-8 user message.
        where = (
            "^".join(
                [segment_id, sequence or "1", field_number or "", "1" if component else "", component or ""]
            ).rstrip("^")
            if location
            else ""
        )
        code_text = _ERROR_CODE_TEXTS.get(error.code, "Error")
        code = f"{_escape(error.code)}^{_escape(code_text)}^HL70357"
        return _segment("ERR", "", where, code, _escape(error.severity), "", "", "", _escape(error.detail))
    # Before v2.5 ERR-1 is the only field (ELD): segment^sequence^field^code&text&system. The
    # detail travels as the code's text: it is what the lab's engineer needs to read.
    where = f"{segment_id}^{sequence or '1'}^{field_number or ''}" if location else "^^"
    return _segment("ERR", f"{where}^{_escape(error.code)}&{_escape(error.detail)}&HL70357")


_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\.(\d+))?)?")


def _segment(name: str, *fields: str) -> str:
    return "|".join((name, *fields)).rstrip("|")


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def parse_ack(text: str) -> ParsedAck:
    """MSA-1, MSA-2 and the error texts (ERR-8, else ERR-3 text, else ERR-1 text, else MSA-3)."""
    message = _read_single_message(text)
    separators = message.separators
    msa = message.first("MSA")
    if msa is None:
        raise Hl7Error("100", "The acknowledgement has no MSA segment.", "MSA")
    texts = tuple(
        found
        for found in (_err_text(segment, separators) for segment in message.segments if segment.name == "ERR")
        if found
    )
    if not texts and _text(msa.get(3), separators):
        texts = (_whole_text(msa.get(3), separators),)
    return ParsedAck(
        ack_code=_text(msa.get(1), separators).upper(),
        original_control_id=_whole_text(msa.get(2), separators),
        error_texts=texts,
    )


def _err_text(err: _Segment, separators: _Separators) -> str:
    return (
        _whole_text(err.get(8), separators)
        or _text(err.get(3), separators, component=2)
        or _text(err.get(1), separators, component=4, sub=2)
        or _text(err.get(1), separators, component=4)
    )


# --- MLLP -----------------------------------------------------------------------------------------

_MLLP_START = b"\x0b"
_MLLP_END = b"\x1c"
_MLLP_TRAILER = b"\x1c\r"


class MllpError(Exception):
    """The TCP stream cannot be framed (a frame grew beyond the limit)."""


def mllp_frame(text: str) -> bytes:
    """`text` as one MLLP frame: 0x0b, the UTF-8 bytes, 0x1c 0x0d."""
    if "\x0b" in text or "\x1c" in text:
        raise ValueError("text contains an MLLP framing byte (0x0b or 0x1c)")
    return _MLLP_START + text.encode("utf-8") + _MLLP_TRAILER


class MllpDecoder:
    """Cuts an MLLP byte stream into messages, whatever the read boundaries.

    Bytes outside a frame are ignored (the 0x0d after 0x1c among them); a frame that restarts
    before ending is abandoned for the new one, so one bad frame never swallows the next.
    """

    def __init__(self, max_frame_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_frame_bytes = max_frame_bytes

    @property
    def pending(self) -> bool:
        """True while part of a frame is waiting for the rest."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[str]:
        self._buffer.extend(data)
        messages: list[str] = []
        while True:
            start = self._buffer.find(_MLLP_START)
            if start == -1:
                self._buffer.clear()
                return messages
            del self._buffer[:start]
            end = self._buffer.find(_MLLP_END, 1)
            restart = self._buffer.find(_MLLP_START, 1)
            if restart != -1 and (end == -1 or restart < end):
                del self._buffer[:restart]
                continue
            if end == -1:
                self._check_size()
                return messages
            messages.append(_decode_bytes(bytes(self._buffer[1:end])))
            del self._buffer[: end + 1]

    def _check_size(self) -> None:
        if len(self._buffer) > self._max_frame_bytes:
            self._buffer.clear()
            raise MllpError(f"an MLLP frame exceeded {self._max_frame_bytes} bytes without ending")
