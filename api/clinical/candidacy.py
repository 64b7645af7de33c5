"""Candidacy screening, as CLINICAL.md §Candidacy states it (the article's "Patient Selection").

A pure function over the screening answers: no database, no HTTP.
"""

from models.patient import Candidacy, CandidacyStatus, Reason, Screening, StenosisCause

# The article's words for each contraindication.
CONTRAINDICATIONS: dict[str, str] = {
    "active_cancer": "active cancer or history of cancer within the last 5 years",
    "cancer_within_5_years": "active cancer or history of cancer within the last 5 years",
    "severe_neurological_deficit": "severe neurological deficits",
    "active_infection": "active infection",
    "significant_organ_dysfunction": "significant organ dysfunction",
}

# The pre-treatment evaluation steps, in the order the article lists them.
EVALUATION_STEPS: dict[str, str] = {
    "medical_history_review": "medical history review",
    "physical_exam": "physical exam",
    "imaging": "imaging study (MRI, CT or X-ray)",
    "lab_tests": "lab tests",
}


def contraindications(screening: Screening) -> list[Reason]:
    return [
        Reason(code=code, message=message)
        for code, message in CONTRAINDICATIONS.items()
        if getattr(screening, code) is True
    ]


def missing_evaluation(screening: Screening) -> list[str]:
    evaluation = screening.evaluation
    done = {
        "medical_history_review": bool(evaluation and evaluation.medical_history_reviewed),
        "physical_exam": bool(evaluation and evaluation.physical_exam_done),
        "imaging": bool(evaluation and evaluation.imaging),
        "lab_tests": bool(evaluation and evaluation.labs_done),
    }
    return [step for step in EVALUATION_STEPS if not done[step]]


def _not_recommended(screening: Screening, cause: StenosisCause) -> list[Reason]:
    reasons = []
    if cause != StenosisCause.degenerative:
        reasons.append(
            Reason(
                code="non_degenerative_cause",
                message=f"the stenosis is {cause.value}, not degenerative",
            )
        )
    if not screening.conservative_care_tried:
        reasons.append(
            Reason(
                code="conservative_care_not_tried",
                message="conservative care (physical therapy, pain medication, lifestyle "
                "modification, steroid injections) has not been tried",
            )
        )
    elif screening.conservative_care_failed is not True:
        reasons.append(
            Reason(
                code="conservative_care_not_failed",
                message="conservative care has not been recorded as failed",
            )
        )
    return reasons


def assess(screening: Screening, cause: StenosisCause) -> Candidacy:
    missing = missing_evaluation(screening)
    if reasons := contraindications(screening):
        return Candidacy(
            status=CandidacyStatus.contraindicated, reasons=reasons, missing_evaluation=missing
        )
    if missing:
        reasons = [
            Reason(
                code=f"missing_{step}",
                message=f"missing pre-treatment evaluation: {EVALUATION_STEPS[step]}",
            )
            for step in missing
        ]
        return Candidacy(
            status=CandidacyStatus.incomplete_evaluation,
            reasons=reasons,
            missing_evaluation=missing,
        )
    if reasons := _not_recommended(screening, cause):
        return Candidacy(
            status=CandidacyStatus.not_recommended, reasons=reasons, missing_evaluation=[]
        )
    return Candidacy(status=CandidacyStatus.good_candidate, reasons=[], missing_evaluation=[])
