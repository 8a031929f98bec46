"""The MLLP listener on a real TCP socket, and the HL7 endpoint under arbitrary input."""

import asyncio

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select
from temporalio.client import Client

from api.app import create_app
from domain.hl7 import MllpDecoder, mllp_frame, parse_ack
from ingest.lab import LabIngest
from ingest.mllp import serve_mllp
from iop.settings import Settings
from store.models import ApiToken, LabMessage
from tests.api.test_lab import collected, oru, screening
from tests.conftest import TEST_CONVERTER
from tests.helpers import LAB_APPLICATION, LAB_FACILITY, issue_role_tokens


async def test_mllp_listener_files_a_result_sent_in_pieces(stack):
    pid, sid, specimen = await collected(stack)
    with Session(stack.engine) as session:
        lab_token = session.exec(select(ApiToken).where(ApiToken.role == "lab")).one().id
    server = await serve_mllp(LabIngest(stack.engine, stack.temporal), "127.0.0.1", 0, token_id=lab_token)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frame = mllp_frame(oru("MLLP-1", specimen, pid))
        writer.write(frame[:40])
        await writer.drain()
        writer.write(frame[40:])
        await writer.drain()
        decoder, acks = MllpDecoder(), []
        while not acks:
            acks = decoder.feed(await reader.read(65536))
        writer.close()
    ack = parse_ack(acks[0])
    assert ack.ack_code == "AA" and ack.original_control_id == "MLLP-1"
    assert (await screening(stack, sid))["status"] == "final"
    with Session(stack.engine) as session:
        assert session.exec(select(LabMessage).where(LabMessage.control_id == "MLLP-1")).one().transport == "mllp"


def test_any_bytes_get_an_ack_never_a_server_error(records_engine, tmp_path):
    """Arbitrary input is stored and answered with an HL7 ACK; Temporal is unreachable here, so
    even input that parses must come back as an ACK."""
    unreachable = asyncio.run(Client.connect("127.0.0.1:1", data_converter=TEST_CONVERTER, lazy=True))
    app = create_app(Settings(data_dir=tmp_path), engine=records_engine, temporal=unreachable)
    tokens = issue_role_tokens(records_engine)
    headers = {"Authorization": f"Bearer {tokens['lab']}", "Content-Type": "text/plain"}
    msh = f"MSH|^~\\&|{LAB_APPLICATION}|{LAB_FACILITY}|IOPW|NORTH|20261123||ORU^R01|{{}}|P|2.5.1\r"

    with TestClient(app, raise_server_exceptions=False) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(
            st.one_of(
                st.binary(max_size=400),
                st.text(max_size=300).map(lambda t: (msh.format("F") + t).encode("utf-8", "replace")),
                st.sampled_from([b"", b"\x0b\x1c\r", b"MSH|", b"MSH|^~\\&|" + b"|" * 50]),
            )
        )
        def posts(body: bytes) -> None:
            response = client.post("/lab/hl7", content=body, headers=headers)
            assert response.status_code == 200, response.text
            for ack_text in filter(None, response.text.split("MSH|")[1:]):
                assert parse_ack("MSH|" + ack_text).ack_code in ("AA", "AE", "AR")

        posts()
    with Session(records_engine) as session:
        assert session.exec(select(LabMessage)).first() is not None  # every input was stored first
