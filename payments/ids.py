"""Object ids in Stripe's style: a prefix, an underscore, 24 base62 characters.

The first 8 characters encode the creation time in milliseconds, so ids of
one prefix sort by creation time. Lists page by id alone (keyset pagination
on the primary key) and historical seeding stamps ids with historical times.
"""

from __future__ import annotations

import secrets
import string
import time
from datetime import datetime

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_TIME_CHARS = 8
_RANDOM_CHARS = 16
_RANDOM_SPACE = 62**_RANDOM_CHARS

PREFIXES = {
    "payment_intent": "pi",
    "charge": "ch",
    "payment_method": "pm",
    "customer": "cus",
    "refund": "re",
    "dispute": "dp",
    "event": "evt",
    "balance_transaction": "txn",
    "webhook_endpoint": "we",
}


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str, at: datetime | float | None = None) -> str:
    if isinstance(at, datetime):
        millis = int(at.timestamp() * 1000)
    elif at is None:
        millis = time.time_ns() // 1_000_000
    else:
        millis = int(at * 1000)
    # One draw for all 16 characters (uniform over 62**16, like 16 draws of
    # one character each, at a fraction of the CPU).
    random_part = _encode(secrets.randbelow(_RANDOM_SPACE), _RANDOM_CHARS)
    return f"{prefix}_{_encode(millis, _TIME_CHARS)}{random_part}"


def created_part(value: str) -> str:
    """The prefix and the time characters of an id: ids that share it were
    made in the same millisecond, in no order their random part tells."""
    return value[: value.index("_") + 1 + _TIME_CHARS]


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1
