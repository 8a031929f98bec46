"""HL7 v2 layer: the corpus parses to what a lab meant, ACKs are well formed, MLLP framing holds.

Corpus files keep one segment per line with "\\n" (see hl7_corpus/README.md); `load()` turns
them into the "\\r"-separated text a lab sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import hl7 as python_hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.hl7 import (
    SUPPORTED_VERSIONS,
    AckError,
    Hl7Error,
    MllpDecoder,
    MllpError,
    Observation,
    Order,
    OruMessage,
    _first_msh_line,
    ack_for_unparseable,
    build_ack,
    mllp_frame,
    parse_ack,
    parse_oru,
    split_batch,
)

CORPUS = Path(__file__).parent / "hl7_corpus"
CORPUS_FILES = sorted(path.name for path in CORPUS.glob("*.hl7"))
REJECTED = {"16_adt_a01_rejected.hl7", "17_v27_rejected.hl7", "18_broken_msh.hl7"}
BATCHES = {"11_batch_fhs_bhs_three_messages.hl7"}
NOW = "20240401120000"


def load(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8").replace("\n", "\r")


def parse(name: str) -> OruMessage:
    return parse_oru(load(name))


def only_order(message: OruMessage) -> Order:
    assert len(message.orders) == 1
    return message.orders[0]


def observation(order: Order, code: str) -> Observation:
    (found,) = [obs for obs in order.observations if obs.code == code]
    return found


def segments(text: str) -> list[list[str]]:
    """An HL7 text as fields per segment, split on standard delimiters (ACKs are standard)."""
    assert text.endswith("\r")
    return [segment.split("|") for segment in text[:-1].split("\r")]


# --- the corpus -----------------------------------------------------------------------------------


def test_corpus_is_complete_and_documented() -> None:
    assert len(CORPUS_FILES) >= 16
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in CORPUS_FILES)


@pytest.mark.parametrize("name", sorted(set(CORPUS_FILES) - REJECTED - BATCHES))
def test_every_accepted_file_parses_and_is_json_friendly(name: str) -> None:
    message = parse(name)
    assert message.message_type == "ORU^R01"
    assert message.version in SUPPORTED_VERSIONS
    assert message.orders
    json.dumps(asdict(message))  # primitives only


def test_v22_local_codes_with_coded_values_and_obx7_cutoffs() -> None:
    message = parse("01_v22_local_codes_ce.hl7")
    assert message.message_control_id == "NW22-0001"
    assert message.version == "2.2"
    assert message.message_datetime == "2024-03-04T10:30:00"
    assert (message.sending_application, message.sending_facility) == ("NWTOX", "NORTHWIND TOX LAB")
    assert (message.receiving_application, message.receiving_facility) == ("IOPW", "RIVERSIDE IOP")
    assert message.processing_id == "P"
    order = only_order(message)
    assert (order.placer_order_number, order.filler_order_number) == ("SCR-000101", "NW-55501")
    assert order.universal_service_id == "UDS5"
    assert order.collected_at == "2024-03-01T14:15:00"
    assert order.result_status == "F"
    assert order.specimen_id is None
    opiates = observation(order, "OPI300")
    assert (opiates.value_type, opiates.coding_system) == ("CE", "L")
    assert opiates.label == "Opiates screen"
    assert (opiates.value_raw, opiates.value_text, opiates.value_numeric) == ("NEG^Negative^L", "NEG", None)
    assert (opiates.reference_range, opiates.cutoff, opiates.abnormal_flag) == ("<300", 300.0, "N")
    cocaine = observation(order, "COC150")
    assert (cocaine.value_text, cocaine.cutoff, cocaine.abnormal_flag) == ("POS", 150.0, "A")
    assert cocaine.reference_range == "NEG <150 ng/mL"
    assert observation(order, "THC50").cutoff == 50.0  # "Cutoff: 50"
    amphetamines = observation(order, "AMP500")
    assert (amphetamines.value_text, amphetamines.cutoff) == ("NEG", 500.0)  # "NOT DETECTED", "500"
    benzodiazepines = observation(order, "BZO200")
    assert (benzodiazepines.value_text, benzodiazepines.abnormal_flag) == ("INCONCLUSIVE", None)
    assert all(obs.status == "F" and not obs.shifted_fields for obs in order.observations)


def test_v22_patient_ids_name_and_birth_date() -> None:
    patient = parse("01_v22_local_codes_ce.hl7").patient
    assert [(i.id, i.assigning_authority, i.type_code) for i in patient.identifiers] == [
        ("RIV100234", "RIVERSIDE", None)
    ]
    assert (patient.family_name, patient.given_name, patient.birth_date) == ("ZZTEST", "AVERY", "1985-04-12")


def test_v23_loinc_numeric_values() -> None:
    message = parse("02_v23_loinc_nm.hl7")
    assert message.sending_facility == "ACME REFERENCE LAB^05D0000001^CLIA"
    assert message.message_datetime == "2024-03-05T08:15:00-05:00"
    order = only_order(message)
    assert order.collected_at == "2024-03-04T09:10:00-05:00"
    fentanyl = observation(order, "11235-9")
    assert (fentanyl.coding_system, fentanyl.value_type) == ("LN", "NM")
    assert (fentanyl.value_numeric, fentanyl.units, fentanyl.cutoff, fentanyl.abnormal_flag) == (
        12.5,
        "ng/mL",
        1.0,
        "H",
    )
    assert fentanyl.value_text is None and fentanyl.comparator is None
    benzoylecgonine = observation(order, "3393-6")  # "<25" typed into an NM field
    assert (benzoylecgonine.comparator, benzoylecgonine.value_numeric) == ("<", 25.0)
    assert benzoylecgonine.value_raw == "<25"
    assert observation(order, "3427-2").value_numeric == 1250.0  # "1,250"
    assert observation(order, "3349-8").value_numeric == 0.0


def test_v231_structured_numeric_values() -> None:
    message = parse("03_v231_sn_values.hl7")
    assert message.message_type == "ORU^R01"  # MSH-9 also carried the structure ORU_R01
    order = only_order(message)
    read = {o.code: (o.comparator, o.value_numeric, o.value_raw) for o in order.observations}
    assert read == {
        "3773-9": (">", 2000.0, ">^2000"),
        "41858-2": (None, 850.0, "^850"),
        "11235-9": ("<", 0.5, "<^0.5"),
        "43199-9": (">", 300.0, "^>^300"),  # comparator one component late, realigned
        "3414-0": (None, 4.2, "=^4.2"),
    }


def test_v24_cutoffs_found_only_in_nte_text() -> None:
    order = only_order(parse("04_v24_cutoffs_only_in_nte.hl7"))
    assert order.notes == ("Screening by immunoassay. Presumptive results require confirmation.",)
    cannabinoids = observation(order, "LK-THC")
    assert cannabinoids.reference_range is None
    assert (cannabinoids.value_text, cannabinoids.cutoff) == ("NEG", 50.0)
    assert cannabinoids.notes == ("Cutoff 50 ng/mL",)
    opiates = observation(order, "LK-OPI")
    assert (opiates.value_text, opiates.cutoff) == ("POS", 300.0)
    assert opiates.notes == ("cut-off level: 300", "Sent for LC-MS/MS confirmation.")
    fentanyl = observation(order, "LK-FEN")
    assert (fentanyl.value_raw, fentanyl.value_text) == ("Not Detected", "NEG")
    assert fentanyl.cutoff == 1.0
    assert observation(order, "LK-OXY").cutoff is None


def test_v251_specimen_validity_ranges_are_not_cutoffs() -> None:
    message = parse("05_v251_specimen_validity.hl7")
    assert message.sending_application == "ACMELAB^2.16.840.1.113883.3.9999.1^ISO"
    assert message.message_datetime == "2024-03-08T14:15:00+00:00"
    order = only_order(message)
    assert order.specimen_id == "SCR-000105"
    creatinine = observation(order, "2161-8")
    assert (creatinine.value_numeric, creatinine.units, creatinine.abnormal_flag) == (15.2, "mg/dL", "L")
    assert (creatinine.reference_range, creatinine.cutoff) == ("20-400", None)
    gravity = observation(order, "2965-2")
    assert (gravity.value_numeric, gravity.reference_range, gravity.cutoff) == (1.002, "1.003-1.030", None)
    ph = observation(order, "2756-5")
    assert (ph.value_numeric, ph.reference_range, ph.cutoff, ph.abnormal_flag) == (6.5, "4.5-9.0", None, "N")
    # The OBX after SPM describes the specimen and stays with the order.
    assert observation(order, "TEMP").value_numeric == 97.8
    assert message.patient.identifiers[0].assigning_authority == "RIVERSIDE"


def test_v251_buprenorphine_and_norbuprenorphine() -> None:
    order = only_order(parse("06_v251_buprenorphine.hl7"))
    buprenorphine = observation(order, "3414-0")
    assert (buprenorphine.value_type, buprenorphine.value_text) == ("CWE", "POS")  # SNOMED 10828004
    assert (buprenorphine.reference_range, buprenorphine.cutoff) == ("Negative", None)
    norbuprenorphine = observation(order, "49751-1")
    assert (norbuprenorphine.value_numeric, norbuprenorphine.cutoff) == (85.0, 5.0)
    assert norbuprenorphine.label == "Norbuprenorphine [Mass/volume] in Urine"
    local = observation(order, "BUPC")  # the primary (local) code wins over the LOINC alternate
    assert (local.coding_system, local.value_numeric) == ("L", 42.0)
    assert observation(order, "NALOX").value_text == "NEG"  # SNOMED 260415000 "Not detected"


def test_v24_methadone_and_eddp_with_alternate_code() -> None:
    order = only_order(parse("07_v24_methadone_eddp.hl7"))
    methadone = observation(order, "3773-9")
    assert (methadone.value_numeric, methadone.cutoff) == (1250.0, 300.0)
    assert methadone.abnormal_flag == "A"
    eddp = observation(order, "41858-2")  # primary empty: read from components 4-6
    assert (eddp.coding_system, eddp.label, eddp.value_numeric, eddp.cutoff) == ("LN", "EDDP", 0.0, 100.0)
    assert eddp.notes == ("EDDP not detected while methadone present; review for possible specimen spiking.",)


def test_preliminary_final_corrected_for_the_same_specimen() -> None:
    preliminary, final, corrected = (
        parse(name) for name in ("08_scr000123_preliminary.hl7", "09_scr000123_final.hl7", "10_scr000123_corrected.hl7")
    )
    assert [m.message_control_id for m in (preliminary, final, corrected)] == [
        "ACME251-0123-1",
        "ACME251-0123-2",
        "ACME251-0123-3",
    ]
    orders = [only_order(m) for m in (preliminary, final, corrected)]
    assert {order.placer_order_number for order in orders} == {"SCR-000123"}
    assert {order.filler_order_number for order in orders} == {"ACM-91234"}
    assert [order.result_status for order in orders] == ["P", "F", "C"]
    assert observation(orders[0], "11235-9").status == "P"
    assert observation(orders[0], "11235-9").value_text == "POS"
    assert [o.code for o in orders[0].observations] == ["11235-9"]
    assert observation(orders[1], "43199-9").value_numeric == 18.4
    corrected_norfentanyl = observation(orders[2], "43199-9")
    assert (corrected_norfentanyl.value_numeric, corrected_norfentanyl.status) == (1.84, "C")
    assert observation(orders[2], "11235-9").status == "F"


def test_batch_file_splits_into_three_messages() -> None:
    messages = split_batch(load("11_batch_fhs_bhs_three_messages.hl7"))
    assert len(messages) == 3
    assert all(text.startswith("MSH|") and text.endswith("\r") for text in messages)
    assert not any(envelope in text for text in messages for envelope in ("FHS|", "BHS|", "BTS|", "FTS|"))
    parsed = [parse_oru(text) for text in messages]
    assert [m.message_control_id for m in parsed] == ["NW23-1001", "NW23-1002", "NW23-1003"]
    assert [only_order(m).placer_order_number for m in parsed] == ["SCR-000111", "SCR-000112", "SCR-000113"]
    assert [only_order(m).observations[0].value_numeric for m in parsed] == [0.0, 12.0, 230.0]


def test_parse_oru_refuses_a_batch_of_several_messages() -> None:
    with pytest.raises(Hl7Error) as raised:
        parse_oru(load("11_batch_fhs_bhs_three_messages.hl7"))
    assert raised.value.code == "100"
    assert "3 messages" in raised.value.detail


def test_several_orders_in_one_message_and_order_number_from_orc() -> None:
    message = parse("12_multiple_obr.hl7")
    assert [(o.placer_order_number, o.filler_order_number, o.universal_service_id) for o in message.orders] == [
        ("SCR-000130", "ACM-92000", "UDS"),
        ("SCR-000130", "ACM-92000-C", "CONF"),
        ("SCR-000130", "ACM-92000-V", "VALID"),  # OBR-2 empty: taken from ORC-2
    ]
    screen, confirmation, validity = message.orders
    assert [(o.code, o.coding_system, o.value_text) for o in screen.observations] == [
        ("LC3393", "L", "POS"),
        ("LC3427", "L", "NEG"),
    ]
    assert confirmation.observations[0].value_numeric == 642.0
    assert validity.observations[0].code == "2161-8"


def test_flags_shifted_one_field_are_found_and_marked() -> None:
    order = only_order(parse("13_shifted_flag.hl7"))
    methadone = observation(order, "3773-9")  # flag in OBX-9, status in OBX-12
    assert (methadone.abnormal_flag, methadone.shifted_fields, methadone.status) == ("A", True, "F")
    assert methadone.cutoff == 300.0
    eddp = observation(order, "41858-2")
    assert (eddp.abnormal_flag, eddp.shifted_fields, eddp.status) == ("N", True, "F")
    creatinine = observation(order, "2161-8")  # flag in OBX-7
    assert (creatinine.abnormal_flag, creatinine.shifted_fields, creatinine.cutoff) == ("H", True, None)
    ph = observation(order, "2756-5")
    assert (ph.abnormal_flag, ph.shifted_fields) == ("N", False)
    cannabinoids = observation(order, "3427-2")  # "NEG" in OBX-7 is the expected result
    assert (cannabinoids.abnormal_flag, cannabinoids.shifted_fields) == (None, False)
    assert (cannabinoids.reference_range, cannabinoids.value_text) == ("NEG", "NEG")


def test_results_only_in_nte_text() -> None:
    order = only_order(parse("14_results_only_in_nte.hl7"))
    assert order.placer_order_number == "SCR-000132"
    assert order.observations == ()
    assert order.notes == (
        "URINE DRUG SCREEN RESULTS:",
        "Amphetamines: NEGATIVE (cutoff 500 ng/mL)",
        "Opiates: POSITIVE (cutoff 300 ng/mL)",
        "Fentanyl: NEGATIVE (cutoff 1 ng/mL)",
    )


def test_repeating_pid3_identifiers_skip_empty_ones() -> None:
    patient = parse("15_pid3_repeating_identifiers.hl7").patient
    assert [(i.id, i.assigning_authority, i.type_code) for i in patient.identifiers] == [
        ("RIV101500", "RIVERSIDE", "MR"),
        ("SCR-P-4471", "IOPW", "PI"),
        ("X55120", "2.16.840.1.113883.3.1234", "MR"),  # authority given only as an OID
    ]
    assert (patient.family_name, patient.given_name, patient.birth_date) == ("ZZTEST", "PARKER", "2000-01-01")


def test_adt_message_is_rejected_with_200() -> None:
    with pytest.raises(Hl7Error) as raised:
        parse("16_adt_a01_rejected.hl7")
    assert (raised.value.code, raised.value.location) == ("200", "MSH-9")
    assert raised.value.detail == ("MSH-9 is 'ADT^A01^ADT_A01'; this endpoint accepts ORU^R01 only.")


def test_version_27_is_rejected_with_203() -> None:
    with pytest.raises(Hl7Error) as raised:
        parse("17_v27_rejected.hl7")
    assert (raised.value.code, raised.value.location) == ("203", "MSH-12")
    assert raised.value.detail == ("MSH-12 is '2.7'; this endpoint accepts versions 2.2, 2.3, 2.3.1, 2.4, 2.5, 2.5.1.")


def test_broken_msh_is_unparseable() -> None:
    with pytest.raises(Hl7Error) as raised:
        parse("18_broken_msh.hl7")
    assert (raised.value.code, raised.value.location) == ("102", "MSH-2")
    assert "MSH-2" in raised.value.detail


def test_the_message_own_encoding_characters_are_used() -> None:
    message = parse("19_custom_encoding_characters.hl7")
    assert (message.message_control_id, message.message_type, message.version) == ("LKS24-000555", "ORU^R01", "2.4")
    assert [(i.id, i.assigning_authority, i.type_code) for i in message.patient.identifiers] == [
        ("RIV101900", "RIVERSIDE", "MR"),
        ("SCR-P-5001", "IOPW", "PI"),
    ]
    order = only_order(message)
    assert order.collected_at == "2024-03-20T11:15:00"
    methadone = observation(order, "3773-9")
    assert (methadone.label, methadone.value_numeric) == ("Methadone", 640.0)
    assert methadone.cutoff == 300.0
    assert methadone.notes == ("Cutoff 300 ng/mL; field# and component$ escapes\ndecoded",)
    fentanyl = observation(order, "11235-9")
    assert (fentanyl.comparator, fentanyl.value_numeric, fentanyl.value_raw) == ("<", 2.0, "<$2")


# --- rejections built inline ----------------------------------------------------------------------

MSH_23 = "MSH|^~\\&|NWTOX|NORTHWIND TOX LAB|IOPW|RIVERSIDE IOP|20240301||{type}|{control}|P|{version}"
PID = "PID|1||RIV1^^^RIVERSIDE^MR||ZZTEST^UMA||19900101|F"
OBR = "OBR|1|SCR-000900|NW-900|UDS^Screen^L|||20240301"
OBX = "OBX|1|NM|3773-9^Methadone^LN||10|ng/mL|<300|N|||F"


def message(*segments: str, type_: str = "ORU^R01", control: str = "C1", version: str = "2.3") -> str:
    return "\r".join([MSH_23.format(type=type_, control=control, version=version), *segments])


@pytest.mark.parametrize(
    ("text", "code", "location"),
    [
        ("", "100", "MSH"),
        ("   \r\n  ", "100", "MSH"),
        ("hello, this is not HL7", "100", "MSH"),
        ("PID|1||X\rMSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.3", "100", "MSH"),
        ("MSH", "101", "MSH-9"),
        ("MSH|^~\\&", "101", "MSH-9"),
        ("MSH||A|B", "101", "MSH-2"),
        ("MSH|^~\\&abc|A", "102", "MSH-2"),
        ("MSH|a~\\&|A", "102", "MSH-2"),
        (message(PID, OBR, OBX, type_=""), "101", "MSH-9"),
        (message(PID, OBR, OBX, type_="ORU^R30"), "201", "MSH-9"),
        (message(PID, OBR, OBX, control=""), "101", "MSH-10"),
        (message(PID, OBR, OBX, version=""), "101", "MSH-12"),
        (message(PID, OBR, OBX, version="2.1"), "203", "MSH-12"),
        (message(PID, OBX, OBR), "100", "OBX"),
        (message(PID), "100", "OBR"),
        (message(PID, "OBR|1|||UDS^Screen^L", OBX), "101", "OBR-2"),
        (message(PID, OBR, OBX, "PID|1||RIV2^^^RIVERSIDE^MR||ZZTEST^VAL"), "100", "PID-3"),
    ],
)
def test_unacceptable_messages_raise_hl7_error(text: str, code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as raised:
        parse_oru(text)
    assert (raised.value.code, raised.value.location) == (code, location)
    assert raised.value.detail.endswith(".")
    assert "ZZTEST" not in str(raised.value) and "UMA" not in raised.value.detail


def test_all_supported_versions_and_a_bare_oru_type_are_accepted() -> None:
    for version in SUPPORTED_VERSIONS:
        assert parse_oru(message(PID, OBR, OBX, version=version)).version == version
    assert parse_oru(message(PID, OBR, OBX, type_="ORU", version="2.2")).message_type == "ORU"


def test_a_repeated_pid_for_the_same_patient_is_accepted() -> None:
    parsed = parse_oru(message(PID, OBR, OBX, PID, "OBR|2|SCR-000901", OBX))
    assert [o.placer_order_number for o in parsed.orders] == ["SCR-000900", "SCR-000901"]


def test_test_messages_are_visible_through_processing_id() -> None:
    text = message(PID, OBR, OBX).replace("|P|2.3", "|T|2.3")
    assert parse_oru(text).processing_id == "T"


def test_hl7_error_pickles_with_its_fields() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(Hl7Error("102", "Bad.", "OBX-5")))
    assert (error.code, error.detail, error.location) == ("102", "Bad.", "OBX-5")


# --- PHI stays out of reprs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(CORPUS_FILES) - REJECTED - BATCHES))
def test_repr_never_shows_patient_name_birth_date_or_identifiers(name: str) -> None:
    parsed = parse(name)
    shown = repr(parsed) + str(parsed) + repr(parsed.patient) + repr(parsed.patient.identifiers)
    patient = parsed.patient
    for secret in (
        patient.family_name,
        patient.given_name,
        patient.birth_date,
        *(identifier.id for identifier in patient.identifiers),
    ):
        assert secret and secret not in shown
    assert "<redacted>" in shown
    assert parsed.patient.family_name == "ZZTEST"  # still there for cross-checks


# --- line ends, framing, envelopes ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["02_v23_loinc_nm.hl7", "19_custom_encoding_characters.hl7"])
@pytest.mark.parametrize(
    "variant",
    [
        lambda text: text.replace("\r", "\r\n"),
        lambda text: text.replace("\r", "\n"),
        lambda text: text,
        lambda text: "\x0b" + text + "\x1c\r",
        lambda text: "\n\n   " + text.replace("\r", "  \r  ") + "\r\n\t ",
        lambda text: "\ufeff" + text.rstrip("\r"),
        lambda text: "BHS|^~\\&|LAB\r" + text + "BTS|1\r",
    ],
    ids=["crlf", "lf", "cr", "mllp", "whitespace", "bom-no-final-cr", "bhs-one-message"],
)
def test_line_end_and_framing_variants_parse_the_same(name: str, variant: Callable[[str], str]) -> None:
    text = load(name)
    assert parse_oru(variant(text)) == parse_oru(text)


def test_the_raw_corpus_file_with_lf_parses_like_the_cr_version() -> None:
    raw = (CORPUS / "05_v251_specimen_validity.hl7").read_text(encoding="utf-8")
    assert "\r" not in raw
    assert parse_oru(raw) == parse("05_v251_specimen_validity.hl7")


def test_split_batch_handles_back_to_back_messages_and_mllp_frames() -> None:
    first, second = load("07_v24_methadone_eddp.hl7"), load("06_v251_buprenorphine.hl7")
    assert split_batch(first + second) == [first, second]
    framed = "\x0b" + first + "\x1c\r" + "\x0b" + second.replace("\r", "\r\n") + "\x1c\r"
    assert split_batch(framed) == [first, second]
    assert split_batch("") == [] and split_batch(" \r\n\x0b\x1c\r ") == []


def test_text_before_the_first_msh_is_kept_so_it_can_be_rejected() -> None:
    chunks = split_batch("GARBAGE LINE\r" + load("07_v24_methadone_eddp.hl7"))
    assert chunks[0] == "GARBAGE LINE\r" and len(chunks) == 2


def test_a_line_that_is_not_a_segment_continues_the_one_before() -> None:
    text = load("07_v24_methadone_eddp.hl7").replace("review for possible", "review for\nplease call the lab\npossible")
    order = only_order(parse_oru(text))
    assert observation(order, "41858-2").notes == (
        "EDDP not detected while methadone present; review for please call the lab possible specimen spiking.",
    )


# --- ACKs -----------------------------------------------------------------------------------------


def test_aa_for_v251_echoes_addressing_and_version() -> None:
    original = parse("05_v251_specimen_validity.hl7")
    ack = build_ack(original, None, "AA", "IOPW-ACK-1", [], NOW)
    assert ack == (
        "MSH|^~\\&|IOPW|RIVERSIDE IOP|ACMELAB^2.16.840.1.113883.3.9999.1^ISO|"
        "ACME REFERENCE LAB^05D0000001^CLIA|20240401120000||ACK^R01^ACK|IOPW-ACK-1|P|2.5.1\r"
        "MSA|AA|ACME251-0099\r"
    )
    assert parse_ack(ack) == ("AA", "ACME251-0099", ())


def test_ae_for_v251_has_one_err_per_error_in_v25_style() -> None:
    original = parse("06_v251_buprenorphine.hl7")
    errors = [
        AckError(
            "103",
            "OBX-3 code 'NALOX' (system L) is not in our table for ACMELAB; the result was kept for staff review.",
            "OBX[4]-3",
        ),
        AckError("207", "Results could not be stored; resend later."),
    ]
    ack = build_ack(original, None, "AE", "IOPW-ACK-2", errors, NOW)
    rows = segments(ack)
    assert [row[0] for row in rows] == ["MSH", "MSA", "ERR", "ERR"]
    assert rows[0][8:12] == ["ACK^R01^ACK", "IOPW-ACK-2", "P", "2.5.1"]
    assert rows[1][:3] == ["MSA", "AE", "ACME251-0107"]
    assert len(rows[1][3]) <= 80
    assert rows[2] == ["ERR", "", "OBX^4^3", "103^Table value not found^HL70357", "E", "", "", "", errors[0].detail]
    assert rows[3] == ["ERR", "", "", "207^Application internal error^HL70357", "E", "", "", "", errors[1].detail]
    assert parse_ack(ack) == ("AE", "ACME251-0107", (errors[0].detail, errors[1].detail))


def test_ar_for_v23_uses_err1_and_two_component_message_type() -> None:
    original = parse("02_v23_loinc_nm.hl7")
    error = AckError("102", "OBX-5 of OBX 3 is '<25' but OBX-2 says NM.", "OBX-5")
    ack = build_ack(original, None, "AR", "IOPW-ACK-3", [error], NOW)
    rows = segments(ack)
    assert rows[0] == [
        "MSH",
        "^~\\&",
        "IOPW",
        "RIVERSIDE IOP",
        "ACMELAB",
        "ACME REFERENCE LAB^05D0000001^CLIA",
        NOW,
        "",
        "ACK^R01",
        "IOPW-ACK-3",
        "P",
        "2.3",
    ]
    assert rows[1] == ["MSA", "AR", "ACME23-7781", error.detail]
    assert rows[2] == ["ERR", "OBX^1^5^102&" + error.detail + "&HL70357"]
    assert parse_ack(ack) == ("AR", "ACME23-7781", (error.detail,))


def test_v23_aa_with_a_warning_escapes_delimiters_in_the_detail() -> None:
    original = parse("13_shifted_flag.hl7")
    detail = "OBX-8 empty; flag 'A' read from OBX-9 (fields|shifted^by&one~field\\)."
    warning = AckError("102", detail, "OBX-9", severity="W")
    ack = build_ack(original, None, "AA", "IOPW-ACK-4", [warning], NOW)
    assert "|shifted" not in ack and "\\F\\shifted\\S\\by\\T\\one\\R\\field\\E\\" in ack
    assert parse_ack(ack) == ("AA", "NW23-2001", (detail,))
    # python-hl7 reads our ACK the same way: it is standard HL7.
    library = python_hl7.parse(ack)
    assert str(library.segment("MSA")(2)) == "NW23-2001"
    assert str(library.segment("MSH")(9)) == "ACK^R01"


def test_ack_without_any_original_uses_defaults() -> None:
    ack = build_ack(None, None, "AR", "IOPW-ACK-5", [AckError("207", "Try again later.")], NOW)
    rows = segments(ack)
    assert rows[0] == ["MSH", "^~\\&", "", "", "", "", NOW, "", "ACK^R01^ACK", "IOPW-ACK-5", "P", "2.5.1"]
    assert rows[1] == ["MSA", "AR", "", "Try again later."]


def test_build_ack_rejects_unknown_ack_codes() -> None:
    with pytest.raises(ValueError):
        build_ack(None, None, "CA", "X", [], NOW)  # type: ignore[arg-type]


def test_ack_for_unparseable_adt_is_ar_200_addressed_to_the_sender() -> None:
    text = load("16_adt_a01_rejected.hl7")
    with pytest.raises(Hl7Error) as raised:
        parse_oru(text)
    ack = ack_for_unparseable(text, raised.value, "IOPW-ACK-6", NOW)
    rows = segments(ack)
    assert rows[0][2:6] == ["IOPW", "RIVERSIDE IOP", "REGSYS", "RIVERSIDE HOSPITAL"]
    assert rows[0][8:] == ["ACK^A01^ACK", "IOPW-ACK-6", "P", "2.5.1"]
    assert rows[2][2:5] == ["MSH^1^9", "200^Unsupported message type^HL70357", "E"]
    assert parse_ack(ack) == ("AR", "REG-55120", (raised.value.detail,))


def test_ack_for_unparseable_v27_is_ar_203_in_the_sender_version() -> None:
    text = load("17_v27_rejected.hl7")
    with pytest.raises(Hl7Error) as raised:
        parse_oru(text)
    ack = ack_for_unparseable(text, raised.value, "IOPW-ACK-7", NOW)
    rows = segments(ack)
    assert rows[0][11] == "2.7" and rows[2][3] == "203^Unsupported version id^HL70357"
    assert parse_ack(ack) == ("AR", "ACME27-0001", (raised.value.detail,))


def test_ack_for_unparseable_broken_msh_salvages_addressing() -> None:
    text = load("18_broken_msh.hl7")
    with pytest.raises(Hl7Error) as raised:
        parse_oru(text)
    ack = ack_for_unparseable(text, raised.value, "IOPW-ACK-8", NOW)
    rows = segments(ack)
    assert rows[0][2:6] == ["IOPW", "RIVERSIDE IOP", "NWTOX", "NORTHWIND TOX LAB"]
    assert rows[0][8:] == ["ACK^R01", "IOPW-ACK-8", "P", "2.3"]  # v2.3: ERR-1 style
    assert rows[2][1].startswith("MSH^1^2^102&")
    assert parse_ack(ack) == ("AE", "NW-BROKEN-01", (raised.value.detail,))


def test_ack_for_text_without_msh_still_answers() -> None:
    error = Hl7Error("100", "The message must start with an MSH segment.", "MSH")
    ack = ack_for_unparseable("garbage\x00\x0b", error, "IOPW-ACK-9", NOW)
    # Issue 19: text that is not an HL7 message at all is rejected (AR), with the reason.
    assert parse_ack(ack) == ("AR", "", (error.detail,))


def test_parse_ack_reads_a_foreign_v23_ack_with_msa3_only() -> None:
    foreign = "MSH|^~\\&|IOPW||LAB||20240101||ACK|X1|P|2.3\rMSA|AE|C123|Unknown patient\r"
    assert parse_ack(foreign) == ("AE", "C123", ("Unknown patient",))
    with pytest.raises(Hl7Error):
        parse_ack("MSH|^~\\&|IOPW||LAB||20240101||ACK|X1|P|2.3\r")


# --- MLLP -----------------------------------------------------------------------------------------


def test_mllp_frame_wraps_utf8_bytes() -> None:
    assert mllp_frame("MSH|é\r") == b"\x0bMSH|\xc3\xa9\r\x1c\r"
    with pytest.raises(ValueError):
        mllp_frame("MSH|\x1c")


def test_mllp_decoder_reassembles_messages_across_every_split_point() -> None:
    texts = [load("07_v24_methadone_eddp.hl7"), load("08_scr000123_preliminary.hl7")]
    stream = b"".join(mllp_frame(text) for text in texts)
    for cut in range(len(stream) + 1):
        decoder = MllpDecoder()
        received = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert received == texts
        assert not decoder.pending


def test_mllp_decoder_byte_by_byte_with_noise_and_missing_trailer() -> None:
    text = load("07_v24_methadone_eddp.hl7")
    stream = b"\r\n noise" + mllp_frame(text) + b"\x00" + b"\x0b" + text.encode() + b"\x1c"
    decoder = MllpDecoder()
    received = [message for byte in stream for message in decoder.feed(bytes([byte]))]
    assert received == [text, text]


def test_mllp_decoder_drops_an_abandoned_frame() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bMSH|half a message") == []
    assert decoder.pending
    assert decoder.feed(b"\x0bMSH|whole\r\x1c\r") == ["MSH|whole\r"]


def test_mllp_decoder_limits_frame_size_and_decodes_latin1() -> None:
    decoder = MllpDecoder(max_frame_bytes=10)
    with pytest.raises(MllpError):
        decoder.feed(b"\x0b" + b"x" * 20)
    assert not decoder.pending
    assert MllpDecoder().feed(b"\x0bNTE|caf\xe9\x1c\r") == ["NTE|café"]


# --- properties -----------------------------------------------------------------------------------

ACCEPTED_TEXTS = [load(name) for name in CORPUS_FILES if name not in REJECTED | BATCHES]
ALL_TEXTS = [load(name) for name in CORPUS_FILES]
HL7_CHARS = '|^~\\&\r\n\x0b\x1c"#$*@% -<>=.0123456789ABMSHOBXNTEPIDR'


def assert_parses_or_rejects(text: str) -> None:
    try:
        parsed = parse_oru(text)
    except Hl7Error as error:
        assert error.code in {"100", "101", "102", "200", "201", "203"}
        ack = ack_for_unparseable(text, error, "CTRL", NOW)
        assert isinstance(ack, str)
        code, _control, texts = parse_ack(ack)
        assert code in ("AR", "AE") and texts
    else:
        assert isinstance(parsed, OruMessage)
        json.dumps(asdict(parsed))
        assert parse_ack(build_ack(parsed, None, "AA", "CTRL", [], NOW)).ack_code == "AA"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_hl7_error(text: str) -> None:
    assert_parses_or_rejects(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_any_bytes_parse_or_raise_hl7_error(data: bytes) -> None:
    assert_parses_or_rejects(data.decode("utf-8", errors="replace"))


@st.composite
def mangled_corpus_text(draw: st.DrawFn) -> str:
    """A corpus message with a few characters replaced, inserted or deleted: deep paths."""
    text = draw(st.sampled_from(ALL_TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        char = draw(st.sampled_from(HL7_CHARS) | st.characters())
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        if edit == "insert":
            text = text[:position] + char + text[position:]
        elif edit == "replace":
            text = text[:position] + char + text[position + 1 :]
        else:
            text = text[:position] + text[position + 1 :]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_corpus_text())
def test_mangled_corpus_messages_parse_or_raise_hl7_error(text: str) -> None:
    assert_parses_or_rejects(text)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["100", "101", "102", "200", "201", "203", "207"]), st.text())
def test_ack_for_unparseable_always_answers_ar_or_ae(text: str, code: str, detail: str) -> None:
    ack = ack_for_unparseable(text, Hl7Error(code, detail), "CTRL", NOW)
    assert isinstance(ack, str)
    msa = [row for row in segments(ack) if row[0] == "MSA"]
    has_msh = _first_msh_line(text) is not None
    assert len(msa) == 1 and msa[0][1] == ("AR" if code in {"200", "201", "203", "207"} or not has_msh else "AE")
    assert parse_ack(ack).ack_code == msa[0][1]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ACCEPTED_TEXTS), st.data())
def test_any_mix_of_line_ends_parses_the_same(text: str, data: st.DataObject) -> None:
    lines = text.rstrip("\r").split("\r")
    ends = data.draw(st.lists(st.sampled_from(["\r", "\n", "\r\n"]), min_size=len(lines), max_size=len(lines)))
    assert parse_oru("".join(line + end for line, end in zip(lines, ends, strict=True))) == parse_oru(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ACCEPTED_TEXTS), min_size=1, max_size=4), st.data())
def test_mllp_decoder_survives_any_read_boundaries(texts: list[str], data: st.DataObject) -> None:
    stream = b"".join(mllp_frame(text) for text in texts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = MllpDecoder()
    received: list[str] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        received += decoder.feed(stream[start:end])
    assert received == texts


def ack_visible(text: str) -> str:
    """What a value looks like after a trip through an ACK: control characters become spaces."""
    return "".join(" " if ord(char) < 0x20 or ord(char) == 0x7F else char for char in text).strip()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["2.3", "2.5.1"]),
    st.text(min_size=1),
    st.text(),
    st.text().filter(lambda detail: ack_visible(detail) not in ("", '""')),
)
def test_ack_round_trips_any_control_id_sender_and_detail(
    version: str, control_id: str, sender: str, detail: str
) -> None:
    original = OruMessage(
        sending_application=sender,
        sending_facility=None,
        receiving_application="IOPW",
        receiving_facility=None,
        message_control_id=control_id,
        message_datetime=None,
        version=version,
        message_type="ORU^R01",
        patient=parse("01_v22_local_codes_ce.hl7").patient,
        orders=(),
    )
    ack = build_ack(original, None, "AE", "CTRL", [AckError("102", detail, "OBX-5")], NOW)
    assert len(segments(ack)[0]) == 12  # nothing the sender sent can add or remove MSH fields
    assert parse_ack(ack) == ("AE", ack_visible(control_id), (ack_visible(detail),))


def test_pathological_input_is_answered() -> None:
    """A hostile or broken sender gets an answer: the parser finishes and raises only Hl7Error.
    (Its speed on such input is a benchmark matter; a regex that backtracks catastrophically
    would hang here rather than fail a clock.)"""
    blanks = " \t" * 20_000
    hostile = [
        load("04_v24_cutoffs_only_in_nte.hl7").replace("Cutoff 50", "Cutoff" + blanks + "x"),
        load("01_v22_local_codes_ce.hl7").replace("NEG <150", "NEG" + blanks + "<" + blanks),
        load("07_v24_methadone_eddp.hl7") + "wrapped note line\n" * 50_000,
        "MSH|^~\\&|" + "|" * 20_000 + "\r" + "OBX|" + "^~&\\" * 10_000,  # cost is per field
    ]
    for text in hostile:
        try:
            parse_oru(text)
        except Hl7Error:
            pass
