"""The realtime wire contract as tests read it: ``docs/asyncapi.yaml``, and a check of one event against it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, FormatChecker

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"

GROUP = "group"

# jsonschema checks "date-time" only with an optional package installed; say here what the contract means by it.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value)
    return True


def load_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return document


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` itself, or what its local ``$ref`` (``#/a/b``) points to."""
    while isinstance(node, dict) and "$ref" in node:
        reference = node["$ref"]
        if not isinstance(reference, str) or not reference.startswith("#/"):
            raise ValueError(f"only local references are used here, not {reference!r}")
        node = document
        for part in reference[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _address_pattern(address: str) -> re.Pattern[str]:
    """``event:{slug}`` as a regex with one named group per parameter."""
    parts = re.split(r"\{(\w+)\}", address)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^:]+)" for i, part in enumerate(parts))
    return re.compile(regex)


@dataclass(frozen=True)
class MessageContract:
    name: str
    channel_addresses: tuple[str, ...]
    validator: Draft7Validator

    def violations(self, channel: str, data: Any) -> list[str]:
        found = [f"{self.name}: {error.json_path}: {error.message}" for error in self.validator.iter_errors(data)]
        matches = (_address_pattern(address).fullmatch(channel) for address in self.channel_addresses)
        match = next((m for m in matches if m is not None), None)
        if match is None:
            found.append(f"{self.name} went to {channel!r}; the contract puts it on {self.channel_addresses!r}")
        elif (
            "slug" in match.groupdict()
            and self.name != GROUP  # a group's events are checked one by one
            and isinstance(data, dict)
            and data.get("eventSlug") != match["slug"]
        ):
            found.append(f"{self.name} on {channel!r} names another event: eventSlug={data.get('eventSlug')!r}")
        return found


@functools.cache
def contracts() -> dict[str, MessageContract]:
    """Each message the backend sends, by event name, from the document's ``send`` operations."""
    document = load_document()
    found: dict[str, MessageContract] = {}
    for operation in document["operations"].values():
        channel = resolve(document, operation["channel"])
        for reference in operation["messages"]:
            message = resolve(document, reference)
            # The payload's own references point into the document: validate with the document as the root.
            schema = {**resolve(document, message["payload"]), "components": document["components"]}
            validator = Draft7Validator(schema, format_checker=_FORMATS)
            earlier = found[message["name"]].channel_addresses if message["name"] in found else ()
            found[message["name"]] = MessageContract(message["name"], (*earlier, channel["address"]), validator)
    return found


def violations(channel: str, name: str, data: Any) -> list[str]:
    """What is wrong with event ``name`` published on logical ``channel`` with payload ``data``; empty if nothing.

    A group is checked as a whole and each of its events as if published alone on the channel."""
    contract = contracts().get(name)
    if contract is None:
        return [f"{name!r} is not an event of docs/asyncapi.yaml"]
    found = contract.violations(channel, data)
    if name == GROUP and not found:
        events = data["events"]
        found += [p for event in events for p in violations(channel, event["name"], event["data"])]
        seqs = [event["data"]["seq"] for event in events]
        if seqs != list(range(data["fromSeq"], data["toSeq"] + 1)):
            found.append(f"group {data['id']} covers seqs {seqs}, not {data['fromSeq']}..{data['toSeq']}")
        if data["id"] != f"{events[0]['data']['id']}-{events[-1]['data']['id']}":
            found.append(f"group {data['id']} is not named after its first and last event")
    return found
