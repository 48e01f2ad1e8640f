"""One JSON object per log line, so CloudWatch, Vercel and journald can filter on fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field of the line.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Never written, whatever a caller passes in ``extra``.
_SECRET_FIELDS = {"token", "password", "secret", "authorization", "access_code", "accessCode", "api_key"}
# A client chooses much of what is logged (an event name, a session id, a header): each value is cut to this many
# characters, so one log line stays one screen however large the input. A traceback gets more room.
MAX_FIELD_CHARS = 500
MAX_EXCEPTION_CHARS = 8_000


def _cut(value: Any, limit: int = MAX_FIELD_CHARS) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… [{len(value) - limit} more characters]"
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _cut(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = "[redacted]" if key in _SECRET_FIELDS else _cut(value)
        if record.exc_info:
            line["exception"] = _cut(self.formatException(record.exc_info), MAX_EXCEPTION_CHARS)
        return json.dumps(line, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (test capture and process managers may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: str = "INFO") -> None:
    """Routes the ``hafi`` loggers to stdout as JSON lines (idempotent: warm invocations call it again)."""
    logger = logging.getLogger("hafi")
    logger.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = _StdoutHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False
