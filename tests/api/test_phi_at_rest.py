"""The Temporal server's store must hold no readable PHI: payloads are encrypted, ids are opaque."""

from tests.helpers import enrollment

NAME = ("Philippa", "Zwanenburg-Okonkwo")
BIRTH = "1979-08-23"
PHONE = "+15555550199"


def _server_bytes(dev_server_db) -> bytes:
    files = sorted(dev_server_db.parent.glob(dev_server_db.name + "*"))  # the db, its -wal and -shm
    assert files, "the dev server wrote no database file"
    return b"".join(f.read_bytes() for f in files)


async def test_no_name_birth_date_or_phone_in_the_temporal_database(stack, dev_server_db):
    body = enrollment(given_name=NAME[0], family_name=NAME[1], date_of_birth=BIRTH, phone=PHONE)
    created = await stack.http.post("/participants", json=body, headers=stack.auth("staff"))
    assert created.status_code == 201
    pid = created.json()["id"]
    await stack.http.post(f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "progress"},
                          headers=stack.auth("clinician"))
    detail = await stack.http.get(f"/participants/{pid}", headers=stack.auth("staff"))
    assert detail.json()["family_name"] == NAME[1]  # the record has it; Temporal must not

    stored = _server_bytes(dev_server_db)
    assert f"participant-{pid}".encode() in stored, "the workflow is not in this file: the check would prove nothing"
    for secret in (*NAME, BIRTH, BIRTH.replace("-", ""), PHONE):
        assert secret.encode() not in stored, f"{secret!r} found in plain text in the Temporal database"
        assert secret.encode("utf-16-le") not in stored
