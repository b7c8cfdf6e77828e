"""Simulation runs: create, stop, execute a slice, sweep abandoned slices.

Traffic goes through the payment services the API uses, wrapped in
`run_idempotent` exactly as an API request with an `Idempotency-Key` is —
never by inserting rows. Each generated operation has a key derived from
the run id and the operation index (`simrun_…:42`; follow-ups add their
kind), so a redelivered operation replays instead of creating twice.

Exactly once, through crashes: a slice executes a batch of due operations
in ONE transaction that also advances its `next_index`, adds its counters,
writes the follow-ups the operations schedule and marks the follow-ups it
performed — under a lease (`lease_token`) checked by the final conditional
UPDATE. A worker killed mid-batch loses the whole uncommitted batch, and the
next holder of the lease starts again at the committed index: nothing is
duplicated (the keys would replay it anyway) and nothing committed is lost.

Pacing: operation i is due at the run's start plus `Schedule.offset(i)`; a
slice sleeps until the next operation is due, so traffic is paced, not
bursty (a slice that falls behind executes the overdue operations at once,
in batches). Stopping: slices read the run's status every 100 ms and a
batch holds at most ~50 ms of work, so a stop takes effect well within a
second.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant, User
from config.errors import InvalidRequestError, PayLabError
from payments import context, ids, presenters
from payments.api.base import render
from payments.api.intents import answer
from payments.models import Dispute, PaymentIntent, ThreeDSChallenge
from payments.services import customers as customer_services
from payments.services import disputes, intents, refunds
from payments.services.idempotency import run_idempotent
from payments.state_machine import Status
from simulator import chaos, rng, scenarios
from simulator.models import (
    ACTIVE_STATUSES,
    COUNTERS,
    FINAL_STATUSES,
    FollowUp,
    RunStatus,
    SimulationRun,
    SimulationSlice,
)

log = logging.getLogger(__name__)

STATUS_EVERY = 0.1
FOLLOW_UP_EVERY = 0.1
BATCH_SECONDS = 0.05
MAX_BATCH = 50
IDLE_SLEEP = 0.05
MAX_CUSTOMER_POOL = 1000
RUN_PREFIX = "simrun"


# --- Create, stop --------------------------------------------------------------


def _number(name: str, value: Any, *, minimum: float, maximum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"Invalid {name}: must be a number.", param=name) from None
    if not math.isfinite(number) or number < minimum or number > maximum:
        raise InvalidRequestError(
            f"Invalid {name}: must be between {minimum:g} and {maximum:g}.", param=name
        )
    return number


def _mix(name: str, value: Any, allowed: tuple[str, ...] | None) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise InvalidRequestError(f"Invalid {name}: must be a map of name to weight.", param=name)
    mix = {}
    for key, weight in value.items():
        key = str(key).lower()
        if allowed is not None and key not in allowed:
            raise InvalidRequestError(
                f"Invalid {name}[{key}]: must be one of {', '.join(allowed)}.",
                param=f"{name}[{key}]",
            )
        mix[key] = _number(f"{name}[{key}]", weight, minimum=0, maximum=1e9)
    if not any(mix.values()):
        raise InvalidRequestError(f"Invalid {name}: the weights must not all be 0.", param=name)
    return mix


def validate_params(scenario_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The scenario's defaults overlaid with `overrides`, checked; unknown names are a 400."""
    if scenario_name not in scenarios.SCENARIOS:
        raise InvalidRequestError(
            f"No such scenario: '{scenario_name}'. Try one of {', '.join(scenarios.SCENARIOS)}.",
            code="resource_missing",
            param="scenario",
            status=404,
        )
    scenario = scenarios.get(scenario_name)
    allowed_extra = set(scenario.defaults) | _EXTRA_PARAMS.get(scenario_name, set())
    known = set(scenarios.DEFAULTS) | allowed_extra
    for name in overrides:
        if name not in known:
            raise InvalidRequestError(
                f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
    params = scenario.params(overrides)
    params["rate"] = _number("rate", params["rate"], minimum=0.1, maximum=scenarios.MAX_RATE)
    params["duration"] = _number(
        "duration", params["duration"], minimum=0.1, maximum=scenarios.MAX_DURATION
    )
    for name in scenarios.NUMBER_PARAMS:
        if name not in ("rate", "duration"):
            high = 1.0 if ("share" in name or "probability" in name or "three_ds" in name) else 1e9
            params[name] = _number(name, params[name], minimum=0, maximum=high)
    for name in scenarios.INT_PARAMS:
        if params.get(name) is not None:
            params[name] = int(_number(name, params[name], minimum=0, maximum=2**53))
    if params.get("customer_pool", 0) > MAX_CUSTOMER_POOL:
        raise InvalidRequestError(
            f"Invalid customer_pool: at most {MAX_CUSTOMER_POOL}.", param="customer_pool"
        )
    params["currencies"] = _mix("currencies", params["currencies"], None)
    for currency in params["currencies"]:
        try:
            scenarios.money.validate_currency(currency)
        except ValueError:
            raise InvalidRequestError(
                f"Invalid currency: {currency}.", param=f"currencies[{currency}]"
            ) from None
    params["methods"] = _mix("methods", params["methods"], scenarios.METHODS)
    params["brands"] = _mix("brands", params["brands"], tuple(scenarios.BRAND_CARDS))
    params["outcomes"] = _mix("outcomes", params["outcomes"], scenarios.OUTCOMES)
    for name in scenarios.RANGE_PARAMS:
        bounds = params[name]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise InvalidRequestError(f"Invalid {name}: must be [low, high] seconds.", param=name)
        params[name] = [_number(name, b, minimum=0, maximum=86400) for b in bounds]
    for name in allowed_extra - set(scenario.defaults):
        if params.get(name) is not None and name != "processor" and name != "storm_brand":
            params[name] = _number(name, params[name], minimum=0, maximum=scenarios.MAX_DURATION)
    if params.get("seed") is None:
        params["seed"] = secrets.randbelow(2**31)
    params["scenario"] = scenario_name
    return params


# Scenario-specific parameters (beyond DEFAULTS and the scenario's defaults).
_EXTRA_PARAMS = {
    "peak": {"peak_factor"},
    "decline_storm": {"storm_at", "storm_seconds", "storm_share", "storm_brand"},
    "processor_outage": {"outage_at", "outage_seconds", "processor"},
    "brownout": {"brownout_at", "brownout_seconds", "latency_factor", "processor"},
    "webhook_outage": {"down_at", "down_seconds"},
}


def scenario_parameters(scenario_name: str) -> dict[str, Any]:
    """What a form or the API shows for a scenario: its defaults and extras."""
    scenario = scenarios.get(scenario_name)
    params = {k: v for k, v in scenario.params().items() if k != "seed"}
    for name in sorted(_EXTRA_PARAMS.get(scenario_name, ())):
        params.setdefault(name, None)
    return params


def _merchants_for(merchant: Merchant, slugs: list[str], *, own_only: bool) -> list[Merchant]:
    found = [merchant]
    for slug in slugs:
        if slug == merchant.slug:
            continue
        other = Merchant.objects.filter(slug=slug).first()
        if other is None or own_only:
            # A merchant key may name only its own merchant: another is "no such merchant".
            raise InvalidRequestError(
                f"No such merchant: '{slug}'",
                code="resource_missing",
                param="merchants",
                status=404,
            )
        found.append(other)
    return found


def simulation_run_create(
    *,
    merchant: Merchant,
    scenario: str,
    params: dict[str, Any] | None = None,
    started_by: User | None = None,
    started_via: str = "cli",
    own_merchant_only: bool = False,
    enqueue: bool = True,
    now: datetime | None = None,
) -> SimulationRun:
    """Create a run, its slices and its customer pool; queue the slices on commit.

    With `own_merchant_only` (a merchant's key or user) the traffic may go to
    `merchant` only. Appends nothing to the payments event log itself: the
    traffic does, through the payment services.
    """
    now = now or timezone.now()
    overrides = dict(params or {})
    slugs = overrides.pop("merchants", None) or []
    if not isinstance(slugs, list):
        slugs = [s for s in str(slugs).split(",") if s]
    resolved = validate_params(scenario, overrides)
    merchants = _merchants_for(merchant, [str(s) for s in slugs], own_only=own_merchant_only)
    resolved["merchants"] = [m.slug for m in merchants]
    resolved["_merchant_count"] = len(merchants)
    resolved["_native_processor_chaos"] = chaos.native_processor_chaos()
    schedule = scenarios.Schedule(scenarios.get(scenario).segments(resolved))
    slices = scenarios.slice_count(resolved)
    with transaction.atomic():
        run = SimulationRun.objects.create(
            id=ids.new_id(RUN_PREFIX, now),
            scenario=scenario,
            params=resolved,
            seed=int(resolved["seed"]),
            merchant=merchant,
            merchant_ids=[m.pk for m in merchants],
            slice_count=slices,
            planned=schedule.total,
            started_by=started_by,
            started_via=started_via,
            created=now,
        )
        pool = [
            customer_services.customer_create(
                merchant=merchants[k % len(merchants)],
                fields={
                    "email": f"sim-{k}@{merchants[k % len(merchants)].slug}.example",
                    "name": f"Simulated customer {k}",
                },
                metadata={"simulation_run": run.id},
                now=now,
            ).pk
            for k in range(int(resolved.get("customer_pool") or 0))
        ]
        run.state = {"customers": pool}
        run.save(update_fields=["state"])
        SimulationSlice.objects.bulk_create(
            SimulationSlice(run=run, number=k, next_index=k, updated=now) for k in range(slices)
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run.id))
    return run


