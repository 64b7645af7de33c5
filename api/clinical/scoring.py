"""Oswestry Disability Index from the ten section answers (Fairbank & Pynsent scoring)."""

from collections.abc import Sequence


class TooManyUnanswered(ValueError):
    pass


def oswestry(answers: Sequence[int | None]) -> float:
    """`sum / (5 * answered) * 100`, one decimal; at most one section may be unanswered."""
    answered = [a for a in answers if a is not None]
    if len(answers) - len(answered) > 1:
        raise TooManyUnanswered("at most one of the ten Oswestry sections may be unanswered")
    return round(sum(answered) / (5 * len(answered)) * 100, 1)
