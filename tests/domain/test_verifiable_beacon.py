"""domain/verifiable.py: the drand quicknet round a commitment names, the beacon's form, and the notices."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import verifiable

UTC = UTC


def test_round_times_follow_drand_quicknet():
    # drand's own arithmetic: genesis 1692803367, a round every 3 s; round 27946612 falls on 2026-04-20 00:00 UTC.
    assert verifiable.round_time(1) == datetime.fromtimestamp(1692803367, UTC)
    assert verifiable.round_time(27946612) == datetime(2026, 4, 20, tzinfo=UTC)
    assert verifiable.beacon_round(datetime(2026, 4, 19, 23, 55, tzinfo=UTC)) == 27946612
    assert verifiable.beacon_round(datetime(2026, 4, 19, 23, 55, 0, 1, tzinfo=UTC)) == 27946613
    assert verifiable.beacon_round(datetime(2026, 4, 19, 23, 55)) == 27946612  # stored naive: UTC


@settings(max_examples=50)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)))
def test_the_named_round_is_the_first_produced_five_minutes_after_publication(published):
    the_round = verifiable.beacon_round(published)
    earliest = published.replace(tzinfo=UTC) + verifiable.BEACON_DELAY
    assert verifiable.round_time(the_round - 1) < earliest <= verifiable.round_time(the_round)


def test_only_the_named_round_of_quicknet_is_a_sound_beacon():
    published = datetime(2026, 10, 25, 14, 0, tzinfo=UTC)
    the_round = verifiable.beacon_round(published)
    good = verifiable.drand_beacon(the_round, "AB" * 32)
    assert good.text == f"drand:quicknet:{the_round}:{'ab' * 32}"
    assert verifiable.parse_beacon(good.text) == good
    assert verifiable.beacon_problem(good.text, published) is None
    assert f"round {the_round}" in verifiable.beacon_problem(f"drand:quicknet:{the_round + 1}:{'ab' * 32}", published)
    assert f"round {the_round}" in verifiable.beacon_problem(f"drand:quicknet:{the_round - 100}:{'ab' * 32}", published)
    with pytest.raises(ValueError, match="drand:quicknet"):
        verifiable.parse_beacon(f"drand:default:{the_round}:{'ab' * 32}")
    with pytest.raises(ValueError, match="64 hex digits"):
        verifiable.drand_beacon(the_round, "xyz")
    with pytest.raises(ValueError, match="whole number"):
        verifiable.drand_beacon(0, "ab" * 32)


def test_notices_carry_the_period_and_its_values_only():
    published = "2026-10-25T14:00:00+00:00"
    ref = verifiable.notice_id("court-a", "2026-11", "commitment", "r-1")
    assert ref != verifiable.notice_id("court-a", "2026-11", "reveal", "r-1") and "." not in ref
    sent = verifiable.build_notice("commitment", ref, "court-a", "2026-11", "c" * 64, published, published)
    assert sent["type"] == "selection.commitment" and "seed" not in sent and sent["reveal_on"] == "2026-12-02"
    assert sent["beacon_round"] == verifiable.beacon_round(datetime.fromisoformat(published))
    assert set(sent) == {
        "format",
        "type",
        "id",
        "issued_at",
        "program",
        "period",
        "commitment",
        "published_at",
        "beacon",
        "reveal_on",
        "beacon_round",
        "beacon_round_url",
        "formula",
    }
    revealed = verifiable.build_notice(
        "reveal",
        ref,
        "court-a",
        "2026-11",
        "c" * 64,
        published,
        published,
        seed_hex="5" * 64,
        revealed_at="2026-12-02T00:00:00+00:00",
    )
    assert revealed["seed"] == "5" * 64 and revealed["type"] == "selection.reveal"
    with pytest.raises(ValueError, match="never carries the seed"):
        verifiable.build_notice(
            "commitment", ref, "court-a", "2026-11", "c" * 64, published, published, seed_hex="5" * 64
        )
    with pytest.raises(ValueError, match="carries the revealed seed"):
        verifiable.build_notice("reveal", ref, "court-a", "2026-11", "c" * 64, published, published)


def test_the_seed_is_revealed_two_days_after_the_period_in_utc():
    assert verifiable.reveal_moment("2026-02") == datetime(2026, 3, 2, tzinfo=UTC)
    assert verifiable.reveal_moment("2026-12") == datetime(2027, 1, 2, tzinfo=UTC)
    assert verifiable.reveal_on("2028-02") - verifiable.period_end("2028-02") == timedelta(days=2)