def _enqueue(run_id: str) -> None:
    from simulator import tasks

    for slice_id in SimulationSlice.objects.filter(run_id=run_id).values_list("pk", flat=True):
        tasks.run_slice.delay(slice_id)


def get_run(*, run_id: str, merchant_id: int | None) -> SimulationRun:
    query = SimulationRun.objects.filter(pk=run_id)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    run = query.first()
    if run is None:
        raise InvalidRequestError(
            f"No such simulation run: '{run_id}'", code="resource_missing", param="id", status=404
        )
    return run


@transaction.atomic
def simulation_run_stop(
    *, run_id: str, merchant_id: int | None = None, now: datetime | None = None
) -> SimulationRun:
    """Ask a run to stop. Running slices see it within 100 ms and exit; a
    run no slice has started is canceled at once. Stopping a finished run
    is a no-op answer (Stripe-style cancel of a canceled object is a 400,
    but a run that completed by itself a moment ago is not the caller's
    fault): it returns the run as it is."""
    now = now or timezone.now()
    run = get_run(run_id=run_id, merchant_id=merchant_id)
    run = SimulationRun.objects.select_for_update().get(pk=run.pk)
    if run.status in FINAL_STATUSES:
        return run
    run.stop_requested_at = now
    started = run.slices.exclude(status=SimulationSlice.Status.PENDING).exists()
    if run.status == RunStatus.QUEUED and not started:
        run.slices.update(status=SimulationSlice.Status.STOPPED)
        run.status = RunStatus.CANCELED
        run.finished_at = now
    else:
        run.status = RunStatus.STOPPING
    run.save(update_fields=["status", "stop_requested_at", "finished_at"])
    return run


