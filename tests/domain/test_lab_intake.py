"""Intake rules: what makes a resend the same message, and who may send as which sender."""

from hypothesis import given
from hypothesis import strategies as st

from domain.lab_intake import UNREGISTERED_TOKEN, SenderBinding, body_digest, normalised_body, sender_refusal

MESSAGE = (
    "MSH|^~\\&|LAB|ACME LAB|IOPW|NORTH|20261123101500||ORU^R01|MSG-1|P|2.5.1\r"
    "PID|1||p-1^^^IOP^PI\rOBR|1|s-1\rOBX|1|NM|3393-6^BE^LN||640|ng/mL\r"
)


def test_line_endings_framing_and_blank_lines_do_not_make_another_message():
    variants = [
        MESSAGE.replace("\r", "\n"),
        MESSAGE.replace("\r", "\r\n"),
        "\x0b" + MESSAGE + "\x1c\r",
        "\ufeff" + MESSAGE.rstrip("\r"),
        MESSAGE.replace("\r", "\r\r") + "\n  \n",
        "  " + MESSAGE,
    ]
    assert {body_digest(v) for v in variants} == {body_digest(MESSAGE)}
    assert normalised_body(MESSAGE) == MESSAGE


def test_any_change_inside_a_segment_is_another_message():
    for changed in (MESSAGE.replace("s-1", "s-2"), MESSAGE.replace("640", "641"), MESSAGE.replace("|ng/mL", "| ng/mL")):
        assert body_digest(changed) != body_digest(MESSAGE)


@given(st.text(alphabet="AB|^~\\&\r\n 0123456789", max_size=60))
def test_digest_never_fails_and_ignores_line_ending_style(tail):
    text = MESSAGE + tail
    assert body_digest(text) == body_digest(text.replace("\r\n", "\n").replace("\r", "\n"))


def test_a_token_sends_only_as_its_registered_sender():
    bound = SenderBinding("LAB", "ACME LAB")
    assert sender_refusal(bound, "LAB^2.16.840.1^ISO", "ACME LAB^1.2.3^ISO") is None
    refusal = sender_refusal(bound, "LAB", "OTHER LAB")
    assert refusal and "'OTHER LAB'" in refusal and "'ACME LAB'" in refusal
    assert sender_refusal(bound, "OTHER", "ACME LAB")
    assert sender_refusal(bound, None, None)
    assert sender_refusal(SenderBinding(None, None), "LAB", "ACME LAB") == UNREGISTERED_TOKEN
    assert sender_refusal(SenderBinding(None, None, any_sender=True), "X", "Y") is None
