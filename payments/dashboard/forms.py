"""Forms of the payments pages: they parse and validate input, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms

from payments import money
from payments.selectors import PAYMENT_SORTS, PaymentSearch
from payments.state_machine import Status

_AMOUNT_HELP = "In the currency's major units, e.g. 12.50"


def _major(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        # Parsing with a three-decimal currency accepts every exponent's input.
        money.to_minor(value, "kwd")
    except ValueError:
        raise forms.ValidationError(f"{field}: not an amount.") from None
    return value


class PaymentFilterForm(forms.Form):
    """The explorer's query string. Unknown or malformed values are errors
    shown beside the field, never a 500."""

    q = forms.CharField(required=False, max_length=200, strip=True)
    status = forms.ChoiceField(required=False, choices=[("", "Any"), *Status.choices])
    merchant = forms.IntegerField(required=False, min_value=1)
    processor = forms.CharField(required=False, max_length=64)
    currency = forms.CharField(required=False, max_length=3)
    brand = forms.CharField(required=False, max_length=20)
    amount_min = forms.CharField(required=False, max_length=24, help_text=_AMOUNT_HELP)
    amount_max = forms.CharField(required=False, max_length=24, help_text=_AMOUNT_HELP)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    sort = forms.ChoiceField(
        required=False,
        choices=[(s, s) for s in PAYMENT_SORTS] + [(f"-{s}", s) for s in PAYMENT_SORTS],
    )
    after = forms.CharField(required=False, max_length=200)
    before = forms.CharField(required=False, max_length=200)

    def clean_currency(self) -> str:
        value = (self.cleaned_data.get("currency") or "").strip().lower()
        if value and value not in money.CURRENCY_EXPONENTS:
            raise forms.ValidationError("Unknown currency.")
        return value

    def clean_amount_min(self) -> str:
        return _major(self.cleaned_data.get("amount_min") or "", "Minimum")

    def clean_amount_max(self) -> str:
        return _major(self.cleaned_data.get("amount_max") or "", "Maximum")

    def search(self, scope: int | None) -> PaymentSearch:
        """The selector's query. A merchant user's scope wins over any
        `merchant` parameter (tenancy is not a filter the user chooses)."""
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        sort = data.get("sort") or "-created"
        return PaymentSearch(
            scope=scope,
            merchant_id=data.get("merchant") if scope is None else None,
            status=data.get("status") or "",
            processor=data.get("processor") or "",
            currency=data.get("currency") or "",
            brand=data.get("brand") or "",
            amount_min=data.get("amount_min") or "",
            amount_max=data.get("amount_max") or "",
            created_from=_day_start(data.get("date_from")),
            created_to=_day_start(data.get("date_to"), plus_days=1),
            search=data.get("q") or "",
            sort=sort.lstrip("-"),
            descending=sort.startswith("-"),
        )


def _day_start(day: Any, *, plus_days: int = 0) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=plus_days), time.min, tzinfo=UTC)


class AmountForm(forms.Form):
    """Capture or refund: an optional amount (blank = all that is left)."""

    amount = forms.CharField(required=False, max_length=24)
    reason = forms.CharField(required=False, max_length=40)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_amount(self) -> int | None:
        value = (self.cleaned_data.get("amount") or "").strip()
        if not value:
            return None
        try:
            minor = money.to_minor(value, self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        if minor <= 0:
            raise forms.ValidationError("The amount must be positive.")
        return minor


class DisputeCloseForm(forms.Form):
    dispute = forms.CharField(max_length=40)
    outcome = forms.ChoiceField(choices=[("won", "Won"), ("lost", "Lost")])


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any"),
            ("pending", "Pending"),
            ("succeeded", "Succeeded"),
            ("failed", "Failed"),
        ],
    )
    merchant = forms.IntegerField(required=False, min_value=1)
    endpoint = forms.CharField(required=False, max_length=40)
    after = forms.IntegerField(required=False, min_value=1)


class FeedFilterForm(forms.Form):
    TYPES = [
        ("", "All events"),
        ("payment_intent.*", "Payment intents"),
        ("charge.*", "Charges"),
        ("refund.*", "Refunds"),
        ("charge.dispute.*", "Disputes"),
        ("payment_intent.succeeded", "Succeeded payments"),
        ("payment_intent.payment_failed", "Failed payments"),
    ]
    merchant = forms.IntegerField(required=False, min_value=1)
    type = forms.ChoiceField(required=False, choices=TYPES)