# --- Executing a slice -----------------------------------------------------------


class LeaseLost(Exception):
    """Another worker holds this slice now; this one must let go."""


@dataclass
class _Batch:
    counters: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    follow_ups: list[FollowUp] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Context:
    run: SimulationRun
    merchants: list[Merchant]
    customers: list[str]
    schedule: scenarios.Schedule
    start: float  # Unix seconds
    slices: int

    def due(self, index: int) -> float:
        return self.start + self.schedule.offset(index)

    def plan(self, index: int) -> scenarios.Operation:
        return scenarios.plan_operation(
            self.run.params, index, at=self.schedule.offset(index), slices=self.slices
        )


def _key(run_id: str, index: int, kind: str = "") -> str:
    return f"{run_id}:{index}" + (f":{kind}" if kind else "")


def _request_id(run_id: str, index: int) -> str:
    return f"req_{run_id}_{index}"[:64]


def request_params(ctx: _Context, op: scenarios.Operation) -> dict[str, Any]:
    """The body of the generated `POST /v1/payment_intents` (JSON-able)."""
    params: dict[str, Any] = {
        "amount": op.amount,
        "currency": op.currency,
        **_payment_method_param(op),
        "confirm": True,
        "capture_method": "manual" if op.manual else "automatic_async",
        "metadata": {"simulation_run": ctx.run.id, "simulation_op": str(op.index)},
    }
    if op.customer_index is not None and ctx.customers:
        params["customer"] = ctx.customers[op.customer_index % len(ctx.customers)]
    return params


def _payment_method_param(op: scenarios.Operation) -> dict[str, Any]:
    if op.method == "upi":
        return {"payment_method_data": {"type": "upi", "upi": {"vpa": op.card}}}
    if op.method == "wallet":
        return {"payment_method_data": {"type": "wallet", "wallet": {"type": op.card}}}
    return {"payment_method": op.card}


