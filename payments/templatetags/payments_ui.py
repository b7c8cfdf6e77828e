"""Template filters of the payments pages: money and Stripe timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template

from payments import money as money_module

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    """`{{ intent.amount|money:intent.currency }}` → '12.34 USD'."""
    if amount is None:
        return "—"
    try:
        return money_module.format_amount(int(amount), currency)
    except ValueError:
        return f"{amount} {currency}"


@register.filter
def unix_time(value: Any) -> datetime | None:
    """A Stripe `created` (Unix seconds) as an aware datetime."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError):
        return None


@register.filter
def humanize_key(value: str) -> str:
    return str(value).replace("_", " ")
