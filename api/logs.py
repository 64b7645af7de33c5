"""Logging that cannot leak patient data.

Exception messages can quote values (a database error may echo an MRN), so every log line
prints an exception's type and stack frames, never its message. Access lines come from our own
middleware, without query strings; uvicorn's access log stays off.

What a client sent (the request path) is logged through `escape_control`: a newline in it
would forge a log line of its own, an ANSI escape would repaint the terminal. The formatter
escapes every message the same way, whoever logged it.
"""

import logging
import re
import traceback
from types import TracebackType
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


# C0, DEL, C1, the Unicode line and paragraph separators (every line break str.splitlines
# knows) and lone surrogates, which the stream's UTF-8 encoder would choke on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """`text` on one line with no control character: a newline reads `\\x0a`, U+2028 `\\u2028`."""
    return _CONTROL.sub(_escape, text)


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have cached the full exception text (message included) on the
        # record; always build our own, and leave the record as we found it.
        cached = record.exc_text
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The record's own line: one line, whatever its arguments held. The stack frames
        # appended after it (formatException) are ours and keep their lines.
        return escape_control(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        exc_type, _, tb = ei
        frames = "".join(traceback.format_tb(tb))
        name = exc_type.__name__ if exc_type else "Exception"
        return f"Traceback (most recent call last):\n{frames}{name}: <message withheld>"


def log_config(level: str) -> dict[str, Any]:
    """A logging.config dict for the app and uvicorn."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"safe": {"()": SafeFormatter, "format": FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "safe"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
