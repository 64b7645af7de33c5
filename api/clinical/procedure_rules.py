"""Procedure consistency rules (CLINICAL.md §Procedure consistency rules), as pure functions.

Each broken rule becomes a FieldError that points at the offending field and says the rule in
plain words.
"""

import itertools
import re
from dataclasses import dataclass
from datetime import date

from api.errors import FieldError
from models.patient import StenosisRegion
from models.procedure import CellSource, HarvestMethod, Injection, Treatment

VERTEBRAE: list[str] = (
    [f"C{i}" for i in range(1, 8)]
    + [f"T{i}" for i in range(1, 13)]
    + [f"L{i}" for i in range(1, 6)]
    + ["S1"]
)
_NEXT = dict(itertools.pairwise(VERTEBRAE))
_LEVEL = re.compile(r"^([CTLS]\d{1,2})-([CTLS]\d{1,2})$")
# Junctional levels belong to both regions they join.
REGION_PREFIXES = {
    StenosisRegion.cervical: ("C",),
    StenosisRegion.thoracic: ("T",),
    StenosisRegion.lumbar: ("L",),
}

# What each treatment (and cell source) is harvested by.
EXPECTED_HARVEST: dict[tuple[Treatment, CellSource | None], HarvestMethod] = {
    (Treatment.stem_cell, CellSource.bone_marrow): HarvestMethod.bone_marrow_aspiration,
    (Treatment.stem_cell, CellSource.adipose): HarvestMethod.lipoaspiration,
    (Treatment.stem_cell, CellSource.umbilical_cord): HarvestMethod.none,
    (Treatment.prp, None): HarvestMethod.blood_draw,
    (Treatment.prolotherapy, None): HarvestMethod.none,
    (Treatment.red_light, None): HarvestMethod.none,
}
_SOURCE_WORDS = {
    CellSource.bone_marrow: "bone marrow cells are taken by bone marrow aspiration (from the hip, iliac crest)",
    CellSource.adipose: "fat-derived cells are taken by lipoaspiration",
    CellSource.umbilical_cord: "umbilical cord cells come from a donor (allogeneic): no harvest",
}


@dataclass(frozen=True)
class ProcedureDraft:
    """The fields the rules look at, whether from a new procedure or a patched one."""

    performed_on: date
    treatment: Treatment
    cell_source: CellSource | None
    harvest_method: HarvestMethod
    injections: list[Injection]


def normalise_level(level: str) -> str:
    return level.strip().upper().replace("\N{EN DASH}", "-")


def is_adjacent_level(level: str) -> bool:
    match = _LEVEL.match(level)
    return match is not None and _NEXT.get(match.group(1)) == match.group(2)


def level_in_region(level: str, region: StenosisRegion) -> bool:
    upper, lower = level.split("-")
    return any(v.startswith(REGION_PREFIXES[region]) for v in (upper, lower))


def check_cell_source(draft: ProcedureDraft) -> list[FieldError]:
    if draft.treatment == Treatment.stem_cell and draft.cell_source is None:
        return [
            FieldError(
                "/cell_source",
                "stem cell treatment needs a cell_source (bone_marrow, adipose or umbilical_cord)",
            )
        ]
    if draft.treatment != Treatment.stem_cell and draft.cell_source is not None:
        return [
            FieldError(
                "/cell_source",
                f"only stem cell treatment has a cell_source, not {draft.treatment.value}",
            )
        ]
    return []


def check_harvest(draft: ProcedureDraft) -> list[FieldError]:
    # Only stem cells vary by source; a forbidden source on another treatment is its own error
    # (check_cell_source) and must not hide this one.
    source = draft.cell_source if draft.treatment == Treatment.stem_cell else None
    expected = EXPECTED_HARVEST.get((draft.treatment, source))
    if expected is None or draft.harvest_method == expected:
        return []
    if source is not None:
        rule = _SOURCE_WORDS[source]
    elif draft.treatment == Treatment.prp:
        rule = "PRP is prepared from the patient's blood: harvest by blood_draw"
    else:
        rule = f"{draft.treatment.value} has no harvest"
    return [
        FieldError(
            "/harvest/method",
            f"{rule}; {draft.harvest_method.value} does not fit (expected {expected.value})",
        )
    ]


def check_injections(draft: ProcedureDraft) -> list[FieldError]:
    if draft.treatment == Treatment.red_light:
        if draft.injections:
            return [FieldError("/injections", "red light therapy has no injections")]
        return []
    if not draft.injections:
        return [FieldError("/injections", f"{draft.treatment.value} needs at least one injection")]
    errors = []
    for i, injection in enumerate(draft.injections):
        for j, level in enumerate(injection.levels):
            if not is_adjacent_level(level):
                errors.append(
                    FieldError(
                        f"/injections/{i}/levels/{j}",
                        f"'{level}' is not a spinal level: give two adjacent vertebrae from C1-C2 to L5-S1, such as L4-L5",
                    )
                )
    return errors


def check_region(draft: ProcedureDraft, region: StenosisRegion) -> list[FieldError]:
    return [
        FieldError(
            f"/injections/{i}/levels/{j}",
            f"level {level} is outside the patient's {region.value} stenosis; give override_reason to record it anyway",
        )
        for i, injection in enumerate(draft.injections)
        for j, level in enumerate(injection.levels)
        if is_adjacent_level(level) and not level_in_region(level, region)
    ]


def check_date(draft: ProcedureDraft, today: date) -> list[FieldError]:
    if draft.performed_on > today:
        return [
            FieldError(
                "/performed_on",
                f"a procedure cannot be recorded for a future date (today is {today.isoformat()} in the patient's time zone)",
            )
        ]
    return []


def violations(
    draft: ProcedureDraft, *, region: StenosisRegion, today: date, override: bool
) -> list[FieldError]:
    """Every broken rule; the region rule yields to an override reason, the others never do."""
    errors = check_date(draft, today) + check_cell_source(draft) + check_harvest(draft)
    errors += check_injections(draft)
    if not override:
        errors += check_region(draft, region)
    return errors
