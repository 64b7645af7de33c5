"""Candidacy screening (CLINICAL.md §Candidacy): a pure function over the screening answers."""

from typing import Any

import pytest

from api.clinical.candidacy import assess
from models.patient import Candidacy, CandidacyStatus, Screening, StenosisCause

# The article's wording for each contraindication ("Patient Selection").
CANCER = "active cancer or history of cancer within the last 5 years"
ARTICLE_WORDING = {
    "active_cancer": CANCER,
    "cancer_within_5_years": CANCER,
    "severe_neurological_deficit": "severe neurological deficits",
    "active_infection": "active infection",
    "significant_organ_dysfunction": "significant organ dysfunction",
}
EVALUATION_STEPS = ["medical_history_review", "physical_exam", "imaging", "lab_tests"]

FULL_EVALUATION: dict[str, Any] = {
    "medical_history_reviewed": True,
    "physical_exam_done": True,
    "imaging": ["mri"],
    "labs_done": True,
}


def screening(**overrides: Any) -> Screening:
    """A fully evaluated screening of a good candidate, with the given answers changed."""
    values: dict[str, Any] = {
        "conservative_care_tried": ["physical_therapy", "pain_medication"],
        "conservative_care_failed": True,
        "severe_neurological_deficit": False,
        "active_cancer": False,
        "cancer_within_5_years": False,
        "active_infection": False,
        "significant_organ_dysfunction": False,
        "evaluation": dict(FULL_EVALUATION),
    } | overrides
    return Screening.model_validate(values)


def evaluation(**overrides: Any) -> dict[str, Any]:
    return dict(FULL_EVALUATION) | overrides


def check(result: Candidacy, status: CandidacyStatus) -> Candidacy:
    assert isinstance(result, Candidacy)
    assert result.status == status, result
    return result


# --- good candidate ----------------------------------------------------------------------------


def test_evaluated_degenerative_case_after_failed_conservative_care_is_a_good_candidate() -> None:
    result = check(assess(screening(), StenosisCause.degenerative), CandidacyStatus.good_candidate)
    assert result.reasons == []
    assert result.missing_evaluation == []


@pytest.mark.parametrize("imaging", [["mri"], ["ct"], ["xray"], ["mri", "ct", "xray"]])
def test_any_one_imaging_study_is_enough(imaging: list[str]) -> None:
    result = assess(screening(evaluation=evaluation(imaging=imaging)), StenosisCause.degenerative)
    check(result, CandidacyStatus.good_candidate)


def test_contraindications_left_unanswered_do_not_count() -> None:
    answers = screening()
    for name in ARTICLE_WORDING:
        setattr(answers, name, None)
    check(assess(answers, StenosisCause.degenerative), CandidacyStatus.good_candidate)


# --- contraindicated ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", list(ARTICLE_WORDING))
def test_each_contraindication_alone_contraindicates(flag: str) -> None:
    result = check(
        assess(screening(**{flag: True}), StenosisCause.degenerative),
        CandidacyStatus.contraindicated,
    )
    assert len(result.reasons) == 1, result.reasons
    assert result.reasons[0].message == ARTICLE_WORDING[flag]
    assert result.reasons[0].code


def test_several_contraindications_are_each_listed() -> None:
    flags = ["severe_neurological_deficit", "active_infection", "significant_organ_dysfunction"]
    result = check(
        assess(screening(**dict.fromkeys(flags, True)), StenosisCause.degenerative),
        CandidacyStatus.contraindicated,
    )
    assert sorted(r.message for r in result.reasons) == sorted(ARTICLE_WORDING[f] for f in flags)
    assert len({r.code for r in result.reasons}) == len(flags)


def test_every_contraindication_at_once_lists_every_one() -> None:
    result = check(
        assess(screening(**dict.fromkeys(ARTICLE_WORDING, True)), StenosisCause.degenerative),
        CandidacyStatus.contraindicated,
    )
    assert len(result.reasons) == len(ARTICLE_WORDING)
    assert {r.message for r in result.reasons} == set(ARTICLE_WORDING.values())
    assert len({r.code for r in result.reasons}) == len(ARTICLE_WORDING)


