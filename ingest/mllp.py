"""`iop hl7 listen`: HL7 v2 over MLLP on TCP, answered exactly as POST /lab/hl7 answers.

MLLP carries no credentials, so a listener serves one lab: it is started with that lab's token id,
and every message is checked against the sender the token is registered to (read again for each
message, so revoking the token stops the listener's intake at once).

MLLP itself (HL7 v2.5.1, Appendix C) has neither authentication nor encryption, so the listener
binds to loopback unless told otherwise, accepts connections only from the peers on its allowlist
(IOP_MLLP_ALLOW: addresses and CIDR networks), and leaves TLS to a proxy in front of it (README,
"Labs over MLLP"). Every message and every refused peer is an audit event, as on the HTTP route;
the events name the peer's address and the stored message's id, never what the message says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from domain.hl7 import MllpDecoder, MllpError, mllp_frame
from ingest.lab import LabIngest, Receipt
from store.audit import AuditEntry, append

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[Network, ...]

    def permits(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a v4 peer on a dual-stack socket
        return any(address.version == net.version and address in net for net in self.networks)


def parse_allowlist(spec: str) -> Allowlist:
    """ "127.0.0.1,10.0.0.0/8,::1": addresses or networks, comma separated. Empty admits no one."""
    networks = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"IOP_MLLP_ALLOW: {entry!r} is not an IP address or CIDR network") from exc
    return Allowlist(tuple(networks))


async def serve_mllp(
    ingest: LabIngest, host: str, port: int, *, token_id: str, allow: str | Allowlist = "127.0.0.1,::1"
) -> asyncio.Server:
    allowed = parse_allowlist(allow) if isinstance(allow, str) else allow

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else "unknown"
        if not allowed.permits(source):
            log.warning("MLLP connection from %s refused: not in IOP_MLLP_ALLOW", source)
            try:  # recorded before the peer sees the close
                await run_in_threadpool(
                    _audit,
                    ingest,
                    AuditEntry(
                        actor="anonymous",
                        role="-",
                        action="MLLP connect",
                        outcome="refused",
                        source=source,
                        request_id=uuid.uuid4().hex,
                        detail="peer not in IOP_MLLP_ALLOW; connection closed unread",
                    ),
                )
            finally:
                writer.close()
            return
        decoder = MllpDecoder()
        try:
            while data := await reader.read(65536):
                try:
                    messages = decoder.feed(data)
                except MllpError as exc:
                    log.warning("MLLP connection %s dropped: %s", peer, exc)
                    break
                for text in messages:
                    # Each message gets its ACK before the next is read: labs send one at a time.
                    sender = await run_in_threadpool(ingest.sender_for_token, token_id)
                    for receipt in await ingest.receive_hl7(text, "mllp", sender):
                        await run_in_threadpool(_audit, ingest, _entry(receipt, source, token_id))
                        writer.write(mllp_frame(receipt.ack))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(connection, host, port)


def _entry(receipt: Receipt, source: str, token_id: str) -> AuditEntry:
    """Like the HTTP route's event (POST /lab/hl7, by a lab token): the answer given and the stored message."""
    return AuditEntry(
        actor=token_id,
        role="lab",
        action="MLLP ORU^R01",
        outcome=receipt.ack_code,
        subject_type="lab-message",
        subject_id=str(receipt.message_id),
        request_id=uuid.uuid4().hex,
        source=source,
        detail="resend: the original answer was repeated" if receipt.replayed else None,
    )


def _audit(ingest: LabIngest, entry: AuditEntry) -> None:
    append(ingest.engine, entry)
