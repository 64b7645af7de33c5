"""Procedure consistency rules (CLINICAL.md §Procedure consistency rules), as pure functions."""

import itertools
from datetime import date, timedelta
from typing import Any

import pytest

from api.clinical.procedure_rules import (
    ProcedureDraft,
    is_adjacent_level,
    level_in_region,
    normalise_level,
    violations,
)
from api.errors import FieldError
from models.patient import StenosisRegion
from models.procedure import (
    CellSource,
    Guidance,
    HarvestMethod,
    Injection,
    InjectionRoute,
    Treatment,
)

TODAY = date(2025, 3, 14)

# The spine from the top, written out here rather than taken from the code under test.
SPINE = (
    [f"C{i}" for i in range(1, 8)]
    + [f"T{i}" for i in range(1, 13)]
    + [f"L{i}" for i in range(1, 6)]
    + ["S1"]
)
ADJACENT_LEVELS = [f"{upper}-{lower}" for upper, lower in itertools.pairwise(SPINE)]

# The harvest each treatment (and cell source) must have.
EXPECTED: dict[tuple[Treatment, CellSource | None], HarvestMethod] = {
    (Treatment.stem_cell, CellSource.bone_marrow): HarvestMethod.bone_marrow_aspiration,
    (Treatment.stem_cell, CellSource.adipose): HarvestMethod.lipoaspiration,
    (Treatment.stem_cell, CellSource.umbilical_cord): HarvestMethod.none,
    (Treatment.prp, None): HarvestMethod.blood_draw,
    (Treatment.prolotherapy, None): HarvestMethod.none,
    (Treatment.red_light, None): HarvestMethod.none,
}
WRONG_HARVESTS = [
    (treatment, source, method)
    for (treatment, source), expected in EXPECTED.items()
    for method in HarvestMethod
    if method != expected
]


def injection(*levels: str, **overrides: Any) -> Injection:
    values: dict[str, Any] = {
        "route": InjectionRoute.intradiscal,
        "levels": list(levels) or ["L4-L5"],
        "guidance": Guidance.fluoroscopy,
    } | overrides
    return Injection(**values)


def draft(**overrides: Any) -> ProcedureDraft:
    """A consistent bone-marrow stem cell procedure at L4-L5, with the given fields changed."""
    values: dict[str, Any] = {
        "performed_on": TODAY,
        "treatment": Treatment.stem_cell,
        "cell_source": CellSource.bone_marrow,
        "harvest_method": HarvestMethod.bone_marrow_aspiration,
        "injections": [injection("L4-L5")],
    } | overrides
    return ProcedureDraft(**values)


def consistent(treatment: Treatment, source: CellSource | None, **overrides: Any) -> ProcedureDraft:
    """A draft that keeps every rule for this treatment and cell source."""
    values: dict[str, Any] = {
        "treatment": treatment,
        "cell_source": source,
        "harvest_method": EXPECTED[(treatment, source)],
        "injections": [] if treatment == Treatment.red_light else [injection("L4-L5")],
    } | overrides
    return draft(**values)


def check(
    procedure: ProcedureDraft,
    *,
    region: StenosisRegion = StenosisRegion.lumbar,
    today: date = TODAY,
    override: bool = False,
) -> list[FieldError]:
    return violations(procedure, region=region, today=today, override=override)


def pointers(errors: list[FieldError]) -> list[str]:
    return [e.pointer for e in errors]


# --- levels ------------------------------------------------------------------------------------


def test_the_spine_has_twenty_four_adjacent_levels() -> None:
    assert len(ADJACENT_LEVELS) == 24
    assert ADJACENT_LEVELS[0] == "C1-C2"
    assert ADJACENT_LEVELS[-1] == "L5-S1"
    assert {"C7-T1", "T12-L1"} <= set(ADJACENT_LEVELS)


@pytest.mark.parametrize("level", ADJACENT_LEVELS)
def test_every_adjacent_level_is_valid(level: str) -> None:
    assert is_adjacent_level(level)
    region = {"C": StenosisRegion.cervical, "T": StenosisRegion.thoracic}.get(
        level[0], StenosisRegion.lumbar
    )
    assert check(draft(injections=[injection(level)]), region=region) == []


