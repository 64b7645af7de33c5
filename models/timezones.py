"""IANA time zone names, validated against the tz database shipped with the service (tzdata)."""

from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import AfterValidator, Field


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError("must be an IANA time zone name such as 'Europe/Berlin'")
    return value


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_timezone)]
