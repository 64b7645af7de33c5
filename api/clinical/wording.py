"""A progress report in the patient's own words (API.md §Progress against milestones): each
finding said plainly and kindly with its numbers, what the article says to expect now, and
urgent advice for red flags. Pure functions over the API's Progress model.

It words how the patient is doing against how they were before the procedure, never whether a
treatment works or failed: milestones cannot show that (CLINICAL.md, the caveat).
"""

import math
import re
import string
from collections.abc import Callable

from api.clinical.milestones import MESSAGES
from models.progress import FindingOut, MilestoneOut, Progress

CAVEAT = (
    "These milestones compare how you feel now with how you felt before your procedure. "
    "They cannot tell what caused a change: in studies, people given a dummy injection "
    "often feel better too."
)
# The 0-10 scale the app asks pain and mobility on.
SCALE = 10
RED_FLAGS = {
    "fever": "a fever",
    "bladder_bowel_change": "a change in bladder or bowel control",
    "saddle_numbness": "numbness between your legs or around your bottom",
    "new_weakness": "new weakness",
    "severe_headache": "a severe headache",
    "wound_infection_signs": "signs of infection where you had the injection",
}
URGENT = (
    "Please get medical help right away: call your care team, or emergency services if you "
    "cannot reach them."
)
UNREAD = "Your care team has a note about this part of your recovery and can talk it through."

Facts = dict[str, str]


