"""The Temporal server's store must hold no readable PHI: payloads are encrypted, ids are opaque."""

from tests.helpers import enrollment

NAME = ("Philippa", "Zwanenburg-Okonkwo")
BIRTH = "1979-08-23"
PHONE = "+15555550199"


def _server_bytes(dev_server_db) -> bytes:
    """The db and whichever of its -wal, -shm and -journal files exist at the moment of reading (a rollback
    journal comes and goes with each of the server's transactions; what it held is then in the db)."""
    files = sorted(dev_server_db.parent.glob(dev_server_db.name + "*"))
    assert dev_server_db in files, "the dev server wrote no database file"
    contents = []
    for f in files:
        try:
            contents.append(f.read_bytes())
        except FileNotFoundError:
            assert f != dev_server_db
    return b"".join(contents)


async def test_no_name_birth_date_or_phone_in_the_temporal_database(stack, dev_server_db):
    body = enrollment(given_name=NAME[0], family_name=NAME[1], date_of_birth=BIRTH, phone=PHONE)
    created = await stack.http.post("/participants", json=body, headers=stack.auth("staff"))
    assert created.status_code == 201
    pid = created.json()["id"]
    await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "progress"}, headers=stack.auth("clinician")
    )
    detail = await stack.http.get(f"/participants/{pid}", headers=stack.auth("staff"))
    assert detail.json()["family_name"] == NAME[1]  # the record has it; Temporal must not

    stored = _server_bytes(dev_server_db)
    assert f"participant-{pid}".encode() in stored, "the workflow is not in this file: the check would prove nothing"
    for secret in (*NAME, BIRTH, BIRTH.replace("-", ""), PHONE):
        assert secret.encode() not in stored, f"{secret!r} found in plain text in the Temporal database"
        assert secret.encode("utf-16-le") not in stored
