import asyncio

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload

from iop.codec import (
    CodecKeyError,
    EncryptionCodec,
    data_converter,
    format_key,
    load_or_create_dev_key,
    new_key,
    parse_keys,
)
from iop.settings import Settings
from iop.temporal import codec_keys


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def roundtrip(encoder: EncryptionCodec, decoder: EncryptionCodec, p: Payload) -> Payload:
    return asyncio.run(decoder.decode(asyncio.run(encoder.encode([p]))))[0]


def test_encrypts_and_decrypts_with_key_id_in_metadata():
    key = new_key("k1")
    codec = EncryptionCodec([key])
    sealed = asyncio.run(codec.encode([payload('{"name":"Ada Lovelace"}')]))[0]
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert b"Ada" not in sealed.data
    assert roundtrip(codec, codec, payload('{"name":"Ada Lovelace"}')) == payload('{"name":"Ada Lovelace"}')


def test_rotation_old_payloads_still_decrypt():
    old, new = new_key("old"), new_key("new")
    sealed_with_old = asyncio.run(EncryptionCodec([old]).encode([payload("x")]))
    rotated = EncryptionCodec([new, old])
    assert asyncio.run(rotated.decode(sealed_with_old))[0] == payload("x")
    assert asyncio.run(rotated.encode([payload("y")]))[0].metadata["encryption-key-id"] == b"new"


def test_unknown_key_and_tampering_are_refused():
    sealed = asyncio.run(EncryptionCodec([new_key("a")]).encode([payload("x")]))
    with pytest.raises(CodecKeyError, match="not configured"):
        asyncio.run(EncryptionCodec([new_key("b")]).decode(sealed))
    key = new_key("a")
    codec = EncryptionCodec([key])
    sealed = asyncio.run(codec.encode([payload("x")]))[0]
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        asyncio.run(codec.decode([sealed]))


def test_key_parsing_errors_say_what_to_fix():
    assert parse_keys(format_key(new_key("a")) + "," + format_key(new_key("b")))[0].key_id == "a"
    with pytest.raises(CodecKeyError, match="32 bytes"):
        parse_keys("a:AAAA")
    with pytest.raises(CodecKeyError, match="key-id:base64"):
        parse_keys("no-separator")
    with pytest.raises(CodecKeyError, match="same key id"):
        k = format_key(new_key("a"))
        parse_keys(f"{k},{k}")


def test_production_refuses_to_start_without_a_key(tmp_path):
    with pytest.raises(CodecKeyError, match="required in production"):
        codec_keys(Settings(env="production", data_dir=tmp_path, codec_keys=""))
    assert not (tmp_path / "codec-key").exists()


def test_development_key_is_created_once_and_reused(tmp_path):
    first = load_or_create_dev_key(tmp_path / "codec-key")
    second = codec_keys(Settings(data_dir=tmp_path))
    assert first == second
    assert (tmp_path / "codec-key").stat().st_mode & 0o777 == 0o600


def test_payload_classes_have_their_type_hints_computed_once(monkeypatch):
    """The SDK asks typing.get_type_hints for every dataclass of every payload it decodes; with
    string annotations that is a re-parse each time (issue 20). Ours computes each class's once."""
    import gc
    import weakref
    from collections import Counter
    from dataclasses import dataclass as make_dataclass

    from domain.plan import default_plan
    from iop import typehints
    from workflows.contracts.participant import ParticipantInput, ParticipantState

    converter = data_converter([new_key("k")]).payload_converter
    assert typehints.installed()
    uncached, calls = typehints._uncached, Counter()

    def counting(obj, *args):
        calls[obj] += 1
        return uncached(obj, *args)

    monkeypatch.setattr(typehints, "_uncached", counting)
    typehints._hints.clear()
    value = ParticipantInput(
        state=ParticipantState(
            participant_id="p-1",
            program="iop",
            site="north",
            phase="phase-1",
            start_date="2026-01-05",
            timezone="America/New_York",
            plan=default_plan("phase-1"),
        )
    )
    payloads = converter.to_payloads([value])
    for _ in range(3):
        assert converter.from_payloads(payloads, [ParticipantInput]) == [value]
    assert calls[ParticipantInput] == 1 and calls[ParticipantState] == 1, calls
    # The answer is the caller's own: changing it changes nothing for the next payload.
    typehints.cached_type_hints(ParticipantState).clear()
    assert converter.from_payloads(payloads, [ParticipantInput]) == [value]

    # A class that goes away (a sandbox's re-imported module) leaves the cache with it.
    def decode_a_passing_class() -> weakref.ref:
        @make_dataclass
        class Passing:
            n: int

        decoded = converter.from_payloads(converter.to_payloads([Passing(3)]), [Passing])
        if decoded != [Passing(3)]:
            raise AssertionError(decoded)
        return weakref.ref(Passing)

    monkeypatch.setattr(typehints, "_uncached", uncached)  # the counter above keeps its classes alive
    calls.clear()
    before = typehints.cached_classes()
    gone = decode_a_passing_class()
    gc.collect()
    assert gone() is None and typehints.cached_classes() == before
