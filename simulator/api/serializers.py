"""Input serializers of /v1/simulator/… (STYLE 8) and the response shapes
the OpenAPI schema documents (mirroring `simulator.presenters`)."""

from __future__ import annotations

from rest_framework import serializers

from payments.api.fields import ListParamsSerializer, StripeSerializer
from simulator import scenarios
from simulator.models import COUNTERS, RunStatus


def _mix(help_text: str) -> serializers.DictField:
    return serializers.DictField(
        child=serializers.FloatField(min_value=0), required=False, help_text=help_text
    )


def _range(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(min_value=0),
        min_length=2,
        max_length=2,
        required=False,
        help_text=help_text + " `[low, high]` seconds.",
    )


def _share(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(min_value=0, max_value=1, required=False, help_text=help_text)


def _seconds(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(min_value=0, required=False, help_text=help_text)


class SimulationRunCreateSerializer(StripeSerializer):
    scenario = serializers.ChoiceField(
        choices=list(scenarios.SCENARIOS), help_text="A scenario id from /v1/simulator/scenarios."
    )
    rate = serializers.FloatField(
        min_value=0.1,
        max_value=scenarios.MAX_RATE,
        required=False,
        help_text="Payments per second.",
    )
    duration = serializers.FloatField(
        min_value=0.1, max_value=scenarios.MAX_DURATION, required=False, help_text="Seconds."
    )
    count = serializers.IntegerField(
        min_value=1, required=False, help_text="Payments in total, instead of `duration`."
    )
    seed = serializers.IntegerField(
        min_value=0, required=False, help_text="The same seed replays the same traffic."
    )
    slices = serializers.IntegerField(
        min_value=1, max_value=scenarios.MAX_SLICES, required=False, help_text="Parallel workers."
    )
    merchants = serializers.ListField(
        child=serializers.CharField(max_length=80),
        required=False,
        help_text="Merchant slugs (staff only); a merchant key runs traffic against its own merchant.",
    )
    currencies = _mix("Currency mix, e.g. `{usd: 70, eur: 30}`.")
    brands = _mix("Card brand mix of approved traffic.")
    outcomes = _mix(f"Outcome mix; names: {', '.join(scenarios.OUTCOMES)}.")
    amount_median = serializers.IntegerField(
        min_value=1, required=False, help_text="Median amount in hundredths of a major unit."
    )
    amount_spread = serializers.FloatField(
        min_value=0, required=False, help_text="Log-normal sigma."
    )
    manual_capture_share = _share("Payments authorised for a later capture.")
    void_share = _share("Manual authorisations canceled instead of captured.")
    capture_delay = _range("When manual payments are captured.")
    refund_probability = _share("Captured payments refunded later.")
    partial_refund_share = _share("Refunds of part of the amount.")
    refund_delay = _range("When refunds follow.")
    three_ds_complete = _share("Challenges completed.")
    three_ds_fail = _share("Challenges failed (the rest are abandoned).")
    three_ds_delay = _range("When customers answer challenges.")
    dispute_close_probability = _share("Disputes closed during the run.")
    dispute_win_share = _share("Closed disputes won.")
    dispute_close_delay = _range("When disputes are closed.")
    customer_pool = serializers.IntegerField(
        min_value=0, max_value=1000, required=False, help_text="Customers created for the run."
    )
    customer_share = _share("Payments naming a pool customer.")
    duplicate_share = _share("Retries of an earlier request with its Idempotency-Key.")
    conflict_share = _share("Reuses of a key with other parameters.")
    peak_factor = serializers.FloatField(
        min_value=1, required=False, help_text="peak: the multiplier."
    )
    storm_at = _seconds("decline_storm: start.")
    storm_seconds = _seconds("decline_storm: length.")
    storm_share = _share("decline_storm: share of the issuer's payments declined.")
    storm_brand = serializers.ChoiceField(
        choices=list(scenarios.BRAND_CARDS), required=False, help_text="decline_storm: the issuer."
    )
    outage_at = _seconds("processor_outage: start.")
    outage_seconds = _seconds("processor_outage: length.")
    brownout_at = _seconds("brownout: start.")
    brownout_seconds = _seconds("brownout: length.")
    latency_factor = serializers.IntegerField(
        min_value=1, max_value=100, required=False, help_text="brownout: latency multiplier."
    )
    processor = serializers.CharField(
        max_length=64, required=False, help_text="processor_outage, brownout: which processor."
    )
    down_at = _seconds("webhook_outage: when the sink goes down.")
    down_seconds = _seconds("webhook_outage: for how long.")


class SimulationRunListSerializer(ListParamsSerializer):
    status = serializers.ChoiceField(
        choices=RunStatus.values, required=False, help_text="Only runs in this status."
    )
    scenario = serializers.ChoiceField(
        choices=list(scenarios.SCENARIOS), required=False, help_text="Only runs of this scenario."
    )


class EmptySerializer(StripeSerializer):
    pass


# --- Response shapes (mirror simulator/presenters.py) ----------------------------


class SimulationScenarioSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`steady`, `peak`, …")
    object = serializers.ChoiceField(choices=["simulation_scenario"])
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.JSONField(help_text="The defaults; every one may be overridden.")


class SimulationRunProgressSerializer(serializers.Serializer):
    operations = serializers.IntegerField(help_text="Generated payments committed so far.")
    fraction = serializers.FloatField()
    follow_ups_pending = serializers.IntegerField()
    elapsed_seconds = serializers.FloatField()
    actual_rate = serializers.FloatField(help_text="Payments created per second so far.")


SimulationRunCountersSerializer = type(
    "SimulationRunCountersSerializer",
    (serializers.Serializer,),
    {name: serializers.IntegerField() for name in COUNTERS},
)


class SimulationRunSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`simrun_…`")
    object = serializers.ChoiceField(choices=["simulation_run"])
    scenario = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.values)
    parameters = serializers.JSONField()
    seed = serializers.IntegerField()
    merchants = serializers.ListField(child=serializers.CharField())
    slices = serializers.IntegerField()
    planned = serializers.IntegerField(help_text="Payments the schedule holds.")
    progress = SimulationRunProgressSerializer()
    counters = SimulationRunCountersSerializer()
    failures = serializers.DictField(
        child=serializers.IntegerField(), help_text="Decline and error codes, counted."
    )
    notes = serializers.ListField(child=serializers.CharField(), help_text="Chaos steps applied.")
    error = serializers.CharField(allow_null=True)
    started_via = serializers.ChoiceField(choices=["cli", "api", "dashboard"])
    created = serializers.IntegerField()
    started_at = serializers.IntegerField(allow_null=True)
    stop_requested_at = serializers.IntegerField(allow_null=True)
    finished_at = serializers.IntegerField(allow_null=True)
    livemode = serializers.BooleanField()


class SimulationScenarioListSerializer(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = SimulationScenarioSerializer(many=True)  # type: ignore[assignment]  # a declared field
    has_more = serializers.BooleanField()
    url = serializers.CharField()