def test_contraindication_wins_over_missing_evaluation() -> None:
    result = check(
        assess(Screening(active_infection=True), StenosisCause.degenerative),
        CandidacyStatus.contraindicated,
    )
    assert [r.message for r in result.reasons] == ["active infection"]


def test_contraindication_wins_over_a_not_recommended_case() -> None:
    answers = screening(active_cancer=True, conservative_care_tried=None)
    result = assess(answers, StenosisCause.congenital)
    check(result, CandidacyStatus.contraindicated)
    assert [r.message for r in result.reasons] == [CANCER]


# --- incomplete evaluation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "step"),
    [
        ({"medical_history_reviewed": False}, "medical_history_review"),
        ({"medical_history_reviewed": None}, "medical_history_review"),
        ({"physical_exam_done": False}, "physical_exam"),
        ({"physical_exam_done": None}, "physical_exam"),
        ({"imaging": None}, "imaging"),
        ({"imaging": []}, "imaging"),
        ({"labs_done": False}, "lab_tests"),
        ({"labs_done": None}, "lab_tests"),
    ],
    ids=[
        "history-false",
        "history-unanswered",
        "exam-false",
        "exam-unanswered",
        "imaging-unanswered",
        "imaging-empty-list",
        "labs-false",
        "labs-unanswered",
    ],
)
def test_each_missing_evaluation_step_alone_is_named(change: dict[str, Any], step: str) -> None:
    result = check(
        assess(screening(evaluation=evaluation(**change)), StenosisCause.degenerative),
        CandidacyStatus.incomplete_evaluation,
    )
    assert result.missing_evaluation == [step]


def test_missing_evaluation_wins_over_not_recommended() -> None:
    answers = screening(evaluation=evaluation(labs_done=False), conservative_care_tried=[])
    result = check(assess(answers, StenosisCause.injury), CandidacyStatus.incomplete_evaluation)
    assert result.missing_evaluation == ["lab_tests"]


def test_no_evaluation_at_all_misses_every_step() -> None:
    result = check(
        assess(screening(evaluation=None), StenosisCause.degenerative),
        CandidacyStatus.incomplete_evaluation,
    )
    assert sorted(result.missing_evaluation) == sorted(EVALUATION_STEPS)


def test_an_empty_screening_misses_all_four_steps() -> None:
    result = check(
        assess(Screening(), StenosisCause.degenerative), CandidacyStatus.incomplete_evaluation
    )
    assert sorted(result.missing_evaluation) == sorted(EVALUATION_STEPS)
    assert len(result.missing_evaluation) == 4


# --- not recommended ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cause", [c for c in StenosisCause if c != StenosisCause.degenerative], ids=str
)
def test_non_degenerative_cause_is_not_recommended(cause: StenosisCause) -> None:
    result = check(assess(screening(), cause), CandidacyStatus.not_recommended)
    assert result.reasons, "a not_recommended result says why"
    assert result.missing_evaluation == []


@pytest.mark.parametrize("tried", [None, []], ids=["unanswered", "empty"])
def test_conservative_care_not_tried_is_not_recommended(tried: list[str] | None) -> None:
    result = check(
        assess(screening(conservative_care_tried=tried), StenosisCause.degenerative),
        CandidacyStatus.not_recommended,
    )
    assert result.reasons
    assert result.missing_evaluation == []


@pytest.mark.parametrize("failed", [False, None], ids=["succeeded", "unanswered"])
def test_conservative_care_tried_but_not_failed_is_not_recommended(failed: bool | None) -> None:
    result = check(
        assess(screening(conservative_care_failed=failed), StenosisCause.degenerative),
        CandidacyStatus.not_recommended,
    )
    assert result.reasons


def test_not_recommended_gives_a_reason_for_each_problem() -> None:
    result = check(
        assess(screening(conservative_care_tried=None), StenosisCause.congenital),
        CandidacyStatus.not_recommended,
    )
    assert len(result.reasons) == 2
    assert len({r.code for r in result.reasons}) == 2
