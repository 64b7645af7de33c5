"""Treatment protocols: the milestone rules a procedure is measured against, kept as data.

`ProtocolRules` is the rules document exactly as the engine reads it (api/clinical/ and the alert
rules: `rules["metrics"]["pain"]["improved_points"]`, `rules["milestones"][i]["start_day"]`, ...).
A new version is validated against it and stored as it dumps, so the engine reads every version
the way it reads the default (`default` version 1, CLINICAL.md), which validates unchanged.
"""

import math
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic import Field as F
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, core_schema
from sqlalchemy import JSON
from sqlmodel import Column, Field, SQLModel

from models.base import Name, Note, utc_column, utc_now
from models.symptom_log import SideEffect

DEFAULT_PROTOCOL_ID = "default"
MAX_DAY = 3650  # ten years after the procedure: past any window or check-in of a protocol
MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer


class Protocol(SQLModel, table=True):
    __tablename__ = "protocol"
    id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    name: str = Field(max_length=200)
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_column(default_factory=utc_now)


# --- the field types of a rules document ---------------------------------------------------

SLUG = r"^[a-z0-9_-]+$"
ProtocolId = Annotated[
    str,
    F(
        min_length=1,
        max_length=64,
        pattern=SLUG,
        description="Lowercase letters, digits, '-' and '_' (1 to 64)",
    ),
]
Code = Annotated[str, F(min_length=1, max_length=32, pattern=SLUG)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Label = Annotated[Name, AfterValidator(_not_blank)]
Text = Annotated[Note, F(min_length=1), AfterValidator(_not_blank)]
ClockDay = Annotated[StrictInt, F(ge=0, le=MAX_DAY)]
Count = Annotated[StrictInt, F(ge=1, le=100)]


@dataclass(frozen=True)
class Number:
    """A JSON number kept as it was sent: an integer stays one, because findings quote the
    thresholds ("2 points", not "2.0 points"). Finite, bounded, never a boolean."""

    le: float
    gt: float | None = None
    ge: float | None = None

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        bounds = {"exclusiveMinimum": self.gt, "minimum": self.ge, "maximum": self.le}
        return {"type": "number"} | {k: v for k, v in bounds.items() if v is not None}

    def _validate(self, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError("number_type", "must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("number_type", "must be a finite number")
        if self.gt is not None and not value > self.gt:
            raise PydanticCustomError("number_range", "must be greater than {gt}", {"gt": self.gt})
        if self.ge is not None and not value >= self.ge:
            raise PydanticCustomError("number_range", "must be at least {ge}", {"ge": self.ge})
        if not value <= self.le:
            raise PydanticCustomError("number_range", "must be at most {le}", {"le": self.le})
        return value


Points = Annotated[float, Number(gt=0, le=100)]  # checked against the metric's own range too
PainPoints = Annotated[float, Number(gt=0, le=10)]
Percent = Annotated[float, Number(gt=0, le=100)]

# A rule that spans fields: where it is broken (relative to the model), the message, the value.
Problem = tuple[tuple[str | int, ...], str, Any]


def _raise(model: str, problems: list[Problem]) -> None:
    """Report each broken rule at its own field, so the 422's pointer names it
    (`/rules/milestones/1/start_day`), not the object that holds it."""
    if problems:
        raise ValidationError.from_exception_data(
            model,
            [
                InitErrorDetails(
                    type=PydanticCustomError("protocol_rule", message), loc=loc, input=value
                )
                for loc, message, value in problems
            ],
        )


class RulesPart(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- metrics -------------------------------------------------------------------------------


class Metric(RulesPart):
    range: tuple[StrictInt, StrictInt]
    better: Literal["lower", "higher"]
    improved_points: Points
    improved_percent: Percent
    substantial_percent: Percent | None
    worse_points: Points

    def problems(self, scale: tuple[int, int], better: str) -> list[Problem]:
        found: list[Problem] = []
        if self.range != scale:
            found.append((("range",), f"must be {list(scale)}, the metric's scale", self.range))
        if self.better != better:
            found.append((("better",), f"must be '{better}' on this metric's scale", self.better))
        span = scale[1] - scale[0]
        for name in ("improved_points", "worse_points"):
            if (points := getattr(self, name)) > span:
                found.append(
                    ((name,), f"must be within the metric's range (at most {span})", points)
                )
        if self.substantial_percent is not None and (
            self.substantial_percent < self.improved_percent
        ):
            message = f"must be at least improved_percent ({self.improved_percent})"
            found.append((("substantial_percent",), message, self.substantial_percent))
        return found


# The scales of the check-in (API.md): fixed, whatever the protocol.
SCALES = {"pain": ((0, 10), "lower"), "mobility": ((0, 10), "higher"), "odi": ((0, 100), "lower")}


class Metrics(RulesPart):
    pain: Metric
    mobility: Metric
    odi: Metric

    @model_validator(mode="after")
    def _on_their_scales(self) -> Self:
        _raise(
            "Metrics",
            [
                ((name, *loc), message, value)
                for name, (scale, better) in SCALES.items()
                for loc, message, value in getattr(self, name).problems(scale, better)
            ],
        )
        return self


# --- milestones ----------------------------------------------------------------------------


class PainFlare(RulesPart):
    from_day: ClockDay
    to_day: ClockDay
    min_logs: Count
    rise_points: PainPoints


class SorenessPersisting(RulesPart):
    from_day: ClockDay
    side_effects: list[SideEffect] = F(min_length=1, max_length=len(SideEffect))


class Milestone(RulesPart):
    key: str
    label: Label
    start_day: ClockDay
    end_day: ClockDay
    expected: Text

    def _inside(self, loc: tuple[str, ...], day: int) -> list[Problem]:
        if self.start_day <= day <= self.end_day:
            return []
        return [(loc, f"must be inside the window (days {self.start_day}-{self.end_day})", day)]

    @model_validator(mode="after")
    def _a_window(self) -> Self:
        _raise("Milestone", self.problems())
        return self

    def problems(self) -> list[Problem]:
        if self.end_day < self.start_day:
            return [
                (("end_day",), f"must not be before start_day ({self.start_day})", self.end_day)
            ]
        return []


class ImmediateMilestone(Milestone):
    key: Literal["immediate"]
    pain_flare: PainFlare
    soreness_persisting: SorenessPersisting

    def problems(self) -> list[Problem]:
        found = super().problems()
        if found:
            return found
        flare = self.pain_flare
        found += self._inside(("pain_flare", "from_day"), flare.from_day)
        found += self._inside(("pain_flare", "to_day"), flare.to_day)
        if flare.to_day < flare.from_day:
            message = f"must not be before from_day ({flare.from_day})"
            found.append((("pain_flare", "to_day"), message, flare.to_day))
        found += self._inside(
            ("soreness_persisting", "from_day"), self.soreness_persisting.from_day
        )
        effects = self.soreness_persisting.side_effects
        if len(set(effects)) != len(effects):
            found.append((("soreness_persisting", "side_effects"), "must not repeat", effects))
        return found


class LaterMilestone(Milestone):
    min_logs_when_closed: Count
    report_substantial: StrictBool


class ShortTermMilestone(LaterMilestone):
    key: Literal["short_term"]


class LongTermMilestone(LaterMilestone):
    key: Literal["long_term"]


# --- the rest of the document --------------------------------------------------------------

PreDay = Annotated[StrictInt, F(ge=-MAX_DAY, le=-1)]


class BaselineRule(RulesPart):
    statistic: Literal["median"]
    window_days: tuple[PreDay, PreDay]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        low, high = self.window_days
        if low > high:
            _raise("BaselineRule", [(("window_days", 0), f"must not be after {high}", low)])
        return self


class Worsening(RulesPart):
    after_day: ClockDay
    # The alert compares a high log with its neighbours on the clock: two in a row, no other count.
    consecutive_logs: Literal[2]
    rise_points: PainPoints


class SchedulePhase(RulesPart):
    phase: Code
    from_day: ClockDay
    to_day: ClockDay
    every_days: Annotated[StrictInt, F(ge=1, le=365)]
    grace_days: Annotated[StrictInt, F(ge=0, le=365)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to_day < self.from_day:
            message = f"must not be before from_day ({self.from_day})"
            _raise("SchedulePhase", [(("to_day",), message, self.to_day)])
        return self


class Factors(RulesPart):
    age_moderate_from_years: Annotated[StrictInt, F(ge=0, le=130)]


class ProtocolRules(RulesPart):
    """A protocol's rules (CLINICAL.md for the default); the milestone keys and their order are
    fixed, as the API's enum and the engine read them."""

    caveat: Text
    baseline: BaselineRule
    metrics: Metrics
    milestones: tuple[ImmediateMilestone, ShortTermMilestone, LongTermMilestone]
    benchmark_met_rate: Annotated[float, Number(ge=0, le=1)]
    worsening: Worsening
    check_in_schedule: list[SchedulePhase] = F(min_length=1, max_length=20)
    factors: Factors

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _raise(
            "ProtocolRules",
            self._window_order() + self._schedule_order() + self._substantial_reported(),
        )
        return self

    def _window_order(self) -> list[Problem]:
        found: list[Problem] = []
        for index, (before, window) in enumerate(pairwise(self.milestones), start=1):
            if window.start_day <= before.end_day:
                message = f"must be after the previous window ends (day {before.end_day})"
                found.append((("milestones", index, "start_day"), message, window.start_day))
        return found

    def _schedule_order(self) -> list[Problem]:
        found: list[Problem] = []
        for index, (before, phase) in enumerate(pairwise(self.check_in_schedule), start=1):
            if phase.from_day <= before.to_day:
                message = f"must be after the previous phase ends (day {before.to_day})"
                found.append((("check_in_schedule", index, "from_day"), message, phase.from_day))
        names = [phase.phase for phase in self.check_in_schedule]
        found += [
            (("check_in_schedule", index, "phase"), "must not repeat an earlier phase", name)
            for index, name in enumerate(names)
            if name in names[:index]
        ]
        return found

    def _substantial_reported(self) -> list[Problem]:
        if self.metrics.pain.substantial_percent is not None:
            return []
        return [
            (("milestones", index, "report_substantial"), "needs pain substantial_percent", True)
            for index, milestone in enumerate(self.milestones)
            if isinstance(milestone, LaterMilestone) and milestone.report_substantial
        ]


# --- the API's view ------------------------------------------------------------------------


class ProtocolCreate(BaseModel):
    """A new protocol, or the next version of an existing one (same id)."""

    model_config = ConfigDict(extra="forbid")
    id: ProtocolId
    name: Name
    rules: ProtocolRules


class ProtocolPublic(BaseModel):
    id: str
    version: int
    name: str
    rules: ProtocolRules
    created_at: datetime


class ProtocolVersions(BaseModel):
    id: str
    versions: list[ProtocolPublic] = F(description="Every version, oldest first")