def _status_of(body: dict[str, Any]) -> tuple[str, str]:
    """(payment status, failure code) from a saved create/confirm response."""
    if "error" in body:
        error = body["error"]
        intent = error.get("payment_intent") or {}
        return str(intent.get("status", "")), str(
            error.get("decline_code") or error.get("code") or error.get("type")
        )
    return str(body.get("status", "")), ""


def _lease() -> timedelta:
    """How long a slice's worker may go silent before the sweep hands the slice on."""
    return timedelta(seconds=settings.PAYLAB_SIMULATOR_LEASE_SECONDS)


def _create(ctx: _Context, op: scenarios.Operation, batch: _Batch, due: float) -> None:
    rng.seed_operation(ctx.run.seed, op.index)
    original = op
    while original.duplicate_of is not None:
        # A retry repeats the original request (resolved through retries of retries).
        original = ctx.plan(original.duplicate_of)
    merchant = ctx.merchants[original.merchant_index % len(ctx.merchants)]
    params = request_params(ctx, original)
    if op.conflict:
        params = {**params, "amount": params["amount"] + 1}
    key = _key(ctx.run.id, original.index)
    request_id = _request_id(ctx.run.id, op.index)
    created: list[tuple[PaymentIntent, dict[str, Any]]] = []

    def execute() -> tuple[int, bytes]:
        outcome = intents.payment_intent_create(
            merchant=merchant,
            amount=params["amount"],
            currency=params["currency"],
            payment_method=params.get("payment_method"),
            payment_method_data=params.get("payment_method_data"),
            confirm=True,
            capture_method=params["capture_method"],
            customer=params.get("customer"),
            metadata=params["metadata"],
        )
        status, body = answer(outcome, None)
        created.append((outcome.intent, body))
        return status, render(status, body)

    try:
        with context.request_context(request_id=request_id, idempotency_key=key):
            saved = run_idempotent(
                merchant_id=merchant.pk,
                key=key,
                method="POST",
                path="/v1/payment_intents",
                params=params,
                request_id=request_id,
                execute=execute,
            )
    except PayLabError as error:
        batch.counters["rejected"] += 1
        batch.failures[error.code or error.type] += 1
        return
    if saved.replayed:
        batch.counters["replayed"] += 1
        return
    batch.counters["created"] += 1
    intent, body = created[0]  # what `saved.body` holds, not parsed back
    status, code = _status_of(body)
    _count_status(batch, intent, status, code)
    if status == Status.REQUIRES_ACTION and not any(
        f.kind in ("3ds_complete", "3ds_fail") for f in op.follow_ups
    ):
        batch.counters["three_ds_abandoned"] += 1
    if status in (Status.REQUIRES_PAYMENT_METHOD, Status.CANCELED):
        return  # declined: nothing follows
    for plan in op.follow_ups:
        batch.follow_ups.append(
            FollowUp(
                run_id=ctx.run.id,
                slice_number=op.index % ctx.slices,
                index=op.index,
                kind=plan.kind,
                merchant_id=merchant.pk,
                payment_intent_id=intent.pk,
                args=plan.args,
                due_at=datetime.fromtimestamp(due + plan.delay, UTC),
            )
        )


def _count_status(batch: _Batch, intent: PaymentIntent, status: str, code: str) -> None:
    if status == Status.SUCCEEDED:
        batch.counters["succeeded"] += 1
        charge = intent.latest_charge
        if charge is not None and charge.disputed:
            batch.counters["disputed"] += 1
    elif status == Status.REQUIRES_CAPTURE:
        batch.counters["requires_capture"] += 1
    elif status == Status.REQUIRES_ACTION:
        batch.counters["requires_action"] += 1
    elif status == Status.REQUIRES_PAYMENT_METHOD:
        batch.counters["failed"] += 1
        batch.failures[code or "declined"] += 1
    elif status == Status.PROCESSING:
        batch.counters["processing"] += 1


def _api_call(
    merchant_id: int, key: str, path: str, params: dict[str, Any], call: Callable[[], Any]
) -> None:
    def execute() -> tuple[int, bytes]:
        obj = call()
        body = (
            presenters.refund(obj)
            if obj.__class__.__name__ == "Refund"
            else presenters.payment_intent(obj)
        )
        return 200, render(200, body)

    with context.request_context(request_id=key[:64], idempotency_key=key):
        run_idempotent(
            merchant_id=merchant_id,
            key=key,
            method="POST",
            path=path,
            params=params,
            request_id=key[:64],
            execute=execute,
        )


