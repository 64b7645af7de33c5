"""The patient's wording of a progress report (API.md §Progress against milestones): the same
findings in plain, kind words with their numbers, what the article says to expect now, urgent
advice for red flags, and never a result worded as the treatment working or failing."""

import re
import string
import uuid
from dataclasses import asdict
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

from api.clinical import milestones, wording
from api.clinical.baseline import Baseline
from api.clinical.milestones import ClockLog, MilestoneResult
from models.progress import FindingOut, MilestoneOut, ObservedOut, Progress
from tests.services.test_milestones import RULES, baseline, histories, log, logs_in

# A result worded as the treatment working or failing, in any form.
VERDICT = re.compile(
    r"\b(works?|worked|working|effective|ineffective|efficacy|fail(s|ed|ing|ure)?"
    r"|success(ful)?|cured?)\b"
    r"|\b(treatment|therapy|procedure|injection)\b[^.]*\bhelp(s|ed|ing)?\b",
    re.IGNORECASE,
)
# Words a patient should not have to know, and codes that leak through (new_weakness).
JARGON = re.compile(r"\b(mcid|odi|nrs|baseline|median|vs|insufficient)\b|\w_\w", re.IGNORECASE)


def report(results: list[MilestoneResult]) -> Progress:
    """A clinician's progress report around the engine's results, as the progress service makes it."""
    current = milestones.current_milestone(results)
    return Progress(
        patient_id=uuid.uuid4(),
        procedure=None,
        as_of=date(2026, 6, 1),
        day=None,
        protocol=None,
        baseline=None,
        milestones=[
            MilestoneOut(
                **{k: v for k, v in asdict(r).items() if k not in ("observed", "findings")},
                observed=ObservedOut(**asdict(r.observed)),
                findings=[FindingOut(code=f.code, message=f.message) for f in r.findings],
            )
            for r in results
        ],
        current_milestone=current.key if current else None,
        factors=[],
        next_check_in=None,
        open_alerts=0,
        caveat="Milestones compare the patient with their own baseline. They do not show that a "
        "treatment works: in trials, patients given saline also improve.",
    )


def for_patient(logs: list[ClockLog], base: Baseline | None, day_now: int) -> Progress:
    results = milestones.evaluate(rules=RULES, logs=logs, baseline=base, day_now=day_now)
    return wording.for_patient(report(results))


def said(progress: Progress, key: str) -> dict[str, str]:
    [milestone] = [m for m in progress.milestones if m.key == key]
    return {f.code: f.message for f in milestone.findings}


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


# --- the facts of a finding ---------------------------------------------------------------------


@pytest.mark.parametrize("code", list(milestones.MESSAGES))
def test_every_finding_message_gives_its_facts_back(code: str) -> None:
    facts = {
        name: f"<{name}>"
        for _, name, _, _ in string.Formatter().parse(milestones.MESSAGES[code])
        if name
    }
    assert wording.facts_of(code, milestones.MESSAGES[code].format(**facts)) == facts


def test_a_message_of_another_shape_has_no_facts() -> None:
    assert wording.facts_of("pain_not_improved", "pain did not improve") is None
    assert wording.facts_of("unknown_code", "anything") is None


# --- each finding in plain words ----------------------------------------------------------------


def test_pain_unchanged_is_said_plainly_with_the_numbers_to_expect() -> None:
    patient = for_patient(logs_in("short_term", 6, 6, 6), baseline(6), 100)
    assert said(patient, "short_term") == {
        "pain_not_improved": "Your pain is about the same as before the procedure (6 out of 10). "
        "By this stage many people notice it drop to 4 or lower. "
        "Keep checking in; your care team can talk it through with you."
    }


def test_pain_higher_than_before_says_both_numbers() -> None:
    patient = for_patient(logs_in("short_term", 8), baseline(6.5), 40)
    assert said(patient, "short_term")["pain_not_improved"].startswith(
        "Your pain is higher than before the procedure (8 out of 10 now, 6.5 before). "
        "By this stage many people notice it drop to 4.5 or lower."
    )


def test_pain_a_little_lower_says_so() -> None:
    patient = for_patient(logs_in("long_term", 7), baseline(8), 200)
    assert said(patient, "long_term")["pain_not_improved"].startswith(
        "Your pain is a little lower than before the procedure (7 out of 10 now, 8 before). "
        "By this stage many people notice it drop to 6 or lower."
    )


@pytest.mark.parametrize(
    ("base", "target", "worded"),
    [(3, "2.1", "2"), (6, "4.2", "4"), (6.5, "4.5", "4.5"), (8, "6.0", "6"), (5.5, "3.8", "3.5")],
)
def test_the_pain_to_expect_is_a_score_a_patient_can_have(
    base: float, target: str, worded: str
) -> None:
    results = milestones.evaluate(
        rules=RULES, logs=logs_in("short_term", base), baseline=baseline(base), day_now=40
    )
    clinician = said(report(results), "short_term")["pain_not_improved"]
    assert clinician.endswith(f"(to {target} or less)")
    patient = said(wording.for_patient(report(results)), "short_term")["pain_not_improved"]
    assert f" drop to {worded} or lower. " in patient


