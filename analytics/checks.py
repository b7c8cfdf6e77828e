"""`manage.py verify` checks of the rollups (registered from AnalyticsConfig.ready).

1. Every rollup cell equals its recomputation from the event log, for the
   events the projector's checkpoint covers (minute cells only within the
   retention, less an hour so a prune running meanwhile is not a
   violation). The checkpoint row is held locked meanwhile, so the
   projector cannot move the goalposts.
2. When nothing is waiting to be projected, the rollup totals per merchant
   and currency equal the payment tables: succeeded and failed charges,
   refunds created and failed, disputes opened.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from analytics import services
from analytics.models import Grain, Outcome, Rollup
from payments.models import Charge, Dispute, OutboxMessage, Refund
from payments.services.verify import Report, register

SHOWN = 20


def _nonzero(cells: services.Cells) -> services.Cells:
    return {key: value for key, value in cells.items() if any(value)}


@register("rollups equal the event log")
def check_rollups(report: Report) -> None:
    with transaction.atomic():
        checkpoint = services._checkpoint_locked()
        since = services._minute_since(timezone.now()) + 3600
        expected = services.expected_cells(checkpoint.position, since_minute=since)
        for cube in services.TABLES:
            name = cube.model.__name__
            want = _nonzero(expected[name])
            have = _nonzero(services.stored_cells(cube, since_minute=since))
            report.checked["rollup cells"] += len(have)
            wrong = sorted(
                (key for key in set(want) | set(have) if want.get(key) != have.get(key)), key=str
            )
            for key in wrong[:SHOWN]:
                report.fail(
                    f"{name} {dict(zip(cube.key, key, strict=True))}: stored "
                    f"{have.get(key)}, event log says {want.get(key)} ({', '.join(cube.measures)})"
                )
            if len(wrong) > SHOWN:
                report.fail(f"{name}: … and {len(wrong) - SHOWN} more cells differ")
        pending = OutboxMessage.objects.filter(
            Q(published_at__isnull=True) | Q(position__gt=checkpoint.position)
        ).exists()
        if not pending:
            _check_totals(report)


def _totals(query: Any) -> dict[tuple[int, str], tuple[int, int]]:
    rows = query.values("merchant_id", "currency").annotate(n=Count("pk"), total=Sum("amount"))
    return {(r["merchant_id"], r["currency"]): (r["n"], r["total"] or 0) for r in rows.order_by()}


def _check_totals(report: Report) -> None:
    sums: dict[str, dict[tuple[int, str], tuple[int, int]]] = defaultdict(dict)
    for row in (
        Rollup.objects.filter(grain=Grain.DAY)
        .values("outcome", "merchant_id", "currency")
        .annotate(n=Sum("count"), total=Sum("amount"))
        .order_by()
    ):
        sums[row["outcome"]][(row["merchant_id"], row["currency"])] = (row["n"], row["total"])
    truth = {
        Outcome.SUCCEEDED: _totals(Charge.objects.filter(status=Charge.Status.SUCCEEDED)),
        Outcome.FAILED: _totals(Charge.objects.filter(status=Charge.Status.FAILED)),
        Outcome.REFUNDED: _totals(Refund.objects.all()),
        Outcome.REFUND_FAILED: _totals(Refund.objects.filter(status=Refund.Status.FAILED)),
        Outcome.DISPUTED: _totals(Dispute.objects.all()),
    }
    for outcome, expected in truth.items():
        have = sums.get(outcome, {})
        for key in set(expected) | set(have):
            report.checked["rollup totals"] += 1
            if expected.get(key, (0, 0)) != have.get(key, (0, 0)):
                report.fail(
                    f"rollups: {outcome} of merchant {key[0]} in {key[1]}: (count, amount) "
                    f"{have.get(key, (0, 0))} but the payment tables say {expected.get(key, (0, 0))}"
                )
