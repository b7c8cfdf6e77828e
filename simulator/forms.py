"""The dashboard's "start a run" form: labelled fields for the parameters
most runs change, plus the rest as JSON (validated by the service)."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from accounts.models import Merchant
from simulator import scenarios


class StartRunForm(forms.Form):
    scenario = forms.ChoiceField(
        label="Scenario", choices=[(s.name, s.title) for s in scenarios.SCENARIOS.values()]
    )
    merchant = forms.ModelChoiceField(label="Merchant", queryset=Merchant.objects.none())
    rate = forms.FloatField(
        label="Rate (payments/s)", min_value=0.1, max_value=scenarios.MAX_RATE, initial=20
    )
    duration = forms.FloatField(
        label="Duration (seconds)", min_value=1, max_value=scenarios.MAX_DURATION, initial=60
    )
    seed = forms.IntegerField(label="Seed", min_value=0, required=False, help_text="Blank: random.")
    manual_capture_share = forms.FloatField(
        label="Manual-capture share", min_value=0, max_value=1, required=False
    )
    refund_probability = forms.FloatField(
        label="Refund probability", min_value=0, max_value=1, required=False
    )
    customer_pool = forms.IntegerField(
        label="Customer pool", min_value=0, max_value=1000, required=False
    )
    extra = forms.CharField(
        label="Other parameters (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='e.g. {"outcomes": {"success": 80, "generic_decline": 20}, "peak_factor": 5}',
    )

    def __init__(self, *args: Any, merchants: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["merchant"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = merchants

    def clean_extra(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("extra") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as error:
            raise forms.ValidationError(f"Not JSON: {error}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def parameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        params: dict[str, Any] = dict(data.get("extra") or {})
        for name in (
            "rate",
            "duration",
            "seed",
            "manual_capture_share",
            "refund_probability",
            "customer_pool",
        ):
            if data.get(name) is not None:
                params[name] = data[name]
        return params