def _follow_up(ctx: _Context, item: FollowUp, batch: _Batch) -> str:
    """Perform one follow-up; what happened (stored on the row)."""
    merchant = next(m for m in ctx.merchants if m.pk == item.merchant_id)
    pi = item.payment_intent_id
    intent = PaymentIntent.objects.only("status", "amount_received", "amount_refunded").get(pk=pi)
    key = _key(ctx.run.id, item.index, item.kind)
    kind = item.kind
    rng.seed_operation(ctx.run.seed, item.index, kind)
    if kind in (FollowUp.Kind.CAPTURE, FollowUp.Kind.CANCEL):
        if intent.status != Status.REQUIRES_CAPTURE:
            return f"skipped:{intent.status}"
        if kind == FollowUp.Kind.CAPTURE:
            _api_call(
                merchant.pk,
                key,
                f"/v1/payment_intents/{pi}/capture",
                {},
                lambda: intents.payment_intent_capture(merchant=merchant, intent_id=pi),
            )
            batch.counters["captured"] += 1
            if PaymentIntent.objects.filter(pk=pi, amount_disputed__gt=0).exists():
                batch.counters["disputed"] += 1
        else:
            _api_call(
                merchant.pk,
                key,
                f"/v1/payment_intents/{pi}/cancel",
                {},
                lambda: intents.payment_intent_cancel(merchant=merchant, intent_id=pi),
            )
            batch.counters["canceled"] += 1
        return "done"
    if kind == FollowUp.Kind.REFUND:
        remaining = intent.amount_received - intent.amount_refunded
        if intent.status != Status.SUCCEEDED or remaining <= 0:
            return f"skipped:{intent.status}"
        fraction = float(item.args.get("fraction", 1.0))
        amount = None if fraction >= 1 else max(1, int(intent.amount_received * fraction))
        amount = None if amount is not None and amount >= remaining else amount
        body: dict[str, Any] = {"payment_intent": pi}
        if amount is not None:
            body["amount"] = amount
        _api_call(
            merchant.pk,
            key,
            "/v1/refunds",
            body,
            lambda: refunds.refund_create(merchant=merchant, payment_intent=pi, amount=amount),
        )
        batch.counters["refunded"] += 1
        return "done"
    if kind in (FollowUp.Kind.THREE_DS_COMPLETE, FollowUp.Kind.THREE_DS_FAIL):
        token = (
            ThreeDSChallenge.objects.filter(
                payment_intent_id=pi, status=ThreeDSChallenge.Status.PENDING
            )
            .values_list("token", flat=True)
            .first()
        )
        if token is None or intent.status != Status.REQUIRES_ACTION:
            return f"skipped:{intent.status}"
        succeeded = kind == FollowUp.Kind.THREE_DS_COMPLETE
        # The customer's answer on the hosted page: not an API request, so no
        # idempotency key — the follow-up row, marked done in this transaction,
        # is what makes it happen once.
        result = intents.three_ds_challenge_complete(token=token, succeeded=succeeded)
        batch.counters["three_ds_completed" if succeeded else "three_ds_failed"] += 1
        after = result.intent
        error = after.last_payment_error or {}
        _count_status(
            batch, after, after.status, str(error.get("decline_code") or error.get("code") or "")
        )
        return "done"
    if kind in (FollowUp.Kind.DISPUTE_WIN, FollowUp.Kind.DISPUTE_LOSE):
        dispute = (
            Dispute.objects.filter(payment_intent_id=pi)
            .filter(
                status__in=(
                    Dispute.Status.NEEDS_RESPONSE,
                    Dispute.Status.WARNING_NEEDS_RESPONSE,
                    Dispute.Status.UNDER_REVIEW,
                )
            )
            .values_list("pk", flat=True)
            .first()
        )
        if dispute is None:
            return "skipped:no open dispute"
        disputes.dispute_close(
            merchant=merchant, dispute_id=dispute, won=kind == FollowUp.Kind.DISPUTE_WIN
        )
        return "done"
    return "skipped:unknown"


_TRANSIENT = (OperationalError, InterfaceError)


