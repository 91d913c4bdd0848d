"""The event messages of the queue: their JSON schema (version 1), validation and construction.

Every message body is one JSON object with ``type``, ``version``, ``id`` and ``created`` plus the
fields of its type (docs/events.md). Validation is strict: an unknown type, a missing or unknown
field or a value of the wrong kind makes the message poison (``InvalidEvent``), which the worker
dead-letters with the reason, because delivering it again can never succeed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.config import ALGORITHMS
from runtime.errors import InvalidEvent
from runtime.items import parse_item_key

VERSION = 1
EXPORT_READY = "export-ready"
RETRAIN = "retrain"
TRAIN = "train"
INTERACTION = "interaction"
TYPES = (EXPORT_READY, RETRAIN, TRAIN, INTERACTION)

ENVELOPE = ("type", "version", "id", "created")
# The id ends up in Redis key names (duplicate markers), so it is kept short and plain.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Totara tenant ids are numbers; 0 is the whole site. They also end up inside a Redis hash tag,
# so anything else (braces in particular) is refused.
_TENANT = re.compile(r"^[0-9]{1,10}$")
MAX_TENANTS = 100_000
MAX_USER_ID = 2**63 - 1


@dataclass(frozen=True)
class Event:
    type: str
    id: str
    created: float
    fields: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON object of this event, as published."""
        return {"type": self.type, "version": VERSION, "id": self.id, "created": self.created,
                **self.fields}

    @property
    def tenant(self) -> str | None:
        return self.fields.get("tenant")


def _tenant(value: Any, name: str) -> str:
    # Accept 3 and "3" alike: PHP encodes ids either way depending on where they came from.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidEvent(f"{name} must be a tenant id (digits), got {type(value).__name__}")
    text = str(value)
    if not _TENANT.fullmatch(text):
        raise InvalidEvent(f"{name} must be a tenant id (digits), got {text[:40]!r}")
    return str(int(text))


def _optional_algorithm(value: Any) -> str:
    if value not in ALGORITHMS:
        raise InvalidEvent(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {value!r:.40}")
    return value


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidEvent(f"{name} must be true or false, got {value!r:.40}")
        return value
    return check


def _tenant_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidEvent("tenants must be a non-empty list of tenant ids")
    if len(value) > MAX_TENANTS:
        raise InvalidEvent(f"tenants has {len(value)} entries; at most {MAX_TENANTS}")
    # Duplicates would only make duplicate train events; keep the first occurrence's order.
    return list(dict.fromkeys(_tenant(v, "tenants[]") for v in value))


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidEvent("id must be a string of letters, digits and ._:- (a UUID), "
                           f"got {value!r:.40}")
    return value


def _user_id(value: Any) -> int:
    # isascii: str.isdigit also accepts digits int() refuses, such as superscripts.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_USER_ID:
        raise InvalidEvent(f"user_id must be a positive whole number, got {value!r:.40}")
    return value


def _item_id(value: Any) -> str:
    if not isinstance(value, str) or parse_item_key(value) is None:
        raise InvalidEvent("item_id must be a Totara item key such as engage_article12, "
                           f"got {value!r:.40}")
    return value


def _timestamp(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**40:
        raise InvalidEvent(f"timestamp must be Unix seconds, got {value!r:.40}")
    return int(value)


def _rating(value: Any) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise InvalidEvent(f"rating must be 0 or 1, got {value!r:.40}")
    return int(value)


# type -> {field: (required, checker)}
_Field = tuple[bool, Callable[[Any], Any]]
SCHEMAS: dict[str, dict[str, _Field]] = {
    EXPORT_READY: {"tenants": (False, _tenant_list)},
    RETRAIN: {"tenant": (False, lambda v: _tenant(v, "tenant")),
              "algorithm": (False, _optional_algorithm)},
    TRAIN: {"tenant": (True, lambda v: _tenant(v, "tenant")),
            "algorithm": (False, _optional_algorithm),
            "force": (False, _bool("force")),
            "parent": (False, _event_id)},
    INTERACTION: {"tenant": (True, lambda v: _tenant(v, "tenant")),
                  "user_id": (True, _user_id),
                  "item_id": (True, _item_id),
                  "timestamp": (True, _timestamp),
                  "rating": (False, _rating)},
}


def validate(data: Any) -> Event:
    """Check a decoded JSON value against the schema; raise ``InvalidEvent`` with the reason."""
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"the body must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise InvalidEvent(f"unknown event type {kind!r:.40}; expected one of {', '.join(TYPES)}")
    version = data.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise InvalidEvent(f"unsupported version {version!r:.20} of {kind}; expected {VERSION}")
    event_id = _event_id(data.get("id"))
    created = data.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float) or created < 0:
        raise InvalidEvent(f"created must be Unix seconds, got {created!r:.40}")
    schema = SCHEMAS[kind]
    unknown = sorted(set(data) - set(ENVELOPE) - set(schema))
    if unknown:
        raise InvalidEvent(f"unknown field(s) in {kind}: {', '.join(map(str, unknown))[:200]}")
    fields: dict[str, Any] = {}
    for name, (required, check) in schema.items():
        if name in data and data[name] is not None:
            fields[name] = check(data[name])
        elif required:
            raise InvalidEvent(f"{kind} needs the field {name}")
    return Event(type=kind, id=event_id, created=float(created), fields=fields)


def decode(body: bytes | str, content_type: str | None) -> Event:
    """Parse a raw message body. JSON only; a body without a content type is read as JSON too,
    because plain AMQP clients (php-amqplib) often leave the property unset."""
    if content_type not in (None, "", "application/json"):
        raise InvalidEvent(f"content type {content_type!r:.60} refused; only application/json")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(f"the body is not JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise InvalidEvent("the body is not JSON this service reads: nested too deeply") from None
    return validate(data)


def make_event(kind: str, *, event_id: str | None = None, created: float | None = None,
               **fields: Any) -> Event:
    """A new, valid event (fields that are None are left out); raises ``InvalidEvent``."""
    body = {"type": kind, "version": VERSION, "id": event_id or str(uuid.uuid4()),
            "created": round(time.time() if created is None else created, 3)}
    body.update({k: v for k, v in fields.items() if v is not None})
    return validate(body)


# Fan-out train events get ids derived from the parent event, so a redelivered export-ready
# produces the same train ids and the duplicate markers recognise the ones already done.
_FANOUT_NAMESPACE = uuid.UUID("6f1e4c1e-2b6f-4a53-9a52-6b8f0c7d2e11")


def child_id(parent_id: str, tenant: str) -> str:
    return str(uuid.uuid5(_FANOUT_NAMESPACE, f"{parent_id}/{tenant}"))
