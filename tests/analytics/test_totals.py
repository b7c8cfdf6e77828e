"""The narrow per-chart tables and their total members (merchant NULL,
processor / currency `*`): the projector and the rebuild write the same
cells, the selectors read one filter's cells, the top-customers table keeps
each day's biggest, and verify checks all of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from analytics import selectors, services
from analytics.models import (
    ALL,
    BrandRollup,
    Grain,
    ReasonRollup,
    SeriesRollup,
    StatusRollup,
    TopCustomerRollup,
)
from payments.services import customers
from tests.analytics.conftest import Mix, pay, publish_and_project
from tests.analytics.test_rollups import _everything, _rollup_violations
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db


def _scope(mix: Mix, name: str = "24h", **filters: object) -> selectors.Scope:
    return selectors.Scope(window=selectors.Window.last(name), **filters)  # type: ignore[arg-type]


def test_every_merchant_totals(mix: Mix) -> None:
    publish_and_project()
    day = {"grain": Grain.DAY, "merchant__isnull": True}
    # Declines over every merchant, processor and currency, by code
    reasons = dict(
        ReasonRollup.objects.filter(processor=ALL, currency=ALL, **day)
        .values_list("code")
        .annotate(Sum("count"))
    )
    assert reasons == {"insufficient_funds": 1, "generic_decline": 1, "expired_card": 1}
    # Brand mix over everyone: A's 4 visa approvals and B's 1; 3 visa declines
    brands = dict(
        BrandRollup.objects.filter(processor=ALL, currency=ALL, brand="visa", **day)
        .values_list("outcome")
        .annotate(Sum("count"))
    )
    assert brands == {"succeeded": 5, "failed": 3}
    # Series: every merchant and processor, per currency
    series = dict(
        SeriesRollup.objects.filter(processor=ALL, outcome="succeeded", **day)
        .values_list("currency")
        .annotate(Sum("count"))
    )
    assert series == {"usd": 5, "eur": 1, "gbp": 1}
    statuses = dict(StatusRollup.objects.filter(**day).values_list("status").annotate(Sum("count")))
    assert statuses["succeeded"] == 7 and statuses["canceled"] == 1


def test_selectors_read_the_filters_cells(mix: Mix) -> None:
    publish_and_project()
    everyone = selectors.breakdown(_scope(mix, merchant_ids=None))
    assert dict(everyone.failure_reasons) == {
        "insufficient_funds": 1,
        "generic_decline": 1,
        "expired_card": 1,
    }
    only_b = selectors.breakdown(_scope(mix, merchant_ids=(mix.b.pk,)))
    assert only_b.failure_reasons == [("expired_card", 1)]
    in_usd = selectors.breakdown(_scope(mix, merchant_ids=None, currency="usd"))
    assert dict(in_usd.failure_reasons) == {"insufficient_funds": 1, "generic_decline": 1}
    # Several merchants at once sum their own cells
    both = selectors.breakdown(_scope(mix, merchant_ids=(mix.a.pk, mix.b.pk)))
    assert dict(both.failure_reasons) == dict(everyone.failure_reasons)
    assert selectors.overview(_scope(mix, merchant_ids=(mix.a.pk, mix.b.pk))).current == (
        selectors.overview(_scope(mix, merchant_ids=None)).current
    )
    # Per processor: each processor's cells, never the every-processor total
    names = [p.name for p in selectors.processors(_scope(mix, merchant_ids=None))]
    assert names and ALL not in names
    assert ALL not in selectors.filter_options(None)["processors"]


@pytest.mark.parametrize(("name", "grain"), [("1h", 60), ("24h", 3600), ("90d", 86400)])
def test_ranges_read_their_grain(name: str, grain: int) -> None:
    # 90 days read day cells, 24 hours hour cells, minutes only for short ranges
    assert selectors.Window.last(name).grain == grain


def test_top_customers_keeps_each_days_biggest(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "TOP_PER_DAY", 1)
    a, b = merchant_a.merchant, merchant_b.merchant
    small, big = (
        customers.customer_create(merchant=a, fields={"email": f"{n}@example.com"}).id
        for n in ("small", "big")
    )
    other = customers.customer_create(merchant=b, fields={"email": "other@example.com"}).id
    yesterday = timezone.now() - timedelta(days=1)
    # Given: A's biggest is `big` today and `small` yesterday; B's `other` beats both
    pay(a, amount=1_000, customer=small)
    pay(a, amount=5_000, customer=big)
    pay(a, amount=700, customer=small, at=yesterday)
    pay(b, amount=9_000, customer=other)
    publish_and_project()
    kept = {
        (row.merchant_id, row.bucket, row.customer_id): row.amount
        for row in TopCustomerRollup.objects.filter(grain=Grain.DAY)
    }
    today = int(timezone.now().timestamp()) // 86400 * 86400
    assert kept == {
        (a.pk, today, big): 5_000,
        (a.pk, today - 86400, small): 700,
        (b.pk, today, other): 9_000,
        (None, today, other): 9_000,
        (None, today - 86400, small): 700,
    }
    # When `small` overtakes `big` today, the projector re-ranks the day
    pay(a, amount=4_500, customer=small)
    publish_and_project()
    assert TopCustomerRollup.objects.get(merchant=a, grain=Grain.DAY, bucket=today).customer_id == (
        small
    )
    # Weeks rank their own sums: `small` (5,500 this week at least) beats `big` (5,000)
    this_week = today // Grain.WEEK * Grain.WEEK
    assert (
        TopCustomerRollup.objects.get(merchant=a, grain=Grain.WEEK, bucket=this_week).customer_id
        == small
    )
    # The chart sums each touched day's kept cells (24 h: yesterday and today)
    two_days = _scope_all("24h")
    assert [(c.label, c.amount) for c in selectors.top_customers(two_days, "usd")] == [
        ("other@example.com", 9_000),
        ("small@example.com", 700),
    ]
    # Then the rebuild ranks the same and verify agrees
    projected = _everything()
    services.rollups_rebuild()
    assert _everything() == projected
    assert _rollup_violations() == []


def _scope_all(name: str) -> selectors.Scope:
    return selectors.Scope(merchant_ids=None, window=selectors.Window.last(name))


@pytest.mark.parametrize("model", [ReasonRollup, BrandRollup, SeriesRollup, TopCustomerRollup])
def test_verify_catches_a_wrong_total(mix: Mix, model: type) -> None:
    publish_and_project()
    assert _rollup_violations() == []
    # When one every-merchant cell is tampered with, verify names it
    row = model.objects.filter(merchant__isnull=True, grain=Grain.DAY).first()
    model.objects.filter(pk=row.pk).update(count=row.count + 1)
    assert any(model.__name__ in v for v in _rollup_violations())


def test_rebuild_writes_the_totals_the_projector_does(mix: Mix) -> None:
    publish_and_project()
    projected = _everything()
    assert any(key[2] is None for key in projected["ReasonRollup"])  # totals are there
    services.rollups_rebuild()
    assert _everything() == projected


@pytest.mark.parametrize("name", ["24h", "7d", "30d", "90d"])
def test_top_customers_over_weeks_and_edge_days(mix: Mix, name: str) -> None:
    # Long windows read whole weeks and the days at their edges: same answer
    publish_and_project()
    top = selectors.top_customers(_scope_all(name), "usd")
    assert [(c.label, c.count, c.amount) for c in top] == [("ada@example.com", 2, 12_500)]