class SliceRunner:
    """Executes one slice until its operations and follow-ups are done, the
    run stops, or the lease is lost. `clock` and `sleep` are seams for tests
    (never mocked to fake pacing: the pacing test runs in real time)."""

    def __init__(
        self,
        slice_id: int,
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slice_id = slice_id
        self.token = token or secrets.token_hex(8)
        self.clock = clock
        self.sleep = sleep

    # Lease ------------------------------------------------------------------

    def _claim(self) -> SimulationSlice | None:
        now = timezone.now()
        claimed = (
            SimulationSlice.objects.filter(
                pk=self.slice_id,
                status__in=(SimulationSlice.Status.PENDING, SimulationSlice.Status.RUNNING),
            )
            .filter(
                Q(leased_until__isnull=True) | Q(leased_until__lt=now) | Q(lease_token=self.token)
            )
            .update(
                lease_token=self.token,
                leased_until=now + _lease(),
                status=SimulationSlice.Status.RUNNING,
                updated=now,
            )
        )
        if not claimed:
            return None
        return SimulationSlice.objects.select_related("run").get(pk=self.slice_id)

    def _renew_every(self) -> float:
        return _lease().total_seconds() / 3

    def _renew(self) -> bool:
        """Keep the lease while idle (waiting for the next operation or a
        follow-up's delay): a live worker's slice is never handed on.
        False when the lease was lost."""
        now = timezone.now()
        renewed = SimulationSlice.objects.filter(pk=self.slice_id, lease_token=self.token).update(
            leased_until=now + _lease()
        )
        self.renew_at = self.clock() + self._renew_every()
        return bool(renewed)

    def _context(self, run: SimulationRun) -> _Context:
        now = timezone.now()
        SimulationRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now
        )
        run.refresh_from_db()
        merchants = {m.pk: m for m in Merchant.objects.filter(pk__in=run.merchant_ids)}
        started = run.started_at or now
        return _Context(
            run=run,
            merchants=[merchants[pk] for pk in run.merchant_ids],
            customers=list(run.state.get("customers") or []),
            schedule=scenarios.Schedule(scenarios.get(run.scenario).segments(run.params)),
            start=started.timestamp(),
            slices=run.slice_count,
        )

    # Loop -------------------------------------------------------------------

    def run(self) -> str:
        """Execute the slice; its final status ("" when another worker holds it)."""
        current = self._claim()
        if current is None:
            return ""
        run = current.run
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return self._finish(SimulationSlice.Status.STOPPED)
        ctx = self._context(run)
        if ctx.run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return self._finish(SimulationSlice.Status.STOPPED)
        steps = scenarios.get(run.scenario).steps(run.params) if current.number == 0 else []
        self.next_index = current.next_index
        self.steps_done = current.steps_done
        self.counters: Counter[str] = Counter(current.counters)
        self.failures: Counter[str] = Counter(current.failures)
        self.number = current.number
        self.renew_at = self.clock() + self._renew_every()
        next_status = 0.0
        next_follow_up = 0.0
        retries = 0
        due_follow_ups: list[FollowUp] = []
        while True:
            now = self.clock()
            if now >= next_status:
                status = SimulationRun.objects.filter(pk=run.pk).values_list("status", flat=True)[0]
                if status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                    return self._finish(SimulationSlice.Status.STOPPED)
                next_status = now + STATUS_EVERY
            if now >= next_follow_up:
                due_follow_ups = list(
                    FollowUp.objects.filter(
                        run_id=run.pk,
                        slice_number=self.number,
                        done_at__isnull=True,
                        due_at__lte=datetime.fromtimestamp(now, UTC),
                    ).order_by("due_at", "id")[:MAX_BATCH]
                )
                next_follow_up = now + FOLLOW_UP_EVERY
            ops_due = self.next_index < run.planned and ctx.due(self.next_index) <= now
            steps_due = (
                self.steps_done < len(steps) and ctx.start + steps[self.steps_done].at <= now
            )
            if not (ops_due or due_follow_ups or steps_due):
                if self.next_index >= run.planned and self.steps_done >= len(steps):
                    pending = FollowUp.objects.filter(
                        run_id=run.pk, slice_number=self.number, done_at__isnull=True
                    )
                    if not pending.exists():
                        return self._finish(SimulationSlice.Status.DONE)
                if now >= self.renew_at and not self._renew():
                    return ""  # the sweep handed the slice on: another worker holds it
                wake = min(next_status, next_follow_up, now + IDLE_SLEEP)
                if self.next_index < run.planned:
                    wake = min(wake, ctx.due(self.next_index))
                self.sleep(max(0.0, wake - now))
                continue
            try:
                self._batch(ctx, steps, due_follow_ups, now)
                retries = 0
            except LeaseLost:
                return ""
            except _TRANSIENT:
                retries += 1
                if retries > 20:
                    raise
                log.warning(
                    "simulation slice %s: transient database error, retrying",
                    self.slice_id,
                    exc_info=True,
                )
                self.sleep(min(0.05 * retries, 1.0))
            due_follow_ups = []
            next_follow_up = 0.0

    def _batch(
        self,
        ctx: _Context,
        steps: list[scenarios.Step],
        due_follow_ups: list[FollowUp],
        now: float,
    ) -> None:
        batch = _Batch()
        index = self.next_index
        steps_done = self.steps_done
        run = ctx.run
        deadline = time.monotonic() + BATCH_SECONDS
        done_follow_ups: list[tuple[int, str]] = []
        with transaction.atomic():
            while steps_done < len(steps) and ctx.start + steps[steps_done].at <= now:
                step = steps[steps_done]
                locked = SimulationRun.objects.select_for_update().get(pk=run.pk)
                note = chaos.apply_step(locked, step.action, step.args, now=timezone.now())
                locked.notes = [*locked.notes, f"t+{step.at:.1f}s {note}"]
                locked.save(update_fields=["notes", "state"])
                steps_done += 1
            executed = 0
            while (
                index < run.planned
                and ctx.due(index) <= now
                and executed < MAX_BATCH
                and (executed == 0 or time.monotonic() < deadline)
            ):
                op = ctx.plan(index)
                self._guarded(functools.partial(_create, ctx, op, batch, ctx.due(index)), batch)
                index += ctx.slices
                executed += 1
            for item in due_follow_ups:
                if time.monotonic() >= deadline and executed:
                    break
                result = self._guarded(functools.partial(_follow_up, ctx, item, batch), batch)
                done_follow_ups.append((item.pk, result))
                executed += 1
            if batch.follow_ups:
                FollowUp.objects.bulk_create(batch.follow_ups, ignore_conflicts=True)
            stamp = timezone.now()
            for pk, result in done_follow_ups:
                FollowUp.objects.filter(pk=pk, done_at__isnull=True).update(
                    done_at=stamp, result=result[:64]
                )
            counters = self.counters + batch.counters
            failures = self.failures + batch.failures
            extra = {}
            if index >= run.planned and self.next_index < run.planned:
                extra["operations_done_at"] = stamp
            updated = SimulationSlice.objects.filter(
                pk=self.slice_id, lease_token=self.token
            ).update(
                **extra,
                next_index=index,
                steps_done=steps_done,
                counters={name: counters.get(name, 0) for name in COUNTERS},
                failures=dict(failures),
                leased_until=stamp + _lease(),
                updated=stamp,
            )
            if not updated:
                raise LeaseLost
        self.next_index = index
        self.steps_done = steps_done
        self.renew_at = self.clock() + self._renew_every()
        self.counters = counters
        self.failures = failures

    def _guarded(self, call: Callable[[], Any], batch: _Batch) -> str:
        """One operation in a savepoint: a domain refusal or a bug in one
        operation is counted, not fatal; a broken connection is fatal to the batch."""
        # No savepoint of its own: every service called is atomic, so a
        # failing operation rolls back to the savepoint its service opened
        # (two round trips a payment saved).
        try:
            result = call()
        except PayLabError as error:
            batch.counters["rejected"] += 1
            batch.failures[error.code or error.type] += 1
            return f"rejected:{error.code or error.type}"
        except _TRANSIENT:
            raise
        except DatabaseError as error:
            batch.counters["errors"] += 1
            batch.failures[f"error:{type(error).__name__}"] += 1
            log.exception("simulation operation failed")
            return f"error:{type(error).__name__}"
        return str(result or "done")

    def _finish(self, status: str) -> str:
        now = timezone.now()
        with transaction.atomic():
            run = SimulationRun.objects.select_for_update().get(
                pk=SimulationSlice.objects.values_list("run_id", flat=True).get(pk=self.slice_id)
            )
            updated = SimulationSlice.objects.filter(
                pk=self.slice_id, lease_token=self.token
            ).update(status=status, leased_until=None, updated=now)
            if not updated:
                return ""
            _maybe_finish_run(run, now)
        return status