@pytest.mark.parametrize(
    "level",
    [
        "L4-L6",
        "L3-L5",
        "C1-C3",
        "L5-L4",
        "T1-C7",
        "S1-L5",
        "L4-L4",
        "L6-S1",
        "C8-T1",
        "T13-L1",
        "S1-S2",
        "C0-C1",
        "",
        "L4",
        "L4-",
        "-L5",
        "L4-L5-S1",
        "L4--L5",
        "L4 L5",
        "X4-X5",
    ],
)
def test_levels_that_are_not_adjacent_vertebrae_are_invalid(level: str) -> None:
    assert not is_adjacent_level(level)
    errors = check(draft(injections=[injection(level)]), override=True)
    assert pointers(errors) == ["/injections/0/levels/0"]
    assert "adjacent" in errors[0].message


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("l4-l5 ", "L4-L5"), ("  L5-s1", "L5-S1"), ("c7-t1", "C7-T1"), ("L4\N{EN DASH}L5", "L4-L5")],
)
def test_normalise_level(raw: str, normal: str) -> None:
    assert normalise_level(raw) == normal
    assert is_adjacent_level(normalise_level(raw))


# --- cell source -------------------------------------------------------------------------------


def test_a_consistent_procedure_breaks_no_rule() -> None:
    assert check(draft()) == []


def test_stem_cell_without_cell_source_is_refused() -> None:
    errors = check(draft(cell_source=None))
    assert pointers(errors) == ["/cell_source"]


@pytest.mark.parametrize("treatment", [Treatment.prp, Treatment.prolotherapy, Treatment.red_light])
@pytest.mark.parametrize("source", list(CellSource))
def test_only_stem_cell_treatment_has_a_cell_source(
    treatment: Treatment, source: CellSource
) -> None:
    errors = check(consistent(treatment, None, cell_source=source))
    assert "/cell_source" in pointers(errors)


# --- harvest -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("treatment", "source"), list(EXPECTED))
def test_the_expected_harvest_is_accepted(treatment: Treatment, source: CellSource | None) -> None:
    assert check(consistent(treatment, source)) == []


@pytest.mark.parametrize(("treatment", "source", "method"), WRONG_HARVESTS)
def test_a_wrong_harvest_is_refused(
    treatment: Treatment, source: CellSource | None, method: HarvestMethod
) -> None:
    errors = check(consistent(treatment, source, harvest_method=method))
    assert pointers(errors) == ["/harvest/method"]
    assert method.value in errors[0].message


def test_bone_marrow_cells_with_lipoaspiration_names_the_rule() -> None:
    errors = check(draft(harvest_method=HarvestMethod.lipoaspiration))
    assert pointers(errors) == ["/harvest/method"]
    assert "bone marrow" in errors[0].message.lower()
    assert "lipoaspiration" in errors[0].message


@pytest.mark.parametrize("method", [m for m in HarvestMethod if m != HarvestMethod.none], ids=str)
def test_umbilical_cord_cells_with_any_harvest_are_refused(method: HarvestMethod) -> None:
    procedure = consistent(Treatment.stem_cell, CellSource.umbilical_cord, harvest_method=method)
    errors = check(procedure)
    assert pointers(errors) == ["/harvest/method"]
    assert "umbilical" in errors[0].message.lower()


def test_prp_needs_a_blood_draw() -> None:
    assert check(consistent(Treatment.prp, None)) == []
    errors = check(consistent(Treatment.prp, None, harvest_method=HarvestMethod.none))
    assert pointers(errors) == ["/harvest/method"]
    assert "blood_draw" in errors[0].message


@pytest.mark.parametrize("treatment", [Treatment.prolotherapy, Treatment.red_light])
def test_prolotherapy_and_red_light_need_no_harvest(treatment: Treatment) -> None:
    assert check(consistent(treatment, None, harvest_method=HarvestMethod.none)) == []
    errors = check(consistent(treatment, None, harvest_method=HarvestMethod.blood_draw))
    assert pointers(errors) == ["/harvest/method"]


# --- injections --------------------------------------------------------------------------------


def test_red_light_with_an_injection_is_refused() -> None:
    errors = check(consistent(Treatment.red_light, None, injections=[injection("L4-L5")]))
    assert pointers(errors) == ["/injections"]


def test_red_light_without_injections_is_accepted_in_any_region() -> None:
    for region in StenosisRegion:
        assert check(consistent(Treatment.red_light, None), region=region) == []


