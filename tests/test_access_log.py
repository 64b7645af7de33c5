"""The access log cannot be forged: the request path is percent-decoded client text, so a
newline in it would start a log line of the attacker's own, and an ANSI escape or a NUL would
reach the terminal. Every control character is escaped where the path is logged, and the
formatter escapes any record's line the same way."""

import logging
import unicodedata

import pytest
from fastapi.testclient import TestClient

from api.logs import FORMAT, SafeFormatter, escape_control

ACCESS = "recovery_tracker.access"
FORGED = "2026-12-01 01:00:00,000 ERROR recovery_tracker.errors forged"
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# What each control character is written as, once percent-decoded and escaped.
PATHS = {
    "newline": (
        "/healthz%0A2026-12-01%2001:00:00,000%20ERROR%20recovery_tracker.errors%20forged",
        "/healthz\\x0a2026-12-01 01:00:00,000 ERROR recovery_tracker.errors forged",
    ),
    "carriage-return": ("/healthz%0D%0Aforged", "/healthz\\x0d\\x0aforged"),
    "ansi": ("/healthz%1B[31mred%1B[0m", "/healthz\\x1b[31mred\\x1b[0m"),
    "nul": ("/healthz%00", "/healthz\\x00"),
    "del": ("/healthz%7F", "/healthz\\x7f"),
    "c1-next-line": ("/healthz%C2%85forged", "/healthz\\x85forged"),
    "c1-csi": ("/healthz%C2%9B31m", "/healthz\\x9b31m"),
    "line-separator": ("/healthz%E2%80%A8forged", "/healthz\\u2028forged"),
    "paragraph-separator": ("/healthz%E2%80%A9forged", "/healthz\\u2029forged"),
}
# Line breaks, control characters and surrogates: none may reach a formatted line.
UNSAFE = {"Cc", "Zl", "Zp", "Cs"}


def unsafe(text: str) -> list[str]:
    return [hex(ord(c)) for c in text if unicodedata.category(c) in UNSAFE]


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


@pytest.mark.parametrize(("sent", "logged"), list(PATHS.values()), ids=list(PATHS))
def test_the_path_is_logged_with_its_control_characters_escaped(
    client: TestClient, caplog: pytest.LogCaptureFixture, sent: str, logged: str
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.get(sent)
    assert response.status_code == 404
    [record] = access_records(caplog)
    message = record.getMessage()
    assert message.startswith(f"GET {logged} 404 ")
    assert unsafe(message) == []
    assert unsafe(SafeFormatter(FORMAT).format(record)) == []


def test_a_forged_newline_starts_no_log_line_of_its_own(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The attacker's report, as curl sent it: every captured line is a record's own line."""
    with caplog.at_level(logging.INFO):
        client.get(PATHS["newline"][0])
    assert len(access_records(caplog)) == 1
    lines = caplog.text.splitlines()
    assert all(line.split(maxsplit=1)[0] in LEVELS for line in lines), lines
    assert not any(line.startswith(FORGED) for line in lines)
    assert FORGED in caplog.text  # still there to read, inside the access line


def test_the_query_string_is_still_left_out(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/healthz%0A?q=Lovelace%0Aforged")
    [record] = access_records(caplog)
    assert "Lovelace" not in record.getMessage()


def test_the_formatter_writes_any_records_line_on_one_line() -> None:
    """Whoever logs client text (another library, a later change), the line stays one line and
    the stack frames after it keep theirs."""
    try:
        raise ValueError("MRN-123 in the message")
    except ValueError as exc:
        record = logging.LogRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "got %s",
            ("a\nb\x1b\u2028\x85\ud800",),
            (type(exc), exc, exc.__traceback__),
        )
    first, *frames = SafeFormatter(FORMAT).format(record).split("\n")
    assert first.endswith("got a\\x0ab\\x1b\\u2028\\x85\\ud800")
    assert unsafe(first) == []
    assert frames[0] == "Traceback (most recent call last):"
    assert frames[-1] == "ValueError: <message withheld>"


def test_escaping_leaves_printable_text_alone_and_is_idempotent() -> None:
    text = "/v1/patients/7c24c917-d018-4992-b2ad-767c83c9a6d2 café ✓ \\x0a"
    assert escape_control(text) == text
    escaped = escape_control("a\tb\x00\u2029")
    assert escaped == "a\\x09b\\x00\\u2029"
    assert escape_control(escaped) == escaped