def _maybe_finish_run(run: SimulationRun, now: datetime) -> None:
    """Caller holds the run's row lock. The last slice out closes the run."""
    statuses = set(run.slices.values_list("status", flat=True))
    if statuses & {SimulationSlice.Status.PENDING, SimulationSlice.Status.RUNNING}:
        return
    if run.status in FINAL_STATUSES:
        return
    if SimulationSlice.Status.FAILED in statuses:
        run.status = RunStatus.FAILED
    elif run.status == RunStatus.STOPPING or SimulationSlice.Status.STOPPED in statuses:
        run.status = RunStatus.CANCELED
    else:
        run.status = RunStatus.COMPLETED
    run.finished_at = now
    run.save(update_fields=["status", "finished_at"])


def slice_execute(*, slice_id: int, token: str | None = None) -> str:
    """Run one slice to its end (the task's body). A bug fails the slice and
    the run, with the error recorded; transient database errors propagate
    for the task to retry."""
    runner = SliceRunner(slice_id, token=token)
    try:
        return runner.run()
    except _TRANSIENT:
        raise
    except Exception as error:
        log.exception("simulation slice %s failed", slice_id)
        with transaction.atomic():
            item = SimulationSlice.objects.select_related("run").get(pk=slice_id)
            run = SimulationRun.objects.select_for_update().get(pk=item.run_id)
            SimulationSlice.objects.filter(pk=slice_id).update(
                status=SimulationSlice.Status.FAILED, leased_until=None
            )
            run.error = f"slice {item.number}: {type(error).__name__}: {error}"[:500]
            run.save(update_fields=["error"])
            _maybe_finish_run(run, timezone.now())
        return SimulationSlice.Status.FAILED


