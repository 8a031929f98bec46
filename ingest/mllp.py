"""`iop hl7 listen`: HL7 v2 over MLLP on TCP, answered exactly as POST /lab/hl7 answers."""

from __future__ import annotations

import asyncio
import logging

from domain.hl7 import MllpDecoder, MllpError, mllp_frame
from ingest.lab import LabIngest

log = logging.getLogger(__name__)


async def serve_mllp(ingest: LabIngest, host: str, port: int) -> asyncio.Server:
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
                    for receipt in await ingest.receive_hl7(text, "mllp"):
                        writer.write(mllp_frame(receipt.ack))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(connection, host, port)
