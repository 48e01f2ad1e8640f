"""How a message's data travels: compact UTF-8 JSON, no larger than the smallest provider limit."""

from __future__ import annotations

import json
from typing import Any

from core.errors import InvalidInputError

# Pusher's limit, the smallest of our providers'; checked in UTF-8 bytes of the JSON that is sent.
MAX_PAYLOAD_BYTES = 10 * 1024


class PayloadTooLargeError(InvalidInputError):
    def __init__(self, message: str) -> None:
        super().__init__("payload_too_large", message)


# One encoder: json.dumps builds a new one on every call that asks for other than its defaults.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(data: dict[str, Any]) -> str:
    return _ENCODER.encode(data)


def encoded_size(data: dict[str, Any]) -> int:
    return len(encode(data).encode())
