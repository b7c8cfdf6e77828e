"""Simulation runs: what an operator asked the simulator to generate, and how far it got.

A SimulationRun is one scenario with its parameters and seed. It is split
into slices — slice k of n owns the operations whose index i satisfies
i % n == k — so several workers share a high rate. A slice's progress
(`next_index`), its counters and the follow-ups it schedules are written in
the same transaction as the operations themselves, which is what makes a
killed worker harmless: its transaction rolls back, and whoever resumes the
slice starts at the last committed index (the per-operation idempotency key
is the second line of defence, and what `verify` checks).

Run counters are the sum of their slices' counters (`simulator.selectors`):
one writer per slice row, no hot row shared by every worker.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPING)
FINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)

# The counters every slice keeps (and a run sums).
COUNTERS = (
    "created",
    "succeeded",
    "failed",
    "requires_action",
    "requires_capture",
    "processing",
    "captured",
    "canceled",
    "refunded",
    "disputed",
    "three_ds_completed",
    "three_ds_failed",
    "three_ds_abandoned",
    "replayed",
    "rejected",
    "errors",
)


class SimulationRun(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    scenario = models.CharField(max_length=40)
    # The resolved parameters (scenario defaults overlaid with the request's).
    params = models.JSONField(default=dict)
    seed = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    # Every merchant the traffic goes to (the first is `merchant`).
    merchant_ids = models.JSONField(default=list)
    slice_count = models.PositiveSmallIntegerField(default=1)
    # How many primary operations (payments) the schedule holds.
    planned = models.PositiveIntegerField(default=0)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_via = models.CharField(max_length=16, default="cli")  # cli | api | dashboard
    # Chaos the scenario applied, and what it could not (no processor service yet…).
    notes = models.JSONField(default=list, blank=True)
    # Scenario state the slices share (e.g. "webhooks_down"); written by slice 0.
    state = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "-id"], name="simrun_merchant_id"),
            models.Index(
                fields=["status"], name="simrun_active", condition=Q(status__in=ACTIVE_STATUSES)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.scenario} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class SimulationSlice(models.Model):
    """One worker's share of a run; one row, one writer at a time (the lease)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        STOPPED = "stopped"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="slices")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The next operation index this slice owns and has not committed.
    next_index = models.PositiveIntegerField(default=0)
    # Scenario steps (chaos) this slice has applied; only slice 0 has any.
    steps_done = models.PositiveSmallIntegerField(default=0)
    lease_token = models.CharField(max_length=40, blank=True, default="")
    leased_until = models.DateTimeField(null=True, blank=True)
    counters = models.JSONField(default=dict)
    failures = models.JSONField(default=dict)  # decline / error code → count
    # When the slice committed its last primary operation (follow-ups may go on).
    operations_done_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="simslice_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} slice {self.number}"


class FollowUp(models.Model):
    """A later operation on a generated payment: capture, refund, 3DS answer,
    dispute close. Written with the operation that scheduled it; done in the
    transaction that performs it."""

    class Kind(models.TextChoices):
        CAPTURE = "capture"
        CANCEL = "cancel"
        REFUND = "refund"
        THREE_DS_COMPLETE = "3ds_complete"
        THREE_DS_FAIL = "3ds_fail"
        DISPUTE_WIN = "dispute_win"
        DISPUTE_LOSE = "dispute_lose"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="follow_ups")
    slice_number = models.PositiveSmallIntegerField()
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    merchant_id = models.BigIntegerField()
    payment_intent_id = models.CharField(max_length=40)
    # Kind-specific: the refund amount, the challenge token…
    args = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index", "kind"], name="simfollowup_unique")
        ]
        indexes = [
            models.Index(
                fields=["run", "slice_number", "due_at"],
                name="simfollowup_due",
                condition=Q(done_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.index} {self.kind}"