def _pattern(template: str) -> re.Pattern[str]:
    """A finding's message template as a regex that gives its fields back."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts))


PATTERNS = {code: _pattern(template) for code, template in MESSAGES.items()}
# One flag of a red_flag finding: "fever (day 3)", "new_weakness (days 1, 2)".
_FLAG_ON = re.compile(r"(?P<flag>[a-z_]+) \((?P<days>days? -?\d+(?:, -?\d+)*)\)")


def facts_of(code: str, message: str) -> Facts | None:
    """The numbers and names a finding's message was made from (None for a message of another
    shape, e.g. one stored by an older version)."""
    pattern = PATTERNS.get(code)
    found = pattern.fullmatch(message) if pattern else None
    return found.groupdict() if found else None


# --- plain numbers and lists -------------------------------------------------------------------


def _number(text: str) -> str:
    """6.0 -> "6", 4.5 -> "4.5"."""
    return f"{float(text):g}"


def half_that_counts(target: str, bound: str) -> str:
    """A target on the 0.5 steps a median of whole-number scores can take, rounded toward the
    side that still counts ("4.2 or less" -> "4", "6.3 or more" -> "6.5"): a median reaches the
    worded number exactly when it reaches the target."""
    halves = float(target) * 2
    return _number(str((math.floor(halves) if bound == "less" else math.ceil(halves)) / 2))


def _day_numbers(text: str) -> list[str]:
    """ "days 9, 11" -> ["9", "11"] (milestones.days_said, read back)."""
    return text.removeprefix("days ").removeprefix("day ").split(", ")


def _days(text: str) -> str:
    """ "days 9, 11" -> "days 9 and 11"."""
    days = list(dict.fromkeys(_day_numbers(text)))
    return f"day {days[0]}" if len(days) == 1 else f"days {_and(days)}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _now_and_before(observed: str, baseline: str) -> str:
    if float(observed) == float(baseline):
        return f"{_number(observed)} out of {SCALE}"
    return f"{_number(observed)} out of {SCALE} now, {_number(baseline)} before"


# --- one sentence or two per finding ------------------------------------------------------------


def _red_flag(facts: Facts) -> str:
    said = []
    for item in facts["flags"].split("; "):
        found = _FLAG_ON.fullmatch(item)
        if found is None:  # a message of an older shape: the advice still stands
            return URGENT
        flag = found["flag"]
        said.append(f"{RED_FLAGS.get(flag, flag.replace('_', ' '))} on {_days(found['days'])}")
    return f"You reported {_and(said)}. {URGENT}"


def _pain_flare(facts: Facts) -> str:
    pains = [_number(pain) for pain in facts["pains"].split(", ")]
    said = pains[0] if len(set(pains)) == 1 else _and(pains)
    return (
        f"On {_days(facts['days'])} your pain was {said} out of {SCALE}, at least "
        f"{facts['rise']} points higher than before the procedure "
        f"({_number(facts['baseline'])} out of {SCALE}). "
        "Please let your care team know."
    )


def _soreness_persisting(facts: Facts) -> str:
    effects = [e.removeprefix("injection site ") for e in facts["effects"].split(", ")]
    return (
        f"You still had {_and(effects)} where you had the injection on {_days(facts['days'])}. "
        f"This usually settles by day {facts['settled']}, so please let your care team know."
    )


def _pain_not_improved(facts: Facts) -> str:
    observed, baseline = float(facts["observed"]), float(facts["baseline"])
    if abs(observed - baseline) < 0.5:
        how = "about the same as"
    else:
        how = "higher than" if observed > baseline else "a little lower than"
    said = (
        f"Your pain is {how} before the procedure "
        f"({_now_and_before(facts['observed'], facts['baseline'])})."
    )
    if float(facts["target"]) != baseline:  # a baseline of 0 leaves no lower score to reach
        lower = "lower" if facts["bound"] == "less" else "higher"
        said += (
            f" By this stage many people notice it {facts['change']} to "
            f"{half_that_counts(facts['target'], facts['bound'])} or {lower}."
        )
    return said + " Keep checking in; your care team can talk it through with you."


def _mobility_worse(facts: Facts) -> str:
    return (
        "Moving around is harder than before the procedure "
        f"({_now_and_before(facts['observed'], facts['baseline'])}). "
        "Please tell your care team."
    )


def _too_few_logs(facts: Facts) -> str:
    n, needed = int(facts["n"]), int(facts["needed"])
    if n == 0:
        have = "There are no check-ins"
    else:
        have = f"There {'is' if n == 1 else 'are'} only {_count(n, 'check-in', 'check-ins')}"
    return (
        f"{have} from days {facts['start']} to {facts['end']} after your procedure, and at "
        f"least {needed} {'is' if needed == 1 else 'are'} needed to see how that time went. "
        "Regular check-ins help your care team follow your recovery."
    )


def _no_baseline(facts: Facts) -> str:
    return (
        "We don't have a pain score from before your procedure, so we can't yet compare how "
        f"you are now with how you were then. It comes from check-ins in the {facts['reach']} "
        "days before the procedure, or your care team can record it for you."
    )


PATIENT: dict[str, Callable[[Facts], str]] = {
    "red_flag": _red_flag,
    "pain_flare": _pain_flare,
    "soreness_persisting": _soreness_persisting,
    "pain_not_improved": _pain_not_improved,
    "mobility_worse": _mobility_worse,
    "too_few_logs": _too_few_logs,
    "no_baseline": _no_baseline,
}


def patient_message(code: str, message: str) -> str:
    """A finding said for the patient; a red flag always carries the urgent advice."""
    facts = facts_of(code, message)
    if facts is not None and code in PATIENT:
        return PATIENT[code](facts)
    return URGENT if code == "red_flag" else UNREAD


def expect_now(label: str, expected: str) -> str:
    """What the article says to expect in a milestone's window: "1-3 months: pain getting
    better, ..." (the period from the label's brackets, or the whole label)."""
    period = re.search(r"\(([^)]*)\)", label)
    return f"{period.group(1) if period else label}: {expected[:1].lower()}{expected[1:]}"


# --- the report --------------------------------------------------------------------------------


def _milestone(milestone: MilestoneOut) -> MilestoneOut:
    findings = [
        FindingOut(code=f.code, message=patient_message(f.code, f.message))
        for f in milestone.findings
    ]
    return milestone.model_copy(update={"findings": findings})


def for_patient(progress: Progress) -> Progress:
    """The patient's version of a progress report: the same facts, in plain words."""
    current = next((m for m in progress.milestones if m.key == progress.current_milestone), None)
    return progress.model_copy(
        update={
            "milestones": [_milestone(m) for m in progress.milestones],
            "expect_now": expect_now(current.label, current.expected) if current else None,
            "caveat": CAVEAT,
        }
    )
