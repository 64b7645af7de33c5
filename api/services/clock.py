"""Calendar dates in a patient's own time zone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from models.base import utc_now


def today_in(timezone: str, *, now: datetime | None = None) -> date:
    return (now or utc_now()).astimezone(ZoneInfo(timezone)).date()
