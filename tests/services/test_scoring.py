"""Oswestry Disability Index scoring (CLINICAL.md: sum / (5 * answered) * 100, one decimal; at
most one of the ten sections unanswered — Fairbank & Pynsent)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.clinical.scoring import TooManyUnanswered, oswestry


def test_all_zeros_is_no_disability() -> None:
    assert oswestry([0] * 10) == 0.0


def test_all_fives_is_the_maximum() -> None:
    assert oswestry([5] * 10) == 100.0


def test_all_twos_is_forty_percent() -> None:
    assert oswestry([2] * 10) == 40.0


def test_one_unanswered_section_scores_over_the_nine_answered() -> None:
    answers = [1, 2, 3, None, 0, 1, 2, 3, 4, 5]
    assert oswestry(answers) == 46.7  # 21 / 45 * 100 = 46.666…
    assert oswestry(answers) == round(21 / (5 * 9) * 100, 1)


@pytest.mark.parametrize("position", range(10))
def test_the_unanswered_section_may_be_any_of_the_ten(position: int) -> None:
    answers: list[int | None] = [3] * 10
    answers[position] = None
    assert oswestry(answers) == 60.0


def test_one_unanswered_with_all_fives_is_still_one_hundred() -> None:
    assert oswestry([5, 5, 5, 5, 5, 5, 5, 5, 5, None]) == 100.0


def test_rounds_to_one_decimal() -> None:
    assert oswestry([1, 0, 0, 0, 0, 0, 0, 0, 0, None]) == 2.2  # 1/45 = 2.222…
    assert oswestry([2, 0, 0, 0, 0, 0, 0, 0, 0, None]) == 4.4  # 2/45 = 4.444…
    assert oswestry([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]) == 6.0


@pytest.mark.parametrize(
    "answers",
    [
        [None, None, 1, 2, 3, 4, 5, 0, 1, 2],
        [1, 2, 3, 4, None, 0, 1, 2, 3, None],
        [None] * 10,
    ],
)
def test_two_or_more_unanswered_sections_raise(answers: list[int | None]) -> None:
    with pytest.raises(TooManyUnanswered):
        oswestry(answers)


def test_too_many_unanswered_is_a_value_error() -> None:
    assert issubclass(TooManyUnanswered, ValueError)


ANSWER = st.integers(min_value=0, max_value=5)


@st.composite
def valid_answers(draw: st.DrawFn) -> list[int | None]:
    answers: list[int | None] = list(draw(st.lists(ANSWER, min_size=10, max_size=10)))
    skipped = draw(st.none() | st.integers(min_value=0, max_value=9))
    if skipped is not None:
        answers[skipped] = None
    return answers


@given(valid_answers())
def test_property_within_range_and_equal_to_the_formula(answers: list[int | None]) -> None:
    answered = [a for a in answers if a is not None]
    score = oswestry(answers)
    assert 0.0 <= score <= 100.0
    assert score == round(sum(answered) / (5 * len(answered)) * 100, 1)
    assert round(score, 1) == score


@given(
    st.lists(st.none() | ANSWER, min_size=10, max_size=10).filter(
        lambda answers: sum(a is None for a in answers) >= 2
    )
)
def test_property_two_or_more_unanswered_always_raise(answers: list[int | None]) -> None:
    with pytest.raises(TooManyUnanswered):
        oswestry(answers)
