"""Migration 0009: lab messages stored before it keep their control ids, and a resend of one
is still a replay; another body under the same control id can now be stored."""

import sqlalchemy as sa

from domain.lab_intake import body_digest
from ingest.lab import _key
from store.db import make_engine
from store.migrate import upgrade

RAW = "MSH|^~\\&|LAB|ACME LAB|IOPW|NORTH|20261123||ORU^R01|OLD-1|P|2.5.1\rPID|1||p-1\r"


def test_messages_from_before_0009_keep_their_keys(db_url):
    upgrade(db_url, "0006")
    engine = make_engine(db_url)
    insert = sa.text(
        "insert into lab_messages (sender, control_id, transport, raw, raw_sha256, received_at, status) "
        "values (:sender, :control, 'http', :raw, 'x', '2026-11-23 10:00:00', :status)"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"sender": "LAB^ACME LAB", "control": "OLD-1", "raw": RAW, "status": "processed"})
        conn.execute(insert, {"sender": "LAB^ACME LAB", "control": "BAD-1", "raw": "garbage", "status": "rejected"})
    upgrade(db_url)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text("select control_id, body_sha256, replay_key, claim_key from lab_messages order by id")
        ).all()
        assert rows[0] == (
            "OLD-1",
            body_digest(RAW),
            _key("LAB^ACME LAB", "OLD-1", body_digest(RAW)),
            _key("LAB^ACME LAB", "OLD-1"),
        )
        assert rows[1].claim_key is None and rows[1].replay_key is not None  # unparseable: holds no control id
        conn.execute(
            insert, {"sender": "LAB^ACME LAB", "control": "OLD-1", "raw": RAW + "NTE|1\r", "status": "received"}
        )  # the old unique (sender, control_id) is gone
        assert conn.execute(sa.text("select count(*) from lab_messages where control_id = 'OLD-1'")).scalar() == 2
    engine.dispose()