MEDIANS = [half / 2 for half in range(2 * wording.SCALE + 1)]  # 0, 0.5, ..., 10
CLINICIAN_TARGET = re.compile(r"baseline (?P<base>[\d.]+); .* \(to (?P<target>[\d.]+) or less\)")
PATIENT_TARGET = re.compile(r" drop to (?P<target>[\d.]+) or lower\. ")


@pytest.mark.parametrize("tenths", range(1, 10 * wording.SCALE + 1))
def test_the_worded_pain_target_counts_exactly_the_medians_the_target_counts(tenths: int) -> None:
    base = tenths / 10
    results = milestones.evaluate(
        rules=RULES, logs=logs_in("short_term", base), baseline=baseline(base), day_now=40
    )
    clinician = CLINICIAN_TARGET.search(said(report(results), "short_term")["pain_not_improved"])
    patient = PATIENT_TARGET.search(
        said(wording.for_patient(report(results)), "short_term")["pain_not_improved"]
    )
    assert clinician is not None
    assert patient is not None, base
    target, worded = float(clinician["target"]), float(patient["target"])
    assert (2 * worded).is_integer()
    metric = RULES["metrics"]["pain"]
    for median in MEDIANS:
        assert (median <= worded) == (median <= target), (base, median)
        assert (median <= worded) == milestones.improved(metric, median, base), (base, median)


@pytest.mark.parametrize("bound", ["less", "more"])
def test_a_target_is_rounded_to_the_half_on_the_side_that_still_counts(bound: str) -> None:
    for tenths in range(10 * wording.SCALE + 1):
        target = f"{tenths / 10:.1f}"
        worded = float(wording.half_that_counts(target, bound))
        for median in MEDIANS:
            if bound == "less":
                assert (median <= worded) == (median <= float(target)), (target, median)
            else:
                assert (median >= worded) == (median >= float(target)), (target, median)


def test_pain_from_a_baseline_of_zero_has_nothing_lower_to_expect() -> None:
    patient = for_patient(logs_in("short_term", 0), baseline(0), 40)
    assert said(patient, "short_term")["pain_not_improved"] == (
        "Your pain is about the same as before the procedure (0 out of 10). "
        "Keep checking in; your care team can talk it through with you."
    )


def test_mobility_worse_is_said_plainly() -> None:
    patient = for_patient(logs_in("short_term", 3, 3, mobility=3), baseline(7, 5), 91)
    assert said(patient, "short_term") == {
        "mobility_worse": "Moving around is harder than before the procedure "
        "(3 out of 10 now, 5 before). Please tell your care team."
    }


@pytest.mark.parametrize(
    ("pains", "have"),
    [((), "There are no check-ins"), ((3,), "There is only 1 check-in")],
)
def test_too_few_check_ins_says_how_many_and_how_many_are_needed(
    pains: tuple[int, ...], have: str
) -> None:
    patient = for_patient(logs_in("short_term", *pains), baseline(7), 91)
    assert said(patient, "short_term") == {
        "too_few_logs": f"{have} from days 30 to 90 after your procedure, and at least 2 are "
        "needed to see how that time went. Regular check-ins help your care team follow "
        "your recovery."
    }


def test_an_immediate_period_without_check_ins_needs_one() -> None:
    patient = for_patient([], baseline(), 15)
    assert said(patient, "immediate")["too_few_logs"].startswith(
        "There are no check-ins from days 0 to 14 after your procedure, and at least 1 is needed"
    )


def test_no_baseline_says_where_a_score_from_before_comes_from() -> None:
    patient = for_patient(logs_in("short_term", 3, 3), None, 40)
    assert said(patient, "short_term") == {
        "no_baseline": "We don't have a pain score from before your procedure, so we can't yet "
        "compare how you are now with how you were then. It comes from check-ins in the 60 days "
        "before the procedure, or your care team can record it for you."
    }


def test_red_flags_are_named_plainly_with_their_days_and_urgent_advice() -> None:
    logs = [log(3, 5, red_flags=["saddle_numbness", "fever"]), log(4, 5, red_flags=["fever"])]
    patient = for_patient(logs, baseline(), 5)
    assert said(patient, "immediate") == {
        "red_flag": "You reported a fever on days 3 and 4 and numbness between your legs or "
        "around your bottom on day 3. Please get medical help right away: call your care team, "
        "or emergency services if you cannot reach them."
    }


def test_a_red_flag_message_of_an_older_shape_still_carries_the_urgent_advice() -> None:
    older = "red flags reported: fever, new_weakness; get medical help right away"
    assert wording.patient_message("red_flag", older) == wording.URGENT


def test_a_red_flag_in_a_later_window_carries_the_urgent_advice_too() -> None:
    logs = [*logs_in("short_term", 3), log(33, 3, red_flags=["bladder_bowel_change"])]
    message = said(for_patient(logs, baseline(7), 40), "short_term")["red_flag"]
    assert message.startswith("You reported a change in bladder or bowel control on day 33.")
    assert wording.URGENT in message


