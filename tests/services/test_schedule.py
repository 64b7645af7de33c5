"""The check-in schedule of the default protocol (CLINICAL.md §Check-in schedule), read from the
protocol rules as data (the migration's DEFAULT_RULES). Pure functions, no database."""

import pytest

from api.clinical.schedule import Phase, ScheduledDay, next_check_in, phases, scheduled_days
from tests.default_rules import default_rules

RULES = default_rules()

DAILY = list(range(0, 15))
WEEKLY = [21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91]
MONTHLY = [120, 150, 180, 210, 240, 270, 300, 330, 360]
QUARTERLY = [450, 540, 630, 720]


def test_phases_of_the_default_protocol() -> None:
    assert phases(RULES) == [
        Phase("daily", 0, 14, 1, 2),
        Phase("weekly", 21, 91, 7, 4),
        Phase("monthly", 120, 360, 30, 10),
        Phase("quarterly", 450, 720, 90, 10),
    ]


def test_scheduled_days_exact_list() -> None:
    assert [s.day for s in scheduled_days(RULES)] == DAILY + WEEKLY + MONTHLY + QUARTERLY


def test_scheduled_days_name_their_phase() -> None:
    days = scheduled_days(RULES)
    expected = (
        [ScheduledDay(d, "daily") for d in DAILY]
        + [ScheduledDay(d, "weekly") for d in WEEKLY]
        + [ScheduledDay(d, "monthly") for d in MONTHLY]
        + [ScheduledDay(d, "quarterly") for d in QUARTERLY]
    )
    assert days == expected


def test_scheduled_days_are_strictly_increasing() -> None:
    days = [s.day for s in scheduled_days(RULES)]
    assert days == sorted(set(days))
    assert len(days) == 15 + 11 + 9 + 4


@pytest.mark.parametrize(
    ("day_now", "newest_log_day", "expected"),
    [
        (0, None, 0),  # procedure day, nothing logged yet
        (0, 0, 1),  # logged today: tomorrow
        (5, 5, 6),
        (5, 3, 5),  # missed a day: today is due
        (5, None, 5),
        (14, 14, 21),  # end of the daily phase
        (14, 13, 14),
        (15, None, 21),
        (15, 15, 21),
        (21, None, 21),
        (21, 21, 28),
        (22, 21, 28),
        (91, 91, 120),
        (95, None, 120),
        (95, 93, 120),
        (120, 120, 150),
        (360, 360, 450),
        (361, None, 450),
        (450, 450, 540),
        (700, None, 720),
        (720, None, 720),  # the last scheduled day itself
        (720, 720, None),  # last check-in done
        (721, None, None),  # past the end
        (721, 700, None),
        (1000, None, None),
        (-5, None, 0),  # before the procedure: day 0 is next
        (-5, -10, 0),  # pre-procedure logs do not push day 0 away
    ],
)
def test_next_check_in(day_now: int, newest_log_day: int | None, expected: int | None) -> None:
    assert next_check_in(RULES, day_now=day_now, newest_log_day=newest_log_day) == expected


def test_next_check_in_is_always_a_scheduled_day_on_or_after_today_and_after_the_log() -> None:
    scheduled = [s.day for s in scheduled_days(RULES)]
    for day_now in range(-3, 730):
        for newest in (None, day_now - 1, day_now):
            due = next_check_in(RULES, day_now=day_now, newest_log_day=newest)
            if due is None:
                assert all(d < day_now or (newest is not None and d <= newest) for d in scheduled)
                continue
            assert due in scheduled
            assert due >= day_now
            assert newest is None or due > newest
            # …and it is the first such day.
            assert all(
                d < day_now or (newest is not None and d <= newest) for d in scheduled if d < due
            )


def test_the_schedule_is_read_from_the_rules_not_hard_coded() -> None:
    custom = {
        "check_in_schedule": [
            {"phase": "daily", "from_day": 0, "to_day": 2, "every_days": 1, "grace_days": 1},
            {"phase": "biweekly", "from_day": 14, "to_day": 42, "every_days": 14, "grace_days": 3},
        ]
    }
    assert [s.day for s in scheduled_days(custom)] == [0, 1, 2, 14, 28, 42]
    assert next_check_in(custom, day_now=3, newest_log_day=2) == 14
    assert next_check_in(custom, day_now=43, newest_log_day=None) is None
