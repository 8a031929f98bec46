"""Encryption of every Temporal payload (AES-256-GCM), so the Temporal server's store and its UI
hold no readable PHI. The key id travels in each payload's metadata so keys can be rotated: the
first configured key encrypts, every configured key can still decrypt older payloads.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import temporalio.converter
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

ENCODING = b"binary/encrypted"
KEY_ID_FIELD = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(ValueError):
    """The configured keys are missing or malformed."""


# What a production codec makes of a payload that is not ours: no payload converter knows this
# encoding, so whatever was to be read from it fails to convert. An update carrying one is
# rejected, a signal dropped (the SDK's rules for arguments it cannot read), and the workflow
# carries on, instead of a failed workflow task that would wedge it.
REFUSED_ENCODING = b"binary/refused-unencrypted"


@dataclass(frozen=True)
class CodecKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print key material
        return f"CodecKey({self.key_id!r})"


def parse_keys(spec: str) -> list[CodecKey]:
    """Parse "id:base64,id2:base64" (first = active)."""
    keys: list[CodecKey] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id:
            raise CodecKeyError("each IOP_CODEC_KEYS entry must look like 'key-id:base64-of-32-bytes'")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise CodecKeyError(f"codec key {key_id!r} is not valid base64") from exc
        if len(secret) != 32:
            raise CodecKeyError(f"codec key {key_id!r} must be 32 bytes (AES-256), got {len(secret)}")
        keys.append(CodecKey(key_id, secret))
    if len({k.key_id for k in keys}) != len(keys):
        raise CodecKeyError("IOP_CODEC_KEYS names the same key id twice")
    return keys


def format_key(key: CodecKey) -> str:
    return f"{key.key_id}:{base64.b64encode(key.secret).decode()}"


def new_key(key_id: str | None = None) -> CodecKey:
    return CodecKey(key_id or f"k-{secrets.token_hex(4)}", AESGCM.generate_key(bit_length=256))


def load_or_create_dev_key(path: Path) -> list[CodecKey]:
    """A development key kept beside the dev server's data, so a restart can read old payloads."""
    if path.exists():
        return parse_keys(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key("dev-1")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(format_key(key) + "\n")
    return [key]


class EncryptionCodec(temporalio.converter.PayloadCodec):
    """`refuse_plain` (production): a payload that is not encrypted with our keys is never passed
    through as readable. Temporal's frontend has no authentication of its own, so anyone who
    reaches its port could otherwise update or signal a workflow with plain JSON, bypassing the
    API and its audit trail; now only holders of the payload keys can make a payload that the
    worker acts on (see REFUSED_ENCODING)."""

    def __init__(self, keys: Sequence[CodecKey], *, refuse_plain: bool = False) -> None:
        if not keys:
            raise CodecKeyError("at least one codec key is required")
        self._active = keys[0]
        self._ciphers = {k.key_id: AESGCM(k.secret) for k in keys}
        self.keys: tuple[CodecKey, ...] = tuple(keys)
        self.refuse_plain = refuse_plain

    @property
    def active_key_id(self) -> str:
        return self._active.key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.refuse_plain:
            return [self._decrypt(p) if p.metadata.get("encoding") == ENCODING else _REFUSED for p in payloads]
        return [self._decrypt(p) for p in payloads]

    async def open(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decode for people (the codec endpoint): a plain payload is shown as it is."""
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = secrets.token_bytes(NONCE_BYTES)
        key_id = self._active.key_id
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_FIELD: key_id.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_FIELD, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(f"payload was encrypted with key {key_id!r}, which is not configured")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(cipher.decrypt(nonce, sealed, key_id.encode()))


_REFUSED = Payload(metadata={"encoding": REFUSED_ENCODING}, data=b"")


def data_converter(keys: Iterable[CodecKey], *, refuse_plain: bool = False) -> temporalio.converter.DataConverter:
    """The one data converter used by the worker, the API, the CLI and the tests; production
    refuses plain payloads (EncryptionCodec). Decoding reuses each payload class's type hints
    (iop/typehints.py)."""
    from iop import typehints

    typehints.install()
    return replace(
        temporalio.converter.default(),
        payload_codec=EncryptionCodec(list(keys), refuse_plain=refuse_plain),
        # Failure messages and stack traces can quote workflow data: encode them too.
        failure_converter_class=temporalio.converter.DefaultFailureConverterWithEncodedAttributes,
    )


def seal_text(keys: Sequence[CodecKey], text: str) -> str:
    """A secret kept at rest (a recipient's signing secret) under the active payload key."""
    key = keys[0]
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key.secret).encrypt(nonce, text.encode(), key.key_id.encode())
    return f"{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"


def open_text(keys: Sequence[CodecKey], sealed: str) -> str:
    key_id, _, encoded = sealed.partition(":")
    key = next((k for k in keys if k.key_id == key_id), None)
    if key is None:
        raise CodecKeyError(f"secret was sealed with key {key_id!r}, which is not configured")
    raw = base64.b64decode(encoded)
    return AESGCM(key.secret).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode()).decode()


def encryption_codec(converter: temporalio.converter.DataConverter) -> EncryptionCodec:
    """The codec of a data converter built by data_converter() (the API's and the worker's clients)."""
    codec = converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise TypeError("this Temporal client does not encrypt payloads: build it with iop.codec.data_converter()")
    return codec
