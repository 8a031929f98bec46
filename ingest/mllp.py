"""`iop hl7 listen`: HL7 v2 over MLLP on TCP, answered exactly as POST /lab/hl7 answers.

MLLP carries no credentials, so a listener serves one lab: it is started with that lab's token id,
and every message is checked against the sender the token is registered to (read again for each
message, so revoking the token stops the listener's intake at once)."""

from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from domain.hl7 import MllpDecoder, MllpError, mllp_frame
from ingest.lab import LabIngest

log = logging.getLogger(__name__)


async def serve_mllp(ingest: LabIngest, host: str, port: int, *, token_id: str) -> asyncio.Server:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
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
                        writer.write(mllp_frame(receipt.ack))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(connection, host, port)
