"""Per-request fault injection: the `PayLab-Simulate` grammar.

A merchant forces an outcome regardless of card data with a header

    PayLab-Simulate: decline=insufficient_funds; latency=1500ms; at=capture

or the same text in `metadata[paylab_simulate]` (which, being metadata,
follows the payment to later requests such as capture and refund).
Directives, separated by `;` or `,`, each `name=value`:

| directive | values | effect |
| --- | --- | --- |
| `decline` | a Stripe decline code | the issuer declines with it |
| `latency` | `250ms`, `1.5s` (≤ 30 s) | the processor answers after that long |
| `processor_error` | `timeout`, `processor_unavailable` | the processor fails (retryable: failover applies) |
| `processor` | a processor name | route to it, whatever the rules say |
| `http` | 400-599 | PayLab answers with that status and does nothing |
| `at` | `confirm`, `capture`, `refund`, `any` | which operation the others apply to (default `confirm`) |

Malformed text is a 400 naming the directive; nothing is parsed loosely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.errors import InvalidRequestError, PayLabError

HEADER = "PayLab-Simulate"
METADATA_KEY = "paylab_simulate"
MAX_LATENCY_MS = 30_000
OPERATIONS = ("confirm", "capture", "refund", "any")
PROCESSOR_ERRORS = ("timeout", "processor_unavailable")
DECLINE_CODES = (
    "generic_decline",
    "insufficient_funds",
    "lost_card",
    "stolen_card",
    "expired_card",
    "incorrect_cvc",
    "processing_error",
    "card_velocity_exceeded",
    "fraudulent",
    "do_not_honor",
    "card_not_supported",
    "currency_not_supported",
    "try_again_later",
)
_LATENCY = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Directives:
    decline: str | None = None
    latency_ms: int | None = None
    processor_error: str | None = None
    processor: str | None = None
    http: int | None = None
    at: str = "confirm"
    source: str = ""

    def applies_to(self, operation: str) -> bool:
        return self.at in (operation, "any")

    @property
    def empty(self) -> bool:
        return not (
            self.decline
            or self.latency_ms is not None
            or self.processor_error
            or self.processor
            or self.http
        )

    def describe(self) -> str:
        return self.source


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid {param}: {message}", code="parameter_invalid", param=param)


def parse(text: str | None, *, param: str = HEADER) -> Directives | None:
    """Parse the grammar; None for no text; a 400 for anything malformed."""
    if text is None or not text.strip():
        return None
    values: dict[str, str] = {}
    for part in re.split(r"[;,]", text):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not sep or not value:
            raise _bad(f"'{part}' is not of the form name=value.", param)
        if name in values:
            raise _bad(f"'{name}' is given twice.", param)
        values[name] = value
    fields: dict[str, object] = {"source": text.strip()}
    for name, value in values.items():
        if name == "decline":
            if value not in DECLINE_CODES:
                raise _bad(
                    f"decline must be one of {', '.join(DECLINE_CODES)}; got '{value}'.", param
                )
            fields["decline"] = value
        elif name == "latency":
            match = _LATENCY.match(value)
            if not match:
                raise _bad(f"latency must look like 250ms or 1.5s; got '{value}'.", param)
            amount, unit = float(match.group(1)), match.group(2)
            millis = int(amount * 1000) if unit == "s" else int(amount)
            if millis > MAX_LATENCY_MS:
                raise _bad(f"latency may be at most {MAX_LATENCY_MS} ms; got {millis} ms.", param)
            fields["latency_ms"] = millis
        elif name == "processor_error":
            if value not in PROCESSOR_ERRORS:
                raise _bad(
                    f"processor_error must be one of {', '.join(PROCESSOR_ERRORS)}; got '{value}'.",
                    param,
                )
            fields["processor_error"] = value
        elif name == "processor":
            if not _NAME.match(value):
                raise _bad(f"processor must be a processor name; got '{value}'.", param)
            fields["processor"] = value
        elif name == "http":
            if not value.isdigit() or not 400 <= int(value) <= 599:
                raise _bad(f"http must be a status from 400 to 599; got '{value}'.", param)
            fields["http"] = int(value)
        elif name == "at":
            if value not in OPERATIONS:
                raise _bad(f"at must be one of {', '.join(OPERATIONS)}; got '{value}'.", param)
            fields["at"] = value
        else:
            raise _bad(
                f"unknown directive '{name}'; known: decline, latency, processor_error, processor, http, at.",
                param,
            )
    if fields.get("decline") and fields.get("processor_error"):
        raise _bad("decline and processor_error cannot be combined.", param)
    return Directives(**fields)  # type: ignore[arg-type]


def for_request(
    header: str | None, metadata: dict[str, str] | None, operation: str
) -> Directives | None:
    """The directives that apply to `operation`: the header wins over metadata."""
    directives = parse(header) if header else None
    if directives is None and metadata and metadata.get(METADATA_KEY):
        directives = parse(metadata[METADATA_KEY], param=f"metadata[{METADATA_KEY}]")
    if directives is None or not directives.applies_to(operation):
        return None
    return directives


class SimulatedHttpError(PayLabError):
    """What `http=` answers: that status, Stripe's shape, nothing done."""


def http_error(directives: Directives) -> PayLabError:
    status = directives.http or 500
    error = SimulatedHttpError(
        f"Simulated HTTP {status} (PayLab-Simulate: {directives.source}). Nothing was done.",
        code="simulated_http_error",
        status=status,
    )
    error.type = "api_error" if status >= 500 else "invalid_request_error"
    return error