@pytest.mark.parametrize(
    ("treatment", "source"), [key for key in EXPECTED if key[0] != Treatment.red_light]
)
def test_injected_treatments_need_at_least_one_injection(
    treatment: Treatment, source: CellSource | None
) -> None:
    errors = check(consistent(treatment, source, injections=[]))
    assert pointers(errors) == ["/injections"]


def test_error_pointers_name_the_injection_and_the_level() -> None:
    procedure = draft(injections=[injection("L4-L5"), injection("L4-L6", "L5-S1", "L3-L5")])
    errors = check(procedure)
    assert pointers(errors) == ["/injections/1/levels/0", "/injections/1/levels/2"]
    assert "L4-L6" in errors[0].message
    assert "L3-L5" in errors[1].message


def test_every_broken_rule_is_reported_at_once() -> None:
    procedure = draft(
        performed_on=TODAY + timedelta(days=1),
        cell_source=CellSource.adipose,
        harvest_method=HarvestMethod.bone_marrow_aspiration,
        injections=[injection("L4-L6"), injection("C3-C4")],
    )
    assert sorted(pointers(check(procedure))) == sorted(
        ["/performed_on", "/harvest/method", "/injections/0/levels/0", "/injections/1/levels/0"]
    )


# --- date --------------------------------------------------------------------------------------


def test_a_future_date_is_refused() -> None:
    errors = check(draft(performed_on=TODAY + timedelta(days=1)))
    assert pointers(errors) == ["/performed_on"]


@pytest.mark.parametrize("days_ago", [0, 1, 365])
def test_today_and_past_dates_are_accepted(days_ago: int) -> None:
    assert check(draft(performed_on=TODAY - timedelta(days=days_ago))) == []


def test_today_is_a_parameter() -> None:
    procedure = draft(performed_on=date(2030, 1, 1))
    assert check(procedure, today=date(2030, 1, 1)) == []
    assert pointers(check(procedure, today=date(2029, 12, 31))) == ["/performed_on"]


def test_an_override_does_not_excuse_a_future_date_or_a_wrong_harvest() -> None:
    procedure = draft(
        performed_on=TODAY + timedelta(days=1), harvest_method=HarvestMethod.lipoaspiration
    )
    assert sorted(pointers(check(procedure, override=True))) == ["/harvest/method", "/performed_on"]


# --- region ------------------------------------------------------------------------------------


def test_a_level_outside_the_stenosis_region_is_refused() -> None:
    errors = check(draft(injections=[injection("C3-C4")]), region=StenosisRegion.lumbar)
    assert pointers(errors) == ["/injections/0/levels/0"]
    assert "lumbar" in errors[0].message


def test_an_override_allows_a_level_outside_the_region() -> None:
    procedure = draft(injections=[injection("C3-C4")])
    assert check(procedure, region=StenosisRegion.lumbar, override=True) == []


def test_region_errors_point_at_the_level() -> None:
    procedure = draft(injections=[injection("L4-L5"), injection("L5-S1", "C3-C4")])
    assert pointers(check(procedure)) == ["/injections/1/levels/1"]


@pytest.mark.parametrize(
    ("level", "region", "allowed"),
    [
        ("C7-T1", StenosisRegion.cervical, True),
        ("C7-T1", StenosisRegion.thoracic, True),
        ("C7-T1", StenosisRegion.lumbar, False),
        ("T12-L1", StenosisRegion.thoracic, True),
        ("T12-L1", StenosisRegion.lumbar, True),
        ("T12-L1", StenosisRegion.cervical, False),
        ("L5-S1", StenosisRegion.lumbar, True),
        ("L5-S1", StenosisRegion.cervical, False),
        ("L5-S1", StenosisRegion.thoracic, False),
        ("C1-C2", StenosisRegion.cervical, True),
        ("C1-C2", StenosisRegion.thoracic, False),
        ("T6-T7", StenosisRegion.thoracic, True),
        ("T6-T7", StenosisRegion.lumbar, False),
        ("L4-L5", StenosisRegion.lumbar, True),
        ("L4-L5", StenosisRegion.thoracic, False),
    ],
)
def test_levels_match_their_region_and_junctions_belong_to_both(
    level: str, region: StenosisRegion, allowed: bool
) -> None:
    assert level_in_region(level, region) is allowed
    errors = check(draft(injections=[injection(level)]), region=region)
    assert pointers(errors) == ([] if allowed else ["/injections/0/levels/0"])
    assert check(draft(injections=[injection(level)]), region=region, override=True) == []
