"""The projector counts each event exactly once; the rebuild agrees with
it cell for cell; verify catches a tampered rollup."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum

from analytics import services
from analytics.models import (
    ALL,
    HISTOGRAM,
    BinRollup,
    Checkpoint,
    CustomerRollup,
    Grain,
    Outcome,
    Rollup,
    SeriesRollup,
    StatusRollup,
)
from payments.models import Charge
from payments.services import verify
from tests.analytics.conftest import Mix, pay, publish_and_project

pytestmark = pytest.mark.django_db


def _totals(
    merchant_id: int, grain: int = Grain.DAY
) -> dict[tuple[str, str, str], tuple[int, int]]:
    rows = (
        Rollup.objects.filter(merchant_id=merchant_id, grain=grain)
        .values("outcome", "code", "currency")
        .annotate(n=Sum("count"), total=Sum("amount"))
        .order_by()
    )
    return {(r["outcome"], r["code"], r["currency"]): (r["n"], r["total"]) for r in rows}


def _everything() -> dict[str, dict[tuple[Any, ...], list[int]]]:
    since = services._minute_since(services.timezone.now())
    return {
        cube.model.__name__: {
            k: v for k, v in services.stored_cells(cube, since_minute=since).items() if any(v)
        }
        for cube in services.TABLES
    }


def test_projector_counts_every_outcome(mix: Mix) -> None:
    # When the committed events are published and projected
    publish_and_project()
    # Then each outcome of merchant A is counted with its amount, per currency
    assert _totals(mix.a.pk) == {
        (Outcome.SUCCEEDED, "", "usd"): (5, 10_000 + 2_500 + 4_000 + 6_000 + 1_200),
        (Outcome.SUCCEEDED, "", "eur"): (1, 5_000),
        (Outcome.FAILED, "insufficient_funds", "usd"): (1, 700),
        (Outcome.FAILED, "generic_decline", "usd"): (1, 800),
        (Outcome.REFUNDED, "", "usd"): (2, 1_000 + 1_200),
        (Outcome.REFUND_FAILED, "", "usd"): (1, 1_200),
        (Outcome.DISPUTED, "", "usd"): (1, 6_000),
    }
    assert _totals(mix.b.pk) == {
        (Outcome.SUCCEEDED, "", "gbp"): (1, 77_700),
        (Outcome.FAILED, "expired_card", "gbp"): (1, 300),
    }


@pytest.mark.parametrize("grain", [Grain.MINUTE, Grain.HOUR, Grain.DAY])
def test_every_grain_sums_to_the_same_totals(mix: Mix, grain: int) -> None:
    publish_and_project()
    assert _totals(mix.a.pk, grain) == _totals(mix.a.pk, Grain.DAY)
    expected = {
        Outcome.SUCCEEDED: 6,
        Outcome.FAILED: 2,
        Outcome.REFUNDED: 2,
        Outcome.REFUND_FAILED: 1,
        Outcome.DISPUTED: 1,
    }
    cells = SeriesRollup.objects.filter(merchant=mix.a, grain=grain)
    # Each processor's cells, and the every-processor total, sum to the same
    assert _by_outcome(cells.exclude(processor=ALL)) == expected
    assert _by_outcome(cells.filter(processor=ALL)) == expected


def _by_outcome(cells: Any) -> dict[str, int]:
    rows = cells.values("outcome").annotate(n=Sum("count")).order_by("outcome")
    return {r["outcome"]: r["n"] for r in rows}


def test_side_rollups(mix: Mix) -> None:
    publish_and_project()
    # BINs: approvals and declines per card BIN (day grain)
    bins = {
        (r.brand, r.bin, r.outcome): r.count
        for r in BinRollup.objects.filter(merchant=mix.a, grain=Grain.DAY)
    }
    assert bins[("visa", "424242", Outcome.SUCCEEDED)] == 2
    assert bins[("amex", "378282", Outcome.SUCCEEDED)] == 1
    assert bins[("visa", "400000", Outcome.FAILED)] == 2
    # Customers: succeeded volume of the one known customer
    customer = CustomerRollup.objects.filter(merchant=mix.a, grain=Grain.DAY).aggregate(
        n=Sum("count"), total=Sum("amount")
    )
    assert customer == {"n": 2, "total": 12_500}
    # Statuses: payments by current status, every transition moved
    statuses = {
        r["status"]: r["n"]
        for r in StatusRollup.objects.filter(merchant=mix.a, grain=Grain.DAY)
        .values("status")
        .annotate(n=Sum("count"))
        if r["n"]
    }
    assert statuses == {"succeeded": 6, "requires_payment_method": 2, "canceled": 1}
    # Latency: every decided charge falls in one histogram bucket
    succeeded = Rollup.objects.filter(merchant=mix.a, grain=Grain.DAY, outcome=Outcome.SUCCEEDED)
    assert sum(sum(getattr(r, h) for h in HISTOGRAM) for r in succeeded) == 6
    # Processors: whichever processor decided each charge
    assert set(Rollup.objects.values_list("processor", flat=True)) == set(
        Charge.objects.values_list("processor", flat=True)
    )


def test_projecting_twice_changes_nothing(mix: Mix) -> None:
    publish_and_project()
    before = _everything()
    # When the projector runs again (and the relay republishes nothing)
    assert publish_and_project() == 0
    assert services.rollups_project() == 0
    # Then nothing moved
    assert _everything() == before


def test_projection_is_incremental(mix: Mix) -> None:
    publish_and_project()
    # Given a new payment after the first projection
    pay(mix.a, amount=1_111)
    # When projected
    assert publish_and_project() == 3  # created, charge.succeeded, payment_intent.succeeded
    # Then only it is added
    assert _totals(mix.a.pk)[(Outcome.SUCCEEDED, "", "usd")] == (6, 23_700 + 1_111)


def test_unpublished_events_wait(mix: Mix) -> None:
    # Given committed but unpublished events, the projector sees nothing yet
    assert services.rollups_catch_up() == 0
    assert not Rollup.objects.exists()
    assert services.rollups_lag()["backlog"] == 0


def test_rebuild_equals_incremental(mix: Mix) -> None:
    publish_and_project()
    incremental = _everything()
    checkpoint = Checkpoint.objects.get().position
    # When rebuilt from scratch
    rows = services.rollups_rebuild()
    # Then every table is the same, and the checkpoint did not move
    assert rows > 0
    assert _everything() == incremental
    assert Checkpoint.objects.get().position == checkpoint


def test_rebuild_then_projector_never_double_counts(mix: Mix) -> None:
    # Given half the log published before a rebuild and the rest after
    outbox_first = outbox_publish_some(20)
    services.rollups_rebuild()
    # When the rest is published and projected
    publish_and_project()
    rebuilt_then_projected = _everything()
    # Then it equals a projection of everything
    services.rollups_rebuild()
    assert outbox_first == 20
    assert _everything() == rebuilt_then_projected


def outbox_publish_some(limit: int) -> int:
    from payments.services import outbox

    return outbox.outbox_publish(relay="tests", limit=limit).count


def test_verify_is_quiet_then_catches_tampering(mix: Mix) -> None:
    publish_and_project()
    assert _rollup_violations() == []
    # When one cell is tampered with
    row = Rollup.objects.filter(merchant=mix.a, grain=Grain.HOUR, outcome=Outcome.SUCCEEDED)[0]
    Rollup.objects.filter(pk=row.pk).update(amount=row.amount + 1)
    # Then verify names it, and the totals check agrees
    violations = _rollup_violations()
    assert any("Rollup" in v and "stored" in v for v in violations)
    assert not any("amount" in v and "payment tables" in v for v in violations)  # hour only
    Rollup.objects.filter(grain=Grain.DAY, outcome=Outcome.DISPUTED).update(count=5)
    assert any("payment tables" in v for v in _rollup_violations())


def _rollup_violations() -> list[str]:
    report = verify.Report()
    for name, check in verify.CHECKS:
        if name.startswith("rollups"):
            check(report)
    return report.violations


def test_seeded_history_is_counted_by_the_rebuild() -> None:
    from django.core.management import call_command

    # Given history bulk-loaded by the seed (published, with no position)
    call_command("seed", payments=300, days=10, merchants=2, seed=3, batch=100)
    # Then the seed's rebuild counted every charge, and verify's totals agree
    succeeded = Charge.objects.filter(status=Charge.Status.SUCCEEDED).count()
    assert succeeded > 0
    counted = Rollup.objects.filter(grain=Grain.DAY, outcome=Outcome.SUCCEEDED).aggregate(
        n=Sum("count")
    )["n"]
    assert counted == succeeded
    report = verify.Report()
    for name, check in verify.CHECKS:
        if name.startswith("rollups"):
            check(report)
    assert report.violations == []
    assert report.checked["rollup totals"] > 0
    # And the projector never counts it a second time
    assert publish_and_project() == 0
