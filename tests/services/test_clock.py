"""The procedure clock (CLINICAL.md §The clock): local dates in the patient's own zone, UTC
offsets, the index procedure and the day count. Pure functions, no database."""

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api.clinical.clock import (
    ProcedureDate,
    index_procedure,
    local_date,
    today_in,
    utc_offset_minutes,
)


def at(text: str) -> datetime:
    """An instant from RFC 3339 text (as the API receives it)."""
    return datetime.fromisoformat(text)


# --- local_date: DST ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Spring forward, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        ("2026-03-28T22:59:59+00:00", date(2026, 3, 28)),  # 23:59:59 CET
        ("2026-03-28T23:00:00+00:00", date(2026, 3, 29)),  # midnight CET
        ("2026-03-29T00:59:59+00:00", date(2026, 3, 29)),  # 01:59:59 CET, just before the jump
        ("2026-03-29T01:00:00+00:00", date(2026, 3, 29)),  # 03:00 CEST, just after the jump
        ("2026-03-29T21:59:59+00:00", date(2026, 3, 29)),  # 23:59:59 CEST (a 23-hour day)
        ("2026-03-29T22:00:00+00:00", date(2026, 3, 30)),  # midnight CEST
        # Fall back, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        ("2026-10-24T21:59:59+00:00", date(2026, 10, 24)),  # 23:59:59 CEST
        ("2026-10-24T22:00:00+00:00", date(2026, 10, 25)),  # midnight CEST
        ("2026-10-25T00:30:00+00:00", date(2026, 10, 25)),  # 02:30 CEST (first pass)
        ("2026-10-25T01:30:00+00:00", date(2026, 10, 25)),  # 02:30 CET (the repeated hour)
        ("2026-10-25T22:59:59+00:00", date(2026, 10, 25)),  # 23:59:59 CET (a 25-hour day)
        ("2026-10-25T23:00:00+00:00", date(2026, 10, 26)),  # midnight CET
    ],
)
def test_local_date_across_dst_in_berlin(instant: str, expected: date) -> None:
    assert local_date(at(instant), "Europe/Berlin") == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Spring forward, Sunday 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
        ("2026-03-08T04:59:59+00:00", date(2026, 3, 7)),  # 23:59:59 EST
        ("2026-03-08T05:00:00+00:00", date(2026, 3, 8)),  # midnight EST
        ("2026-03-08T06:59:59+00:00", date(2026, 3, 8)),  # 01:59:59 EST
        ("2026-03-08T07:00:00+00:00", date(2026, 3, 8)),  # 03:00 EDT
        ("2026-03-09T03:59:59+00:00", date(2026, 3, 8)),  # 23:59:59 EDT
        ("2026-03-09T04:00:00+00:00", date(2026, 3, 9)),  # midnight EDT
        # Fall back, Sunday 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC.
        ("2026-11-01T03:59:59+00:00", date(2026, 10, 31)),  # 23:59:59 EDT
        ("2026-11-01T04:00:00+00:00", date(2026, 11, 1)),  # midnight EDT
        ("2026-11-01T05:30:00+00:00", date(2026, 11, 1)),  # 01:30 EDT (first pass)
        ("2026-11-01T06:30:00+00:00", date(2026, 11, 1)),  # 01:30 EST (the repeated hour)
        ("2026-11-02T04:59:59+00:00", date(2026, 11, 1)),  # 23:59:59 EST
        ("2026-11-02T05:00:00+00:00", date(2026, 11, 2)),  # midnight EST
    ],
)
def test_local_date_across_dst_in_new_york(instant: str, expected: date) -> None:
    assert local_date(at(instant), "America/New_York") == expected


def test_both_passes_of_the_repeated_hour_are_the_same_day() -> None:
    first = at("2026-10-25T02:30:00+02:00")  # CEST
    second = at("2026-10-25T02:30:00+01:00")  # CET, one hour later
    assert second - first == timedelta(hours=1)
    assert local_date(first, "Europe/Berlin") == local_date(second, "Europe/Berlin")
    assert local_date(first, "Europe/Berlin") == date(2026, 10, 25)


def test_a_stale_device_offset_does_not_shift_the_day() -> None:
    """A phone still on CET after the switch to CEST: the zone decides the date, not the offset."""
    stale = at("2026-03-29T23:30:00+01:00")  # 22:30 UTC = 00:30 CEST on the 30th
    assert local_date(stale, "Europe/Berlin") == date(2026, 3, 30)
    assert local_date(at("2026-03-29T23:30:00+02:00"), "Europe/Berlin") == date(2026, 3, 29)


