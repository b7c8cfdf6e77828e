"""Forms of the Processors page: an operator's settings of one processor,
and an outage or brownout to schedule. They parse and validate; the
services (payments.services.processors) write."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms

from payments.models import Processor, ProcessorOutage


def _bp(label: str, **kwargs: Any) -> forms.IntegerField:
    """A rate in basis points (10000 = every request)."""
    return forms.IntegerField(label=label, min_value=0, max_value=10_000, **kwargs)


def _ms(label: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=0, max_value=120_000)


class ProcessorSettingsForm(forms.Form):
    """The settings an operator tunes while watching traffic. Methods,
    currencies, limits and breaker thresholds stay with the admin and
    `manage.py processors import`."""

    enabled = forms.BooleanField(required=False)
    priority = forms.IntegerField(min_value=0, max_value=1_000_000)
    latency_p50_ms = _ms("Latency p50 (ms)")
    latency_p99_ms = _ms("Latency p99 (ms)")
    timeout_ms = forms.IntegerField(label="Timeout after (ms)", min_value=1, max_value=120_000)
    timeout_rate_bp = _bp("Timeouts (bp)")
    unavailable_rate_bp = _bp("Unavailable (bp)")
    soft_decline_rate_bp = _bp("Soft declines (bp)")
    fee_percent_bp = _bp("Fee (bp of the amount)")
    fee_fixed = forms.IntegerField(
        label="Fixed fee (minor units)", min_value=0, max_value=1_000_000
    )

    FIELDS = (
        "enabled",
        "priority",
        "latency_p50_ms",
        "latency_p99_ms",
        "timeout_ms",
        "timeout_rate_bp",
        "unavailable_rate_bp",
        "soft_decline_rate_bp",
    )

    @classmethod
    def for_processor(cls, processor: Processor, data: Any = None) -> ProcessorSettingsForm:
        default_fee = (processor.fees or {}).get("default") or {}
        initial = {name: getattr(processor, name) for name in cls.FIELDS}
        initial["fee_percent_bp"] = default_fee.get("percent_bp", 0)
        initial["fee_fixed"] = default_fee.get("fixed", 0)
        return cls(data, initial=initial, prefix=processor.name)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        p50, p99 = cleaned.get("latency_p50_ms"), cleaned.get("latency_p99_ms")
        if p50 is not None and p99 is not None and p99 < p50:
            self.add_error("latency_p99_ms", "The p99 latency must be at least the p50.")
        return cleaned

    def changes(self, processor: Processor) -> dict[str, Any]:
        """The processor's fields as the form sets them (fees: the default
        row; per-currency rows are kept)."""
        data = self.cleaned_data
        changes = {name: data[name] for name in self.FIELDS}
        fees = dict(processor.fees or {})
        fees["default"] = {"percent_bp": data["fee_percent_bp"], "fixed": data["fee_fixed"]}
        changes["fees"] = fees
        return changes


class OutageForm(forms.Form):
    """An outage (every request fails) or a brownout (some fail, slower),
    starting now or later, for a number of minutes."""

    processor = forms.ChoiceField()
    kind = forms.ChoiceField(choices=ProcessorOutage.Kind.choices, initial="outage")
    starts_in = forms.IntegerField(
        label="Starts in (minutes)", min_value=0, max_value=7 * 24 * 60, initial=0
    )
    minutes = forms.IntegerField(label="Lasts (minutes)", min_value=1, max_value=24 * 60, initial=5)
    error_rate_bp = _bp(
        "Failing (bp)",
        required=False,
        help_text="Blank: 10000 for an outage, 2000 for a brownout.",
    )
    error_code = forms.ChoiceField(
        choices=[("processor_unavailable", "processor_unavailable"), ("timeout", "timeout")],
        initial="processor_unavailable",
    )
    latency_multiplier_pct = forms.IntegerField(
        label="Latency (%)",
        min_value=100,
        max_value=10_000,
        initial=100,
        help_text="300: three times slower (a brownout's usual).",
    )

    def __init__(self, *args: Any, names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["processor"].choices = [(name, name) for name in names]  # type: ignore[attr-defined]

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        starts = now + timedelta(minutes=self.cleaned_data["starts_in"])
        return starts, starts + timedelta(minutes=self.cleaned_data["minutes"])