def run_inline(
    run_id: str, *, on_tick: Callable[[], None] | None = None, tick: float = 0.5
) -> None:
    """Execute every slice of a run in this process (a thread per slice),
    through the same code a worker runs: `simulate --wait`, tests, benches."""
    rng.install()  # before the threads: each then draws from its own generator
    slice_ids = list(
        SimulationSlice.objects.filter(run_id=run_id)
        .order_by("number")
        .values_list("pk", flat=True)
    )
    if len(slice_ids) == 1 and on_tick is None:
        slice_execute(slice_id=slice_ids[0])
        return
    errors: list[BaseException] = []

    def work(slice_id: int) -> None:
        from django.db import connection

        try:
            slice_execute(slice_id=slice_id)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(pk,), daemon=True) for pk in slice_ids]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=tick / max(1, len(threads)))
        if on_tick is not None:
            on_tick()
    if errors:
        raise errors[0]


# --- Sweep -----------------------------------------------------------------------


def runs_sweep(*, now: datetime | None = None) -> list[int]:
    """Hand slices whose worker died (lease expired) to a new task; close
    stopping runs that no live slice will close. Returns the requeued slice ids."""
    now = now or timezone.now()
    expired = list(
        SimulationSlice.objects.filter(
            run__status__in=ACTIVE_STATUSES,
            status=SimulationSlice.Status.RUNNING,
            leased_until__lt=now,
        ).values_list("pk", "run_id", "run__status")
    )
    requeue = []
    # A stopping run whose slices never started (no worker took them) is
    # closed here: nobody else would.
    for run_id in SimulationRun.objects.filter(status=RunStatus.STOPPING).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            run = SimulationRun.objects.select_for_update().get(pk=run_id)
            run.slices.filter(status=SimulationSlice.Status.PENDING).update(
                status=SimulationSlice.Status.STOPPED
            )
            _maybe_finish_run(run, now)
    for slice_id, run_id, status in expired:
        if status == RunStatus.STOPPING:
            with transaction.atomic():
                run = SimulationRun.objects.select_for_update().get(pk=run_id)
                SimulationSlice.objects.filter(pk=slice_id, leased_until__lt=now).update(
                    status=SimulationSlice.Status.STOPPED, leased_until=None
                )
                _maybe_finish_run(run, now)
        else:
            requeue.append(slice_id)
    if requeue:
        from simulator import tasks

        for slice_id in requeue:
            tasks.run_slice.delay(slice_id)
    return requeue


def default_seed() -> int:
    return random.SystemRandom().randrange(2**31)