def test_the_date_does_not_depend_on_the_offset_the_instant_is_written_in() -> None:
    instant = at("2026-07-01T22:30:00+00:00")
    for offset_hours in (-11, -5, 0, 2, 9, 14):
        shifted = instant.astimezone(timezone(timedelta(hours=offset_hours)))
        assert local_date(shifted, "Europe/Berlin") == date(2026, 7, 2)
        assert local_date(shifted, "America/New_York") == date(2026, 7, 1)


# --- local_date: the date line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Pacific/Kiritimati", date(2026, 11, 24)),  # UTC+14: 00:30 the next day
        ("Pacific/Auckland", date(2026, 11, 23)),  # NZDT, UTC+13: 23:30
        ("Pacific/Honolulu", date(2026, 11, 23)),  # UTC-10: 00:30
        ("Pacific/Pago_Pago", date(2026, 11, 22)),  # UTC-11: 23:30 the day before
    ],
)
def test_local_date_across_the_date_line(zone: str, expected: date) -> None:
    assert local_date(at("2026-11-23T10:30:00+00:00"), zone) == expected


def test_one_instant_is_three_calendar_dates_around_the_pacific() -> None:
    instant = at("2026-11-23T10:30:00Z")
    dates = {local_date(instant, z) for z in ("Pacific/Kiritimati", "UTC", "Pacific/Pago_Pago")}
    assert dates == {date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)}


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Winter in New Zealand (NZST, UTC+12).
        ("2026-06-15T11:59:00+00:00", date(2026, 6, 15)),
        ("2026-06-15T12:00:00+00:00", date(2026, 6, 16)),
        # Summer (NZDT, UTC+13).
        ("2026-01-15T10:59:00+00:00", date(2026, 1, 15)),
        ("2026-01-15T11:00:00+00:00", date(2026, 1, 16)),
    ],
)
def test_local_date_in_auckland_follows_its_own_dst(instant: str, expected: date) -> None:
    assert local_date(at(instant), "Pacific/Auckland") == expected


def test_kiritimati_midnight_is_ten_in_the_morning_utc_the_day_before() -> None:
    assert local_date(at("2026-11-23T09:59:59Z"), "Pacific/Kiritimati") == date(2026, 11, 23)
    assert local_date(at("2026-11-23T10:00:00Z"), "Pacific/Kiritimati") == date(2026, 11, 24)


# --- utc_offset_minutes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01T09:00:00+05:45", 345),  # Asia/Kathmandu
        ("2026-01-15T09:00:00-03:30", -210),  # America/St_Johns (winter)
        ("2026-05-01T09:00:00+05:30", 330),
        ("2026-05-01T09:00:00-00:30", -30),
        ("2026-05-01T09:00:00+00:00", 0),
        ("2026-05-01T09:00:00Z", 0),
        ("2026-05-01T09:00:00+14:00", 840),
        ("2026-05-01T09:00:00-11:00", -660),
    ],
)
def test_utc_offset_minutes_of_rfc3339_offsets(text: str, expected: int) -> None:
    assert utc_offset_minutes(at(text)) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 5, 1, 9, 0, tzinfo=ZoneInfo("Asia/Kathmandu")), 345),
        (datetime(2026, 1, 15, 9, 0, tzinfo=ZoneInfo("America/St_Johns")), -210),
        (datetime(2026, 7, 15, 9, 0, tzinfo=ZoneInfo("America/St_Johns")), -150),
        (datetime(2026, 1, 15, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")), 60),
        (datetime(2026, 7, 15, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")), 120),
        (datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=45))), 345),
        (datetime(2026, 5, 1, 9, 0, tzinfo=timezone(-timedelta(hours=3, minutes=30))), -210),
    ],
)
def test_utc_offset_minutes_of_zoned_instants(instant: datetime, expected: int) -> None:
    assert utc_offset_minutes(instant) == expected


# --- index_procedure ---------------------------------------------------------------------------


FIRST = ProcedureDate(uuid.UUID("00000000-0000-4000-8000-000000000001"), date(2026, 3, 1))
SECOND = ProcedureDate(uuid.UUID("00000000-0000-4000-8000-000000000002"), date(2026, 6, 1))


def test_no_procedures_gives_no_index_procedure() -> None:
    assert index_procedure([], date(2026, 3, 1)) == (None, None)