def test_a_pain_flare_is_said_plainly_with_its_scores_and_days() -> None:
    patient = for_patient([log(7, 8), log(9, 9)], baseline(5), 10)
    assert said(patient, "immediate") == {
        "pain_flare": "On days 7 and 9 your pain was 8 and 9 out of 10, at least 2 points higher "
        "than before the procedure (5 out of 10). Please let your care team know."
    }


def test_a_pain_flare_at_one_score_says_it_once() -> None:
    patient = for_patient([log(9, 9), log(10, 9)], baseline(6.5), 11)
    assert said(patient, "immediate") == {
        "pain_flare": "On days 9 and 10 your pain was 9 out of 10, at least 2 points higher "
        "than before the procedure (6.5 out of 10). Please let your care team know."
    }


def test_soreness_persisting_is_said_plainly_with_its_days() -> None:
    effects = ["injection_site_pain", "swelling", "redness"]
    logs = [log(9, 4, side_effects=effects), log(11, 4, side_effects=["swelling"])]
    patient = for_patient(logs, baseline(), 12)
    assert said(patient, "immediate") == {
        "soreness_persisting": "You still had pain, redness and swelling where you had the "
        "injection on days 9 and 11. This usually settles by day 7, so please let your care "
        "team know."
    }


def test_a_finding_of_unknown_shape_is_not_shown_in_clinical_words() -> None:
    assert wording.patient_message("pain_not_improved", "pain 6 (MCID not met)") == wording.UNREAD
    assert wording.patient_message("something_new", "odi_change 12") == wording.UNREAD


def test_a_red_flag_of_unknown_shape_still_carries_the_urgent_advice() -> None:
    assert wording.patient_message("red_flag", "fever") == wording.URGENT


# --- what to expect now -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day_now", "expected"),
    [
        (
            5,
            "Immediate post-treatment period: mild soreness at the injection site that goes "
            "away in a few days; rest and avoid hard activity.",
        ),
        (
            20,
            "Immediate post-treatment period: mild soreness at the injection site that goes "
            "away in a few days; rest and avoid hard activity.",
        ),
        (40, "1-3 months: pain getting better, improved mobility, better function."),
        (100, "1-3 months: pain getting better, improved mobility, better function."),
        (200, "6-12+ months: lasting pain relief and better quality of life."),
        (800, "6-12+ months: lasting pain relief and better quality of life."),
    ],
)
def test_expect_now_is_what_the_article_says_for_the_current_milestone(
    day_now: int, expected: str
) -> None:
    assert for_patient([], baseline(), day_now).expect_now == expected


def test_before_the_procedure_there_is_nothing_to_expect_yet() -> None:
    assert for_patient([], baseline(), -3).expect_now is None


def test_a_label_without_a_period_in_brackets_is_used_whole() -> None:
    assert wording.expect_now("Week one", "Rest.") == "Week one: rest."


# --- the rest of the report stays as it is ------------------------------------------------------


def test_only_the_words_change() -> None:
    logs = [log(3, 5, red_flags=["fever"]), *logs_in("short_term", 6, 6, mobility=2)]
    results = milestones.evaluate(rules=RULES, logs=logs, baseline=baseline(6, 5), day_now=100)
    clinician = report(results)
    patient = wording.for_patient(clinician)
    assert clinician.expect_now is None
    assert patient.caveat == wording.CAVEAT
    for mine, theirs in zip(patient.milestones, clinician.milestones, strict=True):
        assert mine.model_dump(exclude={"findings"}) == theirs.model_dump(exclude={"findings"})
        assert [f.code for f in mine.findings] == [f.code for f in theirs.findings]
    assert patient.model_dump(exclude={"milestones", "expect_now", "caveat"}) == (
        clinician.model_dump(exclude={"milestones", "expect_now", "caveat"})
    )


def test_a_report_without_a_procedure_stays_empty() -> None:
    patient = wording.for_patient(report([]))
    assert patient.milestones == []
    assert patient.expect_now is None


# --- never a verdict on the treatment, never jargon ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The treatment worked.",
        "The therapy is effective.",
        "The therapy failed.",
        "Your treatment is working",
        "The injection helped you.",
        "Pain 6.0 vs baseline 6.0 (MCID not met)",
        "You reported new_weakness.",
    ],
)
def test_the_scan_catches_a_verdict_or_jargon(text: str) -> None:
    assert VERDICT.search(text) or JARGON.search(text)


@given(histories)
@settings(max_examples=300)
def test_no_report_words_a_result_as_the_treatment_working_or_failing(
    history: tuple[list[ClockLog], Baseline | None, int],
) -> None:
    results = milestones.evaluate(
        rules=RULES, logs=history[0], baseline=history[1], day_now=history[2]
    )
    clinician = report(results)
    patient = wording.for_patient(clinician)
    for finding in (f for m in clinician.milestones for f in m.findings):
        assert not VERDICT.search(finding.message), finding.message
    for text in strings(patient.model_dump(mode="json")):
        assert not VERDICT.search(text), text
    worded = [f.message for m in patient.milestones for f in m.findings]
    for text in [*worded, patient.expect_now or "", patient.caveat]:
        assert not JARGON.search(text), text
        assert text != wording.UNREAD, "every finding the engine makes has its own wording"