def test_before_the_first_procedure_is_the_first_with_a_negative_day() -> None:
    assert index_procedure([FIRST, SECOND], date(2026, 2, 20)) == (FIRST.id, -9)
    assert index_procedure([FIRST, SECOND], date(2026, 2, 28)) == (FIRST.id, -1)
    assert index_procedure([FIRST, SECOND], date(2025, 12, 31)) == (FIRST.id, -60)


def test_on_the_procedure_date_is_day_zero() -> None:
    assert index_procedure([FIRST, SECOND], date(2026, 3, 1)) == (FIRST.id, 0)
    assert index_procedure([FIRST, SECOND], date(2026, 6, 1)) == (SECOND.id, 0)


def test_between_two_procedures_is_the_earlier_one() -> None:
    assert index_procedure([FIRST, SECOND], date(2026, 3, 2)) == (FIRST.id, 1)
    assert index_procedure([FIRST, SECOND], date(2026, 5, 31)) == (FIRST.id, 91)


def test_after_the_last_procedure_is_the_last_one() -> None:
    assert index_procedure([FIRST, SECOND], date(2027, 6, 1)) == (SECOND.id, 365)


def test_the_input_order_does_not_matter() -> None:
    for on in (date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1), date(2026, 7, 1)):
        assert index_procedure([SECOND, FIRST], on) == index_procedure([FIRST, SECOND], on)


def test_the_day_counts_whole_calendar_days_across_a_dst_change() -> None:
    """Day = date difference: the 23-hour day of the spring change still counts as one day."""
    procedure = ProcedureDate(uuid.uuid4(), date(2026, 3, 28))
    log_date = local_date(at("2026-03-29T22:30:00+00:00"), "Europe/Berlin")  # 00:30 CEST, 30th
    assert index_procedure([procedure], log_date) == (procedure.id, 2)


def test_same_day_procedures_tie_deterministically() -> None:
    on = date(2026, 3, 1)
    a = ProcedureDate(uuid.UUID("3f000000-0000-4000-8000-000000000000"), on)
    b = ProcedureDate(uuid.UUID("a1000000-0000-4000-8000-000000000000"), on)
    c = ProcedureDate(uuid.UUID("07000000-0000-4000-8000-000000000000"), on)
    for when in (date(2026, 2, 1), on, date(2026, 4, 1)):
        answers = {index_procedure(list(p), when) for p in itertools.permutations([a, b, c])}
        assert len(answers) == 1, answers  # the same answer for every input order
        chosen, day = answers.pop()
        assert chosen in {a.id, b.id, c.id}
        assert day == (when - on).days
    # On and after the date, "the latest procedure" is the last in (performed_on, id) order,
    # the order procedures are listed in (api/services/symptom_logs.procedures_of).
    latest = max([a, b, c], key=lambda p: (p.performed_on, p.id))
    assert index_procedure([a, b, c], on) == (latest.id, 0)
    assert index_procedure([c, b, a], date(2026, 4, 1)) == (latest.id, 31)


def test_a_later_same_day_tie_does_not_change_earlier_answers() -> None:
    twin = ProcedureDate(uuid.UUID("ffffffff-0000-4000-8000-000000000000"), SECOND.performed_on)
    assert index_procedure([FIRST, SECOND, twin], date(2026, 5, 31)) == (FIRST.id, 91)
    chosen, day = index_procedure([FIRST, twin, SECOND], date(2026, 6, 10))
    assert chosen in {SECOND.id, twin.id}
    assert day == 9


# --- today_in ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Pacific/Kiritimati", date(2026, 11, 24)),
        ("Pacific/Auckland", date(2026, 11, 23)),
        ("Europe/Berlin", date(2026, 11, 23)),
        ("America/New_York", date(2026, 11, 23)),
        ("Pacific/Pago_Pago", date(2026, 11, 22)),
    ],
)
def test_today_in_uses_the_given_now(zone: str, expected: date) -> None:
    now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert today_in(zone, now=now) == expected


def test_today_in_with_a_now_in_another_offset() -> None:
    now = at("2026-03-29T00:30:00+02:00")  # 22:30 UTC on the 28th = 23:30 CET in Berlin
    assert today_in("Europe/Berlin", now=now) == date(2026, 3, 28)
    assert today_in("Asia/Kathmandu", now=now) == date(2026, 3, 29)


def test_today_in_without_now_is_the_current_date_in_the_zone() -> None:
    zone = "Pacific/Kiritimati"
    before = datetime.now(ZoneInfo(zone)).date()
    today = today_in(zone)
    after = datetime.now(ZoneInfo(zone)).date()
    assert before <= today <= after
